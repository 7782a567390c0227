package ingest

import (
	"bufio"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"worklog/data"
	"worklog/ingest/demo"
)

// BenchmarkIngestVsDuckDB compares, in one run and alternating, DuckDB's
// own read_json → Parquet COPY of a demo NDJSON dump with Run into an empty
// store and Run again as an upsert of the same dump. It logs each
// repetition and reports the medians as metrics: events/s of each
// (duckdb-ev/s, empty-ev/s, upsert-ev/s) and the ratios to DuckDB
// (empty/duckdb, upsert/duckdb). One iteration is the whole comparison and
// costs minutes at a million events, so run it once:
//
//	WORKLOG_BENCH_ROWS=1000000 go test -tags duckdb_arrow -run '^$' -bench IngestVsDuckDB -benchtime 1x ./ingest/
//
// WORKLOG_BENCH_ROWS is the dump's size (default 100,000),
// WORKLOG_BENCH_DIR keeps the dump between runs (default: a temp dir),
// WORKLOG_BENCH_REPS sets the repetitions (default 2) and
// WORKLOG_BENCH_ONLY=ours skips DuckDB (for profiling Run alone).
func BenchmarkIngestVsDuckDB(b *testing.B) {
	for b.Loop() {
		ingestVsDuckDB(b)
	}
}

func ingestVsDuckDB(b *testing.B) {
	rows, _ := strconv.Atoi(os.Getenv("WORKLOG_BENCH_ROWS"))
	if rows <= 0 {
		rows = 100000
	}
	reps, _ := strconv.Atoi(os.Getenv("WORKLOG_BENCH_REPS"))
	if reps <= 0 {
		reps = 2
	}
	dir := os.Getenv("WORKLOG_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	ctx := context.Background()
	dump := filepath.Join(dir, "demo-"+strconv.Itoa(rows)+".ndjson")
	if _, err := os.Stat(dump); err != nil {
		writeDump(b, dump, rows)
	}

	var cols []string
	for _, f := range data.Fields() {
		cols = append(cols, data.QuoteString(f.Name)+": "+data.QuoteString(f.Kind.SQLType()))
	}
	out := filepath.Join(dir, "duckdb.parquet")
	copySQL := "COPY (SELECT * FROM read_json(" + data.QuoteString(dump) +
		", format = 'newline_delimited', columns = {" + strings.Join(cols, ", ") + "})) TO " +
		data.QuoteString(out) + " (FORMAT parquet)"
	duck := func() time.Duration {
		db, err := sql.Open("duckdb", "")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		defer os.Remove(out)
		start := time.Now()
		if _, err := db.ExecContext(ctx, copySQL); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	ours := func() (empty, upsert time.Duration) {
		storeDir := filepath.Join(dir, "store")
		os.RemoveAll(storeDir)
		defer os.RemoveAll(storeDir)
		st, err := data.Open(storeDir, data.StoreOptions{RetireGrace: -1})
		if err != nil {
			b.Fatal(err)
		}
		for i, d := range []*time.Duration{&empty, &upsert} {
			f, err := os.Open(dump)
			if err != nil {
				b.Fatal(err)
			}
			sum, err := Run(ctx, st, []Input{{Name: "demo", R: f}}, Options{})
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
			if sum.Ingested() != int64(rows) || (i == 1) != (sum.Unchanged == int64(rows)) {
				b.Fatalf("run %d: %s", i, sum)
			}
			*d = sum.Elapsed
		}
		return empty, upsert
	}
	onlyOurs := os.Getenv("WORKLOG_BENCH_ONLY") == "ours"
	var base, empty, upsert []float64
	perSec := func(d time.Duration) float64 { return float64(rows) / d.Seconds() }
	for rep := range reps {
		steps := []string{"duckdb", "ours"}
		if rep%2 == 1 {
			slices.Reverse(steps)
		}
		for _, s := range steps {
			switch {
			case s == "duckdb" && !onlyOurs:
				d := duck()
				base = append(base, perSec(d))
				b.Logf("rep %d DuckDB COPY: %.1f s (%.0f ev/s)", rep+1, d.Seconds(), perSec(d))
			case s == "ours":
				e, u := ours()
				empty, upsert = append(empty, perSec(e)), append(upsert, perSec(u))
				b.Logf("rep %d ours: empty %.1f s (%.0f ev/s), upsert %.1f s (%.0f ev/s)",
					rep+1, e.Seconds(), perSec(e), u.Seconds(), perSec(u))
			}
		}
	}
	med := func(xs []float64) float64 {
		if len(xs) == 0 {
			return 0
		}
		s := slices.Clone(xs)
		slices.Sort(s)
		if len(s)%2 == 1 {
			return s[len(s)/2]
		}
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	d, e, u := med(base), med(empty), med(upsert)
	b.Logf("medians of %d, %d events: DuckDB %.0f ev/s; ours empty %.0f ev/s (%.2f×), upsert %.0f ev/s (%.2f×)",
		reps, rows, d, e, e/d, u, u/d)
	b.ReportMetric(e, "empty-ev/s")
	b.ReportMetric(u, "upsert-ev/s")
	if !onlyOurs {
		b.ReportMetric(d, "duckdb-ev/s")
		b.ReportMetric(e/d, "empty/duckdb")
		b.ReportMetric(u/d, "upsert/duckdb")
	}
}

// writeDump writes rows demo events as NDJSON to path.
func writeDump(t testing.TB, path string, rows int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := demo.Generate(context.Background(), w, demo.Options{Rows: rows, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
