package privacy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"worklog/data"
)

// benchRows is the size of the synchronous export limit the transform must
// not slow down by more than 5% (SPEC §4, issue 4).
const benchRows = 300_000

// batchRows is the number of rows DuckDB puts in one Arrow batch (one data
// chunk).
const batchRows = 2048

// demoBatches builds n batches of demo-like events in the store schema:
// 200 agents, 2% of events without a user, rawData of about 600 bytes.
func demoBatches(b *testing.B, n int) []arrow.RecordBatch {
	b.Helper()
	mem := memory.NewGoAllocator()
	schema := storeSchema()
	raw := `{"subject":"` + strings.Repeat("Customer asks about an invoice. ", 18) + `"}`
	start := time.Date(2024, 1, 1, 8, 0, 0, 0, time.UTC)
	var out []arrow.RecordBatch
	row := 0
	for range n {
		rb := array.NewRecordBuilder(mem, schema)
		for range batchRows {
			user := row % 200
			for i, f := range data.Fields() {
				fb := rb.Field(i)
				switch f.Name {
				case "userId":
					if row%50 == 0 {
						fb.AppendNull()
					} else {
						fb.(*array.Int64Builder).Append(int64(1000 + user))
					}
					continue
				case "name":
					fb.(*array.StringBuilder).Append(fmt.Sprintf("Agent Person %d", user))
					continue
				case "email":
					fb.(*array.StringBuilder).Append(fmt.Sprintf("agent%d@example.com", user))
					continue
				case "rawData":
					fb.(*array.StringBuilder).Append(raw)
					continue
				}
				switch f.Kind {
				case data.KindTimestamp:
					ts := start.Add(time.Duration(row) * 37 * time.Second)
					fb.(*array.TimestampBuilder).Append(arrow.Timestamp(ts.UnixMicro()))
				case data.KindInt, data.KindFlag:
					fb.(*array.Int64Builder).Append(int64(row % 2))
				case data.KindFloat:
					fb.(*array.Float64Builder).Append(0.75)
				case data.KindList:
					lb := fb.(*array.ListBuilder)
					lb.Append(true)
					lb.ValueBuilder().(*array.StringBuilder).Append("Billing")
				default:
					if len(f.Enum) > 0 {
						fb.(*array.StringBuilder).Append(f.Enum[row%len(f.Enum)])
					} else {
						fb.(*array.StringBuilder).Append("Support")
					}
				}
			}
			row++
		}
		out = append(out, rb.NewRecordBatch())
		rb.Release()
	}
	return out
}

// BenchmarkTransform transforms 300,000 demo-like rows in DuckDB-sized
// batches, with a fresh policy per export (as per request), and reports
// ns/row. Distinct batches are reused cyclically: the transform's cost does
// not depend on the values of the columns it passes through.
func BenchmarkTransform(b *testing.B) {
	batches := demoBatches(b, 16)
	defer func() {
		for _, r := range batches {
			r.Release()
		}
	}()
	nBatches := (benchRows + batchRows - 1) / batchRows
	for _, tt := range []struct {
		level Level
		perms []string
	}{
		{None, nil},
		{Partial, nil},
		{Pseudonymized, nil},
	} {
		b.Run(string(tt.level), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p, err := NewPolicy(tt.level, tt.perms, testKey)
				if err != nil {
					b.Fatal(err)
				}
				for i := range nBatches {
					out, err := p.Transform(batches[i%len(batches)])
					if err != nil {
						b.Fatal(err)
					}
					out.Release()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(nBatches*batchRows), "ns/row")
		})
	}
}
