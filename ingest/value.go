package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/goccy/go-json"

	"worklog/data"
)

// value is one validated field value. Which member is meaningful depends on
// the field's kind: i for timestamps (microseconds since the Unix epoch of
// the naive wall time), integers and flags; f for floats; s for strings,
// enums and lists (a list is held as its canonical JSON-array text).
type value struct {
	null bool
	i    int64
	f    float64
	s    []byte
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

func expectedOf(f data.Field) string {
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

// fromJSON converts the JSON text of one field's value. raw is nil when the
// key is absent.
func fromJSON(f data.Field, raw []byte) (value, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nullOf(f)
	}
	if raw[0] == '"' {
		s, ok := unquote(raw)
		if !ok {
			return value{}, fmt.Errorf("invalid JSON string %s", shown(raw))
		}
		if f.Kind == data.KindList {
			return listFromJSON(f, s, raw)
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
		return listFromJSON(f, raw, raw)
	}
	return bad()
}

// fromText converts a CSV cell; the empty cell is null.
func fromText(f data.Field, cell string) (value, error) {
	if cell == "" {
		return nullOf(f)
	}
	b := []byte(cell)
	if f.Kind == data.KindList {
		return listFromJSON(f, b, b)
	}
	return fromString(f, b, func() string { return shownText(cell) })
}

func nullOf(f data.Field) (value, error) {
	if f.Required {
		return value{}, errRequired
	}
	if f.Kind == data.KindList {
		// Missing and null lists are stored as [] (SPEC §8).
		return value{s: []byte("[]")}, nil
	}
	return value{null: true}, nil
}

// fromString converts a value given as text: a JSON string's content, a
// JSON number's digits, or a CSV cell. got renders the original for errors.
func fromString(f data.Field, s []byte, got func() string) (value, error) {
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
			if ferr != nil || fl != math.Trunc(fl) || math.Abs(fl) > 1<<53 {
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

// listFromJSON validates a JSON array of strings (text) and returns it in
// canonical form. raw is what the input held, for errors.
func listFromJSON(f data.Field, text, raw []byte) (value, error) {
	var items []*string
	if err := json.Unmarshal(text, &items); err != nil {
		return value{}, &gotError{want: expectedOf(f), got: shown(raw)}
	}
	if len(items) == 0 {
		return value{s: []byte("[]")}, nil
	}
	out := make([]string, len(items))
	for i, it := range items {
		if it == nil {
			return value{}, &gotError{want: "JSON array of strings (no nulls)", got: shown(raw)}
		}
		out[i] = *it
	}
	b, err := json.Marshal(out)
	if err != nil {
		return value{}, fmt.Errorf("encode list: %w", err)
	}
	return value{s: b}, nil
}

// unquote decodes a JSON string literal, without allocating when it holds
// no escapes.
func unquote(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner, true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, false
	}
	return []byte(s), true
}

// timeLayouts are the accepted date-time forms, tried in order.
var timeLayouts = []string{data.TimestampLayout, time.RFC3339Nano, "2006-01-02T15:04:05", data.DateLayout}

// parseTime parses a date-time into microseconds since the Unix epoch of its
// naive wall time. RFC 3339 values with an offset are converted to UTC wall
// time (SPEC §4).
func parseTime(s string) (int64, bool) {
	for _, l := range timeLayouts {
		t, err := time.Parse(l, s)
		if err == nil {
			return t.UTC().UnixMicro(), true
		}
	}
	return 0, false
}

// monthOf is the partition of a timestamp value.
func monthOf(micros int64) string {
	return time.UnixMicro(micros).UTC().Format("2006-01")
}
