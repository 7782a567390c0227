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
	return &JSONEncoder{stream: newStream(schema), out: newSink(w), keys: objectKeys(schema)}
}

// objectKeys returns `"name":` for every column, JSON-escaped.
func objectKeys(schema *arrow.Schema) [][]byte {
	keys := make([][]byte, 0, schema.NumFields())
	for _, f := range schema.Fields() {
		keys = append(keys, append(appendJSONString(nil, f.Name), ':'))
	}
	return keys
}

// appendObjectFields appends the members of row i's JSON object, without
// the braces: the one rendering of a row that JSON and NDJSON share.
func appendObjectFields(dst []byte, keys [][]byte, readers []reader, i int) []byte {
	for c, r := range readers {
		if c > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, keys[c]...)
		if r.null(i) {
			dst = append(dst, "null"...)
		} else {
			dst = r.appendJSON(dst, i)
		}
	}
	return dst
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
	// Every row but the export's first follows a comma: the prefix
	// depends on the row's place in the export, not on encoder state, so
	// that rows may be encoded on several goroutines.
	base := e.rows
	row := func(dst []byte, rd []reader, _ *[]byte, i int) []byte {
		if base+int64(i) == 0 {
			dst = append(dst, '\n', '{')
		} else {
			dst = append(dst, ',', '\n', '{')
		}
		dst = appendObjectFields(dst, e.keys, rd, i)
		return append(dst, '}')
	}
	err := e.out.writeRows(rec, e.readers, nil, row)
	e.rows += rec.NumRows()
	if err != nil {
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
