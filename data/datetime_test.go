package data

import (
	"testing"
	"time"
)

// TestWallTimeFastPathMatchesTimeParse checks the fast date-time parser
// against time.Parse on valid and invalid values.
func TestWallTimeFastPathMatchesTimeParse(t *testing.T) {
	for _, s := range []string{
		"2025-10-01 00:00:26", "2024-02-29 23:59:59", "2023-02-29 10:00:00", "2024-04-31 10:00:00",
		"2024-12-31 24:00:00", "2024-13-01 00:00:00", "2024-00-10 00:00:00", "2024-01-00 00:00:00",
		"2024-01-01 00:60:00", "2024-01-01 00:00:60", "2024-01-01T00:00:00", "2024-1-01 00:00:000",
		"+024-01-01 00:00:00", "0000-01-01 00:00:00", "9999-12-31 23:59:59",
	} {
		want, werr := time.Parse(TimestampLayout, s)
		got, ok := parseWallTime(s)
		if ok && (werr != nil || !got.Equal(want)) {
			t.Errorf("parseWallTime(%q) = %v; time.Parse %v, %v", s, got, want, werr)
		}
		if !ok && werr == nil {
			t.Errorf("parseWallTime(%q) declined a valid value", s)
		}
	}
}

// The date-time lists that ingest (value.go) and query (parse.go) had before
// ParseDateTime, each with what it did with RFC 3339: the oracle of
// TestParseDateTimeAcceptsBothOldLists.
var (
	oldIngestLayouts = []string{TimestampLayout, time.RFC3339Nano, "2006-01-02T15:04:05", DateLayout}
	oldQueryLayouts  = []string{DateLayout, TimestampLayout, "2006-01-02T15:04:05", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", time.RFC3339Nano}
)

func parseWithLayouts(layouts []string, s string) (time.Time, bool) {
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// TestParseDateTimeAcceptsBothOldLists checks that the one list accepts
// every input that either old list accepted, with the same value, and
// nothing else.
func TestParseDateTimeAcceptsBothOldLists(t *testing.T) {
	for _, s := range []string{
		"2024-05-10", "2024-05-10 13:45:00", "2024-05-10T13:45:00", "2024-05-10 13:45:00.5",
		"2024-05-10T13:45:00.123456789", "2024-05-10 13:45:00.123456", "2024-05-10T13:45:00Z",
		"2024-06-01T01:00:00+02:00", "2024-05-31T23:30:00-01:00", "2024-05-10T13:45:00.25+05:30",
		"2024-02-29", "2023-02-29", "2024-05-10 24:00:00", "2024-05-10 13:45", "2024-5-10",
		"2024-05-10 13:45:00Z", "2024-05-10T13:45:00+0200", " 2024-05-10", "2024-05-10 ", "",
		"yesterday", "2024-05-10T13:45:00z", "10.05.2024", "2024-05-10 13:45:00 +02:00",
	} {
		i, iok := parseWithLayouts(oldIngestLayouts, s)
		q, qok := parseWithLayouts(oldQueryLayouts, s)
		if iok && qok && !i.Equal(q) {
			t.Fatalf("%q: the old lists disagree: ingest %v, query %v", s, i, q)
		}
		want, wok := i, iok
		if !iok {
			want, wok = q, qok
		}
		got, ok := ParseDateTime(s)
		if ok != wok || ok && (!got.Equal(want) || got.Location() != time.UTC) {
			t.Errorf("ParseDateTime(%q) = %v, %v; old lists %v, %v", s, got, ok, want, wok)
		}
	}
}

func TestParseDateTime(t *testing.T) {
	tests := []struct {
		in   string
		want string // UTC wall time as TimestampLayout with fraction; "" for refused
	}{
		{"2024-05-10", "2024-05-10 00:00:00"},
		{"2024-05-10 13:45:07", "2024-05-10 13:45:07"},
		{"2024-05-10T13:45:07", "2024-05-10 13:45:07"},
		{"2024-05-10 13:45:07.25", "2024-05-10 13:45:07.25"},
		{"2024-05-10T13:45:07Z", "2024-05-10 13:45:07"},
		{"2024-06-01T01:00:00+02:00", "2024-05-31 23:00:00"}, // converted to UTC wall time
		{"2024-12-31T23:30:00-01:00", "2025-01-01 00:30:00"},
		{"2024-02-30", ""},
		{"2024-05-10 13:45", ""},
		{" 2024-05-10", ""},
		{"", ""},
	}
	for _, tc := range tests {
		got, ok := ParseDateTime(tc.in)
		if !ok {
			if tc.want != "" {
				t.Errorf("ParseDateTime(%q) refused, want %s", tc.in, tc.want)
			}
			continue
		}
		if s := got.Format("2006-01-02 15:04:05.999999999"); s != tc.want || tc.want == "" || got.Location() != time.UTC {
			t.Errorf("ParseDateTime(%q) = %s (%v), want %q", tc.in, s, got.Location(), tc.want)
		}
	}
}

// BenchmarkParseDateTime measures the common form, ingest's hot path.
func BenchmarkParseDateTime(b *testing.B) {
	in := "2024-05-10 13:45:07"
	for b.Loop() {
		if _, ok := ParseDateTime(in); !ok {
			b.Fatal("refused")
		}
	}
}

// FuzzParseDateTime holds ParseDateTime (with its hand-written fast path)
// to the time.Parse layouts it replaced, on any input: it accepts exactly
// what either old list accepted, with the same instant, in UTC.
func FuzzParseDateTime(f *testing.F) {
	for _, s := range []string{"2024-05-10", "2024-05-10 13:45:00", "2024-05-10T13:45:00.25+05:30", "2024-02-30", "2024-05-10 24:00:00", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, wok := parseWithLayouts(oldIngestLayouts, s)
		if !wok {
			want, wok = parseWithLayouts(oldQueryLayouts, s)
		}
		got, ok := ParseDateTime(s)
		if ok != wok || ok && (!got.Equal(want) || got.Location() != time.UTC) {
			t.Fatalf("ParseDateTime(%q) = %v, %v; the layouts give %v, %v", s, got, ok, want, wok)
		}
	})
}
