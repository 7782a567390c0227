package jobs

import (
	"context"
	"io"
	"testing"
	"time"

	"worklog/data"
	"worklog/export"
	"worklog/ingest"
	"worklog/ingest/demo"
	"worklog/privacy"
	"worklog/query"
)

// BenchmarkXLSXJob measures a whole background XLSX export of 100,000 demo
// events: submit, DuckDB → privacy → excelize → file, delivery to the
// outbox. It reports rows/s. Run it alone, once:
//
//	go test -tags duckdb_arrow -run '^$' -bench XLSXJob -benchtime 1x ./export/jobs/
func BenchmarkXLSXJob(b *testing.B) {
	for _, format := range []export.Format{export.FormatXLSX, export.FormatCSV} {
		b.Run(string(format), func(b *testing.B) { benchmarkJob(b, format, 100000) })
	}
}

func benchmarkJob(b *testing.B, format export.Format, rows int) {
	dir := b.TempDir()
	store, err := data.Open(dir, data.StoreOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(demo.Generate(context.Background(), pw, demo.Options{Rows: rows, Seed: 1})) }()
	if _, err := ingest.Run(context.Background(), store, []ingest.Input{{Name: "demo", R: pr}}, ingest.Options{}); err != nil {
		b.Fatal(err)
	}
	engine, err := query.NewEngine(store, query.EngineOptions{TempDirectory: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer engine.Close()
	key, err := privacy.LoadOrCreateKey(dir, "")
	if err != nil {
		b.Fatal(err)
	}
	r, err := Open(Config{DataDir: dir, Paths: testPaths{}, Engine: engine, PseudonymKey: key, PerUser: 1 << 20, SweepInterval: 10 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	r.Start(context.Background())
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		job, err := r.Submit(Spec{Owner: "bench", Email: "bench@example.com", Level: privacy.Pseudonymized, Format: format, Rows: int64(rows)})
		if err != nil {
			b.Fatal(err)
		}
		for {
			j, err := r.Get(job.ID, "bench")
			if err != nil {
				b.Fatal(err)
			}
			if j.Status == Failed {
				b.Fatalf("job failed: %s", j.Error)
			}
			if j.Delivery.Delivered() {
				if j.Rows != int64(rows) {
					b.Fatalf("%d rows, want %d", j.Rows, rows)
				}
				b.SetBytes(j.Bytes)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	b.ReportMetric(float64(rows*b.N)/time.Since(start).Seconds(), "rows/s")
}
