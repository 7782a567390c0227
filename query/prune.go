package query

import (
	"time"

	"worklog/data"
)

// monthLayout is the store's partition key, "YYYY-MM" of `date`.
const monthLayout = "2006-01"

// Months returns the months of all (partition keys "YYYY-MM") that the
// plan's filters on the partition field `date` can touch, in the order of
// all. Filters that bound `date` from above or below, to a set of values,
// or to nothing (isNull: `date` is required) narrow the set; every other
// filter leaves it whole. The result is a superset of the months holding
// matching rows, never a subset.
func (p *Plan) Months(all []string) []string {
	keep := func(string) bool { return true }
	for _, f := range p.Filters {
		if f.Field.Name != data.DateField {
			continue
		}
		prev, next := keep, monthFilter(f)
		if next == nil {
			continue
		}
		keep = func(m string) bool { return prev(m) && next(m) }
	}
	// After a cursor on date, the months behind it hold no further row.
	if a := p.After; a != nil && p.OrderBy == data.DateField && !a.Null {
		if t, ok := a.Key.(time.Time); ok {
			k, prev := t.Format(monthLayout), keep
			if p.Desc {
				keep = func(m string) bool { return prev(m) && m <= k }
			} else {
				keep = func(m string) bool { return prev(m) && m >= k }
			}
		}
	}
	var out []string
	for _, m := range all {
		if keep(m) {
			out = append(out, m)
		}
	}
	return out
}

// monthFilter returns which months one filter on `date` can match, or nil
// when it can match in any month.
func monthFilter(f Filter) func(string) bool {
	month := func(v any) string { return v.(time.Time).Format(monthLayout) }
	switch f.Comparator {
	case Between:
		// A date-only To covers its day up to the last instant: same month.
		lo, hi := month(f.From), month(f.To)
		return func(m string) bool { return m >= lo && m <= hi }
	case Equals:
		v := month(f.Value)
		return func(m string) bool { return m == v }
	case In:
		set := map[string]bool{}
		for _, v := range f.Values {
			set[month(v)] = true
		}
		return func(m string) bool { return set[m] }
	case Gt, Gte:
		lo := month(f.Value)
		return func(m string) bool { return m >= lo }
	case Lt, Lte:
		hi := month(f.Value)
		return func(m string) bool { return m <= hi }
	case IsNull:
		// date is a required field: no stored row has it null.
		return func(string) bool { return false }
	}
	return nil
}

// files returns the snapshot's files in the months the plan can touch.
func (p *Plan) files(snap data.Snapshot) []data.PartFile {
	keep := map[string]bool{}
	for _, m := range p.Months(snap.Months()) {
		keep[m] = true
	}
	return snap.FilesIn(func(m string) bool { return keep[m] })
}
