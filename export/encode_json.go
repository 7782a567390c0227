package export

import (
	"io"

	"github.com/apache/arrow-go/v18/arrow"
)

// JSONEncoder writes record batches as a JSON array of objects, one compact
// object per line, keys in schema order:
//
//	[
//	{"date":"2024-05-10 14:52:37","name":"Jane Doe",...},
//	{...}
//	]
//
// An export of no rows is "[]". Numbers are JSON numbers, nulls (and NaN or
// infinite floats) are null, date-times are "YYYY-MM-DD HH:MM:SS" strings and
// lists are JSON-array strings `["a", "b"]`. The encoder appends into its own
// buffer instead of using encoding/json, so it allocates nothing per value.
type JSONEncoder struct {
	stream
	out  sink
	keys [][]byte // `"name":`, JSON-escaped, one per column
	rows int64
	open bool // "[" written
}

// NewJSONEncoder returns a JSON encoder writing to w. A schema with an
// unsupported column type makes every call return ErrUnsupportedType.
func NewJSONEncoder(w io.Writer, schema *arrow.Schema) *JSONEncoder {
	e := &JSONEncoder{stream: newStream(schema), out: newSink(w)}
	for _, f := range schema.Fields() {
		e.keys = append(e.keys, append(appendJSONString(nil, f.Name), ':'))
	}
	return e
}

// Write encodes the rows of rec and writes them through to the underlying
// writer before it returns, so the caller may flush its response per batch.
func (e *JSONEncoder) Write(rec arrow.RecordBatch) error {
	if err := e.usable(); err != nil {
		return err
	}
	if err := e.bind(rec); err != nil {
		return e.fail(err)
	}
	if !e.open {
		e.out.buf = append(e.out.buf, '[')
		e.open = true
	}
	n := int(rec.NumRows())
	for i := 0; i < n; i++ {
		if e.rows == 0 {
			e.out.buf = append(e.out.buf, '\n', '{')
		} else {
			e.out.buf = append(e.out.buf, ',', '\n', '{')
		}
		e.rows++
		for c, r := range e.readers {
			if c > 0 {
				e.out.buf = append(e.out.buf, ',')
			}
			e.out.buf = append(e.out.buf, e.keys[c]...)
			if r.null(i) {
				e.out.buf = append(e.out.buf, "null"...)
			} else {
				e.out.buf = r.appendJSON(e.out.buf, i)
			}
		}
		e.out.buf = append(e.out.buf, '}')
		if err := e.out.maybeFlush(); err != nil {
			return e.fail(err)
		}
	}
	if err := e.out.flush(); err != nil {
		return e.fail(err)
	}
	return nil
}

// Close writes the closing "]" (and the opening one if no batch came) and
// flushes.
func (e *JSONEncoder) Close() error {
	if e.closed || e.err != nil {
		return e.err
	}
	e.closed = true
	if !e.open {
		e.out.buf = append(e.out.buf, '[')
		e.open = true
	}
	if e.rows > 0 {
		e.out.buf = append(e.out.buf, '\n')
	}
	e.out.buf = append(e.out.buf, ']', '\n')
	return e.fail(e.out.flush())
}
