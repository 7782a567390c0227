package export

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
	"worklog/internal/intmath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/klauspost/compress/flate"
	"github.com/xuri/excelize/v2"
)

// XLSXEncoder writes record batches as an Excel workbook with excelize's
// StreamWriter. The first sheet is named by EncoderOptions.SheetName; its
// header row is bold and frozen. Numbers are numeric cells, date-times are
// date cells formatted yyyy-mm-dd hh:mm:ss (dates yyyy-mm-dd), strings are
// always text cells, never formulas, and lists are JSON-array strings.
// Column widths come from the header and a sample of the first rows
// (capped), and the header row carries an autofilter.
// Rows beyond MaxSheetRows continue on sheets SheetName_2, SheetName_3, ...,
// each with the header.
//
// Excel holds at most 32,767 characters in a cell: a longer string keeps
// its beginning and ends with XLSXCutSuffix, so a cut value is never taken
// for the whole. Date-times are serials of at most 15 significant digits,
// rounded up, which every reader shows at the right second. Integers of more than 15 digits, which Excel would round, are
// written as text. Date-times before 1900-03-01, which Excel cannot represent, are
// written as text.
//
// excelize spools sheet data to temporary files once it outgrows memory; the
// workbook is zipped and written to the writer by Close, which also removes
// the temporary files. Close must therefore be called even after an error.
type XLSXEncoder struct {
	stream
	w         io.Writer
	f         *excelize.File
	sw        *excelize.StreamWriter
	sheetName string
	maxRows   int
	sheets    int // sheets started
	sheetRows int // data rows on the current sheet
	header    []any
	row       []any
	styles    xlsxStyles
	widths    []float64 // column widths, set from the first batch
}

// xlsxStyles are the workbook's cell style ids.
type xlsxStyles struct {
	header, timestamp, date int
}

// Column widths, in characters. A date-time or date column is wide enough
// to show its value instead of "#####"; every column is wide enough for its
// bold header and the autofilter button beside it, and for the values of a
// sample of rows, up to a cap: one long rawData must not make a column
// wider than the screen.
const (
	timestampWidth   = 20
	dateWidth        = 11
	headerExtraWidth = 4 // bold text and the filter button
	maxColumnWidth   = 60
	widthSampleRows  = 200
)

// excelEpochDays is 1970-01-01 as an Excel serial day number (days since
// 1899-12-30), and minExcelSec the first instant Excel represents correctly,
// 1900-03-01 00:00:00 (before it, Excel's fictitious 1900-02-29 shifts days).
const (
	excelEpochDays = 25569
	minExcelSec    = -25508 * 86400
)

// maxExcelInt is the largest integer Excel stores exactly: it keeps 15
// significant digits and silently rounds longer numbers, so larger integers
// (an ID, say) are written as text to keep every digit.
const maxExcelInt = 999_999_999_999_999

// NewXLSXEncoder returns an XLSX encoder writing to w at Close. It fails on
// a schema with an unsupported column type, a MaxSheetRows above Excel's
// limit, or a sheet name Excel refuses.
func NewXLSXEncoder(w io.Writer, schema *arrow.Schema, opts EncoderOptions) (*XLSXEncoder, error) {
	e := &XLSXEncoder{
		stream:    newStream(schema),
		w:         w,
		sheetName: opts.SheetName,
		maxRows:   opts.MaxSheetRows,
	}
	if e.err != nil {
		return nil, e.err
	}
	if e.sheetName == "" {
		e.sheetName = DefaultSheetName
	}
	switch {
	case e.maxRows == 0:
		e.maxRows = MaxXLSXSheetRows
	case e.maxRows < 0 || e.maxRows > MaxXLSXSheetRows:
		return nil, fmt.Errorf("new xlsx encoder: max sheet rows %d outside 1..%d", e.maxRows, MaxXLSXSheetRows)
	}
	e.f = excelize.NewFile(excelize.Options{TmpDir: opts.TempDir})
	// excelize zips the workbook into a bytes.Buffer before WriteTo copies
	// it out; handing it a zip writer over w instead streams the archive and
	// keeps memory flat for large background exports.
	e.f.SetZipWriter(func(io.Writer) excelize.ZipWriter { return newZipWriter(e.w) })
	if err := e.setup(); err != nil {
		return nil, errors.Join(fmt.Errorf("new xlsx encoder: %w", err), e.f.Close())
	}
	e.header = make([]any, schema.NumFields())
	for i, f := range schema.Fields() {
		e.header[i] = excelize.Cell{StyleID: e.styles.header, Value: f.Name}
	}
	e.row = make([]any, schema.NumFields())
	return e, nil
}

// setup names the first sheet and creates the styles.
func (e *XLSXEncoder) setup() error {
	if err := e.f.SetSheetName(e.f.GetSheetName(0), e.sheetName); err != nil {
		return fmt.Errorf("sheet name %q: %w", e.sheetName, err)
	}
	var err error
	if e.styles.header, err = e.f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true}}); err != nil {
		return fmt.Errorf("header style: %w", err)
	}
	timestampFormat, dateFormat := "yyyy-mm-dd hh:mm:ss", "yyyy-mm-dd"
	if e.styles.timestamp, err = e.f.NewStyle(&excelize.Style{CustomNumFmt: &timestampFormat}); err != nil {
		return fmt.Errorf("timestamp style: %w", err)
	}
	if e.styles.date, err = e.f.NewStyle(&excelize.Style{CustomNumFmt: &dateFormat}); err != nil {
		return fmt.Errorf("date style: %w", err)
	}
	return nil
}

// startSheet finishes the current sheet, if any, and starts the next one
// with its column widths, frozen pane and header row.
func (e *XLSXEncoder) startSheet() error {
	if e.sw != nil {
		if err := e.flushSheet(); err != nil {
			return err
		}
	}
	e.sheets++
	name := e.sheetName
	if e.sheets > 1 {
		name = e.sheetName + "_" + strconv.Itoa(e.sheets)
		if _, err := e.f.NewSheet(name); err != nil {
			return fmt.Errorf("new sheet %q: %w", name, err)
		}
	}
	sw, err := e.f.NewStreamWriter(name)
	if err != nil {
		return fmt.Errorf("stream sheet %q: %w", name, err)
	}
	e.sw, e.sheetRows = sw, 0
	if e.widths == nil {
		e.widths = e.columnWidths(0)
	}
	for i, w := range e.widths {
		if err := sw.SetColWidth(i+1, i+1, w); err != nil {
			return fmt.Errorf("column width: %w", err)
		}
	}
	if err := sw.SetPanes(&excelize.Panes{
		Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft",
		Selection: []excelize.Selection{{SQRef: "A2", ActiveCell: "A2", Pane: "bottomLeft"}},
	}); err != nil {
		return fmt.Errorf("freeze header: %w", err)
	}
	if err := sw.SetRow("A1", e.header); err != nil {
		return fmt.Errorf("header row: %w", err)
	}
	return nil
}

// flushSheet puts an autofilter on the current sheet's header row, over
// its rows, and finishes the sheet.
func (e *XLSXEncoder) flushSheet() error {
	last, err := excelize.ColumnNumberToName(e.schema.NumFields())
	if err != nil {
		return fmt.Errorf("autofilter: %w", err)
	}
	// The StreamWriter writes the worksheet's autoFilter element at Flush;
	// File.AutoFilter sets it (and the hidden filter range name) on the
	// sheet being streamed, which is loaded but not yet written.
	if err := e.f.AutoFilter(e.sw.Sheet, "A1:"+last+strconv.Itoa(e.sheetRows+1), nil); err != nil {
		return fmt.Errorf("autofilter: %w", err)
	}
	if err := e.sw.Flush(); err != nil {
		return fmt.Errorf("finish sheet %d: %w", e.sheets, err)
	}
	return nil
}

// Write adds the rows of rec to the workbook.
func (e *XLSXEncoder) Write(rec arrow.RecordBatch) error {
	if err := e.usable(); err != nil {
		return err
	}
	if err := e.bind(rec); err != nil {
		return e.fail(err)
	}
	n := int(rec.NumRows())
	if e.sw == nil {
		// The StreamWriter takes widths before the first row: they come
		// from the header and the first rows of the first batch.
		e.widths = e.columnWidths(min(n, widthSampleRows))
		if err := e.startSheet(); err != nil {
			return e.fail(err)
		}
	}
	for i := 0; i < n; i++ {
		if e.sheetRows == e.maxRows {
			if err := e.startSheet(); err != nil {
				return e.fail(err)
			}
		}
		for c, r := range e.readers {
			e.row[c] = e.cell(r, i)
		}
		e.sheetRows++
		// Row 1 is the header.
		if err := e.sw.SetRow("A"+strconv.Itoa(e.sheetRows+1), e.row); err != nil {
			return e.fail(fmt.Errorf("write row: %w", err))
		}
	}
	return nil
}

// columnWidths returns the width of every column: the header's, the
// minimum of its type, and the widest text of the first sample rows of the
// bound batch, capped at maxColumnWidth.
func (e *XLSXEncoder) columnWidths(sample int) []float64 {
	widths := make([]float64, e.schema.NumFields())
	var buf []byte
	for c, f := range e.schema.Fields() {
		w := float64(utf8.RuneCountInString(f.Name) + headerExtraWidth)
		switch f.Type.ID() {
		case arrow.TIMESTAMP:
			w = max(w, timestampWidth)
		case arrow.DATE32, arrow.DATE64:
			w = max(w, dateWidth)
		default:
			for i := 0; i < sample && w < maxColumnWidth; i++ {
				if r := e.readers[c]; !r.null(i) {
					buf = r.appendText(buf[:0], i)
					w = max(w, float64(utf8.RuneCount(buf)+2))
				}
			}
		}
		widths[c] = min(w, maxColumnWidth)
	}
	return widths
}

// cell converts row i of a column into the value excelize writes: nil for
// an empty cell, numbers and booleans as themselves, strings as text (the
// StreamWriter writes strings as inline strings, never as formulas), and
// date-times as serial numbers with a date format.
func (e *XLSXEncoder) cell(r reader, i int) any {
	if r.null(i) {
		return nil
	}
	var t wallTime
	switch v := r.value(i).(type) {
	case int64:
		if v > maxExcelInt || v < -maxExcelInt {
			return strconv.FormatInt(v, 10)
		}
		return v
	case uint64:
		if v > maxExcelInt {
			return strconv.FormatUint(v, 10)
		}
		return v
	case wallTime:
		t = v
	case string:
		return cutCell(v)
	default:
		return v
	}
	if t.sec < minExcelSec {
		return string(t.appendTo(nil))
	}
	serial := excelSerial(t.sec)
	if t.date {
		return excelize.Cell{StyleID: e.styles.date, Value: serial}
	}
	return excelize.Cell{StyleID: e.styles.timestamp, Value: serial}
}

// MaxXLSXCellChars is the most characters an Excel cell holds.
const MaxXLSXCellChars = 32767

// XLSXCutSuffix ends a string that was longer than an Excel cell holds: the
// cell keeps its first characters and this mark, so that nobody takes a
// cut rawData for the whole (or for valid JSON).
const XLSXCutSuffix = "…[cut: longer than an Excel cell]"

// cutCell returns s, or its beginning marked with XLSXCutSuffix when s has
// more characters than a cell holds (excelize would cut it silently).
func cutCell(s string) string {
	if len(s) <= MaxXLSXCellChars || utf8.RuneCountInString(s) <= MaxXLSXCellChars {
		return s
	}
	keep := MaxXLSXCellChars - utf8.RuneCountInString(XLSXCutSuffix)
	n := 0
	for i := range s {
		if n == keep {
			return s[:i] + XLSXCutSuffix
		}
		n++
	}
	return s
}

// serialDigits is how many significant digits of a number survive excelize:
// it cuts a float to 15 significant digits by truncation (cell.go
// formatCellFloat), so 09:15:00, the serial 46349.38541666667, would be
// written 46349.3854166666 and shown as 09:14:59 by LibreOffice.
const serialDigits = 15

// excelSerial is the Excel serial of the naive wall time sec (seconds since
// 1970-01-01), with at most serialDigits significant digits, rounded up in
// the last digit: excelize then writes it unchanged, and every reader,
// whether it rounds or truncates to the second, shows the right second
// (the excess is below 10 µs).
func excelSerial(sec int64) float64 {
	days := intmath.FloorDiv(sec, 86400)
	rem := sec - days*86400
	days += excelEpochDays
	decimals := serialDigits - len(strconv.FormatInt(days, 10))
	scale := int64(1)
	for range decimals {
		scale *= 10
	}
	// rem < 86400 and scale <= 10^14: the product fits in an int64.
	frac := (rem*scale + 86399) / 86400
	if frac == scale {
		days, frac = days+1, 0
	}
	var b []byte
	b = strconv.AppendInt(b, days, 10)
	b = append(b, '.')
	fs := strconv.AppendInt(nil, frac, 10)
	for range decimals - len(fs) {
		b = append(b, '0')
	}
	b = append(b, fs...)
	// The nearest float64 to a decimal of 15 significant digits formats
	// back to that decimal (or a shorter one).
	v, _ := strconv.ParseFloat(string(b), 64)
	return v
}

// Close writes the header sheet if no batch came, finishes the workbook,
// writes it to the underlying writer, and removes excelize's temporary
// files.
func (e *XLSXEncoder) Close() error {
	if e.closed {
		return e.err
	}
	e.closed = true
	if e.err == nil {
		e.err = e.finish()
	}
	if err := e.f.Close(); err != nil && e.err == nil {
		e.err = fmt.Errorf("remove xlsx temporary files: %w", err)
	}
	return e.err
}

// Abort discards the workbook: it removes excelize's temporary files without
// writing anything more to the underlying writer. Run calls it when an
// export fails before Close.
func (e *XLSXEncoder) Abort() error {
	if e.closed {
		return nil
	}
	e.closed = true
	if e.err == nil {
		e.err = ErrClosed
	}
	return e.f.Close()
}

// finish completes the last sheet and writes the workbook.
func (e *XLSXEncoder) finish() error {
	if e.sw == nil {
		if err := e.startSheet(); err != nil {
			return err
		}
	}
	if err := e.flushSheet(); err != nil {
		return err
	}
	e.f.SetActiveSheet(0)
	if _, err := e.f.WriteTo(e.w); err != nil {
		return fmt.Errorf("write xlsx: %w", err)
	}
	return nil
}

// xlsxDeflateLevel is the compression level of the workbook. Measured on
// 20,000 demo rows: the standard library's default level spent 40% of the
// export compressing (1.10 CPU-s, 224 B/row); klauspost/compress at level 3
// took 0.80 CPU-s for 269 B/row, and level 6 0.97 CPU-s for 237 B/row.
const xlsxDeflateLevel = 3

// newZipWriter returns a zip writer over w with a faster deflate than
// archive/zip's default.
func newZipWriter(w io.Writer) *zip.Writer {
	zw := zip.NewWriter(w)
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(out, xlsxDeflateLevel)
	})
	return zw
}
