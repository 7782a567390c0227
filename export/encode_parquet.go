package export

import (
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Defaults of the Parquet row-group bounds (EncoderOptions).
const (
	// DefaultParquetRowGroupRows is large enough for readers to scan
	// efficiently and small enough that a page query over the file decodes
	// little (NOTES.md: row-group size is the biggest lever for page latency).
	DefaultParquetRowGroupRows = 64 << 10
	// DefaultParquetRowGroupBytes bounds the memory one buffered row group
	// holds when rows are wide (rawData).
	DefaultParquetRowGroupBytes = 64 << 20
)

// ParquetEncoder writes record batches as one Parquet file through
// arrow-go's pqarrow writer: zstd-compressed, date-times as TIMESTAMP
// (microseconds, not adjusted to UTC: naive wall-clock times, as DuckDB
// writes them; DATE where the privacy level cuts them to the day), lists as
// Parquet LISTs of strings, numbers with their types.
//
// Rows are buffered into a row group until it holds
// EncoderOptions.ParquetRowGroupRows rows or ParquetRowGroupBytes bytes of
// Arrow data; the row group is written out when the next rows arrive (or at
// Close), so memory holds at most one row group and one batch whatever the
// export's size. Nothing is written before the first Write or Close: the
// file (and with it an HTTP response) starts with data, so an error before
// the first row can still be answered as an error.
type ParquetEncoder struct {
	stream
	dst      *errWriter
	fw       *pqarrow.FileWriter
	maxRows  int64
	maxBytes int64
	// The current row group: rows and Arrow bytes buffered, and whether it
	// is full (the next rows start a new one, which writes this one out).
	rgRows, rgBytes int64
	full            bool
}

// NewParquetEncoder returns a Parquet encoder writing to w. It fails when the
// schema has a column Parquet cannot represent.
func NewParquetEncoder(w io.Writer, schema *arrow.Schema, opts EncoderOptions) (*ParquetEncoder, error) {
	e := &ParquetEncoder{stream: newStream(schema), dst: &errWriter{w: w},
		maxRows: opts.ParquetRowGroupRows, maxBytes: opts.ParquetRowGroupBytes}
	if e.maxRows <= 0 {
		e.maxRows = DefaultParquetRowGroupRows
	}
	if e.maxBytes <= 0 {
		e.maxBytes = DefaultParquetRowGroupBytes
	}
	if e.err != nil {
		return nil, e.err
	}
	if _, err := pqarrow.ToParquet(schema, e.writerProps(), pqarrow.DefaultWriterProps()); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedType, err)
	}
	return e, nil
}

func (e *ParquetEncoder) writerProps() *parquet.WriterProperties {
	return parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Zstd),
		// Row groups are cut here, by rows and bytes; the writer's own
		// bound only backs that up.
		parquet.WithMaxRowGroupLength(e.maxRows),
		parquet.WithCreatedBy("worklog"),
	)
}

// failed wraps err, preferring the error of the underlying writer, which
// the Parquet writer reports only as text.
func (e *ParquetEncoder) failed(op string, err error) error {
	if e.dst.err != nil {
		err = e.dst.err
	}
	return e.fail(fmt.Errorf("%s: %w", op, err))
}

// Write adds rec's rows to the current row group, starting a new row group
// (which writes the full one out) whenever one fills.
func (e *ParquetEncoder) Write(rec arrow.RecordBatch) error {
	if err := e.usable(); err != nil {
		return err
	}
	if err := e.check(rec); err != nil {
		return e.fail(err)
	}
	n := rec.NumRows()
	if n == 0 {
		return nil
	}
	if e.fw == nil {
		fw, err := pqarrow.NewFileWriter(e.schema, e.dst, e.writerProps(), pqarrow.DefaultWriterProps())
		if err != nil {
			return e.failed("start parquet file", err)
		}
		e.fw = fw
		if err := fw.NewBufferedRowGroupChecked(); err != nil {
			return e.failed("start parquet row group", err)
		}
	}
	size := recordBytes(rec)
	for off := int64(0); off < n; {
		if e.full {
			if err := e.fw.NewBufferedRowGroupChecked(); err != nil {
				return e.failed("write parquet row group", err)
			}
			e.rgRows, e.rgBytes, e.full = 0, 0, false
		}
		take := min(n-off, e.maxRows-e.rgRows)
		part := rec
		if off > 0 || take < n {
			part = rec.NewSlice(off, off+take)
		}
		err := e.fw.WriteBuffered(part)
		if part != rec {
			part.Release()
		}
		if err != nil {
			return e.failed("write parquet rows", err)
		}
		e.rgRows += take
		e.rgBytes += size * take / n
		e.full = e.rgRows >= e.maxRows || e.rgBytes >= e.maxBytes
		off += take
	}
	return nil
}

// Close writes the last row group and the footer.
func (e *ParquetEncoder) Close() error {
	if e.closed || e.err != nil {
		return e.err
	}
	e.closed = true
	if e.fw == nil {
		// No rows: a file of the schema and no row group.
		fw, err := pqarrow.NewFileWriter(e.schema, e.dst, e.writerProps(), pqarrow.DefaultWriterProps())
		if err != nil {
			return e.failed("start parquet file", err)
		}
		e.fw = fw
	}
	if err := e.fw.Close(); err != nil {
		return e.failed("close parquet file", err)
	}
	return nil
}

// errWriter keeps the first error of the writer it wraps, so that it can be
// returned typed (the Parquet writer reports sink errors as text), and hides
// that writer's Close: the Parquet writer closes its sink when it closes,
// and an encoder never closes the caller's writer.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// recordBytes is the size of the buffers a batch's columns reference: the
// measure of the byte bound of a row group. A slice counts its whole
// buffers, which only makes the bound cut early.
func recordBytes(rec arrow.RecordBatch) int64 {
	var n int64
	for _, col := range rec.Columns() {
		n += dataBytes(col.Data())
	}
	return n
}

func dataBytes(d arrow.ArrayData) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		n += dataBytes(c)
	}
	return n
}
