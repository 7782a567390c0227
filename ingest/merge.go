package ingest

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
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
// busy 2-core machine one thread was also faster).
func duckSettings(tempDir string) []string {
	return []string{
		"SET temp_directory = " + data.QuoteString(tempDir),
		"SET memory_limit = '192MB'",
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

// mergeResult says what the merge did.
type mergeResult struct {
	newIDs, updated int64
}

// merge writes, for every month the dump touches, the month's new content
// into a part of txn: the month's current rows minus every id the dump
// holds, plus the dump's latest record of each id whose latest record falls
// in that month, sorted by date then userWorklogId. staged maps month to its
// staging file. A month touched only because an id moved away from it may
// become empty; the store then drops it. A large month becomes several
// parts (see defaultPartRows).
func merge(ctx context.Context, txn *data.Txn, staged map[string]string, workDir string, partRows int64) (mergeResult, error) {
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

	months := sortedKeys(staged)
	stageFiles := make([]string, len(months))
	for i, m := range months {
		stageFiles[i] = staged[m]
	}
	key := data.QuoteIdent(data.KeyField)
	if err := exec("collect the dump's ids", "CREATE TEMP TABLE latest AS SELECT "+key+" AS id, max("+
		data.QuoteIdent(seqColumn)+") AS seq FROM read_parquet("+pathList(stageFiles)+") GROUP BY 1"); err != nil {
		return mergeResult{}, err
	}
	var total int64
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM latest").Scan(&total); err != nil {
		return mergeResult{}, fmt.Errorf("count the dump's ids: %w", err)
	}

	// Which committed files hold ids of the dump? Only the narrow key
	// column is read.
	base := txn.Base()
	hits := map[string]int64{} // path → ids of the dump it holds
	if len(base.Files) > 0 {
		paths := make([]string, len(base.Files))
		for i, f := range base.Files {
			paths[i] = f.Path
		}
		rows, err := conn.QueryContext(ctx, "SELECT o.filename, count(*) FROM read_parquet("+pathList(paths)+
			", filename = true) o SEMI JOIN latest l ON o."+key+" = l.id GROUP BY 1")
		if err != nil {
			return mergeResult{}, fmt.Errorf("find updated ids: %w", err)
		}
		for rows.Next() {
			var p string
			var n int64
			if err := rows.Scan(&p, &n); err != nil {
				rows.Close()
				return mergeResult{}, fmt.Errorf("find updated ids: %w", err)
			}
			hits[p] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return mergeResult{}, fmt.Errorf("find updated ids: %w", err)
		}
	}
	var res mergeResult
	touched := map[string]bool{}
	for _, m := range months {
		touched[m] = true
	}
	for _, f := range base.Files {
		if n, ok := hits[f.Path]; ok {
			res.updated += n
			touched[f.Month] = true
		}
	}
	res.newIDs = total - res.updated

	order := make([]string, 0, len(touched))
	for m := range touched {
		order = append(order, m)
	}
	sort.Strings(order)
	for _, m := range order {
		if err := ctx.Err(); err != nil {
			return mergeResult{}, err
		}
		old := base.FilesIn(func(month string) bool { return month == m })
		holdsIDs := false
		for _, f := range old {
			if hits[f.Path] > 0 {
				holdsIDs = true
			}
		}
		var parts []string
		switch {
		case holdsIDs:
			parts = append(parts, "SELECT o.* FROM "+data.ScanSQL(old)+" o ANTI JOIN latest l ON o."+key+" = l.id")
		case len(old) > 0:
			parts = append(parts, "SELECT * FROM "+data.ScanSQL(old))
		}
		if sf, ok := staged[m]; ok {
			parts = append(parts, "SELECT "+stagedColumns("s")+" FROM read_parquet("+data.QuoteString(sf)+") s SEMI JOIN latest l ON s."+
				key+" = l.id AND s."+data.QuoteIdent(seqColumn)+" = l.seq")
		}
		if len(old) > 0 {
			txn.Replace(m)
		}
		src := "(" + strings.Join(parts, " UNION ALL ") + ")"
		bounds, err := splitPoints(ctx, conn, src, partRows)
		if err != nil {
			return mergeResult{}, fmt.Errorf("plan month %s: %w", m, err)
		}
		for i := 0; i+1 < len(bounds); i++ {
			path, err := txn.NewPart(m)
			if err != nil {
				return mergeResult{}, err
			}
			q := "COPY (SELECT * FROM " + src + " WHERE " + dateRange(bounds[i], bounds[i+1]) + " ORDER BY " +
				data.QuoteIdent(data.DateField) + ", " + key + ") TO " + data.QuoteString(path) +
				fmt.Sprintf(" (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE %d)", storeRowGroup)
			if err := exec("write month "+m, q); err != nil {
				return mergeResult{}, err
			}
		}
	}
	return res, nil
}

// stagedColumns converts the staging columns of alias to the store's types,
// in catalogue order.
func stagedColumns(alias string) string {
	var b strings.Builder
	for i, f := range data.Fields() {
		if i > 0 {
			b.WriteString(", ")
		}
		col := alias + "." + data.QuoteIdent(f.Name)
		switch f.Kind {
		case data.KindTimestamp:
			b.WriteString("make_timestamp(" + col + ")")
		case data.KindList:
			b.WriteString("from_json(" + col + `, '["VARCHAR"]')`)
		default:
			b.WriteString("CAST(" + col + " AS " + f.Kind.SQLType() + ")")
		}
		b.WriteString(" AS " + data.QuoteIdent(f.Name))
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

// splitPoints returns the date boundaries of the parts of the month whose
// rows src yields: "" stands for an open end, so one part is ["", ""] and an
// empty month yields no boundaries at all. The inner boundaries are dates
// at evenly spaced quantiles, as DuckDB timestamp literals; rows with equal
// dates never straddle two parts.
func splitPoints(ctx context.Context, conn *sql.Conn, src string, partRows int64) ([]string, error) {
	date := data.QuoteIdent(data.DateField)
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
		rows, err := conn.QueryContext(ctx, "SELECT DISTINCT CAST(unnest(quantile_disc("+date+", ["+strings.Join(qs, ", ")+
			"])) AS VARCHAR) AS q FROM "+src+" ORDER BY q")
		if err != nil {
			return nil, fmt.Errorf("find split points: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var q string
			if err := rows.Scan(&q); err != nil {
				return nil, fmt.Errorf("find split points: %w", err)
			}
			bounds = append(bounds, q)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("find split points: %w", err)
		}
	}
	return append(bounds, ""), nil
}

// dateRange is the SQL condition lo <= date < hi; an empty bound is open.
func dateRange(lo, hi string) string {
	date := data.QuoteIdent(data.DateField)
	var conds []string
	if lo != "" {
		conds = append(conds, date+" >= TIMESTAMP "+data.QuoteString(lo))
	}
	if hi != "" {
		conds = append(conds, date+" < TIMESTAMP "+data.QuoteString(hi))
	}
	if len(conds) == 0 {
		return "true"
	}
	return strings.Join(conds, " AND ")
}
