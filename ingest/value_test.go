package ingest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"worklog/data"
)

// FuzzUnquote checks the hand-written string decoder against encoding/json,
// escapes, surrogates and invalid UTF-8 included. Its input is a string
// literal as the object scanner delivers it (quotes at both ends). One that
// holds an escape is decoded, and must decode as encoding/json decodes it
// (or fail where it fails); one without is returned as it is, without a
// check (the fast path: the caller checks UTF-8 where the field's kind
// needs it). The seeds run with every go test.
func FuzzUnquote(f *testing.F) {
	for _, raw := range []string{
		`""`, `"plain"`, `"a\"b\\c\/d"`, `"line\nbreak\ttab\r\b\f"`, `"caf\u00e9 \u20ac"`,
		`"\ud83d\ude00 smile"`, `"lone \ud83d high"`, `"lone \ude00 low"`, `"\ud83d\u0041"`,
		"\"bad \xff byte\\n\"", `"Chloé Keßler\n"`, `"{\"k\":[1,2],\"s\":\"x\\ny\"}"`,
		`"bad \x escape"`, `"short \u12"`, `"ends in \"`, "\"ctl \x01\\n\"",
	} {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
			return // not a literal the scanner delivers
		}
		var a arena
		got, ok := unquote([]byte(raw), &a)
		if inner := raw[1 : len(raw)-1]; !strings.Contains(inner, `\`) {
			if !ok || string(got) != inner {
				t.Errorf("unquote(%q) = %q, %v; want the text between the quotes", raw, got, ok)
			}
			return
		}
		var want string
		werr := json.Unmarshal([]byte(raw), &want)
		if ok != (werr == nil) || ok && string(got) != want {
			t.Errorf("unquote(%q) = %q, %v; encoding/json %q, %v", raw, got, ok, want, werr)
		}
	})
}

// FuzzListFastPath checks that the fast path of list validation returns
// what the general path (decode, then json.Marshal) returns, and declines
// what it cannot copy as is; and that listFromJSON accepts exactly the
// arrays of strings. The seeds run with every go test.
func FuzzListFastPath(f *testing.F) {
	for _, text := range []string{
		`[]`, `["a"]`, `["Data protection","Marketing opt-out"]`, `["Chloé","Keßler"]`,
		`["a", "b"]`, `[ "a"]`, `["a<b"]`, `["x&y"]`, `["tab\tx"]`, "[\"\u2028\"]", "[\"\xff\"]",
		`["a",]`, `[,"a"]`, `["a""b"]`, `["a",1]`, `[null]`, `["a"`, `"a"`,
	} {
		f.Add(text)
	}
	field := data.Fields()[data.Index("tags")]
	f.Fuzz(func(t *testing.T, text string) {
		fast, ok := plainList([]byte(text), &arena{})
		var items []*string
		general := json.Unmarshal([]byte(text), &items) == nil
		if ok {
			// The text is kept as it is: it must be what the general path
			// writes, and the items found must be its decoded strings.
			canon, err := json.Marshal(deref(items))
			if !general || err != nil || string(canon) != text || len(fast) != len(items) {
				t.Errorf("plainList(%q) = %q; general path %q, %v", text, fast, canon, err)
			}
			for i, it := range fast {
				if i < len(items) && string(it) != *items[i] {
					t.Errorf("plainList(%q) item %d = %q, want %q", text, i, it, *items[i])
				}
			}
		}
		v, err := listFromJSON(&field, []byte(text), []byte(text), &arena{})
		if (err == nil) != (general && !hasNil(items)) {
			t.Errorf("listFromJSON(%q) = %q, %v", text, v.s, err)
		}
		if err == nil {
			// The items written to the store are the decoded strings.
			want := deref(items)
			got := make([]string, len(v.list))
			for i, it := range v.list {
				got[i] = string(it)
			}
			if strings.Join(got, "\x00") != strings.Join(want, "\x00") || len(got) != len(want) {
				t.Errorf("listFromJSON(%q) items = %q, want %q", text, got, want)
			}
		}
	})
}

func deref(items []*string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = *it
	}
	return out
}

func hasNil(items []*string) bool {
	for _, it := range items {
		if it == nil {
			return true
		}
	}
	return false
}

// FuzzPlainRun checks the eight-bytes-at-a-time scans (plainRun, itemRun)
// against the plain loops they stand for.
func FuzzPlainRun(f *testing.F) {
	for _, s := range []string{"", "abc", "abcdefgh", "abcdefg\"", "abcdefgh\\", "abc\x1fdefghij", "abcdefghé", "abcdefg<", "a&b>cdefghij", "\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f", " !#$%&'()*+,-./0123456789"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := len(s)
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
				want = i
				break
			}
		}
		if got := plainRun([]byte(s)); got != want {
			t.Errorf("plainRun(%q) = %d, want %d", s, got, want)
		}
		// itemRun also stops at what json.Marshal escapes in a list item.
		want = len(s)
		for i := 0; i < len(s); i++ {
			if listByte[s[i]] != 0 {
				want = i
				break
			}
		}
		if got := itemRun([]byte(s)); got != want {
			t.Errorf("itemRun(%q) = %d, want %d", s, got, want)
		}
	})
}

// FuzzScanString checks where scanJSON ends a string against a byte-by-byte
// scan: at the first quote not escaped by a backslash.
func FuzzScanString(f *testing.F) {
	for _, s := range []string{`"a"`, `"a\"b"`, `"a\\"b`, `"\\\"x"`, `"unterminated`, `"x\\\\\"y"z`, `""`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) == 0 || s[0] != '"' {
			return
		}
		want := -1
		for j := 1; j < len(s); j++ {
			if s[j] == '\\' {
				j++
			} else if s[j] == '"' {
				want = j + 1
				break
			}
		}
		got, err := scanJSON([]byte(s), 0)
		if err != nil {
			got = -1
		}
		if got != want {
			t.Errorf("scanJSON(%q) = %d, want %d", s, got, want)
		}
	})
}

// FuzzScanDecode checks the one-pass string scan against the two passes it
// replaced: it ends the literal where scanJSON ends it (or fails where it
// fails) and returns what unquote returns for the literal, with the same
// verdict; text it calls valid is valid UTF-8; and what it decodes into a
// shared arena stays as it was while later strings are decoded. The input
// is a literal followed by anything.
func FuzzScanDecode(f *testing.F) {
	for _, s := range []string{
		`""`, `"plain"`, `"a\"b\\c\/d",1`, `"line\nbreak\ttab\r\b\f"}`, `"caf\u00e9 \u20ac"`,
		`"\ud83d\ude00 smile"`, `"lone \ud83d high"`, `"lone \ude00 low"`, `"\ud83d\u0041"`, `"\ud83d\ude0"`,
		"\"bad \xff byte\\n\"", `"Chloé Keßler\n"`, `"{\"k\":[1,2],\"s\":\"x\\ny\"}"`, `"x\u"`, `"\u12"`, `"\u12`,
		`"bad \x escape"`, `"short \u12"`, `"ends in \"`, "\"ctl \x01\\n\"", "\"\\nctl \x01\"", "\"é\\n\"",
		`"unterminated`, `"x\\\\\"y"z`, `"a\`, "\"\\n\xc3\"", `"\ud83d\`, `"\ud83d\u`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) == 0 || s[0] != '"' {
			return
		}
		b := []byte(s)
		wantEnd, wantErr := scanJSON(b, 0)
		var a arena
		a.alloc(len(s) % 97) // start the strings at varying places in a block
		end, got, err := scanString(b, 0, &a)
		if (err != nil) != (wantErr != nil) || err == nil && end != wantEnd {
			t.Fatalf("scanString(%q) ends at %d, %v; scanJSON %d, %v", s, end, err, wantEnd, wantErr)
		}
		if err != nil {
			if err.Error() != wantErr.Error() {
				t.Errorf("scanString(%q): %v, scanJSON: %v", s, err, wantErr)
			}
			return
		}
		want, ok := unquote(b[:end], nil)
		if got.ok != ok || string(got.s) != string(want) {
			t.Errorf("scanString(%q) = %q, %v; unquote %q, %v", s, got.s, got.ok, want, ok)
		}
		if got.valid && !utf8.Valid(got.s) {
			t.Errorf("scanString(%q) = %q called valid UTF-8", s, got.s)
		}
		keep := string(got.s)
		_, again, _ := scanString(b, 0, &a)
		if string(got.s) != keep || string(again.s) != keep {
			t.Errorf("scanString(%q): a later string overwrote %q", s, keep)
		}
		if cap(got.s) != len(got.s) && got.ok {
			t.Errorf("scanString(%q) leaves room to append over later text", s)
		}
	})
}

// FuzzFromJSONTo checks that the shortcuts of fromJSONTo give, for every
// catalogue field, the value and the error fromJSON gives. The input is a
// field's raw JSON text as objectFields delivers it.
func FuzzFromJSONTo(f *testing.F) {
	for _, raw := range []string{
		`null`, `""`, `"2024-01-02 03:04:05"`, `"2024-13-02 00:00:00"`, `"2024-01-02T03:04:05+02:00"`, `12`, `-3`,
		`+4`, `3.0`, `3.5`, `9007199254740993`, `true`, `false`, `1e3`, `7`, `"x"`, `"caf\u00e9"`, "\"\xff\"",
		`["a"]`, `"[\"a\"]"`, `"readAction"`, `"12"`, `{}`, `[]`,
	} {
		f.Add(raw)
	}
	fields := data.Fields()
	f.Fuzz(func(t *testing.T, raw string) {
		b := []byte(raw)
		var str jsonString
		if len(b) > 0 && b[0] == '"' {
			end, s, err := scanString(b, 0, nil)
			if err != nil || end != len(b) {
				return // not a value objectFields delivers
			}
			str = s
		}
		for i := range fields {
			fl := &fields[i]
			want, werr := fromJSON(fl, b, str, nil)
			var got value
			gerr := fromJSONTo(&got, fl, b, str, nil)
			if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
				t.Fatalf("%s %q: fromJSONTo error %v, fromJSON %v", fl.Name, raw, gerr, werr)
			}
			if werr == nil && !reflect.DeepEqual(got, want) {
				t.Fatalf("%s %q: fromJSONTo %+v, fromJSON %+v", fl.Name, raw, got, want)
			}
		}
	})
}

// TestMonthCache holds the cached month to monthOf around month and year
// ends, in and out of order.
func TestMonthCache(t *testing.T) {
	at := func(s string) int64 {
		v, ok := parseTime(s)
		if !ok {
			t.Fatalf("parseTime(%q)", s)
		}
		return v
	}
	var m monthCache
	for _, s := range []string{
		"2025-01-31 23:59:59", "2025-01-01 00:00:00", "2025-02-01 00:00:00", "2025-01-31 23:59:59",
		"2024-12-31 23:59:59", "2024-02-29 12:00:00", "2024-03-01 00:00:00", "1969-12-31 23:59:59",
		"1970-01-01 00:00:00", "0001-01-01 00:00:00", "9999-12-31 23:59:59", "2025-12-01 00:00:00",
	} {
		for _, d := range []int64{at(s) - 1, at(s), at(s) + 1} {
			if got, want := m.of(d), monthOf(d); got != want {
				t.Errorf("month of %s %+d µs = %s, want %s", s, d-at(s), got, want)
			}
		}
	}
}

// FuzzObjectFields holds objectFields' shortcut for keys in catalogue
// order (the key's text compared with the next field's quoted name) to
// the general path (every key scanned, decoded and looked up), which it
// takes when given no names: the same error, the same raw text and decoded
// strings for each field, the same unknown keys.
func FuzzObjectFields(f *testing.F) {
	for _, s := range []string{
		`{"date":"2025-10-01 00:00:26","name":null,"ticketId":10003,"action":"autoProcessAction","tags":["a","b"]}`,
		`{"date":"x","date":"y"}`, `{"d\u0061te":"x","name":"n"}`, `{ "date" : "x" , "nam" : 1, "name":"y"}`,
		`{"date":"x","name"}`, `{"date":"x","name":`, `{"date`, `{"date":"x"} x`, `{}`, `{"rawData":"{\"a\":\"b\\n\"}"}`,
		`{"name":"a","date":"b"}`, `{"date":"a\"b","name\"":1}`, `{"datex":1,"date":2}`,
	} {
		f.Add(s)
	}
	fields := data.Fields()
	keys := make([]string, len(fields))
	for i, fl := range fields {
		keys[i] = `"` + fl.Name + `"`
	}
	type got struct {
		err     string
		raws    [][]byte
		strs    []jsonString
		unknown []string
	}
	run := func(obj []byte, keys []string) got {
		g := got{raws: make([][]byte, len(fields)), strs: make([]jsonString, len(fields))}
		var a arena
		err := objectFields(obj, g.raws, g.strs, keys, &a, func(key []byte) { g.unknown = append(g.unknown, string(key)) })
		if err != nil {
			g.err = err.Error()
			// What was split before the error is not used.
			g.raws, g.strs, g.unknown = nil, nil, nil
		}
		for i := range g.strs {
			if g.raws[i] == nil || g.raws[i][0] != '"' {
				g.strs[i] = jsonString{} // left from an earlier value of a repeated key
			}
		}
		return g
	}
	f.Fuzz(func(t *testing.T, obj string) {
		fast, general := run([]byte(obj), keys), run([]byte(obj), nil)
		if !reflect.DeepEqual(fast, general) {
			t.Errorf("objectFields(%q):\nshortcut %+v\ngeneral  %+v", obj, fast, general)
		}
	})
}

// TestScalarEnd holds scanJSON's table of the bytes that end a scalar to
// the rule: JSON whitespace, a comma, a closing brace or bracket.
func TestScalarEnd(t *testing.T) {
	for c := range 256 {
		want := c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == '}' || c == ']'
		if scalarEnd[c] != want || isSpace(byte(c)) != (want && c != ',' && c != '}' && c != ']') {
			t.Errorf("byte %#x: scalarEnd %v, isSpace %v", c, scalarEnd[c], isSpace(byte(c)))
		}
	}
}
