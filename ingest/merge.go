package ingest

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	// The DuckDB driver ("duckdb") for database/sql.
	_ "github.com/duckdb/duckdb-go/v2"

	"worklog/data"
)

// duckSettings keep the merge inside the ingest's memory budget (peak RSS
// under 512 MB for any dump): DuckDB's buffer pool is capped and spills to
// the ingest's temp directory; its allocator hands freed memory back to the
// OS early instead of keeping up to 128-512 MB cached; the external file
// cache, which would keep staging data in memory, is off; one thread, as
// each extra thread carries its own sort and row-group buffers (and on a
// busy 2-core machine one thread was also faster). Only the comparison of
// unchanged events, which sorts nothing, runs on more (see merge).
func duckSettings(tempDir string) []string {
	return []string{
		"SET temp_directory = " + data.QuoteString(tempDir),
		"SET memory_limit = '256MB'",
		"SET threads = 1",
		"SET preserve_insertion_order = false",
		"SET allocator_flush_threshold = '16MB'",
		"SET allocator_bulk_deallocation_flush_threshold = '16MB'",
		"SET enable_external_file_cache = false",
	}
}

// storeRowGroup is the row-group size of committed parts: small row groups
// make filtered pages fast (NOTES.md), at under 1% in size.
const storeRowGroup = 16384

// partRows is the target size of a part file. A month with more rows is
// written as several parts covering consecutive date ranges, so that no
// single sort in DuckDB exceeds its memory budget (wide rows sort slowly
// and, past the budget, spill or fail). The month stays sorted: its parts'
// date ranges are disjoint and ordered.
const defaultPartRows = 32768

// partBytes bounds the input size of one part, so that parts of wide rows
// (large rawData) get fewer rows and DuckDB's sort of a part stays within
// its memory limit.
const partBytes = 48 << 20

// minPartRows is the fewest rows a part is planned with; only rows wider
// than partBytes/minPartRows (about 3 MB: records near the size limit)
// reach it.
const minPartRows = 16

// rowsPerPart is the part size for month m: at most partRows, fewer when
// the month's rows are wide. A month without staged rows (touched only
// because ids moved away) is sized by the dump's widest month.
func rowsPerPart(partRows int64, staged map[string]stagedMonth, m string) int64 {
	sm, ok := staged[m]
	width := sm.rowBytes
	if !ok {
		for _, sm := range staged {
			width = max(width, sm.rowBytes)
		}
	}
	if width <= 0 {
		return partRows
	}
	return min(partRows, max(minPartRows, partBytes/width))
}

// mergeResult says what the merge did.
type mergeResult struct {
	// newIDs, updated and unchanged count the dump's ids: not in the store
	// before, stored with other content, stored with the same content.
	newIDs, updated, unchanged int64
	// changed is false when every touched month kept its content: nothing
	// was written and there is nothing to commit.
	changed bool
}

// installsAsStaged says merge takes the staged parts into the store as
// they are, without DuckDB: the store is empty, every month came sorted
// and no two records share an id (unique).
func installsAsStaged(txn *data.Txn, staged map[string]stagedMonth, unique bool) bool {
	return unique && len(txn.Base().Files) == 0 && allSorted(staged)
}

// merge writes, for every month the dump touches, the month's new content
// into a part of txn: the month's current rows minus every id the dump
// holds, plus the dump's latest record of each id whose latest record falls
// in that month, sorted by date then userWorklogId. staged maps month to its
// staged parts. A month touched only because an id moved away from it may
// become empty; the store then drops it. A large month becomes several
// parts (see defaultPartRows).
//
// unique says no two records of the dump share an id. When it holds, the
// store is empty and every month came in store order, each month is its
// staged parts and DuckDB is not needed.
func merge(ctx context.Context, txn *data.Txn, staged map[string]stagedMonth, unique bool, workDir string, lim mergeLimits) (mergeResult, error) {
	if installsAsStaged(txn, staged, unique) {
		var res mergeResult
		for _, m := range sortedKeys(staged) {
			if err := installStaged(txn, m, staged[m]); err != nil {
				return mergeResult{}, err
			}
			res.newIDs += staged[m].rows
		}
		res.changed = res.newIDs > 0
		return res, nil
	}
	partRows := lim.partRows
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return mergeResult{}, fmt.Errorf("open duckdb: %w", err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return mergeResult{}, fmt.Errorf("connect duckdb: %w", err)
	}
	defer conn.Close()
	exec := func(what, q string) error {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	for _, set := range duckSettings(filepath.Join(workDir, "duckdb")) {
		if err := exec("configure duckdb", set); err != nil {
			return mergeResult{}, err
		}
	}

	// latest-*.parquet: the dump's last record per id (its sequence number
	// and month), and hits-*.parquet: the ids of the dump the store already
	// holds, with their current month. Both are sorted by month, so the
	// per-month reads below skip to their month by row-group statistics
	// and join against one month's ids only: join tables stay as small as
	// a month, whatever the size of the dump.
	key := data.QuoteIdent(data.KeyField)
	seq := data.QuoteIdent(seqColumn)
	months := sortedKeys(staged)
	var stagedIDs []string
	for _, m := range months {
		var sides []string
		for _, p := range staged[m].parts {
			sides = append(sides, p.side)
		}
		stagedIDs = append(stagedIDs, "SELECT "+data.QuoteIdent(sideID)+" AS id, "+seq+" AS seq, "+data.QuoteString(m)+
			" AS month FROM read_parquet("+pathList(sides)+")")
	}
	// DuckDB's hash aggregate over many millions of distinct ids does not
	// fit its memory budget (measured: 10M ids fail at 256 MB, 2.5M pass),
	// so the ids are grouped in buckets by hash(id), one pass per bucket,
	// into latest-<bucket>.parquet; readers take them all with a glob.
	var stagedRows int64
	for _, sm := range staged {
		stagedRows += sm.rows
	}
	buckets := max(1, (stagedRows+lim.idBucketRows-1)/lim.idBucketRows)
	latest := data.QuoteString(filepath.Join(workDir, "latest-*.parquet"))
	for b := range buckets {
		out := data.QuoteString(filepath.Join(workDir, fmt.Sprintf("latest-%04d.parquet", b)))
		if err := exec("collect the dump's ids", "COPY (SELECT id, max(seq) AS seq, arg_max(month, seq) AS month FROM ("+
			strings.Join(stagedIDs, " UNION ALL ")+") WHERE "+bucketOf("id", b, buckets)+
			" GROUP BY id ORDER BY month) TO "+out+" (FORMAT parquet)"); err != nil {
			return mergeResult{}, err
		}
	}
	// latestIn counts, per month, the ids whose latest record falls in it:
	// when it equals the month's staged rows, no staged row is obsolete.
	latestIn, err := countByMonth(ctx, conn, latest)
	if err != nil {
		return mergeResult{}, fmt.Errorf("count the dump's ids: %w", err)
	}
	var total int64
	for _, n := range latestIn {
		total += n
	}

	// Which months hold ids of the dump? Only the narrow key column of the
	// committed files is read.
	base := txn.Base()
	hits := data.QuoteString(filepath.Join(workDir, "hits-*.parquet"))
	hitsIn := map[string]int64{} // month → ids of the dump it holds
	// A damaged file blocks only its month: the dump may not write into
	// it (the month's rows cannot be read to merge), and its ids are left
	// out of the search, so ingests into every other month still commit.
	damaged := map[string]bool{}
	for _, f := range base.Files {
		if err := data.CheckPart(f); err != nil {
			if _, ok := staged[f.Month]; ok {
				return mergeResult{}, fmt.Errorf("month %s: %w", f.Month, err)
			}
			damaged[f.Path] = true
		}
	}
	var committedIDs []string
	for _, m := range base.Months() {
		var paths []string
		for _, f := range base.FilesIn(func(month string) bool { return month == m }) {
			if !damaged[f.Path] {
				paths = append(paths, f.Path)
			}
		}
		if len(paths) > 0 {
			committedIDs = append(committedIDs, "SELECT "+key+" AS id, "+data.QuoteString(m)+" AS month FROM read_parquet("+pathList(paths)+")")
		}
	}
	if len(committedIDs) > 0 {
		// The same buckets keep each join's hash table within the budget.
		for b := range buckets {
			in := data.QuoteString(filepath.Join(workDir, fmt.Sprintf("latest-%04d.parquet", b)))
			out := data.QuoteString(filepath.Join(workDir, fmt.Sprintf("hits-%04d.parquet", b)))
			if err := exec("find updated ids", "COPY (SELECT o.id, o.month FROM ("+strings.Join(committedIDs, " UNION ALL ")+
				") o SEMI JOIN read_parquet("+in+") l ON o.id = l.id WHERE "+bucketOf("o.id", b, buckets)+
				" ORDER BY o.month) TO "+out+" (FORMAT parquet)"); err != nil {
				return mergeResult{}, err
			}
		}
		if hitsIn, err = countByMonth(ctx, conn, hits); err != nil {
			return mergeResult{}, fmt.Errorf("count updated ids: %w", err)
		}
	}
	var res mergeResult
	touched := map[string]bool{}
	for _, m := range months {
		touched[m] = true
	}
	for m, n := range hitsIn {
		res.updated += n
		touched[m] = true
	}
	res.newIDs = total - res.updated

	// A record that leaves fields out keeps the stored values of those
	// fields (SPEC §8). prev-*.parquet holds the stored rows of the ids
	// the dump updates, each with the month its new record lands in (_to),
	// sorted by that month, so a month's merge reads only its own.
	prev := ""
	partial := false
	for _, sm := range staged {
		partial = partial || sm.partial
	}
	if partial && res.updated > 0 {
		var files []data.PartFile
		for m := range hitsIn {
			files = append(files, base.FilesIn(func(month string) bool { return month == m })...)
		}
		for b := range buckets {
			in := data.QuoteString(filepath.Join(workDir, fmt.Sprintf("latest-%04d.parquet", b)))
			out := data.QuoteString(filepath.Join(workDir, fmt.Sprintf("prev-%04d.parquet", b)))
			if err := exec("read the stored rows of updated ids", "COPY (SELECT o.*, l.month AS "+toColumn+" FROM "+data.ScanSQL(files)+
				" o JOIN read_parquet("+in+") l ON o."+key+" = l.id WHERE "+bucketOf("l.id", b, buckets)+
				" ORDER BY l.month) TO "+out+" (FORMAT parquet)"); err != nil {
				return mergeResult{}, err
			}
		}
		prev = data.QuoteString(filepath.Join(workDir, "prev-*.parquet"))
	}

	// Which of the dump's events are stored with the same content? Only the
	// months where the dump meets stored ids are compared; an id whose
	// record moved month has a new date, so it is updated, not unchanged.
	same := map[string]int64{} // month → unchanged events in it
	// The comparison holds 16 bytes per event of one month, not the rows
	// of a sort, so it runs on every core (the sorts below on one again):
	// re-ingesting the 1M bench dump compared its 13 months in 1.3 s
	// instead of 2.2 s on 2 cores.
	if err := exec("configure duckdb", fmt.Sprintf("SET threads = %d", runtime.NumCPU())); err != nil {
		return mergeResult{}, err
	}
	for _, m := range months {
		if hitsIn[m] == 0 {
			continue
		}
		old := base.FilesIn(func(month string) bool { return month == m })
		sm := staged[m]
		fresh := newRows(m, sm, latest, prev)
		if latestIn[m] == sm.rows && !(sm.partial && prev != "") {
			// Every staged row is its id's latest record and complete: the
			// staged parts, in the store's format, are the new events as
			// they are, read without their sidecars.
			var paths []string
			for _, p := range sm.parts {
				paths = append(paths, p.path)
			}
			fresh = "SELECT * FROM read_parquet(" + pathList(paths) + ")"
		}
		n, err := countUnchanged(ctx, conn, fresh, data.ScanSQL(old))
		if err != nil {
			return mergeResult{}, fmt.Errorf("compare month %s: %w", m, err)
		}
		same[m] = n
		res.unchanged += n
	}
	res.updated -= res.unchanged
	if err := exec("configure duckdb", "SET threads = 1"); err != nil {
		return mergeResult{}, err
	}

	order := make([]string, 0, len(touched))
	for m := range touched {
		order = append(order, m)
	}
	sort.Strings(order)
	// When a month's new content is exactly its staged rows (nothing of the
	// old month survives, no staged row is obsolete) and they came in store
	// order, its staged parts are its new parts: no join, no sort, no
	// second write. The others are joined and sorted one by one.
	var copies, sorts []string
	for _, m := range order {
		old := base.FilesIn(func(month string) bool { return month == m })
		var oldRows int64
		for _, f := range old {
			oldRows += f.Rows
			if damaged[f.Path] {
				// An id of the dump moved out of this month.
				return mergeResult{}, fmt.Errorf("month %s: %w", m, data.CheckPart(f))
			}
		}
		if _, ok := staged[m]; ok && same[m] == hitsIn[m] && same[m] == latestIn[m] {
			// Every event of the dump that the month held, or will hold,
			// is stored as it is: the month keeps its files.
			continue
		}
		res.changed = true
		if len(old) > 0 {
			txn.Replace(m)
		}
		if sm, ok := staged[m]; ok && sm.sorted && latestIn[m] == sm.rows && hitsIn[m] == oldRows && !(sm.partial && prev != "") {
			copies = append(copies, m)
		} else {
			sorts = append(sorts, m)
		}
	}
	for _, m := range copies {
		if err := installStaged(txn, m, staged[m]); err != nil {
			return mergeResult{}, err
		}
	}
	for _, m := range sorts {
		if err := ctx.Err(); err != nil {
			return mergeResult{}, err
		}
		old := base.FilesIn(func(month string) bool { return month == m })
		var parts []string
		switch {
		case hitsIn[m] > 0:
			parts = append(parts, "SELECT o.* FROM "+data.ScanSQL(old)+" o ANTI JOIN (SELECT id FROM read_parquet("+hits+
				") WHERE month = "+data.QuoteString(m)+") h ON o."+key+" = h.id")
		case len(old) > 0:
			parts = append(parts, "SELECT * FROM "+data.ScanSQL(old))
		}
		if sm, ok := staged[m]; ok {
			parts = append(parts, newRows(m, sm, latest, prev))
		}
		src := "(" + strings.Join(parts, " UNION ALL ") + ")"
		bounds, err := splitPoints(ctx, conn, src, data.QuoteIdent(data.DateField), rowsPerPart(partRows, staged, m))
		if err != nil {
			return mergeResult{}, fmt.Errorf("plan month %s: %w", m, err)
		}
		for i := 0; i+1 < len(bounds); i++ {
			path, err := txn.NewPart(m)
			if err != nil {
				return mergeResult{}, err
			}
			q := "COPY (SELECT * FROM " + src + " WHERE " + dateRange(data.QuoteIdent(data.DateField), bounds[i], bounds[i+1]) + " ORDER BY " +
				data.QuoteIdent(data.DateField) + ", " + key + ") TO " + data.QuoteString(path) +
				fmt.Sprintf(" (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE %d)", storeRowGroup)
			if err := exec("write month "+m, q); err != nil {
				return mergeResult{}, err
			}
		}
	}
	return res, nil
}

// newRows is the SQL of month m's new events from the dump, in the store's
// columns: the latest record of each id whose latest record falls in m
// (sm is m's staging, latest the glob of latest-*.parquet), merged
// with the stored row where the record leaves fields out (prev, the glob of
// prev-*.parquet, or "" when no record does).
func newRows(m string, sm stagedMonth, latest, prev string) string {
	key := data.QuoteIdent(data.KeyField)
	latestOf := "SELECT s.* FROM " + stagedRelation(sm) +
		" s SEMI JOIN (SELECT id, seq FROM read_parquet(" + latest + ") WHERE month = " + data.QuoteString(m) +
		") l ON s." + key + " = l.id AND s." + data.QuoteIdent(seqColumn) + " = l.seq"
	if sm.partial && prev != "" {
		return "SELECT " + mergedColumns("s", "p") + " FROM (" + latestOf + ") s LEFT JOIN (SELECT * FROM read_parquet(" +
			prev + ") WHERE " + toColumn + " = " + data.QuoteString(m) + ") p ON s." + key + " = p." + key
	}
	return "SELECT " + stagedColumns("s") + " FROM (" + latestOf + ") s"
}

// countUnchanged counts the events of the query newRows that the query
// stored holds with the same content (every field equal, nulls equal).
// Each side is reduced to its id and a 64-bit hash of its 35 fields before
// the join, so the join holds 16 bytes per event however wide the rows
// are; two different events of one id count as unchanged only when their
// hashes collide (a chance of 2^-64).
func countUnchanged(ctx context.Context, conn *sql.Conn, newRows, stored string) (int64, error) {
	cols := make([]string, 0, len(data.Fields()))
	for _, f := range data.Fields() {
		cols = append(cols, data.QuoteIdent(f.Name))
	}
	key := data.QuoteIdent(data.KeyField)
	digest := "SELECT " + key + " AS id, hash(" + strings.Join(cols, ", ") + ") AS h FROM "
	var n int64
	err := conn.QueryRowContext(ctx, "SELECT count(*) FROM ("+digest+"("+newRows+")) n JOIN ("+digest+stored+
		") o ON n.id = o.id AND n.h = o.h").Scan(&n)
	return n, err
}

// toColumn, in prev-*.parquet, is the month an updated id's new record
// lands in.
const toColumn = "_to"

// allSorted says every staged month came in store order.
func allSorted(staged map[string]stagedMonth) bool {
	for _, sm := range staged {
		if !sm.sorted {
			return false
		}
	}
	return true
}

// installStaged makes month m's staged parts parts of txn, in their order
// (date order): the month's new content is exactly its staged rows.
func installStaged(txn *data.Txn, m string, sm stagedMonth) error {
	for _, p := range sm.parts {
		dst, err := txn.NewPart(m)
		if err != nil {
			return err
		}
		if err := movePart(p.path, dst); err != nil {
			return fmt.Errorf("month %s: install part: %w", m, err)
		}
	}
	return nil
}

// stagedRelation is the relation of a month's staged rows: the parts' columns
// plus, from the sidecars (row for row), seqColumn and presentColumn.
func stagedRelation(sm stagedMonth) string {
	var parts []string
	for _, p := range sm.parts {
		parts = append(parts, "SELECT "+stagedColumns("p")+", x."+data.QuoteIdent(seqColumn)+", x."+data.QuoteIdent(presentColumn)+
			" FROM read_parquet("+data.QuoteString(p.path)+", file_row_number = true) p JOIN read_parquet("+data.QuoteString(p.side)+
			", file_row_number = true) x ON p.file_row_number = x.file_row_number")
	}
	return "(" + strings.Join(parts, " UNION ALL ") + ")"
}

// stagedColumns lists the catalogue's columns of alias, in catalogue order.
func stagedColumns(alias string) string {
	var b strings.Builder
	for i, f := range data.Fields() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(alias + "." + data.QuoteIdent(f.Name) + " AS " + data.QuoteIdent(f.Name))
	}
	return b.String()
}

// mergedColumns is stagedColumns for records that may leave fields out:
// a field the staged record s gave (its presentColumn bit is set, even as
// null) takes the record's value; one it left out keeps the stored row p's
// value, or the record's default when the id is new (no p).
func mergedColumns(s, p string) string {
	var b strings.Builder
	present := s + "." + data.QuoteIdent(presentColumn)
	isNew := p + "." + data.QuoteIdent(data.KeyField) + " IS NULL"
	for i, f := range data.Fields() {
		if i > 0 {
			b.WriteString(", ")
		}
		col := data.QuoteIdent(f.Name)
		fmt.Fprintf(&b, "CASE WHEN (%s >> %d) & 1 = 1 OR %s THEN %s.%s ELSE %s.%s END AS %s",
			present, i, isNew, s, col, p, col, col)
	}
	return b.String()
}

func pathList(paths []string) string {
	q := make([]string, len(paths))
	for i, p := range paths {
		q[i] = data.QuoteString(p)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// mergeLimits size the merge's DuckDB work to its memory budget; tests
// shrink them to reach the large-dump paths with small dumps.
type mergeLimits struct {
	// partRows is the most rows of one part file (see defaultPartRows).
	partRows int64
	// idBucketRows is the most ids one pass over the dump's ids groups
	// (see defaultIDBucketRows).
	idBucketRows int64
}

// defaultIDBucketRows: DuckDB grouped 2.5M distinct ids within its 256 MB
// budget and failed at 10M.
const defaultIDBucketRows = 2_000_000

// bucketOf is the SQL condition selecting bucket b of buckets for the id
// expression col; with one bucket it is always true.
func bucketOf(col string, b, buckets int64) string {
	if buckets == 1 {
		return "true"
	}
	return fmt.Sprintf("hash(%s) %% %d = %d", col, buckets, b)
}

// countByMonth counts the rows of the Parquet files at the quoted path or
// glob (latest-*.parquet or hits-*.parquet) per month.
func countByMonth(ctx context.Context, conn *sql.Conn, path string) (map[string]int64, error) {
	rows, err := conn.QueryContext(ctx, "SELECT month, count(*) FROM read_parquet("+path+") GROUP BY 1")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var m string
		var n int64
		if err := rows.Scan(&m, &n); err != nil {
			return nil, err
		}
		out[m] = n
	}
	return out, rows.Err()
}

// splitPoints returns the boundaries of the parts of the month whose rows
// src yields, on its date column date: "" stands for an open end, so one
// part is ["", ""] and an empty month yields no boundaries at all. The inner
// boundaries are dates at evenly spaced quantiles, as SQL literals of the
// column's type (TIMESTAMP, or BIGINT microseconds in staging files); rows
// with equal dates never straddle two parts.
func splitPoints(ctx context.Context, conn *sql.Conn, src, date string, partRows int64) ([]string, error) {
	var n int64
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM "+src).Scan(&n); err != nil {
		return nil, fmt.Errorf("count rows: %w", err)
	}
	if n == 0 {
		return nil, nil
	}
	bounds := []string{""}
	if k := (n + partRows - 1) / partRows; k > 1 {
		qs := make([]string, 0, k-1)
		for i := int64(1); i < k; i++ {
			qs = append(qs, strconv.FormatFloat(float64(i)/float64(k), 'f', 6, 64))
		}
		rows, err := conn.QueryContext(ctx, "SELECT DISTINCT CAST(q AS VARCHAR), typeof(q) = 'TIMESTAMP' FROM (SELECT unnest(quantile_disc("+
			date+", ["+strings.Join(qs, ", ")+"])) AS q FROM "+src+") ORDER BY ALL")
		if err != nil {
			return nil, fmt.Errorf("find split points: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var q string
			var isTime bool
			if err := rows.Scan(&q, &isTime); err != nil {
				return nil, fmt.Errorf("find split points: %w", err)
			}
			if isTime {
				q = "TIMESTAMP " + data.QuoteString(q)
			}
			bounds = append(bounds, q)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("find split points: %w", err)
		}
	}
	return append(bounds, ""), nil
}

// dateRange is the SQL condition lo <= date < hi on the column expression
// date, with bounds from splitPoints; an empty bound is open.
func dateRange(date, lo, hi string) string {
	var conds []string
	if lo != "" {
		conds = append(conds, date+" >= "+lo)
	}
	if hi != "" {
		conds = append(conds, date+" < "+hi)
	}
	if len(conds) == 0 {
		return "true"
	}
	return strings.Join(conds, " AND ")
}
