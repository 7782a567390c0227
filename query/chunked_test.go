package query

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"worklog/data"
)

func TestChunkDays(t *testing.T) {
	day := func(s string) sql.NullTime {
		d, err := time.Parse(data.DateLayout, s)
		if err != nil {
			t.Fatal(err)
		}
		return sql.NullTime{Time: d, Valid: true}
	}
	at := func(s string) time.Time { return day(s).Time }
	days := []dayCount{{Day: day("2024-01-30"), Rows: 4}, {Day: day("2024-01-31"), Rows: 3}, {Day: day("2024-02-01"), Rows: 9}, {Day: day("2024-02-03"), Rows: 2}}
	tests := []struct {
		name   string
		days   []dayCount
		desc   bool
		target int64
		want   []dayRange
	}{
		{"nothing", nil, true, 10, nil},
		{"ascending, days packed up to the target", days, false, 8, []dayRange{
			{Lo: at("2024-01-30"), Hi: at("2024-02-01")},
			{Lo: at("2024-02-01"), Hi: at("2024-02-02")},
			{Lo: at("2024-02-03"), Hi: at("2024-02-04")},
		}},
		{"descending: newest first, a day over the target alone", days, true, 8, []dayRange{
			{Lo: at("2024-02-03"), Hi: at("2024-02-04")},
			{Lo: at("2024-02-01"), Hi: at("2024-02-02")},
			{Lo: at("2024-01-30"), Hi: at("2024-02-01")},
		}},
		{"one chunk when everything fits", days, true, 100, []dayRange{
			{Lo: at("2024-01-30"), Hi: at("2024-02-04")},
		}},
		{"null dates last in either direction, empty days dropped",
			[]dayCount{{Day: day("2024-01-30"), Rows: 0}, {Day: day("2024-01-31"), Rows: 3}, {Day: sql.NullTime{}, Rows: 2}}, true, 1, []dayRange{
				{Lo: at("2024-01-31"), Hi: at("2024-02-01")},
				{Null: true},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := chunkDays(tc.days, tc.desc, tc.target); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("chunkDays = %+v\n          want %+v", got, tc.want)
			}
		})
	}
}

// TestChunkedExportMatchesOneQuery compares the chunked export, cut into
// chunks of a few rows, with the one plain statement, value by value.
func TestChunkedExportMatchesOneQuery(t *testing.T) {
	snap := fixtureStore(t)
	// The same month listed twice: a chunk then merges rows of two files.
	dup := data.Snapshot{Files: append([]data.PartFile{}, snap.Files...)}
	last := snap.Files[len(snap.Files)-1]
	dup.Files = append(dup.Files, last)

	chunked := newEngine(t, snap)
	chunked.chunkRows = 3
	plain := plainEngine(t, snap)
	tests := []struct {
		name  string
		snap  data.Snapshot
		query string
		opts  Options
	}{
		{"date desc", snap, "", Options{}},
		{"date asc", snap, "orderByDirection=asc", Options{}},
		{"day precision desc", snap, "", Options{DayPrecisionDate: true}},
		{"day precision asc", snap, "orderByDirection=asc", Options{DayPrecisionDate: true}},
		{"filtered", snap, "filters[0][key]=action&filters[0][comparator]=notIn&filters[0][values][]=readAction&filters[1][key]=date&filters[1][comparator]=gt&filters[1][value]=2024-02-01", Options{}},
		{"filtered, day precision", snap, "filters[0][key]=date&filters[0][comparator]=gte&filters[0][value]=2024-05-10", Options{DayPrecisionDate: true}},
		{"nothing matches", snap, "filters[0][key]=date&filters[0][comparator]=lt&filters[0][value]=1990-01-01", Options{}},
		{"two files in one month", dup, "", Options{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, tc.query, tc.opts)
			want := fetch(t, plain, tc.snap, p)
			got := fetch(t, chunked, tc.snap, p)
			if len(got) != len(want) {
				t.Fatalf("chunked export has %d rows, the plain query %d", len(got), len(want))
			}
			for i := range want {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("row %d:\n chunked %v\n   plain %v", i, got[i], want[i])
				}
			}
		})
	}
}

// TestUnreadColumns checks that unread fields come back as all-null columns
// of their type, on the chunked export and on a page alike, while every
// other column and the row order stay as they were.
func TestUnreadColumns(t *testing.T) {
	snap := fixtureStore(t)
	e := newEngine(t, snap)
	e.chunkRows = 4
	unread := []string{"email", "rawData", "ticketId", "tags"}
	for _, query := range []string{"", "orderByField=duration&limit=7", "orderByField=ticketId&limit=5"} {
		t.Run(query, func(t *testing.T) {
			p := mustParse(t, query, Options{})
			want := fetch(t, e, snap, p)
			p.Unread = unread
			got := fetch(t, e, snap, p)
			if len(got) != len(want) || len(got) == 0 {
				t.Fatalf("%d rows with unread fields, %d without", len(got), len(want))
			}
			for i := range want {
				for _, name := range unread {
					if name == p.OrderBy {
						continue // ordered on: read regardless
					}
					if got[i][name] != nil {
						t.Fatalf("row %d: %s = %v, want null", i, name, got[i][name])
					}
					want[i][name] = nil
				}
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("row %d:\n got %v\nwant %v", i, got[i], want[i])
				}
			}
		})
	}
}

// busyDayStore holds 400 events on one day (many sharing a second, ids out
// of date order, a wide rawData) between two quiet days.
func busyDayStore(t *testing.T) data.Snapshot {
	t.Helper()
	return writeStore(t, t.TempDir(), eventsSQL(400, map[string]string{
		data.DateField: `CASE WHEN i < 3 THEN TIMESTAMP '2024-03-04 23:59:59' WHEN i >= 398 THEN TIMESTAMP '2024-03-06 00:00:00' ` +
			`ELSE TIMESTAMP '2024-03-05 00:00:00' + to_seconds((i % 37) * 60) END`,
		data.KeyField: "(i * 7919) % 100003",
		"action":      "'readAction'",
		"rawData":     "repeat('x', 200 + i)",
	}))
}

// fetchChunked reads p's rows through e, in chunks, and fails the test
// unless they are the rows plain gives; it returns them and the row count
// of each chunk read.
func fetchChunked(t *testing.T, e, plain *Engine, snap data.Snapshot, p *Plan) (rows []map[string]any, chunks []int64) {
	t.Helper()
	e.onChunk = func(n int64) { chunks = append(chunks, n) }
	want := fetch(t, plain, snap, p)
	rows = fetch(t, e, snap, p)
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("chunked export (%d rows) differs from the plain query (%d rows)", len(rows), len(want))
	}
	return rows, chunks
}

// plainEngine is an engine that runs every plan as its one plain
// statement, never in chunks: the reference the chunked reads are held to.
func plainEngine(t *testing.T, snap data.Snapshot) *Engine {
	t.Helper()
	e := newEngine(t, snap)
	e.wholeExport = true
	return e
}

// A day larger than a chunk is cut by its sort keys: no chunk exceeds the
// row bound, and the rows come out exactly as the one plain query gives
// them, in every order.
func TestBusyDayIsCutIntoChunks(t *testing.T) {
	snap := busyDayStore(t)
	plain := plainEngine(t, snap)
	for _, tc := range []struct {
		name  string
		query string
		opts  Options
	}{
		{"date desc", "", Options{}},
		{"date asc", "orderByDirection=asc", Options{}},
		{"day precision desc", "", Options{DayPrecisionDate: true}},
		{"day precision asc", "orderByDirection=asc", Options{DayPrecisionDate: true}},
		{"filtered", "filters[0][key]=userWorklogId&filters[0][comparator]=gt&filters[0][value]=50000", Options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, snap)
			e.chunkRows = 7
			got, chunks := fetchChunked(t, e, plain, snap, mustParse(t, tc.query, tc.opts))
			for _, n := range chunks {
				if n > 7 {
					t.Fatalf("a chunk of %d rows, bound 7: %v", n, chunks)
				}
			}
			if len(chunks) < len(got)/7 {
				t.Errorf("%d chunks for %d rows", len(chunks), len(got))
			}
		})
	}
}

// Chunks are bounded by bytes too: wide rows make smaller chunks, on a
// busy day as well. The first chunk is sized by rows (nothing is measured
// yet); rows of 250-700 bytes then fit at most 20 to a 4,000-byte chunk,
// even where the first chunk is the busy day itself and the day had to be
// cut before anything was measured.
func TestChunksBoundedByBytes(t *testing.T) {
	snap := busyDayStore(t)
	plain := plainEngine(t, snap)
	for _, tc := range []struct {
		name  string
		query string
	}{
		{"quiet day first", ""},
		{"the busy day first", "orderByDirection=asc&filters[0][key]=date&filters[0][comparator]=gt&filters[0][value]=2024-03-04%2023:59:59"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, snap)
			e.chunkRows, e.chunkBytes, e.chunkMinRows = 100, 4000, 2
			got, chunks := fetchChunked(t, e, plain, snap, mustParse(t, tc.query, Options{}))
			if len(got) < 397 {
				t.Fatalf("%d rows", len(got))
			}
			for _, n := range chunks[1:] {
				if n > 20 {
					t.Fatalf("chunk of %d rows over the byte bound: %v", n, chunks)
				}
			}
		})
	}
}

// A chunk's batches are released as soon as their last row is emitted, so
// that a chunk shrinks while it is emitted, and the rows still come out in
// the chunk's order.
func TestChunkReleasesEmittedBatches(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	batch := func(ids ...int64) arrow.RecordBatch {
		b := array.NewRecordBuilder(mem, schema)
		defer b.Release()
		for _, id := range ids {
			b.Field(0).(*array.Int64Builder).Append(id)
			if id%3 == 0 {
				b.Field(1).AppendNull()
			} else {
				b.Field(1).(*array.StringBuilder).Append(strings.Repeat("x", int(id)))
			}
		}
		return b.NewRecordBatch()
	}
	// Batch 0 holds ids 4..6, batch 1 ids 1..3; the output is 6..1 in
	// steps of two rows.
	c := chunk{held: []arrow.RecordBatch{batch(4, 5, 6), batch(1, 2, 3)}, left: []int32{3, 3}}
	c.order = []rowRef{{b: 0, i: 2}, {b: 0, i: 1}, {b: 0, i: 0}, {b: 1, i: 2}, {b: 1, i: 1}, {b: 1, i: 0}}
	var got []int64
	for pos := 0; pos < len(c.order); pos += 2 {
		refs := c.order[pos : pos+2]
		rec, err := takeRows(mem, gatherMem{}, schema, c.held, refs)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			id := rec.Column(0).(*array.Int64).Value(i)
			got = append(got, id)
			s := rec.Column(1).(*array.String)
			if want := id%3 == 0; s.IsNull(i) != want {
				t.Errorf("id %d: null %v, want %v", id, s.IsNull(i), want)
			} else if !want && s.Value(i) != strings.Repeat("x", int(id)) {
				t.Errorf("id %d: %q", id, s.Value(i))
			}
		}
		rec.Release()
		c.emitted(refs)
		if wantFirst := pos+2 >= 3; (c.held[0] == nil) != wantFirst {
			t.Errorf("after %d rows: batch 0 released %v, want %v", pos+2, c.held[0] == nil, wantFirst)
		}
	}
	if !reflect.DeepEqual(got, []int64{6, 5, 4, 3, 2, 1}) {
		t.Errorf("rows %v", got)
	}
	if c.held[1] != nil {
		t.Error("batch 1 still held after its last row")
	}
	c.release()
}

// A server's engine hands freed memory back after every chunk (while the
// process is above its threshold, when it has one) and when the stream
// ends; an engine that keeps freed memory (worklog export) or the chunks'
// memory (serve --memory-hand-back=false) does not.
func TestChunkedExportHandsBackMemory(t *testing.T) {
	snap := busyDayStore(t)
	e := newEngine(t, snap)
	if e.handBack == nil {
		t.Fatal("an engine without KeepFreedMemory hands nothing back")
	}
	// Chunks are read by several loaders at once: the hook counts
	// atomically (onChunk is called under the reader's lock).
	var handBacks atomic.Int64
	e.handBack = func() { handBacks.Add(1) }
	e.chunkRows = 50
	var chunks []int64
	e.onChunk = func(n int64) { chunks = append(chunks, n) }
	if rows := fetch(t, e, snap, mustParse(t, "", Options{})); len(rows) != 400 {
		t.Fatalf("%d rows", len(rows))
	}
	// Once per chunk read, once more when the stream is released.
	if n := handBacks.Load(); n != int64(len(chunks))+1 {
		t.Errorf("%d hand-backs for %d chunks", n, len(chunks))
	}

	// With a threshold, a chunk is handed back only while the process's
	// resident memory is above it, and only while handing back brings it
	// under: never below a threshold no process reaches; once above one
	// every process is over (the hand-back cannot help, so it is not
	// repeated); after every chunk when each hand-back gets the process
	// from above the threshold to under it. The stream's end hands back
	// either way.
	var measures atomic.Int64
	underAfterHandBack := func() (int64, bool) {
		// Before a hand-back 300 bytes, after it 50.
		if measures.Add(1)%2 == 1 {
			return 300, true
		}
		return 50, true
	}
	for _, tc := range []struct {
		name     string
		above    int64
		resident func() (int64, bool)
		want     func(chunks int) int
	}{
		{"never above", 1 << 50, residentBytes, func(int) int { return 1 }},
		{"above, and still above after a hand-back", 1, residentBytes, func(int) int { return 2 }},
		{"above, under after every hand-back", 100, underAfterHandBack, func(chunks int) int { return chunks + 1 }},
	} {
		handBacks.Store(0)
		chunks = nil
		e.handBackAbove, e.resident = tc.above, tc.resident
		if rows := fetch(t, e, snap, mustParse(t, "", Options{})); len(rows) != 400 {
			t.Fatalf("%d rows", len(rows))
		}
		if want := tc.want(len(chunks)); handBacks.Load() != int64(want) {
			t.Errorf("%s: %d hand-backs for %d chunks, want %d", tc.name, handBacks.Load(), len(chunks), want)
		}
	}

	for _, opts := range []EngineOptions{{KeepFreedMemory: true}, {KeepChunkMemory: true}} {
		opts.Threads, opts.TempDirectory = 2, t.TempDir()
		keep, err := NewEngine(fixedSource{snap}, opts)
		if err != nil {
			t.Fatal(err)
		}
		if keep.handBack != nil {
			t.Errorf("an engine with %+v hands memory back", opts)
		}
		if err := keep.Close(); err != nil {
			t.Error(err)
		}
	}
}

// With Plan.ReuseReleased the gathered batches are built in pooled
// buffers: a released batch's buffers go back to the pool, the next batch
// reuses them, and every batch holds the same values as one gathered in
// new memory.
func TestGatherReusesReleasedBuffers(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "l", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for id := int64(0); id < 40; id++ {
		b.Field(0).(*array.Int64Builder).Append(id)
		lb := b.Field(2).(*array.ListBuilder)
		if id%4 == 0 {
			b.Field(1).AppendNull()
			lb.AppendNull()
			continue
		}
		b.Field(1).(*array.StringBuilder).Append(strings.Repeat(strconv.Itoa(int(id)), int(id)))
		lb.Append(true)
		for k := int64(0); k < id%3; k++ {
			lb.ValueBuilder().(*array.StringBuilder).Append(fmt.Sprint(id, "/", k))
		}
	}
	held := []arrow.RecordBatch{b.NewRecordBatch()}
	defer held[0].Release()
	// Two batches of 20 rows in descending order: not contiguous, so
	// both are gathered.
	var refs []rowRef
	for i := 39; i >= 0; i-- {
		refs = append(refs, rowRef{b: 0, i: int32(i)})
	}
	pooled := newGatherMem(true)
	released := 0 // bytes pooled after the first batch's release
	for part, rs := range [][]rowRef{refs[:20], refs[20:]} {
		want, err := takeRows(mem, gatherMem{}, schema, held, rs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := takeRows(mem, pooled, schema, held, rs)
		if err != nil {
			t.Fatal(err)
		}
		if !array.RecordEqual(got, want) {
			t.Errorf("batch %d gathered in pooled buffers differs:\n%v\nwant\n%v", part, got, want)
		}
		if part == 1 && pooled.pool.Pooled() >= released {
			t.Errorf("%d bytes pooled, as many as before: the second batch reused none of the first's buffers", pooled.pool.Pooled())
		}
		want.Release()
		got.Release()
		if released = pooled.pool.Pooled(); released == 0 {
			t.Errorf("batch %d released, nothing back in the pool", part)
		}
	}
}

// While the stream waits for the next chunk, the chunk after it is read
// beside it, on another connection; the rows still come out as the plain
// query gives them.
func TestChunksAreReadTwoAtOnce(t *testing.T) {
	snap := busyDayStore(t)
	plain := plainEngine(t, snap)
	p := mustParse(t, "", Options{})
	want := fetch(t, plain, snap, p)

	e := newEngine(t, snap)
	e.chunkRows = 50
	// Every read after the first (which Records makes itself) says it
	// started and waits for the test to let it go on.
	var reads atomic.Int64
	started, proceed := make(chan struct{}, 16), make(chan struct{})
	e.onChunkRead = func() {
		if reads.Add(1) == 1 {
			return
		}
		started <- struct{}{}
		<-proceed
	}
	rr, err := e.Records(context.Background(), snap, p)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	// The stream emits the first chunk and then waits for the second,
	// whose read is held: the third is read meanwhile.
	batches := make(chan []arrow.RecordBatch, 1)
	go func() {
		var held []arrow.RecordBatch
		for rr.Next() {
			rec := rr.RecordBatch()
			rec.Retain()
			held = append(held, rec)
		}
		batches <- held
	}()
	<-started
	<-started
	close(proceed)
	var got []map[string]any
	for _, rec := range <-batches {
		got = append(got, recordRows(t, rec)...)
		rec.Release()
	}
	if err := rr.Err(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("chunked export (%d rows) differs from the plain query (%d rows)", len(got), len(want))
	}
	if n := reads.Load(); n < 4 {
		t.Fatalf("%d chunks read, want several", n)
	}
}

// The validity of gathered rows follows each source array's own bitmap,
// slice offsets included, and is nil when no referenced row is null.
func TestValidityOfGatheredRows(t *testing.T) {
	build := func(vals ...int64) arrow.Array {
		b := array.NewInt64Builder(memory.DefaultAllocator)
		defer b.Release()
		for _, v := range vals {
			if v < 0 {
				b.AppendNull()
			} else {
				b.Append(v)
			}
		}
		return b.NewArray()
	}
	whole := build(0, -1, 2, 3, -1, 5, 6, -1, 8, 9)
	defer whole.Release()
	sliced := array.NewSlice(whole, 2, 10) // 2, 3, null, 5, 6, null, 8, 9
	defer sliced.Release()
	noNulls := build(10, 11, 12)
	defer noNulls.Release()
	cols := []arrow.Array{whole, sliced, noNulls, nil}
	for _, tc := range []struct {
		name string
		refs []rowRef
	}{
		{"one batch", []rowRef{{b: 0, i: 1}, {b: 0, i: 0}, {b: 0, i: 7}}},
		{"sliced", []rowRef{{b: 1, i: 0}, {b: 1, i: 2}, {b: 1, i: 5}, {b: 1, i: 7}}},
		{"across batches", []rowRef{{b: 2, i: 2}, {b: 1, i: 2}, {b: 0, i: 9}, {b: 2, i: 0}, {b: 0, i: 4}}},
		{"no null referenced", []rowRef{{b: 0, i: 0}, {b: 1, i: 0}, {b: 2, i: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf, nulls := validity(cols, tc.refs)
			want := 0
			for k, ref := range tc.refs {
				null := cols[ref.b].IsNull(int(ref.i))
				if null {
					want++
				}
				if buf != nil && bitutil.BitIsSet(buf.Bytes(), k) == null {
					t.Errorf("row %d (batch %d row %d): null %v, bitmap says otherwise", k, ref.b, ref.i, null)
				}
			}
			if nulls != want || (want == 0) != (buf == nil) {
				t.Errorf("%d nulls (bitmap %v), want %d", nulls, buf != nil, want)
			}
		})
	}
}

// eventsSQL selects n events (i from 0) with the given columns' values and
// every other column null.
func eventsSQL(n int, values map[string]string) string {
	var cols []string
	for _, f := range data.Fields() {
		v, ok := values[f.Name]
		if !ok {
			v = "NULL"
		}
		cols = append(cols, v+" AS "+data.QuoteIdent(f.Name))
	}
	return "(SELECT " + strings.Join(cols, ", ") + " FROM range(" + strconv.Itoa(n) + ") r(i))"
}

// rowGroupStore writes 10,240 events a minute apart (1,440 a day) into one
// file of 2,048-row row groups, and, when late is set, a second file in the
// same month whose 300 events fall among the first file's.
func rowGroupStore(t *testing.T, late bool) data.Snapshot {
	t.Helper()
	snap := writeStore(t, t.TempDir(), eventsSQL(10240, map[string]string{
		"date": "TIMESTAMP '2024-03-01 00:00:00' + to_minutes(i)", "userWorklogId": "i",
		"action": "'readAction'", "rawData": "repeat('x', 100 + i % 50)",
	}))
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The file again, with row groups of 2,048 rows.
	first := snap.Files[0].Path
	if _, err := db.Exec("COPY (SELECT * FROM read_parquet(" + data.QuoteString(first) + ") ORDER BY \"date\") TO " +
		data.QuoteString(first+".rg") + " (FORMAT parquet, ROW_GROUP_SIZE 2048)"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(first+".rg", first); err != nil {
		t.Fatal(err)
	}
	if late {
		pf := data.PartFile{Month: snap.Files[0].Month, Rows: 300, Path: filepath.Join(filepath.Dir(first), "part-1.parquet")}
		src := eventsSQL(300, map[string]string{
			"date": "TIMESTAMP '2024-03-01 00:00:30' + to_minutes(i * 29)", "userWorklogId": "100000 + i",
			"action": "'writeAction'", "rawData": "'late'",
		})
		if _, err := db.Exec("COPY (SELECT " + selectList() + " FROM " + src + " ORDER BY \"date\") TO " + data.QuoteString(pf.Path) + " (FORMAT parquet, ROW_GROUP_SIZE 2048)"); err != nil {
			t.Fatal(err)
		}
		snap.Files = append(snap.Files, pf)
	}
	return snap
}

// An export ordered by the full date-time is read in chunks of whole row
// groups (never one row group in two chunks, which would read it twice):
// with chunks of 2,048 rows over row groups of 2,048, every chunk is one row
// group, where chunks of whole days (1,440 rows a day) could not be. Rows
// of another file among them (late events) merge the row groups they
// overlap into one span. The rows come out as the plain query gives them.
func TestChunksEndWhereRowGroupsEnd(t *testing.T) {
	for _, tc := range []struct {
		name   string
		late   bool
		query  string
		opts   Options
		chunks []int64 // nil: not checked
	}{
		{"date desc", false, "", Options{}, []int64{2048, 2048, 2048, 2048, 2048}},
		{"date asc", false, "orderByDirection=asc", Options{}, []int64{2048, 2048, 2048, 2048, 2048}},
		// 2024-03-03 10:00 is row 3,480: the second row group (2,048-4,095)
		// keeps its rows from 3,481 on.
		{"filtered on date", false, "filters[0][key]=date&filters[0][comparator]=gt&filters[0][value]=2024-03-03 10:00:00", Options{}, []int64{2048, 2048, 2048, 615}},
		{"late events in a second file", true, "", Options{}, nil},
		{"late events, ascending", true, "orderByDirection=asc", Options{}, nil},
		// Ordered by the day, a chunk is whole days.
		{"day precision", false, "", Options{DayPrecisionDate: true}, []int64{1600, 1440, 1440, 1440, 1440, 1440, 1440}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := rowGroupStore(t, tc.late)
			plain := plainEngine(t, snap)
			e := newEngine(t, snap)
			e.chunkRows = 2048
			_, chunks := fetchChunked(t, e, plain, snap, mustParse(t, tc.query, tc.opts))
			if tc.chunks != nil && !sameChunks(chunks, tc.chunks) {
				t.Errorf("chunks of %v rows, want %v", chunks, tc.chunks)
			}
			for _, n := range chunks {
				if n > e.chunkRows {
					t.Errorf("a chunk of %d rows, over %d", n, e.chunkRows)
				}
			}
		})
	}
}

// sameChunks reports whether the chunk sizes onChunk reported are want's,
// in want's order for the first and in any order for the rest: the first
// chunk is read before the loaders start, the others two at a time, each
// reported as its read ends (a loaded machine ended them out of order).
func sameChunks(got, want []int64) bool {
	if len(got) != len(want) || len(got) == 0 {
		return len(got) == len(want)
	}
	rest := func(c []int64) []int64 { return slices.Sorted(slices.Values(c[1:])) }
	return got[0] == want[0] && slices.Equal(rest(got), rest(want))
}

// Count of a whole export ordered by date is the sum of its chunks' units,
// the same number the plain count gives, and Records after it reuses them:
// the units are counted once, by Count; Records alone counts them itself.
func TestCountedUnitsAreReused(t *testing.T) {
	snap := rowGroupStore(t, true)
	plain := plainEngine(t, snap)
	for _, tc := range []struct {
		name  string
		query string
		opts  Options
	}{
		{"row groups", "", Options{}},
		{"filtered", "filters[0][key]=action&filters[0][comparator]=equals&filters[0][value]=writeAction", Options{}},
		{"days", "orderByDirection=asc", Options{DayPrecisionDate: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, snap)
			e.chunkRows = 2048
			counts := 0
			e.onCountUnits = func() { counts++ }
			want, err := plain.Count(context.Background(), snap, mustParse(t, tc.query, tc.opts))
			if err != nil {
				t.Fatal(err)
			}
			p := mustParse(t, tc.query, tc.opts)
			n, err := e.Count(context.Background(), snap, p)
			if err != nil {
				t.Fatal(err)
			}
			if n != want {
				t.Fatalf("Count = %d, the plain count %d", n, want)
			}
			rows := fetch(t, e, snap, p)
			if int64(len(rows)) != want || counts != 1 {
				t.Fatalf("%d rows, units counted %d times after Count; want %d rows, once", len(rows), counts, want)
			}
			if !reflect.DeepEqual(rows, fetch(t, plain, snap, p)) {
				t.Fatal("the rows differ from the plain query's")
			}
			// Records alone (another plan, or another snapshot) counts.
			counts = 0
			fetch(t, e, snap, mustParse(t, tc.query, tc.opts))
			if counts != 1 {
				t.Fatalf("Records alone counted the units %d times", counts)
			}
		})
	}
}
