package export

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
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
// Close), so memory holds at most one row group and a few batches whatever
// the export's size. Nothing is written before the first Write or Close:
// the file (and with it an HTTP response) starts with data, so an error
// before the first row can still be answered as an error.
//
// Encoding runs on a goroutine of its own, so that it overlaps with the
// reading of the next batches (DuckDB, the privacy transform): Write hands
// the batch over (retained) and returns. The encoded bytes collect in a
// buffer that Write and Close copy to the underlying writer, so the
// underlying writer is only ever used from the caller's goroutine (an HTTP
// response must not be written while the handler flushes it). An encoding
// error is returned by a later Write or by Close. A caller that gives up
// before Close calls Abort, which stops the goroutine.
type ParquetEncoder struct {
	stream
	dst      *errWriter
	maxRows  int64
	maxBytes int64

	// out collects what the Parquet writer writes, for the caller's
	// goroutine to copy to dst.
	out syncBuffer
	// The encoding goroutine: batches in, done when it has finished.
	work chan arrow.RecordBatch
	done chan struct{}

	// Owned by the encoding goroutine until done is closed.
	fw              *pqarrow.FileWriter
	rgRows, rgBytes int64 // the current row group's rows and Arrow bytes
	full            bool  // the next rows start a new row group
	encErr          error // the first encoding error
	failedFlag      atomic.Bool
}

// parquetQueue is how many batches wait for the encoding goroutine: enough
// to keep it busy while the next batch is read, few enough to keep memory
// at a few batches.
const parquetQueue = 2

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
	if _, err := pqarrow.ToParquet(schema, e.writerProps(nil), pqarrow.DefaultWriterProps()); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedType, err)
	}
	return e, nil
}

// writerProps are the file's writer properties; first, the first batch (nil
// for a file of no rows), decides which string columns get a dictionary.
func (e *ParquetEncoder) writerProps(first arrow.RecordBatch) *parquet.WriterProperties {
	props := []parquet.WriterProperty{
		parquet.WithCompression(compress.Codecs.Zstd),
		// Row groups are cut here, by rows and bytes; the writer's own
		// bound only backs that up.
		parquet.WithMaxRowGroupLength(e.maxRows),
		parquet.WithCreatedBy("worklog"),
	}
	// Dictionaries pay for strings (action, channel, topic, tags: a few
	// values each); for numbers and date-times, nearly all distinct (ids,
	// seconds, instants), they cost a third of the encoder's time and zstd
	// compresses the plain values as well.
	for i, f := range e.schema.Fields() {
		if !dictionaryWorthy(f.Type) || (first != nil && longStrings(first.Column(i))) {
			props = append(props, parquet.WithDictionaryFor(f.Name, false))
		}
	}
	return parquet.NewWriterProperties(props...)
}

// longStringBytes is the mean value length from which a string column gets
// no dictionary. Such values (rawData: a JSON message of ~1 KB per event)
// are nearly all distinct, and a few thousand of them fill the dictionary
// page (1 MB by default), after which the writer falls back to plain
// encoding anyway, having hashed every value first: on rawData that hashing
// was a quarter of the encoder's CPU time.
const longStringBytes = 256

// longStrings reports whether a string column's values average
// longStringBytes or more.
func longStrings(a arrow.Array) bool {
	s, ok := a.(*array.String)
	if !ok || s.Len() == s.NullN() {
		return false
	}
	return s.ValueLen(s.Len()-1)+s.ValueOffset(s.Len()-1)-s.ValueOffset(0) >= longStringBytes*(s.Len()-s.NullN())
}

// dictionaryWorthy reports whether a column type gets a dictionary: strings
// and lists of strings.
func dictionaryWorthy(dt arrow.DataType) bool {
	if l, ok := dt.(arrow.ListLikeType); ok {
		dt = l.Elem()
	}
	return arrow.IsBinaryLike(dt.ID()) || dt.ID() == arrow.STRING_VIEW
}

// failed records the sticky error of op, preferring the underlying
// writer's, which the Parquet writer reports only as text.
func (e *ParquetEncoder) failed(op string, err error) error {
	if e.dst.err != nil {
		err = e.dst.err
	}
	return e.fail(fmt.Errorf("%s: %w", op, err))
}

// start opens the file (its header goes to out) and the encoding goroutine;
// first is the first batch to write.
func (e *ParquetEncoder) start(first arrow.RecordBatch) error {
	fw, err := pqarrow.NewFileWriter(e.schema, &e.out, e.writerProps(first), pqarrow.DefaultWriterProps())
	if err != nil {
		return e.failed("start parquet file", err)
	}
	e.fw = fw
	e.work = make(chan arrow.RecordBatch, parquetQueue)
	e.done = make(chan struct{})
	go e.encode()
	return nil
}

// encode is the encoding goroutine: it writes every batch it is handed and
// releases it; after an error it only releases.
func (e *ParquetEncoder) encode() {
	defer close(e.done)
	for rec := range e.work {
		if e.encErr == nil {
			if err := e.writeRows(rec); err != nil {
				e.encErr = err
				e.failedFlag.Store(true)
			}
		}
		rec.Release()
	}
}

// writeRows adds rec's rows to the current row group, starting a new row
// group (which writes the full one out) whenever one fills.
func (e *ParquetEncoder) writeRows(rec arrow.RecordBatch) error {
	n := rec.NumRows()
	size := recordBytes(rec)
	for off := int64(0); off < n; {
		// WriteBuffered opens the first row group itself.
		if e.full {
			if err := e.fw.NewBufferedRowGroupChecked(); err != nil {
				return fmt.Errorf("write parquet row group: %w", err)
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
			return fmt.Errorf("write parquet rows: %w", err)
		}
		e.rgRows += take
		e.rgBytes += size * take / n
		e.full = e.rgRows >= e.maxRows || e.rgBytes >= e.maxBytes
		off += take
	}
	return nil
}

// copyOut writes what the encoder produced so far to the underlying writer.
func (e *ParquetEncoder) copyOut() error {
	if err := e.out.writeTo(e.dst); err != nil {
		return e.failed("write parquet file", err)
	}
	return nil
}

// stop ends the encoding goroutine and waits for it; it returns the
// encoding error, if any.
func (e *ParquetEncoder) stop() error {
	if e.work == nil {
		return nil
	}
	close(e.work)
	<-e.done
	e.work = nil
	return e.encErr
}

// Write hands rec's rows to the encoding goroutine and copies the bytes
// encoded so far to the underlying writer.
func (e *ParquetEncoder) Write(rec arrow.RecordBatch) error {
	if err := e.usable(); err != nil {
		return err
	}
	if err := e.check(rec); err != nil {
		return e.fail(err)
	}
	if e.failedFlag.Load() {
		return e.fail(e.stop())
	}
	if rec.NumRows() == 0 {
		return nil
	}
	if e.fw == nil {
		if err := e.start(rec); err != nil {
			return err
		}
	}
	rec.Retain()
	e.work <- rec
	return e.copyOut()
}

// Close waits for the encoding goroutine, writes the last row group and the
// footer, and copies everything to the underlying writer.
func (e *ParquetEncoder) Close() error {
	if e.closed {
		return e.err
	}
	e.closed = true
	encErr := e.stop()
	if e.err != nil {
		return e.err
	}
	if encErr != nil {
		return e.fail(encErr)
	}
	if e.fw == nil {
		// No rows: a file of the schema and no row group.
		fw, err := pqarrow.NewFileWriter(e.schema, &e.out, e.writerProps(nil), pqarrow.DefaultWriterProps())
		if err != nil {
			return e.failed("start parquet file", err)
		}
		e.fw = fw
	}
	if err := e.fw.Close(); err != nil {
		return e.failed("close parquet file", err)
	}
	return e.copyOut()
}

// Abort stops the encoding goroutine without finishing the file, for a
// caller that gives up before Close (the export pipeline does).
func (e *ParquetEncoder) Abort() error {
	if e.closed {
		return nil
	}
	e.closed = true
	_ = e.stop()
	e.out.reset()
	return nil
}

// syncBuffer is a byte buffer written by the encoding goroutine and emptied
// by the caller's.
type syncBuffer struct {
	mu         sync.Mutex
	buf, spare []byte
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.buf = append(b.buf, p...)
	b.mu.Unlock()
	return len(p), nil
}

// writeTo moves the buffered bytes to w. The lock is held only to swap the
// buffers, so the encoding goroutine is not held up by a slow writer.
func (b *syncBuffer) writeTo(w io.Writer) error {
	b.mu.Lock()
	b.buf, b.spare = b.spare[:0], b.buf
	b.mu.Unlock()
	if len(b.spare) == 0 {
		return nil
	}
	_, err := w.Write(b.spare)
	return err
}

func (b *syncBuffer) reset() {
	b.mu.Lock()
	b.buf, b.spare = nil, nil
	b.mu.Unlock()
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
