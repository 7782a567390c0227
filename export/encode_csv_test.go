package export

import (
	"bytes"
	"reflect"
	"strings"
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

// csvFieldBases are strings long enough for the eight-byte paths of
// appendCSVField: plain ASCII (written as it is), one with a quote early
// (quoted, quotes doubled) and one with a multi-byte character early (the
// reference path).
var csvFieldBases = []string{
	"0123456789abcdefghijklmn",
	`0"23456789abcdefghijklmn`,
	"0é23456789abcdefghijklmn",
}

// checkCSVField compares appendCSVField with appendCSVFieldSlow, the
// reference, guarded and not, after a prefix already in the buffer.
func checkCSVField(t *testing.T, s string) {
	t.Helper()
	for _, guard := range []bool{false, true} {
		got := string(appendCSVField([]byte("x,"), s, guard))
		want := string(appendCSVFieldSlow([]byte("x,"), s, guard))
		if got != want {
			t.Errorf("%q guard %v: got %q, want %q", s, guard, got, want)
		}
	}
}

// TestCSVFieldEveryByteAtEveryPosition puts every byte value, and a few
// multi-byte sequences (valid, cut and invalid), at every position of each
// base string and at its end.
func TestCSVFieldEveryByteAtEveryPosition(t *testing.T) {
	seqs := []string{"é", "€", "\U0001F600", "\xe2\x82", "\xc3", "\xff\xfe", "\xed\xa0\x80", `\.`, "\"\"", ",\n"}
	for c := range 256 {
		seqs = append(seqs, string([]byte{byte(c)}))
	}
	for _, base := range csvFieldBases {
		for pos := 0; pos <= len(base); pos++ {
			for _, seq := range seqs {
				checkCSVField(t, base[:pos]+seq+base[pos:])
				checkCSVField(t, base[:pos]+seq)
				checkCSVField(t, seq+base[pos:])
			}
		}
	}
	for _, s := range []string{"", `\.`, " ", "\t", "\v", "\u00a0x", "\u0085", "=", "'", "-1", "a"} {
		checkCSVField(t, s)
	}
}

// TestCSVListQuotes checks a list's text: quoted and its quotes doubled when
// it holds a quote or a comma, as it is otherwise.
func TestCSVListQuotes(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`[]`, `[]`},
		{`[1]`, `[1]`},
		{`[1, 2]`, `"[1, 2]"`},
		{`["a"]`, `"[""a""]"`},
		{`["Keßler", "München", "a long item that passes eight bytes"]`, `"[""Keßler"", ""München"", ""a long item that passes eight bytes""]"`},
	} {
		if got := string(appendCSVList([]byte("x,"), []byte(tt.in))); got != "x,"+tt.want {
			t.Errorf("%s: got %s, want x,%s", tt.in, got, tt.want)
		}
	}
}

// FuzzCSVField compares appendCSVField with its reference,
// appendCSVFieldSlow. The seeds run with every go test.
func FuzzCSVField(f *testing.F) {
	for c := range 256 {
		base := csvFieldBases[c%len(csvFieldBases)]
		pos := c % len(base)
		f.Add(base[:pos] + string([]byte{byte(c)}) + base[pos+1:])
	}
	for _, s := range []string{"", `\.`, " x", "truncated \xe2\x82", strings.Repeat("é\"", 9), `{"a":"b","c":[1,2]}`} {
		f.Add(s)
	}
	f.Fuzz(checkCSVField)
}
