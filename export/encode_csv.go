package export

import (
	"bytes"
	"io"
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
func appendCSVField(dst []byte, s string, guard bool) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	guarded := guard && needsGuard(s)
	if !fieldNeedsQuotes(s, guarded) {
		if guarded {
			dst = append(dst, '\'')
		}
		return append(dst, s...)
	}
	dst = append(dst, '"')
	if guarded {
		dst = append(dst, '\'')
	}
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
// its content counts. strings.IndexByte is vectorized: four passes over a
// long rawData beat one byte loop.
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
	dst = append(dst, '"')
	for {
		i := bytes.IndexByte(list, '"')
		if i < 0 {
			break
		}
		dst = append(dst, list[:i+1]...)
		dst = append(dst, '"')
		list = list[i+1:]
	}
	dst = append(dst, list...)
	return append(dst, '"')
}
