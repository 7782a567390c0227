package export

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"worklog/data"
	"worklog/ingest/demo"
)

// demoRows generates n worklog events of demo-like width, one value per
// catalogue field in export order (as appendAny takes them), with rawData of
// about rawLen bytes. About one value in ten is null, and strings include
// the characters that need escaping or quoting.
func demoRows(t testing.TB, n, rawLen int) [][]any {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2024, 5, 10, 14, 52, 37, 0, time.UTC)
	words := []string{"Billing", "Payment reminder", "Contract", "Move", "Meter reading",
		`Say "hi"`, "a, b", "Zählerstand", "line\nbreak", "tab\there", " lead", "trail ", "=1+1", "-5", "über ✓"}
	teams := []string{"Customer care", "Backoffice", "Sales"}
	pad := strings.Repeat(`{"ticket":{"id":233,"subject":"Payment","body":"Dear team, please \"check\" my bill."}}`, rawLen/80+1)[:rawLen]
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	list := func(xs []string) []any {
		out := []any{}
		for k := rng.IntN(4); k > 0; k-- {
			out = append(out, pick(xs))
		}
		return out
	}
	rows := make([][]any, n)
	for i := range rows {
		row := make([]any, 0, data.FieldCount())
		for _, f := range data.Fields() {
			var v any
			switch f.Kind {
			case data.KindTimestamp:
				v = base.Add(time.Duration(i*37+rng.IntN(86400*30)) * time.Second)
			case data.KindFlag:
				v = rng.IntN(2)
			case data.KindInt:
				v = rng.IntN(200000) - 50000
			case data.KindFloat:
				v = float64(rng.IntN(10000)) / 100
			case data.KindEnum:
				v = pick(f.Enum)
			case data.KindList:
				if f.Name == "teams" {
					v = list(teams)
				} else {
					v = list(words)
				}
			default:
				v = pick(words)
			}
			if f.Name == "rawData" {
				v = pad
			}
			if !f.Required && rng.IntN(10) == 0 {
				v = nil
			}
			row = append(row, v)
		}
		row[data.Index(data.KeyField)] = i + 1
		rows[i] = row
	}
	return rows
}

// benchBatches returns rows demo events as 2048-row batches, DuckDB's
// vector size. The batches share one record, so the benchmark's own data
// stays small and memory figures are the encoder's.
func benchBatches(b *testing.B, rows int) ([]arrow.RecordBatch, *arrow.Schema) {
	b.Helper()
	mem := memory.NewGoAllocator()
	schema := worklogSchema()
	full := newRecord(b, mem, schema, demoRows(b, 2048, 600))
	var batches []arrow.RecordBatch
	for done := 0; done < rows; done += 2048 {
		batches = append(batches, full.NewSlice(0, int64(min(2048, rows-done))))
	}
	full.Release()
	b.Cleanup(func() {
		for _, r := range batches {
			r.Release()
		}
	})
	return batches, schema
}

// countWriter counts the bytes written to it.
type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

func benchEncode(b *testing.B, f Format, rows int) {
	batches, schema := benchBatches(b, rows)
	b.ReportAllocs()
	var size int64
	cpu0 := cpuTime(b)
	for b.Loop() {
		w := &countWriter{}
		enc, err := NewEncoder(f, w, schema, EncoderOptions{CSVFormulaGuard: true})
		if err != nil {
			b.Fatal(err)
		}
		for _, rec := range batches {
			if err := enc.Write(rec); err != nil {
				b.Fatal(err)
			}
		}
		if err := enc.Close(); err != nil {
			b.Fatal(err)
		}
		size = w.n
	}
	// The build machines are shared: CPU time per run is steadier than
	// the wall clock when other processes compete for the cores.
	b.ReportMetric((cpuTime(b)-cpu0).Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(size)/float64(rows), "B/row")
}

// BenchmarkEncodeJSON encodes 300,000 demo-like rows (rawData 600 bytes),
// the synchronous export limit, to a byte counter.
func BenchmarkEncodeJSON(b *testing.B) { benchEncode(b, FormatJSON, 300_000) }

// BenchmarkEncodeCSV is BenchmarkEncodeJSON for CSV with the formula guard.
func BenchmarkEncodeCSV(b *testing.B) { benchEncode(b, FormatCSV, 300_000) }

// BenchmarkEncodeNDJSON is BenchmarkEncodeJSON for NDJSON.
func BenchmarkEncodeNDJSON(b *testing.B) { benchEncode(b, FormatNDJSON, 300_000) }

// BenchmarkEncodeParquet is BenchmarkEncodeJSON for Parquet (zstd).
func BenchmarkEncodeParquet(b *testing.B) { benchEncode(b, FormatParquet, 300_000) }

// BenchmarkEncodeArrow is BenchmarkEncodeJSON for the Arrow IPC stream.
func BenchmarkEncodeArrow(b *testing.B) { benchEncode(b, FormatArrow, 300_000) }

// BenchmarkEncodeXLSX encodes 20,000 rows, twenty times the synchronous
// XLSX limit.
func BenchmarkEncodeXLSX(b *testing.B) { benchEncode(b, FormatXLSX, 20_000) }

// BenchmarkEncodeXLSX100k encodes 100,000 rows, a background job's size,
// and reports the peak heap growth.
func BenchmarkEncodeXLSX100k(b *testing.B) {
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	benchEncode(b, FormatXLSX, 100_000)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapSys-before.HeapSys)/(1<<20), "heapsys-MiB")
}

// BenchmarkAppendJSONString escapes one demo rawData value (600 bytes of
// JSON, so many quotes to escape).
func BenchmarkAppendJSONString(b *testing.B) {
	raw := demoRows(b, 1, 600)[0][data.Index("rawData")].(string)
	buf := make([]byte, 0, 4096)
	b.SetBytes(int64(len(raw)))
	cpu0 := cpuTime(b)
	for b.Loop() {
		buf = appendJSONString(buf[:0], raw)
	}
	b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// demoRawData returns the rawData of n events of the demo generator: JSON
// messages whose long body text has few characters to escape, unlike the
// quote-dense rawData of BenchmarkAppendJSONString.
func demoRawData(b *testing.B, n int) []string {
	b.Helper()
	var buf bytes.Buffer
	if err := demo.Generate(context.Background(), &buf, demo.Options{Rows: n, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	var out []string
	dec := json.NewDecoder(&buf)
	for dec.More() {
		var ev struct {
			RawData string `json:"rawData"`
		}
		if err := dec.Decode(&ev); err != nil {
			b.Fatal(err)
		}
		out = append(out, ev.RawData)
	}
	return out
}

// BenchmarkAppendJSONStringDemo escapes the rawData of 200 demo events.
func BenchmarkAppendJSONStringDemo(b *testing.B) {
	benchRawData(b, appendJSONString)
}

// BenchmarkAppendCSVFieldDemo quotes the rawData of 200 demo events as CSV
// fields.
func BenchmarkAppendCSVFieldDemo(b *testing.B) {
	benchRawData(b, func(buf []byte, r string) []byte { return appendCSVField(buf, r, true) })
}

// benchRawData times appendValue over the rawData of 200 demo events, with
// the process's CPU time per operation beside the wall time.
func benchRawData(b *testing.B, appendValue func([]byte, string) []byte) {
	raws := demoRawData(b, 200)
	size := 0
	for _, r := range raws {
		size += len(r)
	}
	buf := make([]byte, 0, 8192)
	b.SetBytes(int64(size))
	cpu0 := cpuTime(b)
	for b.Loop() {
		for _, r := range raws {
			buf = appendValue(buf[:0], r)
		}
	}
	b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}
