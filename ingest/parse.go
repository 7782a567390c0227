package ingest

import (
	"errors"
	"fmt"

	"worklog/data"
)

// errSyntax is the cause of records that are not valid JSON objects.
var errSyntax = errors.New("invalid JSON object")

// objectFields splits a JSON object's text into the raw text of each
// catalogue field (indexed by catalogue position; nil when absent) and
// calls unknown for every key the catalogue does not hold. A repeated key
// keeps its last value, as JSON decoders do. Values are not decoded here.
// names are the catalogue's field names.
func objectFields(obj []byte, raws [][]byte, names []string, unknown func(key []byte)) error {
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
		end, err := scanJSON(obj, i)
		if err != nil {
			return err
		}
		key, ok := unquote(obj[i:end], nil)
		if !ok {
			return errSyntax
		}
		i = skipWS(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return errSyntax
		}
		i = skipWS(obj, i+1)
		vend, err := scanJSON(obj, i)
		if err != nil {
			return err
		}
		// Dumps usually list the fields in catalogue order (exports and
		// the demo generator do): try the field after the previous key
		// before the map.
		idx := next
		if idx >= len(names) || names[idx] != string(key) {
			idx = data.Index(string(key))
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
				return 0, fmt.Errorf("%w: unterminated string", errSyntax)
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
	for j < len(b) && !isSpace(b[j]) && b[j] != ',' && b[j] != '}' && b[j] != ']' {
		j++
	}
	return j, nil
}
