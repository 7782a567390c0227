package export

import (
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// ArrowEncoder writes record batches as an Arrow IPC stream (the
// `application/vnd.apache.arrow.stream` format) through arrow-go's
// ipc.Writer: a schema message, one record batch message per batch, and the
// end-of-stream marker. Columns keep the types of the batches: date-times are
// timestamp[us] without a time zone (date32 when the privacy level cuts them
// to the day), lists are lists of strings, numbers keep their widths. Each
// batch is written through before Write returns, so memory holds one batch.
type ArrowEncoder struct {
	stream
	w *ipc.Writer
}

// NewArrowEncoder returns an Arrow IPC stream encoder writing to w. The
// options have no Arrow settings today; the parameter keeps the
// constructors alike.
func NewArrowEncoder(w io.Writer, schema *arrow.Schema, _ EncoderOptions) *ArrowEncoder {
	return &ArrowEncoder{stream: newStream(schema), w: ipc.NewWriter(w, ipc.WithSchema(schema))}
}

// Write encodes rec as one record batch message.
func (e *ArrowEncoder) Write(rec arrow.RecordBatch) error {
	if err := e.usable(); err != nil {
		return err
	}
	if err := e.check(rec); err != nil {
		return e.fail(err)
	}
	tight, err := compact(rec)
	if err != nil {
		return e.fail(fmt.Errorf("copy arrow batch: %w", err))
	}
	defer tight.Release()
	if err := e.w.Write(tight); err != nil {
		return e.fail(fmt.Errorf("write arrow batch: %w", err))
	}
	return nil
}

// compact copies rec into fresh, zeroed Go memory holding only the values
// it references. The IPC writer puts whole buffers on the wire, and a batch
// from DuckDB (or one the privacy layer passed through) can carry bytes
// beyond its values — uninitialised C memory that held another query's
// rows, such as a name the level omits. A stream must never carry them.
func compact(rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	cols := make([]arrow.Array, rec.NumCols())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i, c := range rec.Columns() {
		cp, err := array.Concatenate([]arrow.Array{c}, memory.NewGoAllocator())
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", rec.ColumnName(i), err)
		}
		cols[i] = cp
		zeroNullSlots(cp)
	}
	return array.NewRecordBatch(rec.Schema(), cols, rec.NumRows()), nil
}

// zeroNullSlots clears the value bytes under the null entries of a
// fixed-width array that compact made (it owns the buffer): DuckDB leaves
// them uninitialised, and Concatenate copies them as they are.
func zeroNullSlots(a arrow.Array) {
	fw, ok := a.DataType().(arrow.FixedWidthDataType)
	if !ok || a.NullN() == 0 || fw.BitWidth()%8 != 0 || len(a.Data().Buffers()) < 2 || a.Data().Buffers()[1] == nil {
		return
	}
	width := fw.BitWidth() / 8
	values := a.Data().Buffers()[1].Bytes()
	off := a.Data().Offset()
	for i := 0; i < a.Len(); i++ {
		if a.IsNull(i) {
			clear(values[(off+i)*width : (off+i+1)*width])
		}
	}
}

// Close writes the schema (if no batch came) and the end-of-stream marker.
func (e *ArrowEncoder) Close() error {
	if e.closed || e.err != nil {
		return e.err
	}
	e.closed = true
	if err := e.w.Close(); err != nil {
		return e.fail(fmt.Errorf("close arrow stream: %w", err))
	}
	return nil
}
