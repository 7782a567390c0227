package export

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"worklog/internal/intmath"
)

// This file holds the export's value model: how a value of each Arrow type is
// written, shared by the three encoders. The encoders are driven by the
// schema they are given, because the privacy layer may drop columns or turn
// the date into a date32 column.

// valueKind groups Arrow types by how the formats write them.
type valueKind uint8

const (
	// kindNumber values are bare JSON numbers, plain CSV fields and numeric
	// XLSX cells.
	kindNumber valueKind = iota
	// kindBool values are JSON true/false and XLSX booleans.
	kindBool
	// kindString values are JSON strings and XLSX text cells; the CSV
	// formula guard applies to them.
	kindString
	// kindTime values are naive date-times "YYYY-MM-DD HH:MM:SS".
	kindTime
	// kindDate values are dates "YYYY-MM-DD".
	kindDate
	// kindList values are JSON-array strings `["a", "b"]`.
	kindList
	// kindNull columns hold only nulls.
	kindNull
)

// reader reads one column of one record batch. Methods other than null are
// called only for rows where null is false.
type reader interface {
	kind() valueKind
	// null reports whether row i has no value: a null, or a float that is
	// NaN or infinite (which JSON cannot represent).
	null(i int) bool
	// appendText appends the value's plain text, as CSV writes it.
	appendText(dst []byte, i int) []byte
	// appendJSON appends the value as a JSON value.
	appendJSON(dst []byte, i int) []byte
	// value returns the value as int64, uint64, float64, bool, string or
	// wallTime, for the XLSX encoder.
	value(i int) any
}

// stringReader is implemented by the readers of kindString, whose values the
// CSV encoder inspects without copying.
type stringReader interface {
	str(i int) string
}

// checkType reports whether dt has an export representation.
func checkType(dt arrow.DataType) error {
	switch dt.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT32, arrow.FLOAT64, arrow.BOOL,
		arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW,
		arrow.TIMESTAMP, arrow.DATE32, arrow.DATE64, arrow.NULL:
		return nil
	case arrow.DICTIONARY:
		return checkType(dt.(*arrow.DictionaryType).ValueType)
	case arrow.LIST, arrow.LARGE_LIST, arrow.FIXED_SIZE_LIST, arrow.LIST_VIEW, arrow.LARGE_LIST_VIEW:
		elem := dt.(arrow.ListLikeType).Elem()
		switch elem.ID() {
		case arrow.LIST, arrow.LARGE_LIST, arrow.FIXED_SIZE_LIST, arrow.LIST_VIEW, arrow.LARGE_LIST_VIEW, arrow.DICTIONARY:
			// A list value is one JSON-array string of scalar items.
			return fmt.Errorf("%w %s (lists of lists)", ErrUnsupportedType, dt)
		}
		return checkType(elem)
	}
	return fmt.Errorf("%w %s", ErrUnsupportedType, dt)
}

// newReader returns the reader of a column whose type passed checkType.
func newReader(a arrow.Array) reader {
	switch a := a.(type) {
	case *array.Int8:
		return intReader[int8]{a}
	case *array.Int16:
		return intReader[int16]{a}
	case *array.Int32:
		return intReader[int32]{a}
	case *array.Int64:
		return intReader[int64]{a}
	case *array.Uint8:
		return uintReader[uint8]{a}
	case *array.Uint16:
		return uintReader[uint16]{a}
	case *array.Uint32:
		return uintReader[uint32]{a}
	case *array.Uint64:
		return uintReader[uint64]{a}
	case *array.Float32:
		return floatReader[float32]{a, 32}
	case *array.Float64:
		return floatReader[float64]{a, 64}
	case *array.Boolean:
		return boolReader{a}
	case array.StringLike:
		return strReader{a}
	case *array.Timestamp:
		return newTimestampReader(a)
	case *array.Date32:
		return date32Reader{a}
	case *array.Date64:
		return date64Reader{a}
	case *array.Null:
		return nullReader{}
	case *array.Dictionary:
		return &dictReader{a: a, values: newReader(a.Dictionary())}
	case array.ListLike:
		return &listReader{a: a, elems: newReader(a.ListValues())}
	}
	// checkType and newReader cover the same types; reaching here is a bug.
	panic(fmt.Sprintf("export: no reader for %s", a.DataType()))
}

// valuer is an Arrow array of T, such as *array.Int64.
type valuer[T any] interface {
	arrow.Array
	Value(i int) T
}

type intReader[T int8 | int16 | int32 | int64] struct{ a valuer[T] }

func (r intReader[T]) kind() valueKind { return kindNumber }
func (r intReader[T]) null(i int) bool { return r.a.IsNull(i) }
func (r intReader[T]) value(i int) any { return int64(r.a.Value(i)) }
func (r intReader[T]) appendJSON(dst []byte, i int) []byte {
	return strconv.AppendInt(dst, int64(r.a.Value(i)), 10)
}
func (r intReader[T]) appendText(dst []byte, i int) []byte { return r.appendJSON(dst, i) }

type uintReader[T uint8 | uint16 | uint32 | uint64] struct{ a valuer[T] }

func (r uintReader[T]) kind() valueKind { return kindNumber }
func (r uintReader[T]) null(i int) bool { return r.a.IsNull(i) }
func (r uintReader[T]) value(i int) any { return uint64(r.a.Value(i)) }
func (r uintReader[T]) appendJSON(dst []byte, i int) []byte {
	return strconv.AppendUint(dst, uint64(r.a.Value(i)), 10)
}
func (r uintReader[T]) appendText(dst []byte, i int) []byte { return r.appendJSON(dst, i) }

type floatReader[T float32 | float64] struct {
	a    valuer[T]
	bits int
}

func (r floatReader[T]) kind() valueKind { return kindNumber }
func (r floatReader[T]) null(i int) bool {
	if r.a.IsNull(i) {
		return true
	}
	f := float64(r.a.Value(i))
	return math.IsNaN(f) || math.IsInf(f, 0)
}
func (r floatReader[T]) value(i int) any {
	v := r.a.Value(i)
	if r.bits == 32 {
		// float64(float32(0.1)) is 0.100000001490116; the shortest decimal
		// form of the float32 is the number the user stored.
		f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(v), 'g', -1, 32), 64)
		return f
	}
	return float64(v)
}
func (r floatReader[T]) appendJSON(dst []byte, i int) []byte {
	return appendFloat(dst, float64(r.a.Value(i)), r.bits)
}
func (r floatReader[T]) appendText(dst []byte, i int) []byte { return r.appendJSON(dst, i) }

// appendFloat writes f in its shortest form that reads back to the same
// value, without an exponent unless the number is tiny or huge; this is the
// form encoding/json uses, so parsers see exactly the stored number.
func appendFloat(dst []byte, f float64, bits int) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) ||
			bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if format == 'e' {
		// Shorten e-07 to e-7, as encoding/json does.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

type boolReader struct{ a *array.Boolean }

func (r boolReader) kind() valueKind { return kindBool }
func (r boolReader) null(i int) bool { return r.a.IsNull(i) }
func (r boolReader) value(i int) any { return r.a.Value(i) }
func (r boolReader) appendJSON(dst []byte, i int) []byte {
	return strconv.AppendBool(dst, r.a.Value(i))
}
func (r boolReader) appendText(dst []byte, i int) []byte { return r.appendJSON(dst, i) }

type strReader struct{ a array.StringLike }

func (r strReader) kind() valueKind  { return kindString }
func (r strReader) null(i int) bool  { return r.a.IsNull(i) }
func (r strReader) str(i int) string { return r.a.Value(i) }
func (r strReader) value(i int) any  { return validUTF8(r.a.Value(i)) }
func (r strReader) appendJSON(dst []byte, i int) []byte {
	return appendJSONString(dst, r.a.Value(i))
}
func (r strReader) appendText(dst []byte, i int) []byte {
	return append(dst, validUTF8(r.a.Value(i))...)
}

// wallTime is a naive date-time: seconds since 1970-01-01 00:00:00 on the
// wall clock. Dates have a zero time of day and date set.
type wallTime struct {
	sec  int64
	date bool
}

// appendTo writes t as "YYYY-MM-DD HH:MM:SS", or "YYYY-MM-DD" for a date.
func (t wallTime) appendTo(dst []byte) []byte {
	days := intmath.FloorDiv(t.sec, 86400)
	y, m, d := civil(days)
	if y >= 0 && y <= 9999 {
		dst = append(dst, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10))
	} else {
		dst = strconv.AppendInt(dst, y, 10)
	}
	dst = append(dst, '-', byte('0'+m/10), byte('0'+m%10), '-', byte('0'+d/10), byte('0'+d%10))
	if t.date {
		return dst
	}
	s := t.sec - days*86400
	h, mi, se := s/3600, s/60%60, s%60
	return append(dst, ' ', byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':', byte('0'+se/10), byte('0'+se%10))
}

// civil converts days since 1970-01-01 to a proleptic Gregorian date
// (Howard Hinnant's civil_from_days), avoiding time.Time in the hot loop.
func civil(days int64) (y int64, m, d int64) {
	z := days + 719468
	era := intmath.FloorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	m = mp + 3
	if mp >= 10 {
		m = mp - 9
	}
	y = yoe + era*400
	if m <= 2 {
		y++
	}
	return y, m, d
}

// timestampReader reads timestamps of any unit. Values of a type with a time
// zone are instants and are written as UTC wall-clock times; naive values
// (the store's) are written as they are.
type timestampReader struct {
	a      *array.Timestamp
	perSec int64
}

func newTimestampReader(a *array.Timestamp) timestampReader {
	var perSec int64
	switch a.DataType().(*arrow.TimestampType).Unit {
	case arrow.Second:
		perSec = 1
	case arrow.Millisecond:
		perSec = 1e3
	case arrow.Microsecond:
		perSec = 1e6
	default:
		perSec = 1e9
	}
	return timestampReader{a: a, perSec: perSec}
}

func (r timestampReader) wall(i int) wallTime {
	return wallTime{sec: intmath.FloorDiv(int64(r.a.Value(i)), r.perSec)}
}
func (r timestampReader) kind() valueKind { return kindTime }
func (r timestampReader) null(i int) bool { return r.a.IsNull(i) }
func (r timestampReader) value(i int) any { return r.wall(i) }
func (r timestampReader) appendText(dst []byte, i int) []byte {
	return r.wall(i).appendTo(dst)
}
func (r timestampReader) appendJSON(dst []byte, i int) []byte {
	dst = append(dst, '"')
	return append(r.appendText(dst, i), '"')
}

type date32Reader struct{ a *array.Date32 }

func (r date32Reader) wall(i int) wallTime {
	return wallTime{sec: int64(r.a.Value(i)) * 86400, date: true}
}
func (r date32Reader) kind() valueKind { return kindDate }
func (r date32Reader) null(i int) bool { return r.a.IsNull(i) }
func (r date32Reader) value(i int) any { return r.wall(i) }
func (r date32Reader) appendText(dst []byte, i int) []byte {
	return r.wall(i).appendTo(dst)
}
func (r date32Reader) appendJSON(dst []byte, i int) []byte {
	dst = append(dst, '"')
	return append(r.appendText(dst, i), '"')
}

type date64Reader struct{ a *array.Date64 }

func (r date64Reader) wall(i int) wallTime {
	return wallTime{sec: intmath.FloorDiv(int64(r.a.Value(i)), 86400e3) * 86400, date: true}
}
func (r date64Reader) kind() valueKind { return kindDate }
func (r date64Reader) null(i int) bool { return r.a.IsNull(i) }
func (r date64Reader) value(i int) any { return r.wall(i) }
func (r date64Reader) appendText(dst []byte, i int) []byte {
	return r.wall(i).appendTo(dst)
}
func (r date64Reader) appendJSON(dst []byte, i int) []byte {
	dst = append(dst, '"')
	return append(r.appendText(dst, i), '"')
}

type nullReader struct{}

func (nullReader) kind() valueKind                     { return kindNull }
func (nullReader) null(int) bool                       { return true }
func (nullReader) value(int) any                       { return nil }
func (nullReader) appendText(dst []byte, _ int) []byte { return dst }
func (nullReader) appendJSON(dst []byte, _ int) []byte { return append(dst, "null"...) }

// dictReader reads a dictionary-encoded column through its dictionary.
type dictReader struct {
	a      *array.Dictionary
	values reader
}

func (r *dictReader) kind() valueKind { return r.values.kind() }
func (r *dictReader) null(i int) bool {
	return r.a.IsNull(i) || r.values.null(r.a.GetValueIndex(i))
}
func (r *dictReader) value(i int) any { return r.values.value(r.a.GetValueIndex(i)) }
func (r *dictReader) appendText(dst []byte, i int) []byte {
	return r.values.appendText(dst, r.a.GetValueIndex(i))
}
func (r *dictReader) appendJSON(dst []byte, i int) []byte {
	return r.values.appendJSON(dst, r.a.GetValueIndex(i))
}
func (r *dictReader) str(i int) string {
	return r.values.(stringReader).str(r.a.GetValueIndex(i))
}

// listReader writes a list as the reference's JSON-array string: items as
// JSON values separated by ", ", `[]` when empty. An empty list and a null
// list differ: `[]` versus null.
type listReader struct {
	a       array.ListLike
	elems   reader
	scratch []byte
}

func (r *listReader) kind() valueKind { return kindList }
func (r *listReader) null(i int) bool { return r.a.IsNull(i) }
func (r *listReader) value(i int) any { return string(r.appendText(nil, i)) }
func (r *listReader) appendText(dst []byte, i int) []byte {
	start, end := r.a.ValueOffsets(i)
	dst = append(dst, '[')
	for j := start; j < end; j++ {
		if j > start {
			dst = append(dst, ", "...)
		}
		if r.elems.null(int(j)) {
			dst = append(dst, "null"...)
		} else {
			dst = r.elems.appendJSON(dst, int(j))
		}
	}
	return append(dst, ']')
}
func (r *listReader) appendJSON(dst []byte, i int) []byte {
	r.scratch = r.appendText(r.scratch[:0], i)
	return appendJSONString(dst, r.scratch)
}

// jsonSafe marks the ASCII bytes that appear unescaped inside a JSON string;
// bytes of multi-byte characters are not marked, so that they are checked.
// It is filled once and only read afterwards.
var jsonSafe = func() (t [256]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a quoted JSON string. Control characters are
// escaped, invalid UTF-8 becomes U+FFFD, and U+2028/U+2029 are escaped
// because JavaScript (before ES2019) does not allow them raw in strings.
func appendJSONString[T ~string | ~[]byte](dst []byte, s T) []byte {
	// Copy into reserved room rather than appending segments between
	// escapes: rawData is JSON, with a quote every few bytes, and
	// per-segment appends made this the export's hottest loop. The room
	// covers two output bytes per input byte (a quote becomes \"); the
	// six-byte escapes reserve more as they go. Eight bytes are checked at
	// once (needsEscape8) and stored at once: runs of plain text, such as
	// the body of a message, cost an eighth of a byte loop; a word that
	// needs an escape stores its clean bytes at once and then takes the byte
	// path for one character.
	dst = slices.Grow(dst, 2*len(s)+2)
	buf := dst[:cap(dst)]
	n := len(dst)
	buf[n] = '"'
	n++
	for i := 0; i < len(s); {
		if len(s)-i >= 8 {
			x := load8(s[i:])
			// The room left is at least 2×8+1 bytes, so all eight may
			// be stored even when fewer count.
			binary.LittleEndian.PutUint64(buf[n:], x)
			m := needsEscape8(x)
			if m == 0 {
				n += 8
				i += 8
				continue
			}
			k := bits.TrailingZeros64(m) / 8
			n += k
			i += k
		}
		b := s[i]
		if jsonSafe[b] {
			buf[n] = b
			n++
			i++
			continue
		}
		if b < utf8.RuneSelf {
			var short byte
			switch b {
			case '"', '\\':
				short = b
			case '\n':
				short = 'n'
			case '\r':
				short = 'r'
			case '\t':
				short = 't'
			case '\b':
				short = 'b'
			case '\f':
				short = 'f'
			}
			if short != 0 {
				buf[n], buf[n+1] = '\\', short
				n += 2
			} else {
				buf = grow(buf, n, 6+2*(len(s)-i))
				n += copy(buf[n:], []byte{'\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF]})
			}
			i++
			continue
		}
		r, size := decodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			buf = grow(buf, n, 6+2*(len(s)-i))
			n += copy(buf[n:], `\ufffd`)
		case r == '\u2028' || r == '\u2029':
			buf = grow(buf, n, 6+2*(len(s)-i))
			n += copy(buf[n:], []byte{'\\', 'u', '2', '0', '2', hexDigits[r&0xF]})
		default:
			n += copy(buf[n:], s[i:i+size])
		}
		i += size
	}
	buf[n] = '"'
	return buf[:n+1]
}

// Bytes repeated in every lane of a uint64, for needsEscape8.
const (
	lanes1    = 0x0101010101010101
	lanesHigh = 0x8080808080808080
)

// needsEscape8 looks at eight bytes at once (x, little-endian) and returns
// a mask whose lowest set bit is the high bit of the first byte that
// jsonSafe does not mark: a control character, '"', '\\' or a byte of a
// multi-byte character. The mask is zero when all eight are safe. Bytes
// after the first marked one may be marked falsely (a borrow carries into
// them), which is why only the first counts.
func needsEscape8(x uint64) uint64 {
	ctl := (x - lanes1*0x20) &^ x // a byte below 0x20 (x's high bit excludes >= 0x80)
	q := x ^ (lanes1 * '"')
	q = (q - lanes1) &^ q // a zero byte of x^'"': a quote
	bs := x ^ (lanes1 * '\\')
	bs = (bs - lanes1) &^ bs // a backslash
	return (ctl | q | bs | x) & lanesHigh
}

// grow returns buf (used up to n) with room for at least k more bytes,
// keeping the whole capacity addressable.
func grow(buf []byte, n, k int) []byte {
	if n+k <= len(buf) {
		return buf
	}
	buf = slices.Grow(buf[:n], k)
	return buf[:cap(buf)]
}

// decodeRune decodes the first rune of s, a string or a byte slice.
func decodeRune[T ~string | ~[]byte](s T) (rune, int) {
	var b [utf8.UTFMax]byte
	n := copy(b[:], s)
	return utf8.DecodeRune(b[:n])
}

// validUTF8 returns s with invalid UTF-8 replaced by U+FFFD: the formats
// declare UTF-8, so they must not carry broken bytes.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// load8 reads the first eight bytes of s as a little-endian word; the
// compiler makes it one load (s has at least eight bytes).
func load8[T ~string | ~[]byte](s T) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}
