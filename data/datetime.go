package data

import "time"

// TimestampLayout is the wall-clock layout of date-time values in every format.
const TimestampLayout = "2006-01-02 15:04:05"

// DateLayout is the layout of a date without time.
const DateLayout = "2006-01-02"

// dateTimeLayouts are the zone-less forms ParseDateTime accepts, besides
// RFC 3339 with a zone. When parsing, time.Parse takes fractional seconds
// after the seconds field even though the layouts do not show them.
var dateTimeLayouts = [...]string{TimestampLayout, "2006-01-02T15:04:05", DateLayout}

// ParseDateTime reads a date-time value as a dump (ingest) or a filter
// operand (query) may write it, SPEC §4:
//
//   - "YYYY-MM-DD HH:MM:SS" or "YYYY-MM-DDTHH:MM:SS", either with optional
//     fractional seconds: a naive wall-clock time, taken as it is;
//   - "YYYY-MM-DD": midnight of that day;
//   - RFC 3339 with a zone ("Z" or "±hh:mm"): that instant's UTC wall time.
//
// The result's location is UTC, and its wall clock is the naive value the
// store keeps. Surrounding white space is not accepted; callers that allow
// it trim first. This is the one list of date-time forms of worklog.
func ParseDateTime(s string) (time.Time, bool) {
	if t, ok := parseWallTime(s); ok {
		return t, true
	}
	for _, l := range dateTimeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), true
	}
	return time.Time{}, false
}

// parseWallTime is the fast path of ParseDateTime for the common form
// "YYYY-MM-DD HH:MM:SS" (ingest reads millions of them). It accepts only
// what time.Parse with TimestampLayout accepts, and leaves anything else
// (including the errors) to time.Parse.
func parseWallTime(s string) (time.Time, bool) {
	if len(s) != len(TimestampLayout) || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	num := func(i, n int) int {
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	y, mo, d, h, mi, sec := num(0, 4), num(5, 2), num(8, 2), num(11, 2), num(14, 2), num(17, 2)
	if y < 0 || mo < 1 || mo > 12 || d < 1 || d > 28 && d > daysIn(time.Month(mo), y) || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59 {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(mo), d, h, mi, sec, 0, time.UTC), true
}

// daysIn is the number of days of month m in year y.
func daysIn(m time.Month, y int) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
