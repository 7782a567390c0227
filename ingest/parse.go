package ingest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"unicode/utf8"

	"worklog/data"
)

// errSyntax is the cause of records that are not valid JSON objects.
var errSyntax = errors.New("invalid JSON object")

// objectFields splits a JSON object's text into the raw text of each
// catalogue field (indexed by catalogue position; nil when absent) and
// calls unknown for every key the catalogue does not hold. A repeated key
// keeps its last value, as JSON decoders do. A field's string value is
// decoded as it is scanned, into strs (at the field's position; a's memory
// holds decoded text that differs from the raw); other values are not
// decoded here. keys are the catalogue's field names as JSON string
// literals ("date", with the quotes).
func objectFields(obj []byte, raws [][]byte, strs []jsonString, keys []string, a *arena, unknown func(key []byte)) error {
	next := 0
	for i := range raws {
		raws[i] = nil
	}
	i := skipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return errSyntax
	}
	i = skipWS(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return trailing(obj, i+1)
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return errSyntax
		}
		// Dumps usually list the fields in catalogue order (exports and
		// the demo generator do): the field after the previous key, when
		// the key is its name as it is (a name holds no quote and no
		// backslash, so the literal ends where the name does), needs no
		// scan and no look-up.
		var key []byte
		var end int
		idx := -1
		if k := next; k < len(keys) && len(obj)-i >= len(keys[k]) && string(obj[i:i+len(keys[k])]) == keys[k] {
			idx, end = k, i+len(keys[k])
		} else {
			var lit jsonString
			var err error
			if end, lit, err = scanString(obj, i, nil); err != nil {
				return err
			}
			if !lit.ok {
				return errSyntax
			}
			key = lit.s
			idx = data.Index(string(key))
		}
		i = skipWS(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return errSyntax
		}
		i = skipWS(obj, i+1)
		var err error
		var vend int
		if idx >= 0 && i < len(obj) && obj[i] == '"' {
			vend, strs[idx], err = scanString(obj, i, a)
		} else {
			vend, err = scanJSON(obj, i)
		}
		if err != nil {
			return err
		}
		if idx >= 0 {
			raws[idx] = obj[i:vend]
			next = idx + 1
		} else {
			unknown(key)
		}
		i = skipWS(obj, vend)
		if i >= len(obj) {
			return errSyntax
		}
		switch obj[i] {
		case ',':
			i = skipWS(obj, i+1)
		case '}':
			return trailing(obj, i+1)
		default:
			return errSyntax
		}
	}
}

func trailing(b []byte, i int) error {
	if skipWS(b, i) != len(b) {
		return fmt.Errorf("%w: text after the closing brace", errSyntax)
	}
	return nil
}

func skipWS(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// scanJSON returns the end of the JSON value starting at b[i]. Strings and
// nesting are followed exactly; scalars run to the next delimiter and are
// checked when decoded.
func scanJSON(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax
	}
	switch b[i] {
	case '"':
		// Runs of plain ASCII are skipped eight bytes at a time; a
		// backslash skips the byte it escapes.
		for j := i + 1; ; {
			if j < len(b) {
				j += plainRun(b[j:])
			}
			switch {
			case j >= len(b):
				return 0, errUnterminated
			case b[j] == '"':
				return j + 1, nil
			case b[j] == '\\':
				j += 2
			default:
				j++
			}
		}
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := scanJSON(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, fmt.Errorf("%w: unbalanced brackets", errSyntax)
	case ',', '}', ']', ':':
		return 0, errSyntax
	}
	j := i
	for j < len(b) && !scalarEnd[b[j]] {
		j++
	}
	return j, nil
}

// scalarEnd marks the bytes that end a JSON scalar as scanJSON scans it:
// whitespace, a comma, a closing brace or bracket.
var scalarEnd = func() (t [256]bool) {
	for c := range 256 {
		t[c] = isSpace(byte(c)) || c == ',' || c == '}' || c == ']'
	}
	return t
}()

// jsonString is a JSON string literal as objectFields found it: decoded
// in the same pass that found its end.
type jsonString struct {
	// s is what unquote returns for the literal, ok its verdict.
	s  []byte
	ok bool
	// valid says s is known to be valid UTF-8 (it holds no byte of 0x80
	// or above, or it was decoded, which replaces invalid UTF-8).
	valid bool
}

// errUnterminated is scanJSON's error for a string without its closing
// quote.
var errUnterminated = fmt.Errorf("%w: unterminated string", errSyntax)

// scanString returns the end of the JSON string literal starting at b[i]
// (a quote), as scanJSON does, and the literal decoded as unquote decodes
// it, in one pass over the text: a literal without escapes is its own
// text; the first escape starts copying into a's memory (a fresh slice
// when a is nil). FuzzScanDecode holds it to scanJSON and unquote.
func scanString(b []byte, i int, a *arena) (int, jsonString, error) {
	start := i + 1
	j := start
	plain := true // b[start:j] holds only plain ASCII
	for {
		if j < len(b) {
			j += plainRun(b[j:])
		}
		if j >= len(b) {
			return 0, jsonString{}, errUnterminated
		}
		switch c := b[j]; {
		case c == '"':
			return j + 1, jsonString{s: b[start:j:j], ok: true, valid: plain}, nil
		case c == '\\':
			if !plain {
				// Bytes before the first escape that unquote would check
				// or replace: decode the literal the long way.
				return scanStringTwice(b, i, j, a)
			}
			return scanEscaped(b, i, j, a)
		default:
			plain = false
			j++
		}
	}
}

// scanEscaped continues scanString at the first escape b[j] of a literal
// whose text before it is plain ASCII: it decodes as it scans. Text that
// is JSON in a JSON string (rawData) has an escaped quote every few
// bytes, so the runs between escapes are short: each is copied eight
// bytes at a time, a whole word stored even past the run's end while out
// has room for it (the bytes after the run are overwritten by what
// follows, or lie beyond out's length), and the two-byte escapes are
// decoded in place (unescaped).
func scanEscaped(b []byte, i, j int, a *arena) (int, jsonString, error) {
	start := i + 1
	out := a.open(j - start + 4096)
	out = append(out, b[start:j]...)
	for {
		for j+8 <= len(b) && cap(out)-len(out) >= 8 {
			w := binary.LittleEndian.Uint64(b[j:])
			n := len(out)
			binary.LittleEndian.PutUint64(out[n:n+8], w)
			m := notPlain(w)
			if m == 0 {
				out = out[:n+8]
				j += 8
				continue
			}
			k := bits.TrailingZeros64(m) / 8
			out = out[:n+k]
			j += k
			break
		}
		if j >= len(b) {
			return 0, jsonString{}, errUnterminated
		}
		c := b[j]
		switch {
		case c == '"':
			return j + 1, jsonString{s: a.close(out), ok: true, valid: true}, nil
		case c == '\\':
			if j+1 >= len(b) {
				return 0, jsonString{}, errUnterminated
			}
			if d := unescaped[b[j+1]]; d != 0 {
				out = append(out, d)
				j += 2
				continue
			}
			var n int
			var ok bool
			if out, n, ok = appendEscape(out, b[j:]); !ok {
				return scanRest(b, j)
			}
			j += n
		case c < 0x20:
			return scanRest(b, j)
		case c < utf8.RuneSelf:
			// Plain, in the last bytes or where out is short of room.
			out = append(out, c)
			j++
		default:
			r, size := utf8.DecodeRune(b[j:])
			if r == utf8.RuneError && size == 1 {
				out = append(out, "\uFFFD"...)
			} else {
				out = append(out, b[j:j+size]...)
			}
			j += size
		}
	}
}

// scanRest finds the end of a literal that does not decode, from b[j] on:
// the literal is refused (ok false) unless it is also unterminated.
func scanRest(b []byte, j int) (int, jsonString, error) {
	for {
		if j < len(b) {
			j += plainRun(b[j:])
		}
		switch {
		case j >= len(b):
			return 0, jsonString{}, errUnterminated
		case b[j] == '"':
			return j + 1, jsonString{}, nil
		case b[j] == '\\':
			j += 2
		default:
			j++
		}
	}
}

// scanStringTwice is scanString for a literal with other bytes than plain
// ASCII before its first escape b[j]: find the end, then unquote.
func scanStringTwice(b []byte, i, j int, a *arena) (int, jsonString, error) {
	end, _, err := scanRest(b, j)
	if err != nil {
		return 0, jsonString{}, err
	}
	s, ok := unquote(b[i:end], a)
	return end, jsonString{s: s[:len(s):len(s)], ok: ok, valid: ok}, nil
}
