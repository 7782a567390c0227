package query

import (
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// fakeSource yields n one-row batches, then err (nil: the end).
type fakeSource struct {
	mem      memory.Allocator
	schema   *arrow.Schema
	n, calls int
	err      error
	released int
}

func (f *fakeSource) next() (arrow.RecordBatch, error) {
	f.calls++
	if f.calls > f.n {
		return nil, f.err
	}
	b := array.NewInt64Builder(f.mem)
	defer b.Release()
	b.Append(int64(f.calls))
	col := b.NewArray()
	defer col.Release()
	return array.NewRecordBatch(f.schema, []arrow.Array{col}, 1), nil
}

func (f *fakeSource) release() { f.released++ }

func TestStreamLifecycle(t *testing.T) {
	errBoom := errors.New("read rows: boom")
	tests := []struct {
		name    string
		n       int
		err     error
		retains int // extra references taken and dropped before the end
		stopAt  int // Release after this many batches; -1 reads to the end
	}{
		{"reads to the end", 3, nil, 0, -1},
		{"an error ends the stream", 2, errBoom, 0, -1},
		{"released early", 5, nil, 0, 2},
		{"released before the first Next", 5, nil, 0, 0},
		{"extra references", 3, nil, 2, -1},
		{"empty", 0, nil, 0, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
			src := &fakeSource{mem: mem, schema: schema, n: tc.n, err: tc.err}
			r := newStream(nil, schema, src)
			for range tc.retains {
				r.Retain()
			}
			if r.RecordBatch() != nil {
				t.Error("a batch before the first Next")
			}
			got := 0
			for (tc.stopAt < 0 || got < tc.stopAt) && r.Next() {
				got++
				if rec := r.RecordBatch(); rec == nil || rec.Column(0).(*array.Int64).Value(0) != int64(got) {
					t.Fatalf("batch %d = %v", got, rec)
				}
			}
			if tc.stopAt < 0 {
				if got != tc.n {
					t.Errorf("%d batches, want %d", got, tc.n)
				}
				if !errors.Is(r.Err(), tc.err) {
					t.Errorf("Err() = %v, want %v", r.Err(), tc.err)
				}
				if r.Next() || r.RecordBatch() != nil {
					t.Error("Next after the end gave a batch")
				}
				if src.calls != tc.n+1 {
					t.Errorf("source asked %d times after its end, want once", src.calls-tc.n)
				}
			}
			for range tc.retains {
				r.Release()
				if src.released != 0 {
					t.Fatal("source released while references remain")
				}
			}
			r.Release()
			r.Release() // one too many: ignored
			if src.released != 1 {
				t.Errorf("source released %d times, want once", src.released)
			}
			if r.Next() || r.RecordBatch() != nil {
				t.Error("Next after Release gave a batch")
			}
		})
	}
}
