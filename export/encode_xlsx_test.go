package export

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/xuri/excelize/v2"
)

// TestXLSXFormulasStayText checks that strings that look like formulas
// arrive in Excel as the text the user stored, never as formulas.
func TestXLSXFormulasStayText(t *testing.T) {
	mem := newMem(t)
	schema := arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.BinaryTypes.String}}, nil)
	values := []string{"=1+1", `=HYPERLINK("http://evil","click")`, "+1", "-1", "@SUM(A1)", "=cmd|' /C calc'!A0", "\t=1"}
	var rows [][]any
	for _, v := range values {
		rows = append(rows, []any{v})
	}
	rec := newRecord(t, mem, schema, rows)
	defer rec.Release()
	out := encode(t, FormatXLSX, schema, EncoderOptions{}, rec)

	f, err := excelize.OpenReader(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, v := range values {
		cell := fmt.Sprintf("A%d", i+2)
		got, err := f.GetCellValue(DefaultSheetName, cell)
		if err != nil {
			t.Fatal(err)
		}
		formula, err := f.GetCellFormula(DefaultSheetName, cell)
		if err != nil {
			t.Fatal(err)
		}
		typ, err := f.GetCellType(DefaultSheetName, cell)
		if err != nil {
			t.Fatal(err)
		}
		if got != v || formula != "" || typ != excelize.CellTypeInlineString {
			t.Errorf("%s: value %q, formula %q, type %v; want text %q and no formula", cell, got, formula, typ, v)
		}
	}
	// No <f> element anywhere in the sheet: Excel evaluates only those.
	if bytes.Contains(unzipSheet(t, out, "xl/worksheets/sheet1.xml"), []byte("<f>")) {
		t.Error("sheet contains a formula element")
	}
}

// TestXLSXLayout checks the header's bold style, the frozen pane below it,
// and the date-time and date number formats.
func TestXLSXLayout(t *testing.T) {
	mem := newMem(t)
	schema := privacySchema()
	rec := newRecord(t, mem, schema, [][]any{
		{ts(t, "2024-05-10 00:00:00"), "Agent-0123456789", "writeAction", 206, []any{}, ts(t, "2024-05-13 16:15:00")},
	})
	defer rec.Release()
	f, err := excelize.OpenReader(bytes.NewReader(encode(t, FormatXLSX, schema, EncoderOptions{}, rec)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	for c := range schema.NumFields() {
		cell, _ := excelize.CoordinatesToCellName(c+1, 1)
		id, err := f.GetCellStyle(DefaultSheetName, cell)
		if err != nil {
			t.Fatal(err)
		}
		style, err := f.GetStyle(id)
		if err != nil {
			t.Fatal(err)
		}
		if style.Font == nil || !style.Font.Bold {
			t.Errorf("header %s is not bold", cell)
		}
	}
	panes, err := f.GetPanes(DefaultSheetName)
	if err != nil {
		t.Fatal(err)
	}
	if !panes.Freeze || panes.YSplit != 1 || panes.XSplit != 0 || panes.TopLeftCell != "A2" {
		t.Errorf("panes %+v, want frozen below row 1", panes)
	}
	for cell, want := range map[string]string{"A2": "yyyy-mm-dd", "F2": "yyyy-mm-dd hh:mm:ss"} {
		id, err := f.GetCellStyle(DefaultSheetName, cell)
		if err != nil {
			t.Fatal(err)
		}
		style, err := f.GetStyle(id)
		if err != nil {
			t.Fatal(err)
		}
		if style.CustomNumFmt == nil || *style.CustomNumFmt != want {
			t.Errorf("%s number format %v, want %q", cell, style.CustomNumFmt, want)
		}
		raw, err := f.GetCellValue(DefaultSheetName, cell, excelize.Options{RawCellValue: true})
		if err != nil {
			t.Fatal(err)
		}
		if raw == "" || raw[0] < '0' || raw[0] > '9' {
			t.Errorf("%s raw value %q, want an Excel serial number", cell, raw)
		}
	}
	if w, err := f.GetColWidth(DefaultSheetName, "F"); err != nil || w < 19 {
		t.Errorf("date-time column width %v, %v: too narrow to show the value", w, err)
	}
}

// TestXLSXReadable checks what a person sees on opening the file: every
// column is wide enough for its header and for the values of the first
// rows (up to a cap, so one long value does not make a screen-wide column),
// and the header row carries an autofilter over the rows of each sheet.
func TestXLSXReadable(t *testing.T) {
	mem := newMem(t)
	schema := privacySchema()
	long := strings.Repeat("x", 500)
	rec := newRecord(t, mem, schema, [][]any{
		{ts(t, "2024-05-10 00:00:00"), "Ann Example-Longname", "writeAction", 206, []any{"Billing", "Payment reminder"}, ts(t, "2024-05-13 16:15:00")},
		{ts(t, "2024-05-11 00:00:00"), "Günther Überlänge", long, nil, []any{}, nil},
		{ts(t, "2024-05-12 00:00:00"), nil, "x", 1, []any{}, nil},
	})
	defer rec.Release()
	out := encode(t, FormatXLSX, schema, EncoderOptions{MaxSheetRows: 2}, rec)
	f, err := excelize.OpenReader(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tests := []struct {
		col      string
		min, max float64
	}{
		{"A", 11, 20}, // date
		{"B", float64(len("Ann Example-Longname")), 40}, // names shown whole
		{"C", 50, maxColumnWidth},                       // capped
		{"D", float64(len("duration")) + 2, 20},         // header and filter button
		{"E", float64(len(`["Billing", "Payment reminder"]`)), 50},
		{"F", 19, 25}, // date-time
	}
	for _, sheet := range []string{DefaultSheetName, DefaultSheetName + "_2"} {
		for _, tc := range tests {
			w, err := f.GetColWidth(sheet, tc.col)
			if err != nil || w < tc.min || w > tc.max {
				t.Errorf("%s column %s width %v (%v), want %v..%v", sheet, tc.col, w, err, tc.min, tc.max)
			}
		}
	}
	for sheet, want := range map[string]string{"xl/worksheets/sheet1.xml": `<autoFilter ref="$A$1:$F$3"`, "xl/worksheets/sheet2.xml": `<autoFilter ref="$A$1:$F$2"`} {
		if x := unzipSheet(t, out, sheet); !bytes.Contains(x, []byte(want)) {
			t.Errorf("%s lacks %s", sheet, want)
		}
	}
	// The header stays bold and frozen with the filter on it.
	if panes, err := f.GetPanes(DefaultSheetName); err != nil || !panes.Freeze || panes.YSplit != 1 {
		t.Errorf("panes %+v %v", panes, err)
	}
	// An empty export still gets header-wide columns and a filter.
	empty := encode(t, FormatXLSX, schema, EncoderOptions{})
	if x := unzipSheet(t, empty, "xl/worksheets/sheet1.xml"); !bytes.Contains(x, []byte(`<autoFilter ref="$A$1:$F$1"`)) {
		t.Errorf("empty export: no autofilter on the header:\n%s", x)
	}
}

// TestXLSXSheetContinuation checks that rows beyond MaxSheetRows continue
// on numbered sheets, each with the header, in order.
func TestXLSXSheetContinuation(t *testing.T) {
	mem := newMem(t)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "s", Type: arrow.BinaryTypes.String},
	}, nil)
	b1 := newRecord(t, mem, schema, [][]any{{1, "a"}, {2, "b"}, {3, "c"}})
	defer b1.Release()
	b2 := newRecord(t, mem, schema, [][]any{{4, "d"}, {5, "e"}})
	defer b2.Release()

	tests := []struct {
		name    string
		opts    EncoderOptions
		batches []arrow.RecordBatch
		want    map[string][][]string
		order   []string
	}{
		{
			name:    "two rows per sheet",
			opts:    EncoderOptions{MaxSheetRows: 2},
			batches: []arrow.RecordBatch{b1, b2},
			order:   []string{"reporting_worklog", "reporting_worklog_2", "reporting_worklog_3"},
			want: map[string][][]string{
				"reporting_worklog":   {{"id", "s"}, {"1", "a"}, {"2", "b"}},
				"reporting_worklog_2": {{"id", "s"}, {"3", "c"}, {"4", "d"}},
				"reporting_worklog_3": {{"id", "s"}, {"5", "e"}},
			},
		},
		{
			name:    "exactly full sheets add no empty sheet",
			opts:    EncoderOptions{MaxSheetRows: 5, SheetName: "rows"},
			batches: []arrow.RecordBatch{b1, b2},
			order:   []string{"rows"},
			want: map[string][][]string{
				"rows": {{"id", "s"}, {"1", "a"}, {"2", "b"}, {"3", "c"}, {"4", "d"}, {"5", "e"}},
			},
		},
		{
			name:  "no rows",
			opts:  EncoderOptions{MaxSheetRows: 1},
			order: []string{"reporting_worklog"},
			want:  map[string][][]string{"reporting_worklog": {{"id", "s"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := encode(t, FormatXLSX, schema, tt.opts, tt.batches...)
			sheets, rows := readXLSX(t, out)
			if !reflect.DeepEqual(sheets, tt.order) {
				t.Errorf("sheets %v, want %v", sheets, tt.order)
			}
			if !reflect.DeepEqual(rows, tt.want) {
				t.Errorf("rows\n got %q\nwant %q", rows, tt.want)
			}
			f, err := excelize.OpenReader(bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.GetActiveSheetIndex() != 0 {
				t.Errorf("active sheet %d, want the first", f.GetActiveSheetIndex())
			}
			for _, s := range tt.order {
				if p, err := f.GetPanes(s); err != nil || !p.Freeze {
					t.Errorf("sheet %s header not frozen: %+v %v", s, p, err)
				}
			}
		})
	}
}

func TestXLSXOptionsRefused(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)
	for _, opts := range []EncoderOptions{
		{MaxSheetRows: -1},
		{MaxSheetRows: MaxXLSXSheetRows + 1},
		{SheetName: "a/b"},
		{SheetName: "a name longer than thirty-one characters"},
	} {
		if _, err := NewXLSXEncoder(&bytes.Buffer{}, schema, opts); err == nil {
			t.Errorf("NewXLSXEncoder(%+v) = nil error", opts)
		}
	}
}

// unzipSheet returns one part of an XLSX archive.
func unzipSheet(t *testing.T, xlsx []byte, name string) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(xlsx), int64(len(xlsx)))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := zr.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestXLSXRemovesTempFiles checks that the temporary files excelize spools
// large sheets to are gone after Close, also when writing the workbook fails.
func TestXLSXRemovesTempFiles(t *testing.T) {
	mem := newMem(t)
	schema := arrow.NewSchema([]arrow.Field{{Name: "rawData", Type: arrow.BinaryTypes.String}}, nil)
	rows := make([][]any, 2500)
	for i := range rows {
		rows[i] = []any{strings.Repeat("x", 8000)} // 20 MB of sheet: past excelize's 16 MiB in-memory chunk
	}
	rec := newRecord(t, mem, schema, rows)
	defer rec.Release()

	for _, tt := range []struct {
		name string
		w    io.Writer
		err  error
	}{
		{"success", io.Discard, nil},
		{"failing writer", &failWriter{}, errDiskFull},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Setenv("TMPDIR", dir) // excelize creates its files in os.TempDir
			enc, err := NewXLSXEncoder(tt.w, schema, EncoderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := enc.Write(rec); err != nil {
				t.Fatal(err)
			}
			if n := countFiles(t, dir); n == 0 {
				t.Fatal("excelize spooled nothing; the test does not exercise temp files")
			}
			if err := enc.Close(); !errors.Is(err, tt.err) {
				t.Fatalf("close = %v, want %v", err, tt.err)
			}
			if n := countFiles(t, dir); n != 0 {
				t.Errorf("%d temporary files left after Close", n)
			}
		})
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}
