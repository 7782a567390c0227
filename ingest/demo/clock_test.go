package demo

import (
	"testing"
	"time"

	"worklog/data"
)

// TestAppendTimestamp compares the hand-written formatter with time.Format
// around epoch, leap days, century rules and year ends.
func TestAppendTimestamp(t *testing.T) {
	for _, s := range []string{
		"1970-01-01 00:00:00", "1969-12-31 23:59:59", "2000-02-29 12:34:56",
		"2024-02-29 23:59:59", "2024-03-01 00:00:00", "2025-12-31 23:59:59",
		"2026-11-01 00:00:00", "2100-03-01 07:08:09", "1900-03-01 01:02:03",
	} {
		tm, err := time.Parse(data.TimestampLayout, s)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(appendTimestamp(nil, tm.Unix())); got != s {
			t.Errorf("appendTimestamp(%s) = %s", s, got)
		}
	}
}

// TestClockDensity checks the shape of the history: 13 months, times never
// decreasing, weekday office hours busier than nights and weekends.
func TestClockDensity(t *testing.T) {
	end := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	c := newClock(end)
	const n = 100000
	var prev int64
	var office, night int
	for i := 0; i < n; i++ {
		ts := c.at((float64(i) + 0.5) / n)
		if ts < prev {
			t.Fatalf("event %d at %d before %d", i, ts, prev)
		}
		prev = ts
		tm := time.Unix(ts, 0).UTC()
		if i == 0 && tm.Before(end.AddDate(0, -13, 0)) {
			t.Fatalf("first event %v before the 13 months", tm)
		}
		wd := tm.Weekday()
		if h := tm.Hour(); wd != time.Saturday && wd != time.Sunday && h >= 9 && h < 12 {
			office++ // 3 weekday hours
		} else if h >= 0 && h < 3 {
			night++ // 3 hours, every day
		}
	}
	if !time.Unix(prev, 0).UTC().Before(end) {
		t.Fatalf("last event %v not before %v", time.Unix(prev, 0).UTC(), end)
	}
	if office < 10*night {
		t.Errorf("%d events in weekday mornings vs %d at night", office, night)
	}
}
