package query

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"worklog/data"
)

// The aggregate tests compare Engine.Aggregate with groups computed here,
// in plain Go, from the fixture's rows: no SQL is shared between the two.

// aggFixtureFiles are the fixture's files: the export fixture and rows that
// add what analytics needs (agents without userId, a row without agent,
// duplicate and null list elements, a year boundary, ISO week edges).
var aggFixtureFiles = []string{"events.ndjson", "analytics_extra.ndjson"}

// event is one fixture row as decoded JSON: float64, string, []any, nil.
type event map[string]any

// loadEvents reads the fixture rows.
func loadEvents(t testing.TB) []event {
	t.Helper()
	var out []event
	for _, name := range aggFixtureFiles {
		f, err := os.Open(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatal(err)
			}
			out = append(out, ev)
		}
		f.Close()
	}
	return out
}

// aggFixtureStore writes both fixture files as one store.
func aggFixtureStore(tb testing.TB) data.Snapshot {
	tb.Helper()
	var paths []string
	for _, name := range aggFixtureFiles {
		p, err := filepath.Abs(filepath.Join("testdata", name))
		if err != nil {
			tb.Fatal(err)
		}
		paths = append(paths, data.QuoteString(p))
	}
	src := "read_json([" + strings.Join(paths, ", ") + "], format = 'newline_delimited', columns = " + columnsSpec() + ")"
	return writeStore(tb, tb.TempDir(), src)
}

// evTime parses the event's date.
func evTime(ev event) time.Time {
	t, err := time.Parse(data.TimestampLayout, ev["date"].(string))
	if err != nil {
		panic(err)
	}
	return t
}

// refLabel is the bucket label SPEC §10 gives t, computed with Go's
// calendar.
func refLabel(t time.Time, b Bucket) string {
	switch b {
	case BucketHour:
		return t.Format("2006-01-02 15") + ":00:00"
	case BucketDay:
		return t.Format(data.DateLayout)
	case BucketWeek:
		wd := (int(t.Weekday()) + 6) % 7 // Monday 0
		return t.AddDate(0, 0, -wd).Format(data.DateLayout)
	case BucketMonth:
		return t.Format("2006-01")
	case BucketQuarter:
		return fmt.Sprintf("%d-Q%d", t.Year(), (int(t.Month())-1)/3+1)
	case BucketYear:
		return t.Format("2006")
	}
	panic(b)
}

// refKeys returns the group values of one event for one dimension: one per
// distinct list element (nil for an empty or null list), else one.
func refKeys(ev event, d Dimension) []any {
	if d.Bucket != "" {
		return []any{refLabel(evTime(ev), d.Bucket)}
	}
	v := ev[d.Field.Name]
	if x, ok := v.(float64); ok && d.Field.Kind != data.KindFloat {
		v = int64(x)
	}
	if d.Field.Kind == data.KindList {
		l, _ := v.([]any)
		if len(l) == 0 {
			return []any{nil}
		}
		var out []any
		for _, x := range l {
			if !slices.Contains(out, x) {
				out = append(out, x)
			}
		}
		return out
	}
	return []any{v}
}

// refGroup is one group of the reference: its key values and its rows.
type refGroup struct {
	keys []any
	rows []event
}

// refAggregate computes the page of groups of p over evs, rows kept by keep.
func refAggregate(evs []event, p *AggregatePlan, keep func(event) bool) (rows [][]any, total, suppressed int64) {
	groups := map[string]*refGroup{}
	var order []string
	for _, ev := range evs {
		if keep != nil && !keep(ev) {
			continue
		}
		combos := [][]any{nil}
		for _, d := range p.Dimensions {
			var next [][]any
			for _, c := range combos {
				for _, k := range refKeys(ev, d) {
					next = append(next, append(slices.Clone(c), k))
				}
			}
			combos = next
		}
		for _, c := range combos {
			id := fmt.Sprintf("%#v", c)
			g := groups[id]
			if g == nil {
				g = &refGroup{keys: c}
				groups[id] = g
				order = append(order, id)
			}
			g.rows = append(g.rows, ev)
		}
	}
	if len(p.Dimensions) == 0 && len(groups) == 0 {
		groups[""] = &refGroup{}
		order = append(order, "")
	}
	for _, id := range order {
		g := groups[id]
		if p.MinGroupAgents > 1 && refAgents(g.rows) < int64(p.MinGroupAgents) {
			suppressed++
			continue
		}
		row := slices.Clone(g.keys)
		for _, m := range p.Measures {
			row = append(row, refMeasure(g.rows, m))
		}
		rows = append(rows, row)
	}
	total = int64(len(rows))
	orderCol := -1
	for i, c := range p.Columns() {
		if c == p.OrderBy {
			orderCol = i
		}
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if orderCol >= 0 {
			c := compareNullsLast(rows[i][orderCol], rows[j][orderCol], p.Desc)
			if c != 0 {
				return c < 0
			}
		}
		for d := range p.Dimensions {
			if d == orderCol {
				continue
			}
			c := compareNullsLast(rows[i][d], rows[j][d], p.OrderBy == "" && p.Desc)
			if c != 0 {
				return c < 0
			}
		}
		return false
	})
	lo := min(p.Offset, len(rows))
	hi := min(lo+p.Limit, len(rows))
	return rows[lo:hi], total, suppressed
}

// compareNullsLast orders nil after every value in both directions.
func compareNullsLast(a, b any, desc bool) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	var c int
	switch x := a.(type) {
	case float64:
		c = cmp.Compare(x, b.(float64))
	case int64:
		c = cmp.Compare(x, b.(int64))
	case string:
		c = strings.Compare(x, b.(string))
	default:
		panic(fmt.Sprintf("compare %T", a))
	}
	if desc {
		return -c
	}
	return c
}

// refAgents counts distinct agents: user ids, and names where userId is null.
func refAgents(rows []event) int64 {
	seen := map[string]bool{}
	for _, ev := range rows {
		if id, ok := ev["userId"].(float64); ok {
			seen[fmt.Sprintf("id:%v", id)] = true
		} else if n, ok := ev["name"].(string); ok {
			seen["name:"+n] = true
		}
	}
	return int64(len(seen))
}

// refMeasure computes one measure over a group's rows: int64 for counts
// and integer sums/min/max, float64 for the rest, nil over no value.
func refMeasure(rows []event, m Measure) any {
	switch m.Kind {
	case MeasureCount:
		return int64(len(rows))
	case MeasureTickets:
		seen := map[float64]bool{}
		for _, ev := range rows {
			if v, ok := ev["ticketId"].(float64); ok {
				seen[v] = true
			}
		}
		return int64(len(seen))
	case MeasureAgents:
		return refAgents(rows)
	}
	var vals []float64
	for _, ev := range rows {
		if v, ok := ev[m.Field.Name].(float64); ok {
			vals = append(vals, v)
		}
	}
	if len(vals) == 0 {
		return nil
	}
	integer := m.Integer()
	num := func(x float64) any {
		if integer {
			return int64(x)
		}
		return x
	}
	switch m.Kind {
	case MeasureSum:
		s := 0.0
		for _, v := range vals {
			s += v
		}
		return num(s)
	case MeasureAvg, MeasureRate:
		s := 0.0
		for _, v := range vals {
			s += v
		}
		return s / float64(len(vals))
	case MeasureMin:
		return num(slices.Min(vals))
	case MeasureMax:
		return num(slices.Max(vals))
	case MeasureP50, MeasureP90, MeasureP95:
		q := map[MeasureKind]float64{MeasureP50: 0.5, MeasureP90: 0.9, MeasureP95: 0.95}[m.Kind]
		slices.Sort(vals)
		// Continuous quantile: linear interpolation between the two
		// nearest ranks, as DuckDB's quantile_cont.
		pos := q * float64(len(vals)-1)
		lo := math.Floor(pos)
		hi := math.Ceil(pos)
		return vals[int(lo)] + (pos-lo)*(vals[int(hi)]-vals[int(lo)])
	case MeasureSLAMetRate:
		met := 0
		for _, v := range vals {
			if v <= 0 {
				met++
			}
		}
		return float64(met) / float64(len(vals))
	}
	panic(m.Kind)
}

// aggRows runs Aggregate and returns the rows as Go values: int64, float64,
// string (date32 as YYYY-MM-DD, timestamps as YYYY-MM-DD HH:MM:SS), nil.
func aggRows(t *testing.T, e *Engine, snap data.Snapshot, p *AggregatePlan) (names []string, rows [][]any, res *AggregateResult) {
	t.Helper()
	res, err := e.Aggregate(context.Background(), snap, p)
	if err != nil {
		t.Fatalf("Aggregate: %v", err)
	}
	defer res.Records.Release()
	for _, f := range res.Records.Schema().Fields() {
		names = append(names, f.Name)
	}
	for res.Records.Next() {
		rec := res.Records.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			var row []any
			for c := 0; c < int(rec.NumCols()); c++ {
				row = append(row, arrowValue(t, rec.Column(c), i))
			}
			rows = append(rows, row)
		}
	}
	if err := res.Records.Err(); err != nil {
		t.Fatal(err)
	}
	return names, rows, res
}

// arrowValue converts one Arrow value to the reference's Go value.
func arrowValue(t *testing.T, a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Int64:
		return a.Value(i)
	case *array.Float64:
		return a.Value(i)
	case *array.String:
		return a.Value(i)
	case *array.StringView:
		return a.Value(i)
	case *array.Date32:
		return a.Value(i).ToTime().Format(data.DateLayout)
	case *array.Timestamp:
		return a.Value(i).ToTime(a.DataType().(*arrow.TimestampType).Unit).Format(data.TimestampLayout)
	}
	t.Fatalf("unexpected column type %s", a.DataType())
	return nil
}

// sameValue compares a result value with the reference's, floats within a
// relative 1e-9 (DuckDB may sum in another order).
func sameValue(got, want any) bool {
	if w, ok := want.(float64); ok {
		g, ok := got.(float64)
		return ok && math.Abs(g-w) <= 1e-9*math.Max(1, math.Abs(w))
	}
	return got == want
}

func TestAggregateMatchesReference(t *testing.T) {
	snap := aggFixtureStore(t)
	e := newEngine(t, snap)
	evs := loadEvents(t)
	all := "measures[]=count&measures[]=tickets&measures[]=agents&measures[]=sum(duration)&measures[]=avg(duration)" +
		"&measures[]=min(duration)&measures[]=max(duration)&measures[]=p50(duration)&measures[]=p90(duration)" +
		"&measures[]=p95(duration)&measures[]=rate(reOpened)&measures[]=slaMetRate&measures[]=sum(textAssistanceAccuracy)" +
		"&measures[]=min(textAssistanceAccuracy)&measures[]=avg(durationAfterWork)&measures[]=rate(customerIdentifiedCorrectly)" +
		"&measures[]=max(timesSetToOpen)&measures[]=p90(pendingSeconds)&measures[]=sum(netPendingSeconds)&measures[]=avg(aiAutomationLevel)"
	inMay := func(ev event) bool { return strings.HasPrefix(ev["date"].(string), "2024-05") }
	tests := []struct {
		name  string
		query string
		keep  func(event) bool // the filters of query, in Go
	}{
		{"no dimension, every measure", all, nil},
		{"no dimension, nothing matches", all + "&filters[0][key]=duration&filters[0][comparator]=gt&filters[0][value]=100000",
			func(ev event) bool { d, ok := ev["duration"].(float64); return ok && d > 100000 }},
		{"channel, every measure", "groupBy[]=channel&" + all, nil},
		{"topic (string with nulls)", "groupBy[]=topic&" + all, nil},
		{"action", "groupBy[]=action&measures[]=count&measures[]=avg(duration)", nil},
		{"status", "groupBy[]=status&measures[]=count", nil},
		{"aiAgent", "groupBy[]=aiAgent&measures[]=count", nil},
		{"subTopic", "groupBy[]=subTopic&measures[]=count", nil},
		{"department", "groupBy[]=department&measures[]=count", nil},
		{"statusActionDetail", "groupBy[]=statusActionDetail&measures[]=count", nil},
		{"aiAutomationLevel (integer)", "groupBy[]=aiAutomationLevel&measures[]=count&measures[]=avg(duration)", nil},
		{"flags", "groupBy[]=reOpened&groupBy[]=customerIdentifiedCorrectly&groupBy[]=tagsIdentifiedCorrectly&groupBy[]=skippedTicket&measures[]=count", nil},
		{"name at level none", "groupBy[]=name&measures[]=count&measures[]=agents", nil},
		{"tags (list, duplicates, empty and null)", "groupBy[]=tags&" + all, nil},
		{"teams", "groupBy[]=teams&measures[]=count&measures[]=slaMetRate", nil},
		{"aiAgentsUsed", "groupBy[]=aiAgentsUsed&measures[]=count", nil},
		{"two lists: cross product", "groupBy[]=tags&groupBy[]=teams&measures[]=count&measures[]=agents", nil},
		{"date:hour", "groupBy[]=date:hour&measures[]=count", nil},
		{"date:day", "groupBy[]=date:day&measures[]=count&measures[]=avg(duration)", nil},
		{"date:week (ISO, Monday)", "groupBy[]=date:week&measures[]=count", nil},
		{"date:month", "groupBy[]=date:month&measures[]=count", nil},
		{"date:quarter", "groupBy[]=date:quarter&measures[]=count", nil},
		{"date:year", "groupBy[]=date:year&measures[]=count&measures[]=p95(duration)", nil},
		{"three dimensions", "groupBy[]=date:month&groupBy[]=channel&groupBy[]=teams&measures[]=count&measures[]=avg(duration)", nil},
		{"four dimensions, indexed", "groupBy[0]=date:year&groupBy[1]=action&groupBy[2]=tags&groupBy[3]=aiAgentsUsed&measures[0]=count&measures[1]=max(duration)", nil},
		{"filter on date, week", "groupBy[]=date:week&groupBy[]=channel&measures[]=count&measures[]=avg(duration)" +
			"&filters[0][key]=date&filters[0][comparator]=between&filters[0][from]=2024-05-01&filters[0][to]=2024-05-31", inMay},
		{"filter on a list", "groupBy[]=teams&measures[]=count&filters[0][key]=teams&filters[0][comparator]=in&filters[0][values][]=Sales",
			func(ev event) bool { l, _ := ev["teams"].([]any); return slices.Contains(l, any("Sales")) }},
		{"order by a measure desc", "groupBy[]=topic&measures[]=count&measures[]=avg(duration)&orderByField=avg(duration)&orderByDirection=desc", nil},
		{"order by a measure asc", "groupBy[]=channel&groupBy[]=topic&measures[]=count&measures[]=p50(duration)&orderByField=p50(duration)", nil},
		{"order by the second dimension", "groupBy[]=channel&groupBy[]=topic&measures[]=count&orderByField=topic&orderByDirection=desc", nil},
		{"dimensions descending", "groupBy[]=date:day&measures[]=count&orderByDirection=desc", nil},
		{"paging", "groupBy[]=date:day&measures[]=count&limit=5&offset=3", nil},
		{"page past the end", "groupBy[]=date:day&measures[]=count&limit=5&offset=300", nil},
		{"suppression", "groupBy[]=teams&measures[]=count&measures[]=agents", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			opts := AggregateOptions{}
			if tt.name == "suppression" {
				opts.MinGroupAgents = 3
			}
			p, err := ParseAggregate(v, opts)
			if err != nil {
				t.Fatalf("ParseAggregate: %v", err)
			}
			names, got, res := aggRows(t, e, snap, p)
			want, total, suppressed := refAggregate(evs, p, tt.keep)
			if !slices.Equal(names, p.Columns()) {
				t.Fatalf("columns %v, want %v", names, p.Columns())
			}
			if res.Total != total || res.Suppressed != suppressed {
				t.Errorf("total %d, suppressed %d; want %d, %d", res.Total, res.Suppressed, total, suppressed)
			}
			if tt.name == "suppression" && suppressed == 0 {
				t.Error("the suppression case suppresses nothing; change the fixture or N")
			}
			if len(got) != len(want) {
				t.Fatalf("%d rows, want %d:\ngot  %v\nwant %v", len(got), len(want), got, want)
			}
			for i := range want {
				for c := range want[i] {
					if !sameValue(got[i][c], want[i][c]) {
						t.Errorf("row %d column %s = %#v, want %#v\ngot  %v\nwant %v", i, names[c], got[i][c], want[i][c], got[i], want[i])
					}
				}
			}
		})
	}
}

// TestAggregateByHand checks a few groups against values worked out by hand
// from the fixture, so that the reference itself is checked too.
func TestAggregateByHand(t *testing.T) {
	snap := aggFixtureStore(t)
	e := newEngine(t, snap)
	run := func(query string) [][]any {
		v, _ := url.ParseQuery(query)
		p, err := ParseAggregate(v, AggregateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, rows, _ := aggRows(t, e, snap, p)
		return rows
	}
	// ISO weeks: Sunday 2023-12-31 belongs to the week of Monday
	// 2023-12-25; Monday 2024-01-01 to Sunday 2024-01-07 is one week; Monday
	// 2024-12-30 starts the week ISO calls 2025-W01, labelled by its Monday.
	rows := run("groupBy[]=date:week&measures[]=count&filters[0][key]=date&filters[0][comparator]=lt&filters[0][value]=2024-02-01")
	want := [][]any{{"2023-12-25", int64(1)}, {"2024-01-01", int64(3)}}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("weeks: %v, want %v", rows, want)
	}
	rows = run("groupBy[]=date:quarter&measures[]=count&filters[0][key]=date&filters[0][comparator]=notEquals&filters[0][value]=2024-05-10 14:52:37" +
		"&orderByField=date:quarter&orderByDirection=desc&limit=2")
	// Q2 2024 holds 26 rows (April 9, May 7, June 10), one filtered out.
	want = [][]any{{"2024-Q4", int64(1)}, {"2024-Q2", int64(25)}}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("quarters: %v, want %v", rows, want)
	}
	// Lists longer than two count each element once too, whether their
	// elements are compared pair by pair (three and four) or deduplicated
	// by DuckDB (five): tags ["Shipping","Returns","Shipping"] and
	// ["p","q","r","s","p"]; teams ["Support","Sales","Customer care",
	// "Support"] and the same three teams once each.
	rows = run("groupBy[]=tags&measures[]=count&filters[0][key]=userWorklogId&filters[0][comparator]=in" +
		"&filters[0][values][]=106&filters[0][values][]=107")
	want = [][]any{{"Returns", int64(1)}, {"Shipping", int64(1)}, {"p", int64(1)}, {"q", int64(1)}, {"r", int64(1)}, {"s", int64(1)}}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("long tags: %v, want %v", rows, want)
	}
	rows = run("groupBy[]=teams&measures[]=count&filters[0][key]=userWorklogId&filters[0][comparator]=in" +
		"&filters[0][values][]=106&filters[0][values][]=107")
	want = [][]any{{"Customer care", int64(2)}, {"Sales", int64(2)}, {"Support", int64(2)}}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("long teams: %v, want %v", rows, want)
	}
	// tags: ["Billing","Billing"] counts once in Billing; null and [] rows
	// land in the null group, which sorts last.
	rows = run("groupBy[]=tags&measures[]=count&filters[0][key]=userWorklogId&filters[0][comparator]=in" +
		"&filters[0][values][]=101&filters[0][values][]=102&filters[0][values][]=104")
	want = [][]any{{"Billing", int64(1)}, {nil, int64(2)}}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("tags: %v, want %v", rows, want)
	}
	// p90 of 10, 50, 100 (rows 101, 102, 104): position 0.9×2 = 1.8,
	// 50 + 0.8×(100−50) = 90. slaMetRate of 10, 0, −5: 2 of 3.
	rows = run("measures[]=p90(duration)&measures[]=slaMetRate&measures[]=agents&measures[]=tickets&filters[0][key]=userWorklogId&filters[0][comparator]=in" +
		"&filters[0][values][]=101&filters[0][values][]=102&filters[0][values][]=104")
	if len(rows) != 1 || !sameValue(rows[0][0], 90.0) || !sameValue(rows[0][1], 2.0/3) || rows[0][2] != int64(2) || rows[0][3] != int64(2) {
		t.Errorf("p90, slaMetRate, agents, tickets = %v, want [90 0.667 2 2]", rows)
	}
	// A measure over no value is null; count is 0.
	rows = run("measures[]=count&measures[]=avg(duration)&filters[0][key]=userWorklogId&filters[0][comparator]=equals&filters[0][value]=103")
	if fmt.Sprint(rows) != fmt.Sprint([][]any{{int64(1), nil}}) {
		t.Errorf("avg over no value: %v, want [[1 <nil>]]", rows)
	}
}

// TestAggregateByAgent groups by name the way pseudonymizing levels do: by
// agent (userId, or name where it is null), with the userId column beside
// the name for the privacy layer, ordered by the agent's label.
func TestAggregateByAgent(t *testing.T) {
	snap := aggFixtureStore(t)
	e := newEngine(t, snap)
	evs := loadEvents(t)
	// A label that sorts differently from the user ids.
	label := func(id *int64, name string) string {
		if id != nil {
			return fmt.Sprintf("L%03d", 1000-*id)
		}
		return "N:" + name
	}
	v, _ := url.ParseQuery("groupBy[]=name&measures[]=count&orderByDirection=desc")
	p, err := ParseAggregate(v, AggregateOptions{NameByAgent: true, AgentLabel: label})
	if err != nil {
		t.Fatal(err)
	}
	names, rows, res := aggRows(t, e, snap, p)
	if strings.Join(names, ",") != "name,count,userId" {
		t.Fatalf("columns %v", names)
	}
	want := map[string]int64{}
	for _, ev := range evs {
		var l string
		switch {
		case ev["userId"] != nil:
			id := int64(ev["userId"].(float64))
			l = label(&id, "")
		case ev["name"] != nil:
			l = label(nil, ev["name"].(string))
		}
		want[l]++
	}
	if res.Total != int64(len(want)) || len(rows) != len(want) {
		t.Fatalf("%d groups (total %d), want %d", len(rows), res.Total, len(want))
	}
	var labels []string
	for _, r := range rows {
		var l string
		switch {
		case r[2] != nil:
			id := r[2].(int64)
			l = label(&id, "")
			if r[0] != nil {
				t.Errorf("row %v: name beside a userId", r)
			}
		case r[0] != nil:
			l = label(nil, r[0].(string))
		}
		if r[1] != want[l] {
			t.Errorf("agent %q: count %v, want %d", l, r[1], want[l])
		}
		labels = append(labels, l)
	}
	// Descending by label, the group without agent last.
	if labels[len(labels)-1] != "" {
		t.Errorf("the group without agent is not last: %v", labels)
	}
	labels = labels[:len(labels)-1]
	if !sort.SliceIsSorted(labels, func(i, j int) bool { return labels[i] > labels[j] }) {
		t.Errorf("not ordered by label, descending: %v", labels)
	}
}
