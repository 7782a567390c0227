package query

import (
	"encoding/base64"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

var testCursorKey = []byte("cursor-key-0123456789abcdef")

// parseWithCursor parses q plus cursor=c under the test cursor key.
func parseWithCursor(q, c string, opts Options) (*Plan, error) {
	v, err := url.ParseQuery(q)
	if err != nil {
		return nil, err
	}
	v.Set("cursor", c)
	opts.CursorKey = testCursorKey
	return Parse(v, withFormats(opts))
}

func TestCursorRoundTrip(t *testing.T) {
	ts := time.Date(2024, 5, 10, 14, 52, 37, 123456000, time.UTC)
	tests := []struct {
		name  string
		query string
		opts  Options
		pos   Position
	}{
		{"date desc", "limit=10", Options{}, Position{Key: ts, ID: 7}},
		{"date by day", "limit=10&orderByDirection=asc", Options{DayPrecisionDate: true}, Position{Key: time.Date(2024, 5, 10, 0, 0, 0, 0, time.UTC), ID: 7}},
		{"integer", "limit=10&orderByField=duration", Options{}, Position{Key: int64(-42), ID: 1}},
		{"float", "limit=10&orderByField=textAssistanceAccuracy", Options{}, Position{Key: 0.1 + 0.2, ID: 2}},
		{"string", "limit=10&orderByField=name", Options{}, Position{Key: "O'Brien \"x\" ü", ID: 3}},
		{"list", "limit=10&orderByField=tags", Options{}, Position{Key: []string{"Billing", "a, b"}, ID: 4}},
		{"empty list", "limit=10&orderByField=tags", Options{}, Position{Key: []string{}, ID: 4}},
		{"null key", "limit=10&orderByField=textAssistanceAccuracy", Options{}, Position{Null: true, ID: 5}},
		{"the key field", "limit=10&orderByField=userWorklogId&orderByDirection=asc", Options{}, Position{Key: int64(9), ID: 9}},
		{"with filters", "limit=10&filters[3][key]=action&filters[3][comparator]=in&filters[3][values][]=readAction", Options{}, Position{Key: ts, ID: 8}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			first := mustParse(t, tc.query, tc.opts)
			c, err := EncodeCursor(testCursorKey, first, tc.pos)
			if err != nil {
				t.Fatal(err)
			}
			if url.QueryEscape(c) != c {
				t.Errorf("cursor %q needs escaping in a URL", c)
			}
			if s, ok := tc.pos.Key.(string); ok && strings.Contains(c, base64.RawURLEncoding.EncodeToString([]byte(s))[:8]) {
				t.Errorf("cursor %q shows the key %q", c, s)
			}
			next, err := parseWithCursor(tc.query, c, tc.opts)
			if err != nil {
				t.Fatalf("parse with cursor: %v", err)
			}
			if !reflect.DeepEqual(*next.After, tc.pos) {
				t.Errorf("After = %#v, want %#v", *next.After, tc.pos)
			}
			// The page size may change between pages; the format too.
			if _, err := parseWithCursor(strings.Replace(tc.query, "limit=10", "limit=3&format=csv", 1), c, tc.opts); err != nil {
				t.Errorf("other limit and format: %v", err)
			}
		})
	}
}

func TestCursorRefused(t *testing.T) {
	const q = "limit=10&orderByField=duration&filters[0][key]=action&filters[0][comparator]=equals&filters[0][value]=readAction"
	p := mustParse(t, q, Options{})
	c, err := EncodeCursor(testCursorKey, p, Position{Key: int64(5), ID: 1})
	if err != nil {
		t.Fatal(err)
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	tests := []struct {
		name, query, cursor string
		opts                Options
	}{
		{"nonce altered", q, flip(c, 3), Options{}},
		{"sealed payload altered", q, flip(c, 30), Options{}},
		{"tag altered", q, flip(c, len(c)-2), Options{}},
		{"cut short", q, c[:len(c)-4], Options{}},
		{"not base64", q, c + "!", Options{}},
		{"empty", q, "", Options{}},
		{"another filter value", strings.Replace(q, "readAction", "writeAction", 1), c, Options{}},
		{"a filter more", q + "&filters[1][key]=duration&filters[1][comparator]=isNull", c, Options{}},
		{"no filter", "limit=10&orderByField=duration", c, Options{}},
		{"another direction", q + "&orderByDirection=asc", c, Options{}},
		{"another field", strings.Replace(q, "duration", "pendingSeconds", 1), c, Options{}},
		{"day precision", q, c, Options{DayPrecisionDate: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseWithCursor(tc.query, tc.cursor, tc.opts)
			var pe *ParamError
			if !errors.As(err, &pe) || pe.Param != "cursor" || pe.Code != CodeInvalidParameter {
				t.Fatalf("err = %v, want a ParamError for cursor", err)
			}
		})
	}
	t.Run("another key", func(t *testing.T) {
		v, _ := url.ParseQuery(q)
		v.Set("cursor", c)
		_, err := Parse(v, withFormats(Options{CursorKey: []byte("another-key-0123456789")}))
		var pe *ParamError
		if !errors.As(err, &pe) || pe.Param != "cursor" {
			t.Fatalf("err = %v, want a ParamError for cursor", err)
		}
	})
}

func TestKeysetSQL(t *testing.T) {
	tests := []struct {
		name, query string
		pos         Position
		want        string
	}{
		{"desc", "limit=5&orderByField=duration", Position{Key: int64(3), ID: 9},
			`("duration" < CAST(? AS BIGINT) OR ("duration" = CAST(? AS BIGINT) AND "userWorklogId" < CAST(? AS BIGINT)) OR "duration" IS NULL)`},
		{"asc", "limit=5&orderByField=duration&orderByDirection=asc", Position{Key: int64(3), ID: 9},
			`("duration" > CAST(? AS BIGINT) OR ("duration" = CAST(? AS BIGINT) AND "userWorklogId" > CAST(? AS BIGINT)) OR "duration" IS NULL)`},
		{"null key", "limit=5&orderByField=duration", Position{Null: true, ID: 9},
			`("duration" IS NULL AND "userWorklogId" < CAST(? AS BIGINT))`},
		{"key field", "limit=5&orderByField=userWorklogId", Position{Key: int64(9), ID: 9},
			`("userWorklogId" < CAST(? AS BIGINT))`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, tc.query, Options{})
			p.After = &tc.pos
			sql, args := p.selectSQL(nil)
			if !strings.Contains(sql, tc.want) {
				t.Errorf("SQL %s\nlacks %s", sql, tc.want)
			}
			if strings.Count(sql, "?") != len(args) {
				t.Errorf("%d placeholders, %d args", strings.Count(sql, "?"), len(args))
			}
			count, _ := p.countSQL(nil)
			if strings.Contains(count, `"userWorklogId" <`) || strings.Contains(count, `"userWorklogId" >`) {
				t.Errorf("the count depends on the cursor: %s", count)
			}
		})
	}
}

func TestCursorPrunesMonths(t *testing.T) {
	all := []string{"2024-03", "2024-04", "2024-05", "2024-06"}
	p := mustParse(t, "limit=5", Options{})
	p.After = &Position{Key: time.Date(2024, 4, 30, 23, 0, 0, 0, time.UTC), ID: 1}
	if got := p.Months(all); !reflect.DeepEqual(got, []string{"2024-03", "2024-04"}) {
		t.Errorf("desc: %v", got)
	}
	p.Desc = false
	if got := p.Months(all); !reflect.DeepEqual(got, []string{"2024-04", "2024-05", "2024-06"}) {
		t.Errorf("asc: %v", got)
	}
}

// FuzzCursor feeds arbitrary cursors to Parse: it must never panic, and it
// accepts only what EncodeCursor made.
func FuzzCursor(f *testing.F) {
	p, _ := Parse(url.Values{"limit": {"5"}}, withFormats(Options{}))
	// Each fuzzing process seals its own copy (the nonce is random); every
	// copy opens to the same position.
	pos := Position{Key: time.Date(2024, 5, 10, 1, 2, 3, 0, time.UTC), ID: 3}
	good, _ := EncodeCursor(testCursorKey, p, pos)
	f.Add(good)
	f.Add("")
	f.Add(".")
	f.Add("eyJ2IjoxfQ")
	f.Add(strings.Repeat("A", 40))
	f.Add(good[:len(good)-1])
	f.Fuzz(func(t *testing.T, c string) {
		v := url.Values{"limit": {"5"}, "cursor": {c}}
		got, err := Parse(v, withFormats(Options{CursorKey: testCursorKey}))
		if err == nil {
			if got.After == nil || !reflect.DeepEqual(*got.After, pos) {
				t.Fatalf("accepted cursor %q as %+v", c, got.After)
			}
			return
		}
		var pe *ParamError
		if !errors.As(err, &pe) || pe.Param != "cursor" {
			t.Fatalf("cursor %q: err = %v, want a ParamError for cursor", c, err)
		}
	})
}
