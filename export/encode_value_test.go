package export

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/xuri/excelize/v2"
)

// valueCase is one value of one Arrow type and what each format makes of it.
type valueCase struct {
	name string
	typ  arrow.DataType
	v    any    // as appendAny takes it
	json string // the JSON value
	csv  string // the CSV field, as written
	// xlsx is the cell as excelize reads it back (formatted), and xlsxType
	// its type: number cells have no type attribute (CellTypeUnset).
	xlsx     string
	xlsxType excelize.CellType
}

var (
	listOfStrings      = arrow.ListOf(arrow.BinaryTypes.String)
	largeListOfStrings = arrow.LargeListOf(arrow.BinaryTypes.String)
	dictOfStrings      = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	tsSecond           = &arrow.TimestampType{Unit: arrow.Second}
	tsMilli            = &arrow.TimestampType{Unit: arrow.Millisecond}
	tsNano             = &arrow.TimestampType{Unit: arrow.Nanosecond}
	tsUTC              = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
)

const (
	number = excelize.CellTypeUnset
	text   = excelize.CellTypeInlineString
	empty  = excelize.CellTypeUnset
)

func valueCases() []valueCase {
	at := func(s string, nsec int) time.Time {
		v, err := time.Parse("2006-01-02 15:04:05", s)
		if err != nil {
			panic(err)
		}
		return v.Add(time.Duration(nsec))
	}
	return []valueCase{
		{"int8", arrow.PrimitiveTypes.Int8, -128, `-128`, `-128`, "-128", number},
		{"int16", arrow.PrimitiveTypes.Int16, 32767, `32767`, `32767`, "32767", number},
		{"int32", arrow.PrimitiveTypes.Int32, -7, `-7`, `-7`, "-7", number},
		{"int64 negative", arrow.PrimitiveTypes.Int64, -3600, `-3600`, `-3600`, "-3600", number},
		{"int64 max", arrow.PrimitiveTypes.Int64, int64(math.MaxInt64), `9223372036854775807`, `9223372036854775807`, "9223372036854775807", text},
		{"int64 15 digits", arrow.PrimitiveTypes.Int64, int64(-999999999999999), `-999999999999999`, `-999999999999999`, "-999999999999999", number},
		{"int64 16 digits", arrow.PrimitiveTypes.Int64, int64(1000000000000000), `1000000000000000`, `1000000000000000`, "1000000000000000", text},
		{"int64 zero", arrow.PrimitiveTypes.Int64, 0, `0`, `0`, "0", number},
		{"int64 null", arrow.PrimitiveTypes.Int64, nil, `null`, ``, "", empty},
		{"uint8", arrow.PrimitiveTypes.Uint8, 255, `255`, `255`, "255", number},
		{"uint16", arrow.PrimitiveTypes.Uint16, 65535, `65535`, `65535`, "65535", number},
		{"uint32", arrow.PrimitiveTypes.Uint32, 4000000000, `4000000000`, `4000000000`, "4000000000", number},
		{"uint64 max", arrow.PrimitiveTypes.Uint64, uint64(math.MaxUint64), `18446744073709551615`, `18446744073709551615`, "18446744073709551615", text},
		{"float64", arrow.PrimitiveTypes.Float64, 0.87, `0.87`, `0.87`, "0.87", number},
		{"float64 shortest", arrow.PrimitiveTypes.Float64, 0.30000000000000004, `0.30000000000000004`, `0.30000000000000004`, "0.3", number},
		{"float64 integral", arrow.PrimitiveTypes.Float64, 100.0, `100`, `100`, "100", number},
		{"float64 negative", arrow.PrimitiveTypes.Float64, -2.5, `-2.5`, `-2.5`, "-2.5", number},
		{"float64 large", arrow.PrimitiveTypes.Float64, 123456789012.5, `123456789012.5`, `123456789012.5`, "123456789012.5", number},
		{"float64 huge", arrow.PrimitiveTypes.Float64, 1e21, `1e+21`, `1e+21`, "1000000000000000000000", number},
		{"float64 tiny", arrow.PrimitiveTypes.Float64, 1e-7, `1e-7`, `1e-7`, "0.0000001", number},
		{"float64 NaN", arrow.PrimitiveTypes.Float64, math.NaN(), `null`, ``, "", empty},
		{"float64 +Inf", arrow.PrimitiveTypes.Float64, math.Inf(1), `null`, ``, "", empty},
		{"float64 -Inf", arrow.PrimitiveTypes.Float64, math.Inf(-1), `null`, ``, "", empty},
		{"float64 null", arrow.PrimitiveTypes.Float64, nil, `null`, ``, "", empty},
		{"float32", arrow.PrimitiveTypes.Float32, 0.1, `0.1`, `0.1`, "0.1", number},
		{"bool true", arrow.FixedWidthTypes.Boolean, true, `true`, `true`, "TRUE", excelize.CellTypeBool},
		{"bool false", arrow.FixedWidthTypes.Boolean, false, `false`, `false`, "FALSE", excelize.CellTypeBool},
		{"string", arrow.BinaryTypes.String, "Jane Doe", `"Jane Doe"`, `Jane Doe`, "Jane Doe", text},
		{"string empty", arrow.BinaryTypes.String, "", `""`, `""`, "", text},
		{"string null", arrow.BinaryTypes.String, nil, `null`, ``, "", empty},
		{"string quotes and backslash", arrow.BinaryTypes.String, `say "hi" \o/`, `"say \"hi\" \\o/"`, `"say ""hi"" \o/"`, `say "hi" \o/`, text},
		{"string comma", arrow.BinaryTypes.String, "Billing, Payment reminder", `"Billing, Payment reminder"`, `"Billing, Payment reminder"`, "Billing, Payment reminder", text},
		{"string newline and tab", arrow.BinaryTypes.String, "a\nb\tc", `"a\nb\tc"`, "\"a\nb\tc\"", "a\nb\tc", text},
		{"string carriage return", arrow.BinaryTypes.String, "a\rb", `"a\rb"`, "\"a\rb\"", "a\rb", text},
		{"string control characters", arrow.BinaryTypes.String, "\x00\x01\b\f\x1f\x7f", `"\u0000\u0001\b\f\u001f` + "\x7f" + `"`, "\x00\x01\b\f\x1f\x7f", "\ufffd\ufffd\ufffd\ufffd\ufffd\x7f", text},
		{"string leading space", arrow.BinaryTypes.String, " padded ", `" padded "`, `" padded "`, " padded ", text},
		{"string unicode", arrow.BinaryTypes.String, "Zählerstand ✓ 😀", `"Zählerstand ✓ 😀"`, `Zählerstand ✓ 😀`, "Zählerstand ✓ 😀", text},
		{"string U+2028 U+2029", arrow.BinaryTypes.String, "a\u2028b\u2029c", `"a\u2028b\u2029c"`, "a\u2028b\u2029c", "a\u2028b\u2029c", text},
		{"string invalid UTF-8", arrow.BinaryTypes.String, "a\xffb\xc3", `"a\ufffdb\ufffd"`, "a\ufffdb\ufffd", "a\ufffdb\ufffd", text},
		{"string HTML", arrow.BinaryTypes.String, "<b>&</b>", `"<b>&</b>"`, `<b>&</b>`, "<b>&</b>", text},
		{"string formula", arrow.BinaryTypes.String, "=1+1", `"=1+1"`, `=1+1`, "=1+1", text},
		{"string Postgres end of data", arrow.BinaryTypes.String, `\.`, `"\\."`, `"\."`, `\.`, text},
		{"large string", arrow.BinaryTypes.LargeString, "large", `"large"`, `large`, "large", text},
		{"string view", arrow.BinaryTypes.StringView, "a view longer than twelve bytes", `"a view longer than twelve bytes"`, `a view longer than twelve bytes`, "a view longer than twelve bytes", text},
		{"dictionary string", dictOfStrings, "writeAction", `"writeAction"`, `writeAction`, "writeAction", text},
		{"dictionary null", dictOfStrings, nil, `null`, ``, "", empty},
		{"timestamp us", arrow.FixedWidthTypes.Timestamp_us, at("2024-05-10 14:52:37", 0), `"2024-05-10 14:52:37"`, `2024-05-10 14:52:37`, "2024-05-10 14:52:37", number},
		{"timestamp s", tsSecond, at("2024-05-13 16:15:00", 0), `"2024-05-13 16:15:00"`, `2024-05-13 16:15:00`, "2024-05-13 16:15:00", number},
		{"timestamp ms truncates", tsMilli, at("2024-12-31 23:59:59", 999e6), `"2024-12-31 23:59:59"`, `2024-12-31 23:59:59`, "2024-12-31 23:59:59", number},
		{"timestamp ns", tsNano, at("2000-02-29 00:00:01", 1), `"2000-02-29 00:00:01"`, `2000-02-29 00:00:01`, "2000-02-29 00:00:01", number},
		{"timestamp with zone as UTC", tsUTC, at("2024-03-31 01:30:00", 0), `"2024-03-31 01:30:00"`, `2024-03-31 01:30:00`, "2024-03-31 01:30:00", number},
		{"timestamp before 1970", arrow.FixedWidthTypes.Timestamp_us, at("1969-12-31 23:59:59", 500e3), `"1969-12-31 23:59:59"`, `1969-12-31 23:59:59`, "1969-12-31 23:59:59", number},
		{"timestamp first Excel date", arrow.FixedWidthTypes.Timestamp_us, at("1900-03-01 00:00:00", 0), `"1900-03-01 00:00:00"`, `1900-03-01 00:00:00`, "1900-03-01 00:00:00", number},
		{"timestamp before Excel dates", arrow.FixedWidthTypes.Timestamp_us, at("1899-12-31 12:00:00", 0), `"1899-12-31 12:00:00"`, `1899-12-31 12:00:00`, "1899-12-31 12:00:00", text},
		{"timestamp year 9999", arrow.FixedWidthTypes.Timestamp_us, at("9999-12-31 23:59:59", 0), `"9999-12-31 23:59:59"`, `9999-12-31 23:59:59`, "9999-12-31 23:59:59", number},
		{"timestamp null", arrow.FixedWidthTypes.Timestamp_us, nil, `null`, ``, "", empty},
		{"date32", arrow.FixedWidthTypes.Date32, at("2024-05-10 00:00:00", 0), `"2024-05-10"`, `2024-05-10`, "2024-05-10", number},
		{"date32 before 1970", arrow.FixedWidthTypes.Date32, at("1960-01-01 00:00:00", 0), `"1960-01-01"`, `1960-01-01`, "1960-01-01", number},
		{"date64", arrow.FixedWidthTypes.Date64, at("2024-02-29 00:00:00", 0), `"2024-02-29"`, `2024-02-29`, "2024-02-29", number},
		{"date32 null", arrow.FixedWidthTypes.Date32, nil, `null`, ``, "", empty},
		{"list", listOfStrings, []any{"Billing", "Payment reminder"}, `"[\"Billing\", \"Payment reminder\"]"`, `"[""Billing"", ""Payment reminder""]"`, `["Billing", "Payment reminder"]`, text},
		{"list one", listOfStrings, []any{"Customer care"}, `"[\"Customer care\"]"`, `"[""Customer care""]"`, `["Customer care"]`, text},
		{"list empty", listOfStrings, []any{}, `"[]"`, `[]`, "[]", text},
		{"list null", listOfStrings, nil, `null`, ``, "", empty},
		{"list null item", listOfStrings, []any{"a", nil}, `"[\"a\", null]"`, `"[""a"", null]"`, `["a", null]`, text},
		{"list escaped items", listOfStrings, []any{`q"uote`, "new\nline", "ü"}, `"[\"q\\\"uote\", \"new\\nline\", \"ü\"]"`, `"[""q\""uote"", ""new\nline"", ""ü""]"`, `["q\"uote", "new\nline", "ü"]`, text},
		{"large list", largeListOfStrings, []any{"x"}, `"[\"x\"]"`, `"[""x""]"`, `["x"]`, text},
		{"list of ints", arrow.ListOf(arrow.PrimitiveTypes.Int64), []any{1, 2}, `"[1, 2]"`, `"[1, 2]"`, `[1, 2]`, text},
		{"null type", arrow.Null, nil, `null`, ``, "", empty},
	}
}

// TestValues encodes each value case in every format and checks the bytes
// and what a real parser reads back.
func TestValues(t *testing.T) {
	for _, tt := range valueCases() {
		t.Run(tt.name, func(t *testing.T) {
			mem := newMem(t)
			schema := arrow.NewSchema([]arrow.Field{{Name: "v", Type: tt.typ, Nullable: true}}, nil)
			rec := newRecord(t, mem, schema, [][]any{{tt.v}})
			defer rec.Release()

			gotJSON := string(encode(t, FormatJSON, schema, EncoderOptions{}, rec))
			if want := "[\n{\"v\":" + tt.json + "}\n]\n"; gotJSON != want {
				t.Errorf("json\n got %q\nwant %q", gotJSON, want)
			}
			var parsed []map[string]any
			if err := json.Unmarshal([]byte(gotJSON), &parsed); err != nil {
				t.Errorf("json does not parse: %v", err)
			}

			gotCSV := string(encode(t, FormatCSV, schema, EncoderOptions{}, rec))
			wantCSV := tt.csv
			if tt.v == nil || tt.json == "null" {
				wantCSV = `""` // a lone null field would be an empty line, which readers skip
			}
			if want := "v\n" + wantCSV + "\n"; gotCSV != want {
				t.Errorf("csv\n got %q\nwant %q", gotCSV, want)
			}
			recs := readCSV(t, []byte(gotCSV))
			if len(recs) != 2 || recs[1][0] != csvUnquote(wantCSV) {
				t.Errorf("csv parsed back as %q", recs)
			}

			f, err := excelize.OpenReader(bytes.NewReader(encode(t, FormatXLSX, schema, EncoderOptions{}, rec)))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := f.GetCellValue(DefaultSheetName, "A2")
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.xlsx {
				t.Errorf("xlsx value %q, want %q", got, tt.xlsx)
			}
			typ, err := f.GetCellType(DefaultSheetName, "A2")
			if err != nil {
				t.Fatal(err)
			}
			if typ != tt.xlsxType {
				t.Errorf("xlsx cell type %v, want %v", typ, tt.xlsxType)
			}
			if formula, _ := f.GetCellFormula(DefaultSheetName, "A2"); formula != "" {
				t.Errorf("xlsx cell has formula %q", formula)
			}
		})
	}
}

// csvUnquote undoes RFC 4180 quoting of one field, for comparing with what
// encoding/csv reads.
func csvUnquote(s string) string {
	if len(s) >= 2 && s[0] == '"' {
		return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	}
	return s
}

// TestWallTime checks the calendar arithmetic against the time package over
// four centuries of days and across a day's seconds.
func TestWallTime(t *testing.T) {
	start := time.Date(1800, 1, 1, 0, 0, 0, 0, time.UTC)
	for d := 0; d < 400*366; d += 7 {
		want := start.AddDate(0, 0, d).Add(time.Duration(d%86400) * time.Second)
		got := string(wallTime{sec: want.Unix()}.appendTo(nil))
		if got != want.Format("2006-01-02 15:04:05") {
			t.Fatalf("%d: %s, want %s", want.Unix(), got, want.Format("2006-01-02 15:04:05"))
		}
	}
}

// TestCheckTypeRefuses checks that types without an export form are
// refused.
func TestCheckTypeRefuses(t *testing.T) {
	for _, dt := range []arrow.DataType{
		arrow.ListOf(arrow.ListOf(arrow.BinaryTypes.String)),
		arrow.ListOf(dictOfStrings),
		arrow.StructOf(arrow.Field{Name: "a", Type: arrow.BinaryTypes.String}),
		arrow.BinaryTypes.Binary,
	} {
		if err := checkType(dt); err == nil {
			t.Errorf("checkType(%s) = nil, want an error", dt)
		}
	}
}

// jsonStringBase is long enough for the eight-byte fast path of
// appendJSONString.
const jsonStringBase = "0123456789abcdefghij"

// withByte is jsonStringBase with byte c at position pos.
func withByte(pos int, c byte) string {
	s := []byte(jsonStringBase)
	s[pos] = c
	return string(s)
}

// checkJSONString compares the hand-written string escaping of in with
// encoding/json (HTML escaping off).
func checkJSONString(t *testing.T, in string) {
	t.Helper()
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(in); err != nil {
		t.Fatal(err)
	}
	if got := string(appendJSONString(nil, in)); got != strings.TrimSuffix(want.String(), "\n") {
		t.Errorf("%q: got %s, want %s", in, got, want.String())
	}
}

// TestJSONStringEveryByteAtEveryPosition checks every byte value at every
// position of a string long enough for the eight-byte fast path.
func TestJSONStringEveryByteAtEveryPosition(t *testing.T) {
	for pos := range len(jsonStringBase) {
		for c := range 256 {
			checkJSONString(t, withByte(pos, byte(c)))
		}
	}
}

// FuzzJSONString compares the hand-written string escaping with
// encoding/json. Its seeds, which run with every go test, are each byte
// value at some position of a string long enough for the eight-byte fast
// path (every position is used; TestJSONStringEveryByteAtEveryPosition
// tries them all) and a few longer strings. The seeds are few so that a
// short fuzzing run gets past its baseline.
func FuzzJSONString(f *testing.F) {
	for c := range 256 {
		f.Add(withByte(c%len(jsonStringBase), byte(c)))
	}
	for _, s := range []string{"", "\u2028 and \u2029 inside a longer string", "truncated \xe2\x80", strings.Repeat("é", 9)} {
		f.Add(s)
	}
	f.Fuzz(checkJSONString)
}
