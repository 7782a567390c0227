package export

import (
	"io"

	"github.com/apache/arrow-go/v18/arrow"
)

// NDJSONEncoder writes record batches as newline-delimited JSON: one object
// per line, keys in schema order, the same values as JSONEncoder writes
// (SPEC §4). An export of no rows is empty. A reader can process each line as
// it arrives, and a cut-off stream loses only its last, unterminated line,
// which is why pipelines prefer it to one large JSON array.
type NDJSONEncoder struct {
	stream
	out  sink
	keys [][]byte // `"name":`, JSON-escaped, one per column
}

// NewNDJSONEncoder returns an NDJSON encoder writing to w. A schema with an
// unsupported column type makes every call return ErrUnsupportedType.
func NewNDJSONEncoder(w io.Writer, schema *arrow.Schema) *NDJSONEncoder {
	return &NDJSONEncoder{stream: newStream(schema), out: newSink(w), keys: objectKeys(schema)}
}

// Write encodes the rows of rec, one line each, and writes them through to
// the underlying writer before it returns.
func (e *NDJSONEncoder) Write(rec arrow.RecordBatch) error {
	if err := e.usable(); err != nil {
		return err
	}
	if err := e.bind(rec); err != nil {
		return e.fail(err)
	}
	return e.fail(e.out.writeRows(rec, e.readers, nil, e.appendRow))
}

// appendRow appends row i as one line (a rowFunc).
func (e *NDJSONEncoder) appendRow(dst []byte, rd []reader, _ *[]byte, i int) []byte {
	dst = append(dst, '{')
	dst = appendObjectFields(dst, e.keys, rd, i)
	return append(dst, '}', '\n')
}

// Close flushes; NDJSON has no trailer.
func (e *NDJSONEncoder) Close() error {
	if e.closed || e.err != nil {
		return e.err
	}
	e.closed = true
	return e.fail(e.out.flush())
}
