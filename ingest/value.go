package ingest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/goccy/go-json"

	"worklog/data"
)

// value is one validated field value. Which member is meaningful depends on
// the field's kind: i for timestamps (microseconds since the Unix epoch of
// the naive wall time), integers and flags; f for floats; s for strings
// and enums; list for lists (never null: a missing list is empty), with s
// their canonical JSON-array text.
type value struct {
	null bool
	i    int64
	f    float64
	s    []byte
	list [][]byte
}

// errRequired is the cause when a required field is missing or null.
var errRequired = errors.New("required field is missing")

// gotError describes a value of the wrong shape: `expected integer, got "abc"`.
type gotError struct {
	want string
	got  string
}

func (e *gotError) Error() string { return "expected " + e.want + ", got " + e.got }

// shown renders an offending value for an error message: JSON text as
// written (strings keep their quotes), shortened to stay readable.
func shown(raw []byte) string {
	const max = 40
	if len(raw) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(raw[cut]) {
			cut--
		}
		return string(raw[:cut]) + "…"
	}
	return string(raw)
}

// shownText renders a CSV cell like a JSON string.
func shownText(s string) string {
	b, _ := json.Marshal(s)
	return shown(b)
}

func expectedOf(f *data.Field) string {
	switch {
	case f.Kind == data.KindFlag:
		return "0 or 1"
	case f.Kind == data.KindEnum:
		return "one of " + strings.Join(f.Enum, ", ")
	case f.Kind == data.KindTimestamp:
		return `date-time "YYYY-MM-DD HH:MM:SS"`
	case f.Kind == data.KindList:
		return "JSON array of strings"
	}
	return f.Kind.String()
}

// fromJSON converts the JSON text of one field's value, as objectFields
// found it: raw (nil when the key is absent) and, when raw is a string,
// str, the string decoded. Decoded text that differs from raw goes to a's
// memory.
func fromJSON(f *data.Field, raw []byte, str jsonString, a *arena) (value, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nullOf(f)
	}
	if raw[0] == '"' {
		s, ok := str.s, str.ok
		if !ok {
			return value{}, fmt.Errorf("invalid JSON string %s", shown(raw))
		}
		switch {
		case f.Kind == data.KindList:
			return listFromJSON(f, s, raw, a)
		case f.Kind == data.KindString && str.valid:
			return value{s: s}, nil
		}
		return fromString(f, s, func() string { return shown(raw) })
	}
	bad := func() (value, error) { return value{}, &gotError{want: expectedOf(f), got: shown(raw)} }
	switch f.Kind {
	case data.KindInt, data.KindFlag:
		if string(raw) == "true" || string(raw) == "false" {
			if f.Kind != data.KindFlag {
				return bad()
			}
			if raw[0] == 't' {
				return value{i: 1}, nil
			}
			return value{}, nil
		}
		return fromString(f, raw, func() string { return shown(raw) })
	case data.KindFloat:
		return fromString(f, raw, func() string { return shown(raw) })
	case data.KindList:
		if raw[0] != '[' {
			return bad()
		}
		return listFromJSON(f, raw, raw, a)
	}
	return bad()
}

// fromJSONTo is fromJSON writing the value to dst, the common cases (a
// null, text known to be valid UTF-8, a date-time, an enum, a number, a
// flag, a plain list) without passing a value through two returns: a value is nine
// words, copied for each of 35 fields. Each shortcut takes only what
// fromJSON accepts, with the value fromJSON gives.
func fromJSONTo(dst *value, f *data.Field, raw []byte, str jsonString, a *arena) error {
	switch {
	case len(raw) == 0 || string(raw) == "null":
		if !f.Required && f.Kind != data.KindList {
			*dst = value{null: true}
			return nil
		}
	case raw[0] == '"' && str.ok && str.valid && f.Kind == data.KindString:
		*dst = value{s: str.s}
		return nil
	case raw[0] == '"' && str.ok && f.Kind == data.KindTimestamp:
		if t, ok := parseTime(string(str.s)); ok {
			*dst = value{i: t}
			return nil
		}
	case raw[0] == '"' && str.ok && f.Kind == data.KindEnum:
		if f.AllowsEnum(string(str.s)) {
			*dst = value{s: str.s}
			return nil
		}
	case raw[0] != '"' && (f.Kind == data.KindInt || f.Kind == data.KindFlag):
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err == nil && (f.Kind != data.KindFlag || n == 0 || n == 1) && (!f.HasRange || f.Min <= n && n <= f.Max) {
			*dst = value{i: n}
			return nil
		}
	case raw[0] != '"' && f.Kind == data.KindFloat:
		if x, err := strconv.ParseFloat(string(raw), 64); err == nil && !math.IsInf(x, 0) && !math.IsNaN(x) {
			*dst = value{f: x}
			return nil
		}
	case raw[0] == '[' && f.Kind == data.KindList:
		if items, ok := plainList(raw, a); ok {
			*dst = value{s: raw, list: items}
			return nil
		}
	}
	// Anything else, and every error, the one way.
	v, err := fromJSON(f, raw, str, a)
	*dst = v
	return err
}

// fromText converts a CSV cell; the empty cell is null.
func fromText(f *data.Field, cell string) (value, error) {
	if cell == "" {
		return nullOf(f)
	}
	b := []byte(cell)
	if f.Kind == data.KindList {
		return listFromJSON(f, b, b, nil)
	}
	return fromString(f, b, func() string { return shownText(cell) })
}

func nullOf(f *data.Field) (value, error) {
	if f.Required {
		return value{}, errRequired
	}
	if f.Kind == data.KindList {
		// Missing and null lists are stored as [] (SPEC §8).
		return value{s: []byte("[]"), list: [][]byte{}}, nil
	}
	return value{null: true}, nil
}

// fromString converts a value given as text: a JSON string's content, a
// JSON number's digits, or a CSV cell. got renders the original for errors.
func fromString(f *data.Field, s []byte, got func() string) (value, error) {
	bad := func() (value, error) { return value{}, &gotError{want: expectedOf(f), got: got()} }
	switch f.Kind {
	case data.KindTimestamp:
		t, ok := parseTime(string(s))
		if !ok {
			return bad()
		}
		return value{i: t}, nil
	case data.KindInt, data.KindFlag:
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			// 3.0 is an integer written as a number; 3.5 is not.
			fl, ferr := strconv.ParseFloat(string(s), 64)
			// From 2^53 on a float no longer holds every integer:
			// 9007199254740993.0 reads as ...992, another event's id.
			if ferr != nil || fl != math.Trunc(fl) || math.Abs(fl) >= 1<<53 {
				return bad()
			}
			n = int64(fl)
		}
		if f.Kind == data.KindFlag && n != 0 && n != 1 {
			return bad()
		}
		if f.HasRange && (n < f.Min || n > f.Max) {
			return value{}, &gotError{want: fmt.Sprintf("integer %d to %d", f.Min, f.Max), got: got()}
		}
		return value{i: n}, nil
	case data.KindFloat:
		x, err := strconv.ParseFloat(string(s), 64)
		if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
			return bad()
		}
		return value{f: x}, nil
	case data.KindEnum:
		if !f.AllowsEnum(string(s)) {
			return bad()
		}
		return value{s: s}, nil
	case data.KindString:
		if !utf8.Valid(s) {
			return value{}, errors.New("invalid UTF-8")
		}
		return value{s: s}, nil
	}
	return bad()
}

// listFromJSON validates a JSON array of strings (text) and returns its
// items, and the array in canonical form. raw is what the input held, for
// errors. The items of a plain list point into text; a's memory holds the
// list of them.
func listFromJSON(f *data.Field, text, raw []byte, a *arena) (value, error) {
	if items, ok := plainList(text, a); ok {
		return value{s: text, list: items}, nil
	}
	var items []*string
	if err := json.Unmarshal(text, &items); err != nil {
		return value{}, &gotError{want: expectedOf(f), got: shown(raw)}
	}
	if len(items) == 0 {
		return value{s: []byte("[]"), list: [][]byte{}}, nil
	}
	out := make([]string, len(items))
	list := make([][]byte, len(items))
	for i, it := range items {
		if it == nil {
			return value{}, &gotError{want: "JSON array of strings (no nulls)", got: shown(raw)}
		}
		out[i] = *it
		list[i] = []byte(*it)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return value{}, fmt.Errorf("encode list: %w", err)
	}
	return value{s: b, list: list}, nil
}

// listByte classes the bytes of a plain list's item: 0 plain ASCII,
// listQuote the closing quote, listHigh a byte of a multi-byte character,
// listRefused what json.Marshal would escape (control characters, a
// backslash, <, >, &).
var listByte = func() (t [256]byte) {
	for c := range 0x20 {
		t[c] = listRefused
	}
	t['\\'], t['<'], t['>'], t['&'] = listRefused, listRefused, listRefused, listRefused
	t['"'] = listQuote
	for c := utf8.RuneSelf; c < 256; c++ {
		t[c] = listHigh
	}
	return t
}()

const (
	listQuote = 1 + iota
	listHigh
	listRefused
)

// itemRun returns the length of the run at the start of b of bytes that
// listByte classes 0 (plain ASCII other than a quote, a backslash, <, >
// and &), eight at a time, and the last few one by one.
func itemRun(b []byte) int {
	const ones = 0x0101010101010101
	i := 0
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		lt, gt, amp := w^(ones*'<'), w^(ones*'>'), w^(ones*'&')
		m := notPlain(w) | ((lt-ones)&^lt|(gt-ones)&^gt|(amp-ones)&^amp)&(ones*0x80)
		if m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b) && listByte[b[i]] == 0; i++ {
	}
	return i
}

// maxPlainItems is the most items plainList collects on the stack before
// it hands them to the arena; a longer list takes the general path.
const maxPlainItems = 32

// plainList is the fast path of listFromJSON: a JSON array of strings that
// json.Marshal would write back byte for byte, because it is written
// without spaces and its strings hold no escapes and no character Marshal
// escapes (control characters, <, >, &, U+2028, U+2029, invalid UTF-8).
// Its items are the text between each pair of quotes, found in the same
// pass; a's memory holds the list of them (nil for []). Anything else is
// left to the general path (ok false).
func plainList(text []byte, a *arena) (items [][]byte, ok bool) {
	if len(text) < 2 || text[0] != '[' || text[len(text)-1] != ']' {
		return nil, false
	}
	if len(text) == 2 {
		return nil, true
	}
	var found [maxPlainItems][]byte
	n := 0
	ascii := true
	end := len(text) - 1 // the closing bracket
	for i := 1; i < end; {
		if text[i] != '"' || n == maxPlainItems {
			return nil, false
		}
		j := i + 1
	item:
		for ; j < end; j++ {
			j += itemRun(text[j:end])
			if j >= end {
				break
			}
			switch listByte[text[j]] {
			case listQuote:
				break item
			case listHigh:
				ascii = false
			case listRefused:
				return nil, false
			}
		}
		if j >= end {
			return nil, false
		}
		found[n] = text[i+1 : j]
		n++
		i = j + 1 // after the closing quote
		switch {
		case text[i] == ',' && i+1 < end:
			i++
		case i == end:
		default:
			return nil, false
		}
	}
	if !ascii && (!utf8.Valid(text) || bytes.Contains(text, []byte("\u2028")) || bytes.Contains(text, []byte("\u2029"))) {
		return nil, false
	}
	items = a.items(n)
	return append(items, found[:n]...), true
}

// unquote decodes a JSON string literal, without allocating when it holds
// no escapes; otherwise the decoded text goes to a's memory (a fresh slice
// when a is nil). A literal with escapes is decoded as encoding/json decodes
// it: invalid UTF-8 and lone surrogates become U+FFFD, raw control
// characters are refused. A literal without escapes is returned as it is,
// unchecked: callers check UTF-8 where the field's kind needs it
// (FuzzUnquote holds it to both).
func unquote(raw []byte, a *arena) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner, true
	}
	// The decoded text is never longer than the escaped one, except that a
	// byte of invalid UTF-8 becomes the 3 bytes of U+FFFD.
	out := a.alloc(len(inner) + 8)
	for i := 0; i < len(inner); {
		// Copy a run of plain ASCII at once.
		j := i + plainRun(inner[i:])
		out = append(out, inner[i:j]...)
		if i = j; i == len(inner) {
			break
		}
		c := inner[i]
		switch {
		case c == '\\':
			if i+1 >= len(inner) {
				return nil, false
			}
			var n int
			var ok bool
			if out, n, ok = appendEscape(out, inner[i:]); !ok {
				return nil, false
			}
			i += n
		case c < 0x20 || c == '"':
			return nil, false
		default:
			r, size := utf8.DecodeRune(inner[i:])
			if r == utf8.RuneError && size == 1 {
				out = append(out, "\uFFFD"...)
			} else {
				out = append(out, inner[i:i+size]...)
			}
			i += size
		}
	}
	return out, true
}

// plainRun returns the length of the run of plain ASCII at the start of
// b: characters a JSON string may hold unescaped, other than a quote or a
// backslash (no control character, nothing of 0x80 or above). It tests
// eight bytes at a time (notPlain), and the last few bytes one by one.
func plainRun(b []byte) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if m := notPlain(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' {
			return i
		}
	}
	return i
}

// notPlain flags the bytes of the little-endian word w that are not plain
// ASCII in plainRun's sense: the high bit of such a byte is set in the
// result. The lowest flagged byte is the first such byte (a flag's borrow
// only runs upwards); bytes above it may be flagged wrongly.
func notPlain(w uint64) uint64 {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	quote, slash := w^(ones*'"'), w^(ones*'\\')
	// A byte with its high bit set, below 0x20, or equal to a quote or a
	// backslash (a zero byte after the XOR).
	return w&highs | (w-ones*0x20)&^w&highs | (quote-ones)&^quote&highs | (slash-ones)&^slash&highs
}

// unescaped maps the byte after a backslash to what the two-byte escape
// stands for; 0 for \u (longer) and for bytes JSON does not escape.
var unescaped = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

// appendEscape decodes the JSON escape sequence at the start of esc (its
// backslash and at least one byte after it) onto out and returns the bytes
// it took: 2, 6 for \uXXXX, 12 for a surrogate pair. A high surrogate takes
// the low one written after it; an unpaired one becomes U+FFFD, as in
// encoding/json. ok is false for an escape JSON does not have. One decoder
// for the ingest's one-pass scan and for unquote, so the two cannot differ.
func appendEscape(out, esc []byte) (_ []byte, n int, ok bool) {
	switch c := esc[1]; c {
	case '"', '\\', '/':
		return append(out, c), 2, true
	case 'b':
		return append(out, '\b'), 2, true
	case 'f':
		return append(out, '\f'), 2, true
	case 'n':
		return append(out, '\n'), 2, true
	case 'r':
		return append(out, '\r'), 2, true
	case 't':
		return append(out, '\t'), 2, true
	case 'u':
		r, ok := hex4(esc[2:])
		if !ok {
			return out, 0, false
		}
		n = 6
		if utf16.IsSurrogate(r) {
			r2, ok2 := rune(-1), false
			if len(esc) > 11 && esc[6] == '\\' && esc[7] == 'u' {
				r2, ok2 = hex4(esc[8:])
			}
			if d := utf16.DecodeRune(r, r2); ok2 && d != utf8.RuneError {
				r, n = d, 12
			} else {
				r = utf8.RuneError
			}
		}
		return utf8.AppendRune(out, r), n, true
	}
	return out, 0, false
}

// hex4 decodes the 4 hex digits at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// arena hands out byte slices from large shared blocks: the decoded values
// of a batch cost a few allocations instead of one each. A slice stays
// valid after the arena moves on to a new block. The nil arena allocates
// each slice on its own.
type arena struct {
	block []byte
	lists [][]byte
	// used are the byte blocks handed out so far, for release.
	used []*[]byte
}

// arenaPool recycles the byte blocks of released arenas.
var arenaPool sync.Pool

// newBlock starts a new byte block.
func (a *arena) newBlock() {
	b, ok := arenaPool.Get().(*[]byte)
	if !ok {
		nb := make([]byte, 0, arenaBlock)
		b = &nb
	}
	a.used = append(a.used, b)
	a.block = (*b)[:0]
}

// release hands a's byte blocks back for reuse and empties a. Nothing may
// refer to what a handed out any more.
func (a *arena) release() {
	for _, b := range a.used {
		arenaPool.Put(b)
	}
	*a = arena{used: a.used[:0]}
}

// items returns an empty list with room for n items.
func (a *arena) items(n int) [][]byte {
	if a == nil || n > arenaBlock/64 {
		return make([][]byte, 0, n)
	}
	if len(a.lists)+n > cap(a.lists) {
		a.lists = make([][]byte, 0, arenaBlock/16)
	}
	start := len(a.lists)
	a.lists = a.lists[:start+n]
	return a.lists[start : start : start+n]
}

// arenaBlock is the allocation unit of an arena.
const arenaBlock = 64 << 10

// alloc returns an empty slice with room for n bytes.
func (a *arena) alloc(n int) []byte {
	if a == nil || n > arenaBlock/4 {
		return make([]byte, 0, n)
	}
	if len(a.block)+n > cap(a.block) {
		a.newBlock()
	}
	start := len(a.block)
	a.block = a.block[:start+n]
	return a.block[start : start : start+n]
}

// open returns an empty slice with room for at least n bytes, for text of
// unknown length: its capacity is all that remains of the current block.
// close takes from the block what was appended; a slice dropped without
// close leaves the block as it was.
func (a *arena) open(n int) []byte {
	if a == nil || n > arenaBlock/4 {
		return make([]byte, 0, n)
	}
	if len(a.block)+n > cap(a.block) {
		a.newBlock()
	}
	return a.block[len(a.block):len(a.block):cap(a.block)]
}

// close ends the use of out, a slice open returned, appended to: the bytes
// it holds in the block are the block's now (unless out outgrew the block
// and moved). It returns out with no room to append over later text.
func (a *arena) close(out []byte) []byte {
	out = out[:len(out):len(out)]
	if a == nil || len(out) == 0 || len(a.block) == cap(a.block) {
		return out
	}
	if rest := a.block[len(a.block):cap(a.block)]; &rest[0] == &out[0] {
		a.block = a.block[:len(a.block)+len(out)]
	}
	return out
}

// parseTime parses a date-time (data.ParseDateTime: the forms of SPEC §4,
// RFC 3339 with an offset converted to UTC wall time) into microseconds
// since the Unix epoch of its naive wall time.
func parseTime(s string) (int64, bool) {
	t, ok := data.ParseDateTime(s)
	if !ok {
		return 0, false
	}
	return t.UnixMicro(), true
}

// monthOf is the partition of a timestamp value.
func monthOf(micros int64) string {
	return time.UnixMicro(micros).UTC().Format("2006-01")
}

// monthCache gives monthOf's answer, worked out once for a run of dates
// in the same month (dumps come mostly in date order): formatting a time
// for every record cost a tenth of a second per million.
type monthCache struct {
	from, to int64 // the month's first microsecond, and the next month's
	month    string
}

// of returns monthOf(micros).
func (m *monthCache) of(micros int64) string {
	if m.month != "" && m.from <= micros && micros < m.to {
		return m.month
	}
	t := time.UnixMicro(micros).UTC()
	start := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	m.from, m.to, m.month = start.UnixMicro(), start.AddDate(0, 1, 0).UnixMicro(), monthOf(micros)
	return m.month
}
