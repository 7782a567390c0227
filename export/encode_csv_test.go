package export

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

// TestCSVFormulaGuard checks which values the formula-injection guard
// prefixes: strings starting with = + - @, tab or CR, and nothing else.
func TestCSVFormulaGuard(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "x", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "d", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
		{Name: "l", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
	}, nil)
	tests := []struct {
		name  string
		row   []any
		guard string // the line with the guard on
		plain string // the line with the guard off
		// back is the string column as encoding/csv reads the guarded line.
		back string
	}{
		{"equals", []any{"=1+1", nil, nil, nil, nil}, `'=1+1,,,,`, `=1+1,,,,`, "'=1+1"},
		{"plus", []any{"+49 30 1234", nil, nil, nil, nil}, `'+49 30 1234,,,,`, `+49 30 1234,,,,`, "'+49 30 1234"},
		{"minus", []any{"-5", nil, nil, nil, nil}, `'-5,,,,`, `-5,,,,`, "'-5"},
		{"at", []any{"@SUM(A1)", nil, nil, nil, nil}, `'@SUM(A1),,,,`, `@SUM(A1),,,,`, "'@SUM(A1)"},
		{"tab", []any{"\tcmd", nil, nil, nil, nil}, "'\tcmd,,,,", "\"\tcmd\",,,,", "'\tcmd"},
		{"carriage return", []any{"\rcmd", nil, nil, nil, nil}, "\"'\rcmd\",,,,", "\"\rcmd\",,,,", "'\rcmd"},
		{"quoted formula", []any{`=HYPERLINK("http://x","y")`, nil, nil, nil, nil},
			`"'=HYPERLINK(""http://x"",""y"")",,,,`, `"=HYPERLINK(""http://x"",""y"")",,,,`, `'=HYPERLINK("http://x","y")`},
		{"formula character later", []any{"a=b", nil, nil, nil, nil}, `a=b,,,,`, `a=b,,,,`, "a=b"},
		{"leading space", []any{" =1", nil, nil, nil, nil}, `" =1",,,,`, `" =1",,,,`, " =1"},
		{"empty string", []any{"", nil, nil, nil, nil}, `"",,,,`, `"",,,,`, ""},
		{"negative numbers are numbers", []any{nil, -3600, -2.5, nil, nil}, `,-3600,-2.5,,`, `,-3600,-2.5,,`, ""},
		{"date-times and lists are not guarded", []any{nil, nil, nil, ts(t, "2024-05-10 14:52:37"), []any{"=x", "-y"}},
			`,,,2024-05-10 14:52:37,"[""=x"", ""-y""]"`, `,,,2024-05-10 14:52:37,"[""=x"", ""-y""]"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := newMem(t)
			rec := newRecord(t, mem, schema, [][]any{tt.row})
			defer rec.Release()
			for _, guard := range []bool{true, false} {
				var buf bytes.Buffer
				enc := NewCSVEncoder(&buf, schema, guard)
				if err := enc.Write(rec); err != nil {
					t.Fatal(err)
				}
				if err := enc.Close(); err != nil {
					t.Fatal(err)
				}
				want := "s,n,x,d,l\n" + tt.plain + "\n"
				if guard {
					want = "s,n,x,d,l\n" + tt.guard + "\n"
				}
				if got := buf.String(); got != want {
					t.Errorf("guard %v\n got %q\nwant %q", guard, got, want)
				}
				if guard {
					recs := readCSV(t, buf.Bytes())
					if len(recs) != 2 || recs[1][0] != tt.back {
						t.Errorf("parsed back as %q, want %q first", recs, tt.back)
					}
				}
			}
		})
	}
}

// TestCSVWritesThroughPerBatch checks that each Write hands its rows to the
// writer before returning, so the server can flush the response per batch.
func TestCSVWritesThroughPerBatch(t *testing.T) {
	mem := newMem(t)
	schema := arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.BinaryTypes.String}}, nil)
	rec := newRecord(t, mem, schema, [][]any{{"a"}})
	defer rec.Release()
	for _, f := range []Format{FormatCSV, FormatJSON} {
		var buf bytes.Buffer
		enc, err := NewEncoder(f, &buf, schema, EncoderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var sizes []int
		for range 3 {
			if err := enc.Write(rec); err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, buf.Len())
		}
		if err := enc.Close(); err != nil {
			t.Fatal(err)
		}
		want := map[Format][]int{
			FormatCSV:  {4, 6, 8},    // "s\na\n", "a\n", "a\n"
			FormatJSON: {11, 22, 33}, // `[\n{"s":"a"}`, then `,\n{"s":"a"}` twice
		}[f]
		if !reflect.DeepEqual(sizes, want) {
			t.Errorf("%s: bytes after each write %v, want %v", f, sizes, want)
		}
	}
}

// TestCSVLargeBatch checks rows spanning many internal flushes.
func TestCSVLargeBatch(t *testing.T) {
	mem := newMem(t)
	schema := worklogSchema()
	rows := demoRows(t, 500, 2000) // about 1.2 MB, many times the buffer
	rec := newRecord(t, mem, schema, rows)
	defer rec.Release()
	recs := readCSV(t, encode(t, FormatCSV, schema, EncoderOptions{}, rec))
	if len(recs) != 501 {
		t.Fatalf("%d records, want 501", len(recs))
	}
	for i, row := range rows {
		for c, v := range row {
			if got, want := recs[i+1][c], textOf(t, v); got != want {
				t.Fatalf("row %d column %d = %q, want %q", i, c, got, want)
			}
		}
	}
}
