package export

import (
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"worklog/internal/bufpool"
)

// Defaults of the Parquet row-group bounds (EncoderOptions).
const (
	// DefaultParquetRowGroupRows is large enough for readers to scan
	// efficiently and small enough that a page query over the file decodes
	// little (NOTES.md: row-group size is the biggest lever for page latency).
	DefaultParquetRowGroupRows = 64 << 10
	// DefaultParquetRowGroupBytes bounds the memory one buffered row group
	// holds when rows are wide (rawData). 300k rows at level none (about 25k
	// rows a row group): a server's peak RSS 470 MB against 616-635 MB at
	// 64 MiB, wall time 1-2 % lower (the last row group, written after the
	// last rows are read, is smaller), the file 3 % larger.
	DefaultParquetRowGroupBytes = 32 << 20
)

// ParquetEncoder writes record batches as one Parquet file through
// arrow-go's Parquet writer (pqarrow's column writing, the file layer's
// row groups): zstd-compressed, date-times as TIMESTAMP (microseconds, not
// adjusted to UTC: naive wall-clock times, as DuckDB writes them; DATE
// where the privacy level cuts them to the day), lists as Parquet LISTs of
// strings, numbers with their types.
//
// Rows are gathered into a row group, column by column, until it holds
// EncoderOptions.ParquetRowGroupRows rows or ParquetRowGroupBytes bytes of
// Arrow data; then the row group is written out while the next one is
// gathered, so memory holds at most two row groups and a few batches
// whatever the export's size. Strings and the strings of lists are
// gathered as dictionaries of the row group's distinct values and handed
// to the writer as Arrow dictionary arrays, the other columns' arrays are
// kept (retained) until their row group is written (see
// encode_parquet_dict.go). A row group's columns are encoded on up to
// GOMAXPROCS goroutines (see encode_parquet_write.go). Nothing is written
// before the first Write or Close: the file (and with it an HTTP
// response) starts with data, so an error before the first row can still
// be answered as an error.
//
// Encoding runs on goroutines of its own, so that it overlaps with the
// reading of the next batches (DuckDB, the privacy transform): Write hands
// the batch over (retained) and returns. The encoded bytes collect in a
// buffer that Write and Close copy to the underlying writer, so the
// underlying writer is only ever used from the caller's goroutine (an HTTP
// response must not be written while the handler flushes it). An encoding
// error is returned by a later Write or by Close. A caller that gives up
// before Close calls Abort, which stops the goroutines.
type ParquetEncoder struct {
	stream
	dst      *errWriter
	maxRows  int64
	maxBytes int64
	props    *parquet.WriterProperties
	// workers bounds the goroutines writing a row group's columns.
	workers int

	// out collects what the Parquet writer writes, for the caller's
	// goroutine to copy to dst.
	out syncBuffer
	// The encoding goroutine: batches in, done when it has finished.
	work chan arrow.RecordBatch
	done chan struct{}

	// aborted tells a row group's goroutines that Abort gave up the export.
	aborted atomic.Bool

	// Owned by the encoding goroutine until done is closed.
	fw              *file.Writer
	cols            []pqColumn // the row group being gathered, by column
	rgRows, rgBytes int64      // its rows and Arrow bytes
	// spare is the other set of columns: the row group being written in
	// the background while written is not nil, else the set to gather the
	// next row group in.
	spare   []pqColumn
	written chan error // the error of the row group written in the background
	encErr  error      // the first encoding error

	failedFlag atomic.Bool
}

// ParquetZstdLevel is the zstd level of Parquet exports (see writerProps);
// DuckDB's COPY … (COMPRESSION zstd) uses zstd's default, 3.
const ParquetZstdLevel = 1

// parquetPooledBytes bounds the freed buffers an encoder keeps for reuse:
// a few row groups' pages and indices and the largest dictionary builders.
const parquetPooledBytes = 32 << 20

// parquetQueue is how many batches wait for the encoding goroutine: enough
// to keep it busy while the next batch is read, few enough to keep memory
// at a few batches.
const parquetQueue = 2

// NewParquetEncoder returns a Parquet encoder writing to w. It fails when the
// schema has a column Parquet cannot represent.
func NewParquetEncoder(w io.Writer, schema *arrow.Schema, opts EncoderOptions) (*ParquetEncoder, error) {
	e := &ParquetEncoder{stream: newStream(schema), dst: &errWriter{w: w},
		maxRows: opts.ParquetRowGroupRows, maxBytes: opts.ParquetRowGroupBytes,
		workers: runtime.GOMAXPROCS(0)}
	if e.maxRows <= 0 {
		e.maxRows = DefaultParquetRowGroupRows
	}
	if e.maxBytes <= 0 {
		e.maxBytes = DefaultParquetRowGroupBytes
	}
	if e.err != nil {
		return nil, e.err
	}
	if err := checkParquetShapes(schema); err != nil {
		return nil, err
	}
	props, err := e.writerProps()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedType, err)
	}
	e.props = props
	return e, nil
}

// writerProps are the file's writer properties, decided per leaf column by
// its physical type (CPU time and sizes measured on 300k rows of the
// store, issue 15):
//
//   - Strings, lists of strings included, are dictionary-encoded unless
//     their values turn out not to repeat: before a column chunk's first
//     page is cut, the writer compares the dictionary plus its indices with
//     the plain values and drops the dictionary when it saves nothing (the
//     cost fallback, parquet-mr's rule). So enums and names keep theirs; a
//     column of distinct long strings hashes one batch of values and goes
//     plain; and rawData, whose ticket payload recurs in each of the
//     ticket's events, keeps one: 300k rows' rawData are ~240 MB of values
//     but ~50 MB of distinct ones, so zstd compresses a fifth of the bytes.
//     That halved the file (22 to 14 MB) and cut the encoder's CPU time
//     by a quarter.
//   - Integers and date-times (INT32/INT64: ids, seconds, instants, DATE)
//     get no dictionary but DELTA_BINARY_PACKED: nearly all distinct, a
//     dictionary only costs their hashing; integer dictionaries measured no
//     smaller than delta encoding and zstd, and slower.
//   - Other types (DOUBLE) are written plain.
//
// The dictionary page may grow to the row group's byte bound (at least
// arrow-go's 1 MB default): a dictionary never holds more than its row
// group's values, which that bound already keeps in memory, and a smaller
// limit made rawData fall back to plain half-way through its row group
// after hashing every value.
func (e *ParquetEncoder) writerProps() (*parquet.WriterProperties, error) {
	props := []parquet.WriterProperty{
		parquet.WithCompression(compress.Codecs.Zstd),
		// zstd's fastest level: with rawData's dictionary most bytes
		// compressed are dictionary pages, and at level 1 the file is 2 %
		// larger than at the default level 3 for 2-6 % less CPU time of
		// the whole export (300k rows: 14.2 MB against 13.8 MB, still
		// under DuckDB's 15.4 MB at its level 3).
		parquet.WithCompressionLevel(ParquetZstdLevel),
		// Row groups are cut here, by rows and bytes; the writer's own
		// bound only backs that up.
		parquet.WithMaxRowGroupLength(e.maxRows),
		parquet.WithDictionaryPageSizeLimit(max(e.maxBytes, parquet.DefaultDictionaryPageSizeLimit)),
		parquet.WithCreatedBy("worklog"),
		// The writer's pages, level and index buffers and dictionary
		// builders come and go by the thousand; reusing them instead of
		// making, zeroing and faulting in each anew saved 7 % of an
		// export's CPU time (300k rows: 2.80 s to 2.61 s).
		parquet.WithAllocator(bufpool.New(parquetPooledBytes)),
	}
	sc, err := pqarrow.ToParquet(e.schema, parquet.NewWriterProperties(props...), pqarrow.DefaultWriterProps())
	if err != nil {
		return nil, err
	}
	for i := 0; i < sc.NumColumns(); i++ {
		path := sc.Column(i).Path()
		switch sc.Column(i).PhysicalType() {
		case parquet.Types.ByteArray:
			props = append(props, parquet.WithDictionaryCostFallbackFor(path, true))
		case parquet.Types.Int32, parquet.Types.Int64:
			props = append(props, parquet.WithDictionaryFor(path, false), parquet.WithEncodingFor(path, parquet.Encodings.DeltaBinaryPacked))
		default:
			props = append(props, parquet.WithDictionaryFor(path, false))
		}
	}
	return parquet.NewWriterProperties(props...), nil
}

// failed records the sticky error of op, preferring the underlying
// writer's, which the Parquet writer reports only as text.
func (e *ParquetEncoder) failed(op string, err error) error {
	if e.dst.err != nil {
		err = e.dst.err
	}
	return e.fail(fmt.Errorf("%s: %w", op, err))
}

// start opens the file (its header goes to out) and the encoding goroutine.
func (e *ParquetEncoder) start() error {
	fw, err := newParquetFile(e.schema, &e.out, e.props)
	if err != nil {
		return e.failed("start parquet file", err)
	}
	e.fw = fw
	e.cols = e.newColumns()
	e.work = make(chan arrow.RecordBatch, parquetQueue)
	e.done = make(chan struct{})
	go e.encode()
	return nil
}

// newColumns returns the gatherers of a row group's columns.
func (e *ParquetEncoder) newColumns() []pqColumn {
	cols := make([]pqColumn, e.schema.NumFields())
	for i, f := range e.schema.Fields() {
		cols[i] = newPQColumn(f.Type, e.props.Allocator(), e.props.DataPageSize(), e.props.DictionaryPageSizeLimit())
	}
	return cols
}

// encode is the encoding goroutine: it gathers every batch it is handed
// into the row group and releases it; after an error it only releases.
// Before it ends it waits for the row group written in the background.
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
	if err := e.waitRowGroup(); err != nil && e.encErr == nil {
		e.encErr = err
	}
}

// writeRows adds rec's rows to the current row group, writing the row
// group out whenever it fills.
func (e *ParquetEncoder) writeRows(rec arrow.RecordBatch) error {
	n := rec.NumRows()
	size := recordBytes(rec)
	for off := int64(0); off < n; {
		take := min(n-off, e.maxRows-e.rgRows)
		part := rec
		if off > 0 || take < n {
			part = rec.NewSlice(off, off+take)
		}
		for i, col := range e.cols {
			if err := col.add(part.Column(i)); err != nil {
				if part != rec {
					part.Release()
				}
				return fmt.Errorf("gather parquet column %s: %w", e.schema.Field(i).Name, err)
			}
		}
		if part != rec {
			part.Release()
		}
		e.rgRows += take
		e.rgBytes += size * take / n
		off += take
		if e.rgRows >= e.maxRows || e.rgBytes >= e.maxBytes {
			if err := e.startRowGroup(); err != nil {
				return err
			}
		}
	}
	return nil
}

// startRowGroup hands the gathered row group to a goroutine that writes
// it (its columns on several goroutines, see encode_parquet_write.go) and
// gathers the next row group in the spare set of columns meanwhile: the
// reading of the next batches and their dictionaries need not wait for a
// row group's pages to be encoded and compressed. It first waits for the
// row group written before, so at most two row groups are held, one
// gathered and one being written, and row groups are written in order.
func (e *ParquetEncoder) startRowGroup() error {
	if err := e.waitRowGroup(); err != nil {
		return err
	}
	if e.spare == nil {
		e.spare = e.newColumns()
	}
	cols := e.cols
	e.cols, e.spare = e.spare, cols
	e.rgRows, e.rgBytes = 0, 0
	written := make(chan error, 1)
	e.written = written
	go func() {
		err := e.writeRowGroup(cols)
		if err != nil {
			e.failedFlag.Store(true)
		}
		written <- err
	}()
	return nil
}

// waitRowGroup waits for the row group written in the background, if any,
// and returns its error.
func (e *ParquetEncoder) waitRowGroup() error {
	if e.written == nil {
		return nil
	}
	err := <-e.written
	e.written = nil
	return err
}

// writeRowGroup writes the rows gathered in cols as one row group.
func (e *ParquetEncoder) writeRowGroup(cols []pqColumn) error {
	rgw, err := e.fw.AppendBufferedRowGroupChecked()
	if err != nil {
		return fmt.Errorf("write parquet row group: %w", err)
	}
	return e.writeColumns(rgw, cols)
}

// releaseColumns drops what both sets of columns hold.
func (e *ParquetEncoder) releaseColumns() {
	for _, cols := range [][]pqColumn{e.cols, e.spare} {
		for _, col := range cols {
			col.release()
		}
	}
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
		if err := e.start(); err != nil {
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
	// The encoding goroutine has ended: the gathered columns are the
	// caller's goroutine's now.
	defer e.releaseColumns()
	if e.err != nil {
		return e.err
	}
	if encErr != nil {
		return e.fail(encErr)
	}
	if e.fw != nil && e.rgRows > 0 {
		if err := e.writeRowGroup(e.cols); err != nil {
			return e.failed("write parquet file", err)
		}
	}
	if e.fw == nil {
		// No rows: a file of the schema and no row group.
		fw, err := newParquetFile(e.schema, &e.out, e.props)
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
	e.aborted.Store(true)
	_ = e.stop()
	e.releaseColumns()
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
