package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
)

// allocated returns the bytes the program has allocated on the heap so far
// (runtime/metrics, cumulative). The difference across a call bounds what
// the call can have held at its peak, whatever the timing.
func allocated() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// repeatReader yields n copies of b without holding them.
type repeatReader struct {
	b   byte
	n   int64
	buf [64 << 10]byte
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if r.buf[0] != r.b {
		for i := range r.buf {
			r.buf[i] = r.b
		}
	}
	n := copy(p, r.buf[:min(int64(len(r.buf)), r.n)])
	r.n -= int64(n)
	return n, nil
}

// giant is an input whose record at line 3 is size bytes of c inside a JSON
// string, streamed, after two valid records; prefix and suffix frame it for
// each format.
func giant(prefix, suffix string, size int64) io.Reader {
	return io.MultiReader(strings.NewReader(prefix), &repeatReader{b: 'x', n: size}, strings.NewReader(suffix))
}

// TestSizeLimits feeds inputs far beyond the limits and checks that each is
// refused with a *LimitError naming the line, that nothing is committed,
// and that the ingest allocated a bounded amount however large the input.
func TestSizeLimits(t *testing.T) {
	const maxRecord = 1 << 20
	const huge = 256 << 20 // 256 MiB record: before the limits, ~4x in memory
	ndPrefix := ev1 + "\n" + ev2 + "\n" + `{"date":"2024-03-01 00:00:00","action":"readAction","userWorklogId":3,"rawData":"`
	arrPrefix := "[\n" + ev1 + ",\n" + ev2 + ",\n" + `{"date":"2024-03-01 00:00:00","action":"readAction","userWorklogId":3,"rawData":"`
	csvPrefix := "date,action,userWorklogId,rawData\n2024-01-01 00:00:00,readAction,1,a\n\"2024-01-02 00:00:00\",readAction,2,\"b\nc\"\n2024-03-01 00:00:00,readAction,3,"
	bomb := fixture(t, "bomb-1gib-spaces.zst")
	var gzBomb bytes.Buffer // 256 MiB of newlines: no record, only bulk
	zw, _ := gzip.NewWriterLevel(&gzBomb, gzip.BestCompression)
	io.Copy(zw, &repeatReader{b: '\n', n: 256 << 20})
	zw.Close()

	cases := []struct {
		name     string
		in       func() io.Reader
		opts     Options
		sentinel error
		line     int64
		limit    int64
	}{
		{"ndjson line", func() io.Reader { return giant(ndPrefix, "\"}\n", huge) }, Options{MaxRecordBytes: maxRecord}, ErrRecordTooLarge, 3, maxRecord},
		{"json array element", func() io.Reader { return giant(arrPrefix, "\"}\n]", huge) }, Options{MaxRecordBytes: maxRecord}, ErrRecordTooLarge, 4, maxRecord},
		{"csv row", func() io.Reader { return giant(csvPrefix, "\n", huge) }, Options{MaxRecordBytes: maxRecord}, ErrRecordTooLarge, 5, maxRecord},
		{"csv header", func() io.Reader { return giant("date,", "\n", huge) }, Options{MaxRecordBytes: maxRecord}, ErrRecordTooLarge, 1, maxRecord},
		{"zstd bomb of 1 GiB of spaces, default limits", func() io.Reader { return bytes.NewReader(bomb) }, Options{}, ErrRecordTooLarge, 1, DefaultMaxRecordBytes},
		{"gzip bomb of newlines", func() io.Reader { return bytes.NewReader(gzBomb.Bytes()) }, Options{MaxDecompressedBytes: 16 << 20}, ErrDecompressedTooLarge, 0, 16 << 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			mustIngest(t, st, ev1+"\n")
			before := storeFiles(t, st)
			in := tc.in()
			start := allocated()
			_, err := Run(context.Background(), st, []Input{{Name: "dump", R: in}}, tc.opts)
			alloc := allocated() - start
			var le *LimitError
			if !errors.As(err, &le) || !errors.Is(err, tc.sentinel) {
				t.Fatalf("err = %v, want a *LimitError of %v", err, tc.sentinel)
			}
			if le.Line != tc.line || le.Limit != tc.limit || le.Source != "dump" {
				t.Errorf("error = %+v, want line %d, limit %d, source dump", le, tc.line, tc.limit)
			}
			// The bound is a small multiple of the limit plus fixed buffers
			// (1 MiB read buffer, decoders, workers): far below the input.
			if bound := uint64(8*min(tc.limit, DefaultMaxRecordBytes) + 64<<20); alloc > bound {
				t.Errorf("allocated %d MiB, want at most %d MiB", alloc>>20, bound>>20)
			}
			t.Logf("%s: %v; allocated %d MiB in all", tc.name, err, alloc>>20)
			after := storeFiles(t, st)
			if len(after) != len(before) {
				t.Errorf("store has %d files, had %d", len(after), len(before))
			}
			for p, b := range before {
				if after[p] != b {
					t.Errorf("%s changed", p)
				}
			}
		})
	}
}

// TestRecordsUnderTheLimitPass: records just under the limit, many of them,
// in every format, ingest.
func TestRecordsUnderTheLimitPass(t *testing.T) {
	const maxRecord = 64 << 10
	raw := strings.Repeat("y", maxRecord-200)
	var nd, arr, csv strings.Builder
	arr.WriteString("[")
	csv.WriteString("date,action,userWorklogId,rawData\n")
	for i := 1; i <= 300; i++ {
		rec := `{"date":"2024-05-01 00:00:00","action":"readAction","userWorklogId":` + strconv.Itoa(i) + `,"rawData":"` + raw + `"}`
		nd.WriteString(rec + "\n")
		if i > 1 {
			arr.WriteString(",")
		}
		arr.WriteString(rec)
		csv.WriteString("2024-05-01 00:00:00,readAction," + strconv.Itoa(i) + "," + raw + "\n")
	}
	arr.WriteString("]")
	for name, text := range map[string]string{"ndjson": nd.String(), "array": arr.String(), "csv": csv.String()} {
		st := openStore(t)
		sum, err := ingestText(t, st, Options{MaxRecordBytes: maxRecord}, text)
		if err != nil || sum.New != 300 {
			t.Errorf("%s: %v, %v", name, sum, err)
		}
	}
}
