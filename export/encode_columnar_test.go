package export

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	pqschema "github.com/apache/arrow-go/v18/parquet/schema"

	"worklog/internal/jsontest"
)

// The Parquet and Arrow encoders are checked by reading their output back
// with arrow-go's own readers (pqarrow, ipc.Reader), which share no code
// with the encoders' callers; export/api adds DuckDB and, in CI, node.

// readParquet opens a Parquet file from memory.
func readParquet(t testing.TB, b []byte) (*file.Reader, arrow.Table) {
	t.Helper()
	rdr, err := file.NewParquetReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("open parquet: %v", err)
	}
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatalf("parquet arrow reader: %v", err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatalf("read parquet table: %v", err)
	}
	t.Cleanup(tbl.Release)
	return rdr, tbl
}

// readArrowStream reads an Arrow IPC stream into a table.
func readArrowStream(t testing.TB, b []byte) arrow.Table {
	t.Helper()
	r, err := ipc.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("open arrow stream: %v", err)
	}
	defer r.Release()
	var recs []arrow.RecordBatch
	for r.Next() {
		rec := r.RecordBatch()
		rec.Retain()
		recs = append(recs, rec)
	}
	if err := r.Err(); err != nil {
		t.Fatalf("read arrow stream: %v", err)
	}
	tbl := array.NewTableFromRecords(r.Schema(), recs)
	for _, rec := range recs {
		rec.Release()
	}
	t.Cleanup(tbl.Release)
	return tbl
}

// cellsOf renders every value of a table as arrow-go's ValueStr, column by
// column, after checking that the table has want's column names and types
// (list element names aside: Parquet calls the element "element").
func cellsOf(t testing.TB, tbl arrow.Table, want *arrow.Schema) [][]string {
	t.Helper()
	if int(tbl.NumCols()) != want.NumFields() {
		t.Fatalf("%d columns, want %d", tbl.NumCols(), want.NumFields())
	}
	out := make([][]string, want.NumFields())
	for c, wf := range want.Fields() {
		gf := tbl.Schema().Field(c)
		if gf.Name != wf.Name || !sameType(gf.Type, wf.Type) {
			t.Errorf("column %d is %s %s, want %s %s", c, gf.Name, gf.Type, wf.Name, wf.Type)
		}
		for _, chunk := range tbl.Column(c).Data().Chunks() {
			for i := 0; i < chunk.Len(); i++ {
				out[c] = append(out[c], chunk.ValueStr(i))
			}
		}
	}
	return out
}

func sameType(a, b arrow.DataType) bool {
	la, oka := a.(*arrow.ListType)
	lb, okb := b.(*arrow.ListType)
	if oka && okb {
		return arrow.TypeEqual(la.Elem(), lb.Elem())
	}
	return arrow.TypeEqual(a, b)
}

// cellsOfRecords is cellsOf for the batches the encoder was given.
func cellsOfRecords(t testing.TB, schema *arrow.Schema, recs ...arrow.RecordBatch) [][]string {
	t.Helper()
	tbl := array.NewTableFromRecords(schema, recs)
	defer tbl.Release()
	return cellsOf(t, tbl, schema)
}

func equalCells(t *testing.T, what string, got, want [][]string) {
	t.Helper()
	for c := range want {
		if strings.Join(got[c], "\x00") != strings.Join(want[c], "\x00") {
			t.Errorf("%s column %d\n got %q\nwant %q", what, c, got[c], want[c])
		}
	}
}

// TestColumnarRoundTrip writes the reference event, a pseudonymized batch
// (date32, dropped columns) and generated batches as Parquet and Arrow, and
// reads them back with arrow-go's readers: same columns, same types, same
// values.
func TestColumnarRoundTrip(t *testing.T) {
	mem := newMem(t)
	ref := loadReference(t).record(t, mem)
	defer ref.Release()
	priv := newRecord(t, mem, privacySchema(), [][]any{
		{ts(t, "2024-05-10 00:00:00"), "Agent-0123456789", "writeAction", 206, []any{"Billing", "a, b"}, ts(t, "2024-05-13 16:15:00")},
		{ts(t, "1969-12-31 00:00:00"), nil, "readAction", nil, nil, nil},
		{ts(t, "2024-05-11 00:00:00"), "ü \"q\"", "readAction", -1, []any{}, ts(t, "1900-01-01 00:00:01")},
	})
	defer priv.Release()
	empty := newRecord(t, mem, privacySchema(), nil)
	defer empty.Release()

	tests := []struct {
		name    string
		schema  *arrow.Schema
		batches []arrow.RecordBatch
	}{
		{"reference event", worklogSchema(), []arrow.RecordBatch{ref}},
		{"pseudonymized", privacySchema(), []arrow.RecordBatch{priv}},
		{"several batches with an empty one", privacySchema(), []arrow.RecordBatch{priv, empty, priv}},
		{"no rows", privacySchema(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := cellsOfRecords(t, tt.schema, tt.batches...)
			_, pq := readParquet(t, encode(t, FormatParquet, tt.schema, EncoderOptions{}, tt.batches...))
			equalCells(t, "parquet", cellsOf(t, pq, tt.schema), want)
			ar := readArrowStream(t, encode(t, FormatArrow, tt.schema, EncoderOptions{}, tt.batches...))
			equalCells(t, "arrow", cellsOf(t, ar, tt.schema), want)
		})
	}
}

// TestParquetLayout checks the file's physical choices: zstd, naive
// timestamps, DATE, LIST, and row groups bounded by rows and by bytes.
func TestParquetLayout(t *testing.T) {
	mem := newMem(t)
	// DuckDB's TIMESTAMP comes as timestamp[us] without a time zone.
	naive := &arrow.TimestampType{Unit: arrow.Microsecond}
	fields := privacySchema().Fields()
	fields[5].Type = naive
	schema := arrow.NewSchema(fields, nil)
	var batches []arrow.RecordBatch
	for _, n := range []int{2, 3, 4, 1} {
		var rows [][]any
		for i := 0; i < n; i++ {
			rows = append(rows, []any{ts(t, "2024-05-10 00:00:00"), "n", "readAction", i, []any{"x"}, ts(t, "2024-05-13 16:15:00")})
		}
		rec := newRecord(t, mem, schema, rows)
		defer rec.Release()
		batches = append(batches, rec)
	}

	rdr, _ := readParquet(t, encode(t, FormatParquet, schema, EncoderOptions{ParquetRowGroupRows: 3}, batches...))
	md := rdr.MetaData()
	var sizes []int64
	for i := 0; i < rdr.NumRowGroups(); i++ {
		rg := md.RowGroup(i)
		sizes = append(sizes, rg.NumRows())
		for c := 0; c < rg.NumColumns(); c++ {
			cc, err := rg.ColumnChunk(c)
			if err != nil {
				t.Fatal(err)
			}
			if cc.Compression() != compress.Codecs.Zstd {
				t.Errorf("row group %d column %d compressed with %s, want zstd", i, c, cc.Compression())
			}
		}
	}
	if got := strings.Trim(strings.Join(strings.Fields(jsonOf(t, sizes)), ""), "[]"); got != "3,3,3,1" {
		t.Errorf("row groups of %s rows, want 3,3,3,1", got)
	}

	sc := md.Schema
	date := sc.Column(sc.ColumnIndexByName("date")).LogicalType()
	if _, ok := date.(pqschema.DateLogicalType); !ok {
		t.Errorf("date is %s, want DATE", date)
	}
	closing, ok := sc.Column(sc.ColumnIndexByName("closingDateForSLA")).LogicalType().(pqschema.TimestampLogicalType)
	if !ok || closing.IsAdjustedToUTC() || closing.TimeUnit() != pqschema.TimeUnitMicros {
		t.Errorf("closingDateForSLA is %v, want TIMESTAMP(MICROS) not adjusted to UTC", sc.Column(sc.ColumnIndexByName("closingDateForSLA")).LogicalType())
	}
	tags := sc.Root().Field(sc.Root().FieldIndexByName("tags"))
	if _, ok := tags.LogicalType().(pqschema.ListLogicalType); !ok {
		t.Errorf("tags is %s, want LIST", tags.LogicalType())
	}

	t.Run("byte bound", func(t *testing.T) {
		rdr, _ := readParquet(t, encode(t, FormatParquet, schema, EncoderOptions{ParquetRowGroupBytes: 1}, batches...))
		if rdr.NumRowGroups() != len(batches) {
			t.Errorf("%d row groups, want one per batch (%d) when every batch fills the byte bound", rdr.NumRowGroups(), len(batches))
		}
	})
	t.Run("full row groups are written before Close", func(t *testing.T) {
		var cw countWriter
		enc, err := NewEncoder(FormatParquet, &cw, schema, EncoderOptions{ParquetRowGroupRows: 3})
		if err != nil {
			t.Fatal(err)
		}
		if cw.n != 0 {
			t.Errorf("%d bytes written before the first batch, want 0 (an HTTP status must stay open)", cw.n)
		}
		// Twenty one-row batches. The encoding goroutine's queue holds
		// parquetQueue batches, so when the 20th is handed over the 16th
		// has been gathered; the 15th filled the fifth row group, which is
		// written only after the fourth has been: the 20th Write copies at
		// least four row groups, however the goroutines are scheduled.
		one := batches[0].NewSlice(0, 1)
		defer one.Release()
		for i := 0; i < 20; i++ {
			if err := enc.Write(one); err != nil {
				t.Fatal(err)
			}
		}
		before := cw.n
		if err := enc.Close(); err != nil {
			t.Fatal(err)
		}
		// Close adds the last groups and the footer.
		if before <= 4 || before >= cw.n {
			t.Errorf("%d bytes before Close, %d after: row groups are not written as they fill", before, cw.n)
		}
	})
}

func jsonOf(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNDJSONIsJSONByLine checks that NDJSON holds, line by line, the objects
// of the JSON array, in order, with the same keys.
func TestNDJSONIsJSONByLine(t *testing.T) {
	mem := newMem(t)
	ref := loadReference(t).record(t, mem)
	defer ref.Release()
	priv := newRecord(t, mem, privacySchema(), [][]any{
		{ts(t, "2024-05-10 00:00:00"), "Agent-0123456789", "writeAction", 206, []any{"Billing"}, ts(t, "2024-05-13 16:15:00")},
		{ts(t, "1969-12-31 00:00:00"), nil, "readAction", nil, nil, nil},
	})
	defer priv.Release()
	for _, tc := range []struct {
		schema *arrow.Schema
		recs   []arrow.RecordBatch
	}{{worklogSchema(), []arrow.RecordBatch{ref}}, {privacySchema(), []arrow.RecordBatch{priv, priv}}, {privacySchema(), nil}} {
		nd := encode(t, FormatNDJSON, tc.schema, EncoderOptions{}, tc.recs...)
		js := encode(t, FormatJSON, tc.schema, EncoderOptions{}, tc.recs...)
		wantKeys, wantObjs := jsontest.DecodeOrdered(t, js)
		lines := strings.Split(string(nd), "\n")
		if lines[len(lines)-1] != "" {
			t.Fatalf("ndjson does not end with a newline: %q", nd)
		}
		lines = lines[:len(lines)-1]
		if len(lines) != len(wantObjs) {
			t.Fatalf("%d lines, want %d", len(lines), len(wantObjs))
		}
		for i, line := range lines {
			keys, objs := jsontest.DecodeOrdered(t, []byte("["+line+"]"))
			if jsonOf(t, keys[0]) != jsonOf(t, wantKeys[i]) || jsonOf(t, objs[0]) != jsonOf(t, wantObjs[i]) {
				t.Errorf("line %d = %s\nwant the JSON object %v", i, line, wantObjs[i])
			}
		}
	}
}

// TestArrowEncoderEmpty checks that an export of no rows is a stream with
// the schema and no batch, which readers accept.
func TestArrowEncoderEmpty(t *testing.T) {
	b := encode(t, FormatArrow, privacySchema(), EncoderOptions{})
	r, err := ipc.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if !r.Schema().Equal(privacySchema()) {
		t.Errorf("schema %s", r.Schema())
	}
	if r.Next() {
		t.Error("a batch in an empty export")
	}
	if err := r.Err(); err != nil && err != io.EOF {
		t.Error(err)
	}
}

// TestParquetAbort checks that an export given up before Close stops the
// encoding goroutine, drops what it encoded, and refuses further writes.
func TestParquetAbort(t *testing.T) {
	mem := newMem(t)
	rec := newRecord(t, mem, privacySchema(), [][]any{
		{ts(t, "2024-05-10 00:00:00"), "n", "readAction", 1, []any{"x"}, ts(t, "2024-05-13 16:15:00")},
	})
	defer rec.Release()
	var cw countWriter
	enc, err := NewParquetEncoder(&cw, privacySchema(), EncoderOptions{ParquetRowGroupRows: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := enc.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	written := cw.n
	if err := enc.Abort(); err != nil {
		t.Fatal(err)
	}
	if enc.work != nil {
		t.Error("the encoding goroutine still runs after Abort")
	}
	if err := enc.Write(rec); !errors.Is(err, ErrClosed) {
		t.Errorf("write after Abort = %v, want ErrClosed", err)
	}
	if err := enc.Close(); err != nil {
		t.Errorf("close after Abort = %v", err)
	}
	if cw.n != written {
		t.Errorf("%d bytes written after Abort", cw.n-written)
	}
}

// TestParquetDictionaries checks which columns get a dictionary and how
// the others are encoded: strings whose values repeat keep a dictionary,
// short (action) or long (a ticket's rawData in each of its events);
// long strings that never repeat fall back to plain values; integers and
// date-times are delta-encoded without one. All of them read back.
func TestParquetDictionaries(t *testing.T) {
	mem := newMem(t)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "action", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "rawData", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "distinct", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "ticketId", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "date", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
	}, nil)
	body := strings.Repeat("y", 500)
	var rows [][]any
	for i := 0; i < 2000; i++ {
		rows = append(rows, []any{"readAction", fmt.Sprintf(`{"ticket":%d,"body":"%s"}`, i/5, body),
			fmt.Sprintf(`{"n":%d,"body":"%s"}`, i, body), i, ts(t, "2024-05-10 00:00:00")})
	}
	rows = append(rows, []any{nil, nil, nil, nil, nil})
	rec := newRecord(t, mem, schema, rows)
	defer rec.Release()
	rdr, tbl := readParquet(t, encode(t, FormatParquet, schema, EncoderOptions{}, rec))
	rg := rdr.MetaData().RowGroup(0)
	for c, want := range []struct {
		dict  bool
		delta bool
	}{{dict: true}, {dict: true}, {}, {delta: true}, {delta: true}} {
		cc, err := rg.ColumnChunk(c)
		if err != nil {
			t.Fatal(err)
		}
		dict, delta := false, false
		for _, e := range cc.Encodings() {
			dict = dict || e == parquet.Encodings.RLEDict || e == parquet.Encodings.PlainDict
			delta = delta || e == parquet.Encodings.DeltaBinaryPacked
		}
		if dict != want.dict || delta != want.delta {
			t.Errorf("column %s: dictionary %v, delta %v (encodings %v), want %v, %v", schema.Field(c).Name, dict, delta, cc.Encodings(), want.dict, want.delta)
		}
	}
	for c := range schema.NumFields() {
		for _, i := range []int{0, 7, 1999} {
			got := tbl.Column(c).Data().Chunk(0).ValueStr(i)
			if want := rec.Column(c).ValueStr(i); got != want {
				t.Errorf("%s row %d read back as %q, want %q", schema.Field(c).Name, i, got, want)
			}
		}
		if !tbl.Column(c).Data().Chunk(0).IsNull(2000) {
			t.Errorf("%s row 2000 is not null", schema.Field(c).Name)
		}
	}
}
