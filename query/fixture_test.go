package query

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2" // registers the "duckdb" driver for the fixture writer

	"worklog/data"
)

// fixedSource is a SnapshotSource that always yields the same snapshot.
type fixedSource struct{ snap data.Snapshot }

func (f fixedSource) Snapshot() (data.Snapshot, error) { return f.snap, nil }

// columnsSpec is read_json's columns={...} argument for the store schema.
func columnsSpec() string {
	var b strings.Builder
	b.WriteString("{")
	for i, f := range data.Fields() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(data.QuoteString(f.Name) + ": " + data.QuoteString(f.Kind.SQLType()))
	}
	b.WriteString("}")
	return b.String()
}

// writeStore writes the rows of the relation src (a SQL table expression
// with the store's 35 columns) as a Hive-partitioned store under dir, one
// Parquet file per month sorted by date, like the store does, and returns
// the snapshot that lists them.
func writeStore(tb testing.TB, dir, src string) data.Snapshot {
	tb.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE events AS SELECT "+selectList()+" FROM "+src); err != nil {
		tb.Fatalf("load fixture: %v", err)
	}
	rows, err := db.QueryContext(ctx, `SELECT strftime("date", '%Y-%m') AS m, count(*) FROM events GROUP BY m ORDER BY m`)
	if err != nil {
		tb.Fatal(err)
	}
	var snap data.Snapshot
	for rows.Next() {
		var pf data.PartFile
		if err := rows.Scan(&pf.Month, &pf.Rows); err != nil {
			tb.Fatal(err)
		}
		pf.Path = filepath.Join(dir, "worklog", "month="+pf.Month, "part-0.parquet")
		snap.Files = append(snap.Files, pf)
	}
	if err := rows.Close(); err != nil {
		tb.Fatal(err)
	}
	for _, pf := range snap.Files {
		if err := os.MkdirAll(filepath.Dir(pf.Path), 0o755); err != nil {
			tb.Fatal(err)
		}
		q := `COPY (SELECT * FROM events WHERE strftime("date", '%Y-%m') = ` + data.QuoteString(pf.Month) +
			` ORDER BY "date", "userWorklogId") TO ` + data.QuoteString(pf.Path) +
			` (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 16384)`
		if _, err := db.ExecContext(ctx, q); err != nil {
			tb.Fatalf("write %s: %v", pf.Path, err)
		}
	}
	snap.Generation = 1
	return snap
}

// selectList casts every column to the store type, in catalogue order.
func selectList() string {
	var cols []string
	for _, f := range data.Fields() {
		cols = append(cols, "CAST("+data.QuoteIdent(f.Name)+" AS "+f.Kind.SQLType()+") AS "+data.QuoteIdent(f.Name))
	}
	return strings.Join(cols, ", ")
}

// fixtureStore writes testdata/events.ndjson (the reference's example event
// plus 32 varied rows over four months) as a store in a temp dir.
func fixtureStore(tb testing.TB) data.Snapshot {
	tb.Helper()
	path, err := filepath.Abs(filepath.Join("testdata", "events.ndjson"))
	if err != nil {
		tb.Fatal(err)
	}
	src := "read_json(" + data.QuoteString(path) + ", format = 'newline_delimited', columns = " + columnsSpec() + ")"
	return writeStore(tb, tb.TempDir(), src)
}

// newEngine opens an engine over snap, closed when the test ends.
func newEngine(tb testing.TB, snap data.Snapshot) *Engine {
	tb.Helper()
	e, err := NewEngine(fixedSource{snap}, EngineOptions{Threads: 2, TempDirectory: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := e.Close(); err != nil {
			tb.Error(err)
		}
	})
	return e
}
