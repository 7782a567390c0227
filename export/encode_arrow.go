package export

import (
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
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
	if err := e.w.Write(rec); err != nil {
		return e.fail(fmt.Errorf("write arrow batch: %w", err))
	}
	return nil
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
