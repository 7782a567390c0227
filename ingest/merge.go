package ingest

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	// The DuckDB driver ("duckdb") for database/sql.
	_ "github.com/duckdb/duckdb-go/v2"

	"worklog/data"
)

// duckMemoryLimit caps DuckDB's buffer pool during the merge; sorts larger
// than this spill to the ingest's temp directory, which keeps the whole
// ingest under its memory budget whatever the partition sizes.
const duckMemoryLimit = "160MB"

// storeRowGroup is the row-group size of committed parts: small row groups
// make filtered pages fast (NOTES.md), at under 1% in size.
const storeRowGroup = 16384

// mergeResult says what the merge did.
type mergeResult struct {
	newIDs, updated int64
}

// merge writes, for every month the dump touches, the month's new content
// into a part of txn: the month's current rows minus every id the dump
// holds, plus the dump's latest record of each id whose latest record falls
// in that month, sorted by date then userWorklogId. staged maps month to its
// staging file. A month touched only because an id moved away from it may
// become empty; the store then drops it.
func merge(ctx context.Context, txn *data.Txn, staged map[string]string, workDir string) (mergeResult, error) {
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
	for _, set := range []string{
		"SET memory_limit = " + data.QuoteString(duckMemoryLimit),
		"SET temp_directory = " + data.QuoteString(filepath.Join(workDir, "duckdb")),
		"SET preserve_insertion_order = false",
	} {
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
		path, err := txn.NewPart(m)
		if err != nil {
			return mergeResult{}, err
		}
		q := "COPY (SELECT * FROM (" + strings.Join(parts, " UNION ALL ") + ") ORDER BY " +
			data.QuoteIdent(data.DateField) + ", " + key + ") TO " + data.QuoteString(path) +
			fmt.Sprintf(" (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE %d)", storeRowGroup)
		if err := exec("write month "+m, q); err != nil {
			return mergeResult{}, err
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
