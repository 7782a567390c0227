package demo

import (
	"fmt"
	"strconv"
	"unicode/utf8"

	"worklog/data"
)

// value is one field of an event under construction. Which member is used
// follows the field's catalogue kind; an unset value is written as null.
type value struct {
	set  bool
	i    int64    // KindInt, KindFlag, KindTimestamp (Unix seconds, wall clock)
	f    float64  // KindFloat
	s    string   // KindString, KindEnum
	raw  []byte   // KindString already encoded as a JSON string, quotes included
	list []string // KindList; nil and empty both encode as []
}

// event is one worklog event: a value per catalogue field, in catalogue
// order.
type event []value

// reset makes every field null again.
func (e event) reset() { clear(e) }

// column is what the encoder knows about one catalogue field.
type column struct {
	prefix []byte // `"name":` with the separating comma for all but the first
	kind   data.Kind
}

// encoder writes events as NDJSON lines, keys in catalogue order, appending
// to a byte slice: no reflection and no allocation per event.
type encoder struct {
	cols []column
}

// newEncoder derives the columns from the catalogue.
func newEncoder() *encoder {
	fields := data.Fields()
	enc := &encoder{cols: make([]column, len(fields))}
	for i, f := range fields {
		var p []byte
		if i == 0 {
			p = append(p, '{')
		} else {
			p = append(p, ',')
		}
		p = appendString(p, f.Name)
		p = append(p, ':')
		enc.cols[i] = column{prefix: p, kind: f.Kind}
	}
	return enc
}

// appendEvent appends e as one JSON object and a newline.
func (enc *encoder) appendEvent(b []byte, e event) []byte {
	for i, c := range enc.cols {
		b = append(b, c.prefix...)
		v := &e[i]
		if !v.set {
			b = append(b, "null"...)
			continue
		}
		switch c.kind {
		case data.KindTimestamp:
			b = append(b, '"')
			b = appendTimestamp(b, v.i)
			b = append(b, '"')
		case data.KindInt, data.KindFlag:
			b = strconv.AppendInt(b, v.i, 10)
		case data.KindFloat:
			b = strconv.AppendFloat(b, v.f, 'f', -1, 64)
		case data.KindList:
			b = append(b, '[')
			for k, s := range v.list {
				if k > 0 {
					b = append(b, ',')
				}
				b = appendString(b, s)
			}
			b = append(b, ']')
		default:
			if v.raw != nil {
				b = append(b, v.raw...)
			} else {
				b = appendString(b, v.s)
			}
		}
	}
	return append(b, '}', '\n')
}

// fieldIndex returns the catalogue position of a field the generator fills.
// The generator names the fields it knows; the catalogue decides the order
// and the encoding, and fields the generator does not know stay null.
func fieldIndex(name string) (int, error) {
	i := data.Index(name)
	if i < 0 {
		return 0, fmt.Errorf("catalogue has no field %q", name)
	}
	return i, nil
}

// hex is for \u00XX escapes.
const hex = "0123456789abcdef"

// safe[c] is true for ASCII bytes that need no escaping in a JSON string.
var safe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendString appends s as a quoted JSON string. Multi-byte UTF-8 is copied
// as is; invalid UTF-8 never occurs because all text comes from our tables.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s)
	return append(b, '"')
}

// appendEscaped appends the JSON-escaped content of s, without quotes. Runs
// of safe bytes are copied at once.
func appendEscaped[S string | []byte](b []byte, s S) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || safe[c] {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	return append(b, s[start:]...)
}
