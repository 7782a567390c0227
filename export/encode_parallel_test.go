package export

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// atLeastTwoProcs makes the runtime use two cores or more for the test, so
// that the parallel path runs on a machine of one core too.
func atLeastTwoProcs(t *testing.T) {
	if old := runtime.GOMAXPROCS(0); old < 2 {
		runtime.GOMAXPROCS(2)
		t.Cleanup(func() { runtime.GOMAXPROCS(old) })
	}
}

// parallelSchema has a column of every kind the row renderings branch on.
func parallelSchema() *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: "text", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "x", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
		{Name: "at", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
	}, nil)
}

// parallelRows returns n rows from row first on: strings that need quotes,
// the formula guard or escaping, of lengths that vary (so blocks differ in
// rows), lists and nulls.
func parallelRowValues(t *testing.T, first, n int) [][]any {
	texts := []string{"plain", `say "hi"`, "a,b", "=SUM(A1)", "line\nbreak", "", " lead", "Günther", "\x00ctl"}
	var rows [][]any
	for i := first; i < first+n; i++ {
		var text any = texts[i%len(texts)] + strings.Repeat("x", i%97)
		if i%11 == 0 {
			text = nil
		}
		var tags any = []any{fmt.Sprint("t", i), `q"`}
		if i%7 == 0 {
			tags = nil
		}
		var x any = float64(i) / 3
		if i%5 == 0 {
			x = nil
		}
		rows = append(rows, []any{text, i - 50, x, tags, ts(t, "2024-05-10 14:52:37").Add(time.Duration(i) * time.Second)})
	}
	return rows
}

// The parallel path (a whole export writing behind) writes the bytes of
// the serial path in every sink format, for batches of no row, one row,
// fewer rows than a block and many blocks.
func TestParallelRowsSameBytes(t *testing.T) {
	atLeastTwoProcs(t)
	mem := newMem(t)
	schema := parallelSchema()
	var batches []arrow.RecordBatch
	first := 0
	for _, n := range []int{0, 1, 5, 300, 2000, 3} {
		rec := newRecord(t, mem, schema, parallelRowValues(t, first, n))
		defer rec.Release()
		batches = append(batches, rec)
		first += n
	}
	cases := []struct {
		f    Format
		opts EncoderOptions
	}{
		{FormatCSV, EncoderOptions{}},
		{FormatCSV, EncoderOptions{CSVFormulaGuard: true, CSVBOM: true}},
		{FormatJSON, EncoderOptions{}},
		{FormatNDJSON, EncoderOptions{}},
	}
	for _, c := range cases {
		for _, sets := range [][]arrow.RecordBatch{batches, batches[:1], batches[3:4], nil} {
			t.Run(fmt.Sprintf("%s/%+v/%d", c.f, c.opts, len(sets)), func(t *testing.T) {
				want := encode(t, c.f, schema, c.opts, sets...)
				var got bytes.Buffer
				enc, err := NewEncoder(c.f, &got, schema, c.opts)
				if err != nil {
					t.Fatal(err)
				}
				enc, wb := writingBehind(enc, enc.(sinkEncoder), &got)
				defer wb.abort()
				for _, rec := range sets {
					if err := enc.Write(rec); err != nil {
						t.Fatal(err)
					}
				}
				if err := enc.Close(); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.Bytes(), want) {
					t.Errorf("parallel bytes differ from serial:\n%q\nwant\n%q", got.Bytes(), want)
				}
			})
		}
	}
}

// A failed write during a parallel batch is sticky: Write returns it once
// every encoding goroutine has ended, and so do later calls.
func TestParallelRowsWriteError(t *testing.T) {
	atLeastTwoProcs(t)
	mem := newMem(t)
	schema := parallelSchema()
	rec := newRecord(t, mem, schema, parallelRowValues(t, 0, 3000))
	defer rec.Release()
	for _, f := range []Format{FormatCSV, FormatJSON, FormatNDJSON} {
		t.Run(string(f), func(t *testing.T) {
			w := &recordWriter{failAt: 2}
			enc, err := NewEncoder(f, w, schema, EncoderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			enc, wb := writingBehind(enc, enc.(sinkEncoder), w)
			defer wb.abort()
			var werr error
			for i := 0; werr == nil && i < 100; i++ {
				werr = enc.Write(rec)
			}
			if !errors.Is(werr, errDiskFull) {
				t.Fatalf("write: %v, want the disk-full error", werr)
			}
			if err := enc.Write(rec); !errors.Is(err, errDiskFull) {
				t.Errorf("write after the error: %v", err)
			}
			if err := enc.Close(); !errors.Is(err, errDiskFull) {
				t.Errorf("close: %v", err)
			}
		})
	}
}

// errRowPanic is what the row function of TestParallelRowsPanic panics
// with.
var errRowPanic = errors.New("row panicked")

// A panic while encoding a row on one of the goroutines is raised again on
// the caller's goroutine, once all of them have ended.
func TestParallelRowsPanic(t *testing.T) {
	atLeastTwoProcs(t)
	mem := newMem(t)
	schema := parallelSchema()
	rec := newRecord(t, mem, schema, parallelRowValues(t, 0, 500))
	defer rec.Release()
	var w bytes.Buffer
	s := newSink(&w)
	s.behind = newWriteBehind(&w)
	defer s.behind.abort()
	row := func(dst []byte, _ []reader, _ *[]byte, i int) []byte {
		if i == 321 {
			panic(errRowPanic)
		}
		return append(dst, 'r')
	}
	defer func() {
		if p := recover(); p != errRowPanic {
			t.Errorf("writeRows panicked with %v, want the row's panic", p)
		}
	}()
	_ = s.writeRows(rec, nil, nil, row)
	t.Error("writeRows returned without panicking")
}

// The readers of a batch sliced at an offset (a slice of a chunk, or of a
// list's or string's buffers) read the rows of the slice: every format
// writes the bytes of the same rows built as a batch of their own,
// nulls, strings and lists at any offset included.
func TestSlicedBatchSameBytes(t *testing.T) {
	mem := newMem(t)
	schema := parallelSchema()
	values := parallelRowValues(t, 0, 300)
	full := newRecord(t, mem, schema, values)
	defer full.Release()
	for _, cut := range [][2]int{{0, 300}, {1, 300}, {3, 250}, {77, 78}, {299, 300}, {13, 13}} {
		sliced := full.NewSlice(int64(cut[0]), int64(cut[1]))
		own := newRecord(t, mem, schema, values[cut[0]:cut[1]])
		for _, f := range []Format{FormatCSV, FormatJSON, FormatNDJSON} {
			got := encode(t, f, schema, EncoderOptions{}, sliced)
			if want := encode(t, f, schema, EncoderOptions{}, own); !bytes.Equal(got, want) {
				t.Errorf("%s rows %d..%d: the slice gives\n%.300q\nwant\n%.300q", f, cut[0], cut[1], got, want)
			}
		}
		sliced.Release()
		own.Release()
	}
}
