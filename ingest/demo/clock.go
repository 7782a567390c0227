package demo

import "time"

// historyMonths is how far the generated history reaches back from End.
const historyMonths = 13

// clock hands out non-decreasing event times between start and end, with
// the density of a customer-service desk: busy weekday office hours, quiet
// nights and weekends, a dip over the year-end holidays and slow growth over
// the year. Event i of n lands at the (i+u)/n quantile of that density
// (u uniform in [0,1)), so times ascend with the event index while staying
// random, and memory is one float per hour of history.
type clock struct {
	start int64     // Unix seconds of the first hour
	cum   []float64 // cum[h] is the total weight of the hours before h
	hour  int       // the hour the last event fell into; quantiles only grow
}

// hourWeights is the relative load of each hour of a working day.
var hourWeights = [24]float64{
	0.04, 0.03, 0.02, 0.02, 0.03, 0.06, 0.15, 0.45, 0.95, 1.20, 1.25, 1.15,
	0.90, 1.05, 1.15, 1.05, 0.90, 0.65, 0.40, 0.25, 0.16, 0.10, 0.07, 0.05,
}

// newClock covers the historyMonths before end. end is read as wall-clock
// time: its fields, not its instant, are kept.
func newClock(end time.Time) *clock {
	endWall := time.Date(end.Year(), end.Month(), end.Day(), end.Hour(), end.Minute(), end.Second(), 0, time.UTC)
	startWall := endWall.AddDate(0, -historyMonths, 0).Truncate(time.Hour)
	hours := int(endWall.Sub(startWall) / time.Hour)
	if hours < 1 {
		hours = 1
	}
	c := &clock{start: startWall.Unix(), cum: make([]float64, hours+1)}
	t := startWall
	for h := 0; h < hours; h++ {
		c.cum[h+1] = c.cum[h] + loadAt(t, float64(h)/float64(hours))
		t = t.Add(time.Hour)
	}
	return c
}

// loadAt is the relative event rate at wall-clock hour t, progress being the
// fraction of the history elapsed.
func loadAt(t time.Time, progress float64) float64 {
	w := hourWeights[t.Hour()]
	switch t.Weekday() {
	case time.Saturday: // a small weekend shift
		w = 0.02 + 0.30*w
	case time.Sunday:
		w = 0.02 + 0.12*w
	case time.Monday:
		w *= 1.15 // the weekend's backlog
	}
	m, d := t.Month(), t.Day()
	if (m == time.December && d >= 24) || (m == time.January && d == 1) {
		w *= 0.35
	}
	// The customer base grows by ~40% over the history.
	return w * (0.8 + 0.4*progress)
}

// at returns the Unix time of the event at quantile q in [0,1). Successive
// calls must not decrease q.
func (c *clock) at(q float64) int64 {
	total := c.cum[len(c.cum)-1]
	x := q * total
	last := len(c.cum) - 2
	for c.hour < last && c.cum[c.hour+1] <= x {
		c.hour++
	}
	w := c.cum[c.hour+1] - c.cum[c.hour]
	frac := (x - c.cum[c.hour]) / w
	sec := int64(frac * 3600)
	sec = min(max(sec, 0), 3599)
	return c.start + int64(c.hour)*3600 + sec
}

// appendTimestamp appends Unix time t as wall-clock "YYYY-MM-DD HH:MM:SS"
// without going through time.Format, which would dominate the generator's
// cost.
func appendTimestamp(b []byte, t int64) []byte {
	days := t / 86400
	secs := t % 86400
	if secs < 0 {
		secs += 86400
		days--
	}
	y, m, d := civil(days)
	b = append2(b, y/100)
	b = append2(b, y%100)
	b = append(b, '-')
	b = append2(b, m)
	b = append(b, '-')
	b = append2(b, d)
	b = append(b, ' ')
	b = append2(b, int(secs/3600))
	b = append(b, ':')
	b = append2(b, int(secs/60%60))
	b = append(b, ':')
	return append2(b, int(secs%60))
}

// append2 appends v (0–99) as two digits.
func append2(b []byte, v int) []byte {
	return append(b, byte('0'+v/10), byte('0'+v%10))
}

// civil converts days since 1970-01-01 to a proleptic Gregorian date
// (Howard Hinnant's days_from_civil inverse).
func civil(z int64) (year, month, day int) {
	z += 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return int(y), int(m), int(d)
}
