// Package export turns a query plan into bytes: the one export pipeline
// (Request, Run, WriteFile) — DuckDB → Arrow record batches → privacy
// transform → encoder — and the streaming encoders (JSON, NDJSON, CSV, XLSX,
// Parquet, Arrow IPC) over an io.Writer. It is used alike by the HTTP API, the background jobs and
// `worklog export`.
//
// It owns the formats (Formats, ParseFormat, media types, extensions): every
// other package reads the list from here. It imports query, privacy, data,
// arrow (with its Parquet writer) and excelize, and must not import net/http,
// Echo, bbolt or a mail library: those belong to export/api and export/jobs,
// which import this package, never the other way round.
package export

import (
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
)

// Encoder writes record batches to an io.Writer in one export format.
//
// The header (CSV's field names, JSON's "[", XLSX's header row, the Parquet
// magic, the Arrow schema message) is written by the first Write or by Close,
// whichever comes first, so an export of no rows is still a valid document. Close writes the trailer and flushes; it never
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
	// CSVBOM starts a CSV with a UTF-8 byte-order mark (the bom parameter,
	// SPEC §4); the default is RFC 4180 without one.
	CSVBOM bool
	// SheetName names the first XLSX sheet; empty means DefaultSheetName.
	SheetName string
	// MaxSheetRows is the number of data rows per XLSX sheet before the
	// encoder continues on a new sheet named SheetName_2, SheetName_3, ...,
	// each with the header row. Zero means MaxXLSXSheetRows.
	MaxSheetRows int
	// TempDir is where the XLSX encoder spools sheet data that outgrows
	// memory; empty means the system temp dir. Servers and the CLI pass
	// their Spool's directory, under the data directory.
	TempDir string
	// ParquetRowGroupRows bounds the rows of one Parquet row group
	// (0: DefaultParquetRowGroupRows).
	ParquetRowGroupRows int64
	// ParquetRowGroupBytes bounds the encoded bytes of one Parquet row group;
	// the encoder holds one row group in memory and writes it out when
	// either bound is reached (0: DefaultParquetRowGroupBytes).
	ParquetRowGroupBytes int64
}

// NewEncoder returns the encoder for format f, writing to w. It fails when f
// is unknown or the schema has a column type the format cannot represent,
// before anything is written.
func NewEncoder(f Format, w io.Writer, schema *arrow.Schema, opts EncoderOptions) (Encoder, error) {
	info, ok := lookupFormat(f)
	if !ok {
		return nil, fmt.Errorf("new encoder: %w %q", ErrUnknownFormat, string(f))
	}
	if err := checkSchema(schema); err != nil {
		return nil, err
	}
	return info.newEncoder(w, schema, opts)
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
	if err := s.check(rec); err != nil {
		return err
	}
	s.readers = s.readers[:0]
	for i := 0; i < int(rec.NumCols()); i++ {
		s.readers = append(s.readers, newReader(rec.Column(i)))
	}
	return nil
}

// check reports whether rec has the encoder's schema: the same column names
// and types in the same order.
func (s *stream) check(rec arrow.RecordBatch) error {
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
	return nil
}

// sink buffers encoded bytes in front of an io.Writer. Encoders append to
// buf and call maybeFlush after each row, so memory stays bounded however
// large a batch is.
type sink struct {
	w   io.Writer
	buf []byte
	// behind, when set, takes each filled buffer to write on its own
	// goroutine (see writeBehind) instead of w.
	behind *writeBehind
	// encRows and encBytes count the rows and bytes of the parallel blocks
	// so far: their mean sizes the next blocks (see writeRows).
	encRows, encBytes int64
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
	if s.behind != nil {
		var err error
		s.buf, err = s.behind.handoff(s.buf)
		return err
	}
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

// sinkEncoder is an encoder whose bytes go through a sink (CSV, JSON,
// NDJSON), which Run may point at a writeBehind.
type sinkEncoder interface{ sinkOut() *sink }

func (e *CSVEncoder) sinkOut() *sink    { return &e.out }
func (e *JSONEncoder) sinkOut() *sink   { return &e.out }
func (e *NDJSONEncoder) sinkOut() *sink { return &e.out }
