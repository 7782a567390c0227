// Package export turns a query plan into bytes: the one export pipeline
// (Request, Run, WriteFile) — DuckDB → Arrow record batches → privacy
// transform → encoder — and the streaming encoders (JSON, CSV, XLSX) over an
// io.Writer. It is used alike by the HTTP API, the background jobs and
// `worklog export`.
//
// It owns the formats (Formats, ParseFormat, content types). It imports
// query, privacy, data, arrow and excelize, and must not import net/http,
// Echo, bbolt or a mail library: those belong to export/api and export/jobs,
// which import this package, never the other way round.
package export

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
)

// Encoder writes record batches to an io.Writer in one export format.
//
// The header (CSV's field names, JSON's "[", XLSX's header row) is written by
// the first Write or by Close, whichever comes first, so an export of no rows
// is still a valid document. Close writes the trailer and flushes; it never
// closes the underlying writer. Every batch must have the schema the encoder
// was created with. After an error every call returns that error (sticky), and
// Close must still be called so that an encoder holding temporary files (XLSX)
// can remove them.
type Encoder interface {
	// Write encodes the rows of rec. The caller keeps ownership of rec.
	Write(rec arrow.RecordBatch) error
	// Close finishes the document. Calling Close again returns the first
	// Close's result.
	Close() error
}

// Compile-time checks that the concrete encoders satisfy Encoder.
var (
	_ Encoder = (*JSONEncoder)(nil)
	_ Encoder = (*CSVEncoder)(nil)
	_ Encoder = (*XLSXEncoder)(nil)
)

// Format is an export format: "json", "csv" or "xlsx".
type Format string

// The export formats.
const (
	FormatJSON Format = "json"
	FormatCSV  Format = "csv"
	FormatXLSX Format = "xlsx"
)

// Formats lists every export format, in the order documents name them.
func Formats() []Format { return []Format{FormatJSON, FormatCSV, FormatXLSX} }

// Errors returned by the encoders; callers match them with errors.Is.
var (
	// ErrUnknownFormat is returned by ParseFormat and NewEncoder for a format
	// other than json, csv and xlsx.
	ErrUnknownFormat = errors.New("unknown export format")
	// ErrUnsupportedType is returned for a schema with a column whose Arrow
	// type has no export representation.
	ErrUnsupportedType = errors.New("unsupported arrow type")
	// ErrSchemaMismatch is returned by Write for a batch whose schema differs
	// from the encoder's.
	ErrSchemaMismatch = errors.New("record schema does not match the encoder's schema")
	// ErrClosed is returned by Write after Close.
	ErrClosed = errors.New("encoder closed")
)

// ParseFormat parses a format name, ignoring case.
func ParseFormat(s string) (Format, error) {
	if f := Format(strings.ToLower(s)); slices.Contains(Formats(), f) {
		return f, nil
	}
	return "", fmt.Errorf("%w %q (want json, csv or xlsx)", ErrUnknownFormat, s)
}

// ContentType is the media type of the format, for the Content-Type header.
func (f Format) ContentType() string {
	switch f {
	case FormatJSON:
		return "application/json"
	case FormatCSV:
		return "text/csv; charset=utf-8"
	case FormatXLSX:
		return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	}
	return "application/octet-stream"
}

// Extension is the file name extension of the format, without the dot.
func (f Format) Extension() string { return string(f) }

// DefaultSheetName is the name of the first XLSX sheet.
const DefaultSheetName = "reporting_worklog"

// MaxXLSXSheetRows is the most data rows an XLSX sheet can hold: Excel's
// limit of 1,048,576 rows less the header row.
const MaxXLSXSheetRows = 1048575

// EncoderOptions tune the encoders. The zero value is valid.
type EncoderOptions struct {
	// CSVFormulaGuard prefixes CSV string values that start with = + - @,
	// tab or CR by a single quote, so that spreadsheet programs do not run
	// them as formulas. Numbers and date-times are never prefixed.
	CSVFormulaGuard bool
	// SheetName names the first XLSX sheet; empty means DefaultSheetName.
	SheetName string
	// MaxSheetRows is the number of data rows per XLSX sheet before the
	// encoder continues on a new sheet named SheetName_2, SheetName_3, ...,
	// each with the header row. Zero means MaxXLSXSheetRows.
	MaxSheetRows int
}

// NewEncoder returns the encoder for format f, writing to w. It fails when f
// is unknown or the schema has a column type no format can represent, before
// anything is written.
func NewEncoder(f Format, w io.Writer, schema *arrow.Schema, opts EncoderOptions) (Encoder, error) {
	if err := checkSchema(schema); err != nil {
		return nil, err
	}
	switch f {
	case FormatJSON:
		return NewJSONEncoder(w, schema), nil
	case FormatCSV:
		return NewCSVEncoder(w, schema, opts.CSVFormulaGuard), nil
	case FormatXLSX:
		return NewXLSXEncoder(w, schema, opts)
	}
	return nil, fmt.Errorf("new encoder: %w %q", ErrUnknownFormat, string(f))
}

// checkSchema reports the first column whose type cannot be exported.
func checkSchema(schema *arrow.Schema) error {
	for _, f := range schema.Fields() {
		if err := checkType(f.Type); err != nil {
			return fmt.Errorf("column %q: %w", f.Name, err)
		}
	}
	return nil
}

// stream is the state every encoder shares: the schema it was made for, the
// column readers of the current batch, and the sticky error.
type stream struct {
	schema  *arrow.Schema
	readers []reader
	err     error
	closed  bool
}

func newStream(schema *arrow.Schema) stream {
	return stream{schema: schema, err: checkSchema(schema)}
}

// fail records err as the sticky error unless one is already recorded, and
// returns the recorded one.
func (s *stream) fail(err error) error {
	if s.err == nil {
		s.err = err
	}
	return s.err
}

// usable returns the error that prevents a Write, if any.
func (s *stream) usable() error {
	if s.err != nil {
		return s.err
	}
	if s.closed {
		return ErrClosed
	}
	return nil
}

// bind checks rec against the schema and points the column readers at its
// columns.
func (s *stream) bind(rec arrow.RecordBatch) error {
	got := rec.Schema()
	if got != s.schema {
		if got.NumFields() != s.schema.NumFields() {
			return fmt.Errorf("%w: %d columns, want %d", ErrSchemaMismatch, got.NumFields(), s.schema.NumFields())
		}
		for i, want := range s.schema.Fields() {
			f := got.Field(i)
			if f.Name != want.Name || !arrow.TypeEqual(f.Type, want.Type) {
				return fmt.Errorf("%w: column %d is %s %s, want %s %s", ErrSchemaMismatch, i, f.Name, f.Type, want.Name, want.Type)
			}
		}
	}
	s.readers = s.readers[:0]
	for i := 0; i < int(rec.NumCols()); i++ {
		s.readers = append(s.readers, newReader(rec.Column(i)))
	}
	return nil
}

// sink buffers encoded bytes in front of an io.Writer. Encoders append to
// buf and call maybeFlush after each row, so memory stays bounded however
// large a batch is.
type sink struct {
	w   io.Writer
	buf []byte
}

// flushAt is the buffered size at which a sink writes through.
const flushAt = 64 << 10

func newSink(w io.Writer) sink {
	return sink{w: w, buf: make([]byte, 0, flushAt+4<<10)}
}

// maybeFlush writes the buffer when it has grown past flushAt.
func (s *sink) maybeFlush() error {
	if len(s.buf) < flushAt {
		return nil
	}
	return s.flush()
}

// flush writes the whole buffer.
func (s *sink) flush() error {
	if len(s.buf) == 0 {
		return nil
	}
	_, err := s.w.Write(s.buf)
	s.buf = s.buf[:0]
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
