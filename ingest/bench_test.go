package ingest

import (
	"bytes"
	"context"
	"testing"

	"worklog/data"
	"worklog/ingest/demo"
)

// BenchmarkRun ingests 50,000 demo events (about 85 MB of NDJSON) into an
// empty store and reports events/s and input MB/s.
func BenchmarkRun(b *testing.B) {
	const rows = 50000
	var dump bytes.Buffer
	if err := demo.Generate(context.Background(), &dump, demo.Options{Rows: rows, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(dump.Len()))
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		st, err := data.Open(b.TempDir(), data.StoreOptions{RetireGrace: -1})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		sum, err := Run(context.Background(), st, []Input{{Name: "demo", R: bytes.NewReader(dump.Bytes())}}, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if sum.New != rows {
			b.Fatalf("new = %d, want %d", sum.New, rows)
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "events/s")
}
