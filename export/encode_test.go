package export

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/xuri/excelize/v2"

	"worklog/data"
	"worklog/internal/jsontest"
)

// arrowType is the Arrow type DuckDB returns for a store column of kind k.
func arrowType(k data.Kind) arrow.DataType {
	switch k {
	case data.KindTimestamp:
		return arrow.FixedWidthTypes.Timestamp_us
	case data.KindInt, data.KindFlag:
		return arrow.PrimitiveTypes.Int64
	case data.KindFloat:
		return arrow.PrimitiveTypes.Float64
	case data.KindList:
		return arrow.ListOf(arrow.BinaryTypes.String)
	}
	return arrow.BinaryTypes.String
}

// worklogSchema is the schema of a query result: the catalogue's fields in
// export order, typed as DuckDB returns them.
func worklogSchema() *arrow.Schema {
	var fields []arrow.Field
	for _, f := range data.Fields() {
		fields = append(fields, arrow.Field{Name: f.Name, Type: arrowType(f.Kind), Nullable: true})
	}
	return arrow.NewSchema(fields, nil)
}

// newMem returns an allocator that fails the test if a buffer is not
// released by the end of it.
func newMem(t testing.TB) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// newRecord builds a record batch of rows, one value per schema field, with
// values as appendAny takes them.
func newRecord(t testing.TB, mem memory.Allocator, schema *arrow.Schema, rows [][]any) arrow.RecordBatch {
	t.Helper()
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for _, row := range rows {
		if len(row) != schema.NumFields() {
			t.Fatalf("row has %d values, schema %d fields", len(row), schema.NumFields())
		}
		for i, v := range row {
			appendAny(t, b.Field(i), v)
		}
	}
	return b.NewRecordBatch()
}

// appendAny appends v to b: nil as null, int for integers, float64, bool,
// string, time.Time for timestamps and dates, []any for lists.
func appendAny(t testing.TB, b array.Builder, v any) {
	// No t.Helper here: it costs a stack walk per value, which dominates
	// the benchmarks' setup.
	if v == nil {
		b.AppendNull()
		return
	}
	switch b := b.(type) {
	case *array.Int8Builder:
		b.Append(int8(v.(int)))
	case *array.Int16Builder:
		b.Append(int16(v.(int)))
	case *array.Int32Builder:
		b.Append(int32(v.(int)))
	case *array.Int64Builder:
		switch v := v.(type) {
		case int:
			b.Append(int64(v))
		case int64:
			b.Append(v)
		}
	case *array.Uint8Builder:
		b.Append(uint8(v.(int)))
	case *array.Uint16Builder:
		b.Append(uint16(v.(int)))
	case *array.Uint32Builder:
		b.Append(uint32(v.(int)))
	case *array.Uint64Builder:
		switch v := v.(type) {
		case int:
			b.Append(uint64(v))
		case uint64:
			b.Append(v)
		}
	case *array.Float32Builder:
		b.Append(float32(v.(float64)))
	case *array.Float64Builder:
		b.Append(v.(float64))
	case *array.BooleanBuilder:
		b.Append(v.(bool))
	case *array.StringBuilder:
		b.Append(v.(string))
	case *array.LargeStringBuilder:
		b.Append(v.(string))
	case *array.StringViewBuilder:
		b.Append(v.(string))
	case *array.TimestampBuilder:
		ts, err := arrow.TimestampFromTime(v.(time.Time), b.Type().(*arrow.TimestampType).Unit)
		if err != nil {
			t.Fatal(err)
		}
		b.Append(ts)
	case *array.Date32Builder:
		b.Append(arrow.Date32FromTime(v.(time.Time)))
	case *array.Date64Builder:
		b.Append(arrow.Date64FromTime(v.(time.Time)))
	case *array.BinaryDictionaryBuilder:
		if err := b.AppendString(v.(string)); err != nil {
			t.Fatal(err)
		}
	case array.ListLikeBuilder:
		b.Append(true)
		for _, e := range v.([]any) {
			appendAny(t, b.ValueBuilder(), e)
		}
	default:
		t.Fatalf("appendAny: no case for %T", b)
	}
}

// ts parses a "YYYY-MM-DD HH:MM:SS" wall-clock time.
func ts(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(data.TimestampLayout, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// encode runs rows through a new encoder of format f in one batch per
// element of batches and returns the bytes.
func encode(t testing.TB, f Format, schema *arrow.Schema, opts EncoderOptions, batches ...arrow.RecordBatch) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := NewEncoder(f, &buf, schema, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range batches {
		if err := enc.Write(rec); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return buf.Bytes()
}

// readCSV parses CSV with encoding/csv.
func readCSV(t testing.TB, b []byte) [][]string {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(b))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("parse csv: %v\n%s", err, b)
	}
	return recs
}

// readXLSX parses a workbook with excelize and returns every sheet's rows,
// padded to the header's width (excelize drops trailing empty cells).
func readXLSX(t testing.TB, b []byte) (sheets []string, rows map[string][][]string) {
	t.Helper()
	f, err := excelize.OpenReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("open xlsx: %v", err)
	}
	defer f.Close()
	rows = map[string][][]string{}
	sheets = f.GetSheetList()
	for _, s := range sheets {
		rs, err := f.GetRows(s)
		if err != nil {
			t.Fatalf("rows of %s: %v", s, err)
		}
		for i := range rs {
			if len(rs) > 0 {
				for len(rs[i]) < len(rs[0]) {
					rs[i] = append(rs[i], "")
				}
			}
		}
		rows[s] = rs
	}
	return sheets, rows
}

// referenceEvent is the example event of the reference API documentation.
type referenceEvent struct {
	keys   []string       // in document order
	values map[string]any // decoded with UseNumber
	raw    []byte
}

func loadReference(t testing.TB) referenceEvent {
	t.Helper()
	raw, err := os.ReadFile("testdata/reference_event.json")
	if err != nil {
		t.Fatal(err)
	}
	keys, objs := jsontest.DecodeOrdered(t, raw)
	if len(objs) != 1 {
		t.Fatalf("reference has %d events, want 1", len(objs))
	}
	return referenceEvent{keys: keys[0], values: objs[0], raw: raw}
}

// record converts the reference event into a one-row batch of the store
// schema: date-times parsed, list strings split into lists.
func (ev referenceEvent) record(t testing.TB, mem memory.Allocator) arrow.RecordBatch {
	t.Helper()
	var row []any
	for _, f := range data.Fields() {
		v := ev.values[f.Name]
		if v == nil {
			row = append(row, nil)
			continue
		}
		switch f.Kind {
		case data.KindTimestamp:
			row = append(row, ts(t, v.(string)))
		case data.KindInt, data.KindFlag:
			n, err := v.(json.Number).Int64()
			if err != nil {
				t.Fatal(err)
			}
			row = append(row, n)
		case data.KindFloat:
			n, err := v.(json.Number).Float64()
			if err != nil {
				t.Fatal(err)
			}
			row = append(row, n)
		case data.KindList:
			var items []string
			if err := json.Unmarshal([]byte(v.(string)), &items); err != nil {
				t.Fatal(err)
			}
			var list []any
			for _, it := range items {
				list = append(list, it)
			}
			row = append(row, list)
		default:
			row = append(row, v)
		}
	}
	return newRecord(t, mem, worklogSchema(), [][]any{row})
}

// referenceText is the reference value as CSV and XLSX show it: null empty, numbers
// and strings as written in the JSON.
func referenceText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case json.Number:
		return v.String()
	case string:
		return v
	}
	return fmt.Sprint(v)
}

// TestReferenceEvent encodes the reference API's example event in every
// format and parses it back with a real parser.
func TestReferenceEvent(t *testing.T) {
	mem := newMem(t)
	ev := loadReference(t)
	rec := ev.record(t, mem)
	defer rec.Release()
	schema := rec.Schema()

	var wantHeader, wantRow []string
	for _, f := range data.Fields() {
		wantHeader = append(wantHeader, f.Name)
		wantRow = append(wantRow, referenceText(ev.values[f.Name]))
	}

	t.Run("json", func(t *testing.T) {
		out := encode(t, FormatJSON, schema, EncoderOptions{}, rec)
		keys, objs := jsontest.DecodeOrdered(t, out)
		if len(objs) != 1 {
			t.Fatalf("got %d objects, want 1", len(objs))
		}
		if !reflect.DeepEqual(keys[0], ev.keys) {
			t.Errorf("keys\n got %v\nwant %v", keys[0], ev.keys)
		}
		for _, k := range ev.keys {
			if !reflect.DeepEqual(objs[0][k], ev.values[k]) {
				t.Errorf("%s = %#v, want %#v", k, objs[0][k], ev.values[k])
			}
		}
		// The reference pretty-prints; compacted, the documents are equal
		// byte for byte (numbers, escapes and list strings included).
		var want, got bytes.Buffer
		if err := json.Compact(&want, ev.raw); err != nil {
			t.Fatal(err)
		}
		if err := json.Compact(&got, out); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("compact json\n got %s\nwant %s", got.String(), want.String())
		}
	})
	t.Run("csv", func(t *testing.T) {
		recs := readCSV(t, encode(t, FormatCSV, schema, EncoderOptions{CSVFormulaGuard: true}, rec))
		want := [][]string{wantHeader, wantRow}
		if !reflect.DeepEqual(recs, want) {
			t.Errorf("csv\n got %q\nwant %q", recs, want)
		}
	})
	t.Run("xlsx", func(t *testing.T) {
		sheets, rows := readXLSX(t, encode(t, FormatXLSX, schema, EncoderOptions{}, rec))
		if !reflect.DeepEqual(sheets, []string{"reporting_worklog"}) {
			t.Fatalf("sheets %v", sheets)
		}
		want := [][]string{wantHeader, wantRow}
		if got := rows["reporting_worklog"]; !reflect.DeepEqual(got, want) {
			t.Errorf("xlsx\n got %q\nwant %q", got, want)
		}
	})
}

// privacySchema is what the privacy layer hands the encoders at level
// pseudonymized: identifying columns dropped and date cut to a date32.
func privacySchema() *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: "date", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "action", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "duration", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
		{Name: "closingDateForSLA", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
	}, nil)
}

// TestDroppedColumnsAndDate32 checks that the encoders follow the schema
// they are given, not the catalogue.
func TestDroppedColumnsAndDate32(t *testing.T) {
	mem := newMem(t)
	schema := privacySchema()
	rec := newRecord(t, mem, schema, [][]any{
		{ts(t, "2024-05-10 00:00:00"), "Agent-0123456789", "writeAction", 206, []any{"Billing"}, ts(t, "2024-05-13 16:15:00")},
		{ts(t, "1969-12-31 00:00:00"), nil, "readAction", nil, nil, nil},
	})
	defer rec.Release()

	wantJSON := `[
{"date":"2024-05-10","name":"Agent-0123456789","action":"writeAction","duration":206,"tags":"[\"Billing\"]","closingDateForSLA":"2024-05-13 16:15:00"},
{"date":"1969-12-31","name":null,"action":"readAction","duration":null,"tags":null,"closingDateForSLA":null}
]
`
	if got := string(encode(t, FormatJSON, schema, EncoderOptions{}, rec)); got != wantJSON {
		t.Errorf("json\n got %s\nwant %s", got, wantJSON)
	}
	wantCSV := "date,name,action,duration,tags,closingDateForSLA\n" +
		`2024-05-10,Agent-0123456789,writeAction,206,"[""Billing""]",2024-05-13 16:15:00` + "\n" +
		"1969-12-31,,readAction,,,\n"
	if got := string(encode(t, FormatCSV, schema, EncoderOptions{CSVFormulaGuard: true}, rec)); got != wantCSV {
		t.Errorf("csv\n got %s\nwant %s", got, wantCSV)
	}
	_, rows := readXLSX(t, encode(t, FormatXLSX, schema, EncoderOptions{}, rec))
	want := [][]string{
		{"date", "name", "action", "duration", "tags", "closingDateForSLA"},
		{"2024-05-10", "Agent-0123456789", "writeAction", "206", `["Billing"]`, "2024-05-13 16:15:00"},
		{"1969-12-31", "", "readAction", "", "", ""},
	}
	if got := rows["reporting_worklog"]; !reflect.DeepEqual(got, want) {
		t.Errorf("xlsx\n got %q\nwant %q", got, want)
	}
}

// TestStreams checks batch boundaries and empty exports in every format.
func TestStreams(t *testing.T) {
	mem := newMem(t)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	b1 := newRecord(t, mem, schema, [][]any{{1, "a"}, {2, "b"}})
	defer b1.Release()
	empty := newRecord(t, mem, schema, nil)
	defer empty.Release()
	b2 := newRecord(t, mem, schema, [][]any{{3, "c"}})
	defer b2.Release()

	tests := []struct {
		name    string
		batches []arrow.RecordBatch
		json    string
		csv     string
		xlsx    [][]string
	}{
		{"no batch", nil, "[]\n", "id,s\n", [][]string{{"id", "s"}}},
		{"one empty batch", []arrow.RecordBatch{empty}, "[]\n", "id,s\n", [][]string{{"id", "s"}}},
		{"one batch", []arrow.RecordBatch{b1},
			"[\n{\"id\":1,\"s\":\"a\"},\n{\"id\":2,\"s\":\"b\"}\n]\n",
			"id,s\n1,a\n2,b\n",
			[][]string{{"id", "s"}, {"1", "a"}, {"2", "b"}}},
		{"batches with an empty one between", []arrow.RecordBatch{b1, empty, b2},
			"[\n{\"id\":1,\"s\":\"a\"},\n{\"id\":2,\"s\":\"b\"},\n{\"id\":3,\"s\":\"c\"}\n]\n",
			"id,s\n1,a\n2,b\n3,c\n",
			[][]string{{"id", "s"}, {"1", "a"}, {"2", "b"}, {"3", "c"}}},
		{"empty batch first", []arrow.RecordBatch{empty, b2},
			"[\n{\"id\":3,\"s\":\"c\"}\n]\n",
			"id,s\n3,c\n",
			[][]string{{"id", "s"}, {"3", "c"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(encode(t, FormatJSON, schema, EncoderOptions{}, tt.batches...)); got != tt.json {
				t.Errorf("json\n got %q\nwant %q", got, tt.json)
			}
			if got := string(encode(t, FormatCSV, schema, EncoderOptions{}, tt.batches...)); got != tt.csv {
				t.Errorf("csv\n got %q\nwant %q", got, tt.csv)
			}
			_, rows := readXLSX(t, encode(t, FormatXLSX, schema, EncoderOptions{}, tt.batches...))
			if got := rows[DefaultSheetName]; !reflect.DeepEqual(got, tt.xlsx) {
				t.Errorf("xlsx\n got %q\nwant %q", got, tt.xlsx)
			}
		})
	}
}

// TestRoundTrip encodes generated worklog rows over many batches and parses
// every format back, comparing with values formatted independently of the
// encoders (time.Format, encoding/json).
func TestRoundTrip(t *testing.T) {
	mem := newMem(t)
	schema := worklogSchema()
	fields := data.Fields()
	rows := demoRows(t, 2500, 200)
	var batches []arrow.RecordBatch
	for start := 0; start < len(rows); start += 700 {
		end := min(start+700, len(rows))
		batches = append(batches, newRecord(t, mem, schema, rows[start:end]))
	}
	defer func() {
		for _, b := range batches {
			b.Release()
		}
	}()

	// want holds each row as its text form: what CSV and XLSX show.
	var header []string
	for _, f := range fields {
		header = append(header, f.Name)
	}
	want := [][]string{header}
	for _, row := range rows {
		var line []string
		for _, v := range row {
			line = append(line, textOf(t, v))
		}
		want = append(want, line)
	}

	t.Run("json", func(t *testing.T) {
		keys, objs := jsontest.DecodeOrdered(t, encode(t, FormatJSON, schema, EncoderOptions{}, batches...))
		if len(objs) != len(rows) {
			t.Fatalf("%d objects, want %d", len(objs), len(rows))
		}
		for i, obj := range objs {
			if !reflect.DeepEqual(keys[i], header) {
				t.Fatalf("row %d keys %v", i, keys[i])
			}
			for c, f := range fields {
				got, v := obj[f.Name], rows[i][c]
				switch {
				case v == nil:
					if got != nil {
						t.Errorf("row %d %s = %v, want null", i, f.Name, got)
					}
				case f.Kind == data.KindInt || f.Kind == data.KindFlag || f.Kind == data.KindFloat:
					if _, isNum := got.(json.Number); !isNum || got.(json.Number).String() != want[i+1][c] {
						t.Errorf("row %d %s = %#v, want number %s", i, f.Name, got, want[i+1][c])
					}
				default:
					if got != want[i+1][c] {
						t.Errorf("row %d %s = %#v, want string %q", i, f.Name, got, want[i+1][c])
					}
				}
			}
		}
	})
	t.Run("csv", func(t *testing.T) {
		got := readCSV(t, encode(t, FormatCSV, schema, EncoderOptions{}, batches...))
		compareTables(t, got, want)
	})
	t.Run("xlsx", func(t *testing.T) {
		_, sheets := readXLSX(t, encode(t, FormatXLSX, schema, EncoderOptions{}, batches...))
		compareTables(t, sheets[DefaultSheetName], want)
	})
}

func compareTables(t *testing.T, got, want [][]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	bad := 0
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) && bad < 5 {
			bad++
			t.Errorf("row %d\n got %q\nwant %q", i, got[i], want[i])
		}
	}
}

// textOf formats a generated value the way CSV writes it, using the
// standard library rather than the encoders' own code.
func textOf(t testing.TB, v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case int:
		return fmt.Sprint(v)
	case float64:
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	case string:
		return v
	case time.Time:
		return v.Format(data.TimestampLayout)
	case []any:
		var parts []string
		for _, e := range v {
			b, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, string(b))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	t.Fatalf("textOf %T", v)
	return ""
}

// TestErrors checks the encoders' error contract: unsupported types are
// refused up front, mismatched batches and writer failures are sticky, and
// Write after Close fails.
func TestErrors(t *testing.T) {
	mem := newMem(t)
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)
	other := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.BinaryTypes.String}}, nil)
	rec := newRecord(t, mem, schema, [][]any{{1}})
	defer rec.Release()
	wrong := newRecord(t, mem, other, [][]any{{"x"}})
	defer wrong.Release()
	bad := arrow.NewSchema([]arrow.Field{{Name: "m", Type: arrow.MapOf(arrow.BinaryTypes.String, arrow.BinaryTypes.String)}}, nil)

	for _, f := range Formats() {
		t.Run(string(f), func(t *testing.T) {
			if _, err := NewEncoder(f, io.Discard, bad, EncoderOptions{}); !errors.Is(err, ErrUnsupportedType) {
				t.Errorf("unsupported type: err = %v, want ErrUnsupportedType", err)
			}

			enc, err := NewEncoder(f, io.Discard, schema, EncoderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			err = enc.Write(wrong)
			if !errors.Is(err, ErrSchemaMismatch) {
				t.Errorf("mismatch: err = %v, want ErrSchemaMismatch", err)
			}
			if err2 := enc.Write(rec); err2 != err {
				t.Errorf("write after error = %v, want the sticky %v", err2, err)
			}
			if err2 := enc.Close(); err2 != err {
				t.Errorf("close after error = %v, want the sticky %v", err2, err)
			}

			enc, err = NewEncoder(f, io.Discard, schema, EncoderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := enc.Close(); err != nil {
				t.Fatal(err)
			}
			if err := enc.Write(rec); !errors.Is(err, ErrClosed) {
				t.Errorf("write after close: err = %v, want ErrClosed", err)
			}
			if err := enc.Close(); err != nil {
				t.Errorf("second close = %v, want nil", err)
			}

			fw := &failWriter{}
			enc, err = NewEncoder(f, fw, schema, EncoderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			err = enc.Write(rec)
			if f == FormatXLSX {
				// XLSX writes only at Close.
				if err != nil {
					t.Fatalf("write: %v", err)
				}
				err = enc.Close()
			}
			if !errors.Is(err, errDiskFull) {
				t.Fatalf("failing writer: err = %v, want errDiskFull", err)
			}
			if err2 := enc.Write(rec); err2 != err {
				t.Errorf("write after writer error = %v, want the sticky %v", err2, err)
			}
			if err2 := enc.Close(); err2 != err {
				t.Errorf("close after writer error = %v, want the sticky %v", err2, err)
			}
		})
	}

	t.Run("unsupported type on the typed constructors", func(t *testing.T) {
		if err := NewJSONEncoder(io.Discard, bad).Close(); !errors.Is(err, ErrUnsupportedType) {
			t.Errorf("json close = %v", err)
		}
		if err := NewCSVEncoder(io.Discard, bad, true).Write(rec); !errors.Is(err, ErrUnsupportedType) {
			t.Errorf("csv write = %v", err)
		}
		if _, err := NewXLSXEncoder(io.Discard, bad, EncoderOptions{}); !errors.Is(err, ErrUnsupportedType) {
			t.Errorf("xlsx = %v", err)
		}
	})
}

var errDiskFull = errors.New("disk full")

// failWriter fails every write, like a full disk or a closed connection.
type failWriter struct{}

func (*failWriter) Write([]byte) (int, error) { return 0, errDiskFull }

func TestParseFormat(t *testing.T) {
	tests := []struct {
		in          string
		want        Format
		contentType string
		ext         string
		err         bool
	}{
		{"json", FormatJSON, "application/json", "json", false},
		{"csv", FormatCSV, "text/csv; charset=utf-8", "csv", false},
		{"xlsx", FormatXLSX, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx", false},
		{"CSV", FormatCSV, "text/csv; charset=utf-8", "csv", false},
		{"ndjson", FormatNDJSON, "application/x-ndjson", "ndjson", false},
		{"parquet", FormatParquet, "application/vnd.apache.parquet", "parquet", false},
		{"Arrow", FormatArrow, "application/vnd.apache.arrow.stream", "arrow", false},
		{"xls", "", "", "", true},
		{"", "", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFormat(tt.in)
			if tt.err {
				if !errors.Is(err, ErrUnknownFormat) {
					t.Fatalf("err = %v, want ErrUnknownFormat", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseFormat(%q) = %q, %v", tt.in, got, err)
			}
			if got.ContentType() != tt.contentType || got.Extension() != tt.ext {
				t.Errorf("%q: content type %q, extension %q", got, got.ContentType(), got.Extension())
			}
		})
	}
	if _, err := NewEncoder("pdf", io.Discard, worklogSchema(), EncoderOptions{}); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("NewEncoder(pdf) err = %v", err)
	}
}
