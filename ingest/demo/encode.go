package demo

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"unicode/utf8"

	"worklog/data"
)

// value is one field of an event under construction. Which member is used
// follows the field's catalogue kind; an unset value is written as null.
type value struct {
	set bool
	i   int64   // KindInt, KindFlag, KindTimestamp (Unix seconds, wall clock)
	f   float64 // KindFloat
	// raw is the JSON encoding of a KindString or KindEnum value (a quoted
	// string) or a KindList value (an array of strings).
	raw []byte
}

// event is one worklog event: a value per catalogue field, in catalogue
// order.
type event []value

// text is a string of the generator's tables together with its JSON
// encoding, made once so that events copy bytes instead of escaping them.
type text struct {
	s string
	q []byte
}

// newText encodes s.
func newText(s string) text { return text{s: s, q: appendString(nil, s)} }

// texts encodes each string.
func texts(ss ...string) []text {
	out := make([]text, len(ss))
	for i, s := range ss {
		out[i] = newText(s)
	}
	return out
}

// encodeList encodes a list of strings as a JSON array.
func encodeList(ss []string) []byte {
	b := []byte{'['}
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

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
		default: // strings and lists arrive encoded
			b = append(b, v.raw...)
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
// of safe bytes are copied at once; clean 8-byte chunks are recognised
// without looking at each byte, since escaping is the generator's hottest
// loop (rawData is escaped twice: as a document and as a string).
func appendEscaped[S string | []byte](b []byte, s S) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		if i+8 <= len(s) {
			x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
				uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
			if clean8(x) {
				i += 7
				continue
			}
		}
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

// SWAR constants: every byte 0x01, every byte 0x80.
const (
	lo8 = 0x0101010101010101
	hi8 = 0x8080808080808080
)

// clean8 reports whether none of the 8 bytes in x needs escaping: no
// control character, '"' or '\\'. It may report false for a clean chunk
// (borrows from a byte that needs escaping), never true for a dirty one.
func clean8(x uint64) bool {
	control := (x - 0x20*lo8) &^ x & hi8
	quote := hasZero(x ^ '"'*lo8)
	backslash := hasZero(x ^ '\\'*lo8)
	return control|quote|backslash == 0
}

// hasZero is non-zero when some byte of v is zero.
func hasZero(v uint64) uint64 { return (v - lo8) &^ v & hi8 }

// appendDocString appends doc, a JSON document, as a quoted JSON string. A
// document's text holds no raw control characters (they are escaped inside
// its strings), so only '"' and '\\' need escaping; chunks of 8 bytes
// without either are copied at once.
func appendDocString(b, doc []byte) []byte {
	b = append(b, '"')
	start, i := 0, 0
	for i < len(doc) {
		end := len(doc)
		if i+8 <= len(doc) {
			x := binary.LittleEndian.Uint64(doc[i:])
			if hasZero(x^'"'*lo8)|hasZero(x^'\\'*lo8) == 0 {
				i += 8
				continue
			}
			end = i + 8
		}
		for ; i < end; i++ {
			if c := doc[i]; c == '"' || c == '\\' {
				b = append(b, doc[start:i]...)
				b = append(b, '\\', c)
				start = i + 1
			}
		}
	}
	b = append(b, doc[start:]...)
	return append(b, '"')
}
