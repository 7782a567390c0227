package export

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/bits"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
)

// CSVEncoder writes record batches as RFC 4180 CSV with a header of field
// names and LF line ends. Fields are quoted only when needed; a null is an
// empty field and an empty string is "" so that tools which tell the two
// apart (DuckDB's read_csv) read them back faithfully. Date-times are
// "YYYY-MM-DD HH:MM:SS" and lists are JSON-array strings `["a", "b"]`.
// The output parses back with encoding/csv.
type CSVEncoder struct {
	stream
	out          sink
	formulaGuard bool
	// BOM starts the output with a UTF-8 byte-order mark, which Excel on
	// Windows needs to read non-ASCII text as UTF-8 (without it "Günther"
	// shows as "GÃ¼nther"). Set it before the first Write.
	BOM     bool
	header  bool // header written
	scratch []byte
}

// utf8BOM is the UTF-8 encoding of U+FEFF.
const utf8BOM = "\xef\xbb\xbf"

// NewCSVEncoder returns a CSV encoder writing to w. With formulaGuard, string
// values starting with = + - @, tab or CR are prefixed by a single quote so
// that spreadsheet programs show them as text instead of running them as
// formulas; numbers (a negative -3600) and date-times are never prefixed.
// A schema with an unsupported column type makes every call return
// ErrUnsupportedType.
func NewCSVEncoder(w io.Writer, schema *arrow.Schema, formulaGuard bool) *CSVEncoder {
	return &CSVEncoder{stream: newStream(schema), out: newSink(w), formulaGuard: formulaGuard}
}

// writeHeader appends the header line once. Field names are not guarded:
// they come from the catalogue, not from users.
func (e *CSVEncoder) writeHeader() {
	if e.header {
		return
	}
	e.header = true
	if e.BOM {
		e.out.buf = append(e.out.buf, utf8BOM...)
	}
	for i, f := range e.schema.Fields() {
		if i > 0 {
			e.out.buf = append(e.out.buf, ',')
		}
		e.out.buf = appendCSVField(e.out.buf, f.Name, false)
	}
	e.out.buf = append(e.out.buf, '\n')
}

// Write encodes the rows of rec and writes them through to the underlying
// writer before it returns.
func (e *CSVEncoder) Write(rec arrow.RecordBatch) error {
	if err := e.usable(); err != nil {
		return err
	}
	if err := e.bind(rec); err != nil {
		return e.fail(err)
	}
	e.writeHeader()
	if err := e.out.writeRows(rec, e.readers, &e.scratch, e.appendRow); err != nil {
		return e.fail(err)
	}
	return nil
}

// appendRow appends row i and its line end (a rowFunc).
func (e *CSVEncoder) appendRow(dst []byte, rd []reader, scratch *[]byte, i int) []byte {
	for c, r := range rd {
		if c > 0 {
			dst = append(dst, ',')
		}
		if r.null(i) {
			if len(rd) == 1 {
				// An empty line is skipped by CSV readers; the row
				// would vanish.
				dst = append(dst, '"', '"')
			}
			continue
		}
		switch r.kind() {
		case kindString:
			dst = appendCSVField(dst, r.(stringReader).str(i), e.formulaGuard)
		case kindList:
			// Lists start with '[', so the guard never applies; they
			// contain quotes and commas, so they are usually quoted.
			*scratch = r.appendText((*scratch)[:0], i)
			dst = appendCSVList(dst, *scratch)
		default:
			// Numbers, booleans and date-times never need quoting.
			dst = r.appendText(dst, i)
		}
	}
	return append(dst, '\n')
}

// Close writes the header if no batch came, and flushes.
func (e *CSVEncoder) Close() error {
	if e.closed || e.err != nil {
		return e.err
	}
	e.closed = true
	e.writeHeader()
	return e.fail(e.out.flush())
}

// needsGuard reports whether a spreadsheet program would read s as a
// formula (or strip a leading control character and then do so).
func needsGuard(s string) bool {
	if s == "" {
		return false
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return true
	}
	return false
}

// appendCSVField appends s as one CSV field, guarded if asked and quoted
// when needed. Invalid UTF-8 becomes U+FFFD.
//
// Most fields are settled by one scan, eight bytes at a time (plainPrefix):
// plain ASCII is written as it is, and a field with a separator, quote or
// line break is quoted and copied in one more pass that doubles its quotes
// and checks its UTF-8 as it goes (appendQuotedBody). Before, a field took
// a UTF-8 check, up to four IndexByte passes and an IndexByte call plus
// two appends per quote, which for rawData (JSON, a quote every few bytes)
// was most of the CSV encoder's time. The rest (non-ASCII before the first
// special byte, invalid UTF-8) takes appendCSVFieldSlow, the reference.
func appendCSVField(dst []byte, s string, guard bool) []byte {
	j := plainPrefix(s)
	if j == len(s) {
		// ASCII without a separator, quote or line break: valid UTF-8,
		// no quote to double, and the first byte decides the rest.
		guarded := guard && needsGuard(s)
		if quote := s == "" || s == `\.` || !guarded && isASCIISpace(s[0]); !quote {
			return append(openField(dst, false, guarded), s...)
		}
		return append(append(openField(dst, true, guarded), s...), '"')
	}
	if s[j] >= utf8.RuneSelf {
		return appendCSVFieldSlow(dst, s, guard)
	}
	// s[j] is a separator, quote or line break, so the field is quoted;
	// s[0] is ASCII (s[:j] is), so it is the first byte after any U+FFFD
	// replacement too and decides the guard.
	start := len(dst)
	dst, ok := appendQuotedBody(openField(dst, true, guard && needsGuard(s)), s)
	if !ok {
		return appendCSVFieldSlow(dst[:start], s, guard)
	}
	return append(dst, '"')
}

// openField appends what comes before a field's value: its opening quote
// when quoted, then the apostrophe of the formula guard when guarded.
func openField(dst []byte, quoted, guarded bool) []byte {
	if quoted {
		dst = append(dst, '"')
	}
	if guarded {
		dst = append(dst, '\'')
	}
	return dst
}

// isASCIISpace reports whether b is an ASCII byte unicode.IsSpace accepts:
// tab, LF, VT, FF, CR or space.
func isASCIISpace(b byte) bool {
	return b == ' ' || b >= '\t' && b <= '\r'
}

// csvPlain marks the bytes a CSV field may hold without quoting or a
// closer look: ASCII other than a separator, quote or line break. It is
// filled once and only read afterwards.
var csvPlain = func() (t [256]bool) {
	for b := 0; b < utf8.RuneSelf; b++ {
		t[b] = b != ',' && b != '"' && b != '\n' && b != '\r'
	}
	return t
}()

// plainPrefix returns the index of the first byte of s that csvPlain does
// not mark, or len(s).
func plainPrefix(s string) int {
	i := 0
	for ; len(s)-i >= 8; i += 8 {
		x := load8(s[i:])
		if m := csvSpecial8(x); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(s); i++ {
		if !csvPlain[s[i]] {
			return i
		}
	}
	return i
}

// hasByte8 returns a mask whose lowest set bit is the high bit of the first
// byte of x (little-endian) equal to c, an ASCII byte; zero when none is.
// Bytes after the first match may be marked falsely (a borrow carries into
// them), and bytes >= 0x80 are never marked; see needsEscape8.
func hasByte8(x uint64, c byte) uint64 {
	y := x ^ (lanes1 * uint64(c))
	return (y - lanes1) &^ y & lanesHigh
}

// csvSpecial8 returns a mask whose lowest set bit is the high bit of the
// first byte of x (little-endian) that csvPlain does not mark; zero when
// all eight are plain.
func csvSpecial8(x uint64) uint64 {
	return hasByte8(x, ',') | hasByte8(x, '"') | hasByte8(x, '\n') | hasByte8(x, '\r') | x&lanesHigh
}

// appendQuotedBody appends s with every quote doubled: the inside of a
// quoted CSV field. It reports false, having appended nothing, when s is
// not valid UTF-8. Like appendJSONString it copies eight bytes at once into
// reserved room and looks only at the first byte of a word that is a quote
// or part of a multi-byte character.
func appendQuotedBody[T ~string | ~[]byte](dst []byte, s T) ([]byte, bool) {
	// The room covers two output bytes per input byte (every byte a
	// quote), so a whole word may be stored even when fewer bytes count.
	dst = slices.Grow(dst, 2*len(s))
	buf := dst[:cap(dst)]
	n := len(dst)
	for i := 0; i < len(s); {
		if len(s)-i >= 8 {
			x := load8(s[i:])
			binary.LittleEndian.PutUint64(buf[n:], x)
			m := hasByte8(x, '"') | x&lanesHigh
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
		switch {
		case b == '"':
			buf[n], buf[n+1] = '"', '"'
			n += 2
			i++
		case b < utf8.RuneSelf:
			buf[n] = b
			n++
			i++
		default:
			r, size := decodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				return dst, false
			}
			n += copy(buf[n:], s[i:i+size])
			i += size
		}
	}
	return buf[:n], true
}

// appendCSVFieldSlow is appendCSVField for any input, one step at a time:
// the reference the fast paths must match (FuzzCSVField).
func appendCSVFieldSlow(dst []byte, s string, guard bool) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	guarded := guard && needsGuard(s)
	if !fieldNeedsQuotes(s, guarded) {
		return append(openField(dst, false, guarded), s...)
	}
	dst = openField(dst, true, guarded)
	for {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			break
		}
		dst = append(dst, s[:i+1]...)
		dst = append(dst, '"')
		s = s[i+1:]
	}
	dst = append(dst, s...)
	return append(dst, '"')
}

// fieldNeedsQuotes follows encoding/csv: quote fields with a separator,
// quote, CR or LF, fields with leading white space (which some readers trim)
// and `\.` (which Postgres reads as end of data). The empty string is quoted
// too, so that it differs from a null. A guarded field starts with ', so only
// its content counts. It serves appendCSVFieldSlow; appendCSVField decides
// the same from plainPrefix's one scan.
func fieldNeedsQuotes(s string, guarded bool) bool {
	if s == "" || s == `\.` {
		return true
	}
	if strings.IndexByte(s, ',') >= 0 || strings.IndexByte(s, '"') >= 0 ||
		strings.IndexByte(s, '\n') >= 0 || strings.IndexByte(s, '\r') >= 0 {
		return true
	}
	if guarded {
		return false
	}
	r, _ := utf8.DecodeRuneInString(s)
	return unicode.IsSpace(r)
}

// appendCSVList appends a list's JSON-array text as a CSV field. The text is
// valid UTF-8 without line breaks (the items are JSON-escaped) and starts
// with '[', so it is never guarded; it is quoted when it holds a quote or a
// comma, which is whenever it holds a string.
func appendCSVList(dst, list []byte) []byte {
	if bytes.IndexByte(list, '"') < 0 && bytes.IndexByte(list, ',') < 0 {
		return append(dst, list...)
	}
	start := len(dst)
	dst, ok := appendQuotedBody(append(dst, '"'), list)
	if !ok {
		// Not reached: the text is valid UTF-8 (see above). Written as it
		// is all the same, with its quotes doubled.
		dst = dst[:start+1]
		for _, b := range list {
			if b == '"' {
				dst = append(dst, '"')
			}
			dst = append(dst, b)
		}
	}
	return append(dst, '"')
}
