package query

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"worklog/data"
)

// fetch runs Records and returns the rows as maps of Go values: int64,
// float64, string, "YYYY-MM-DD HH:MM:SS" for date-times, []string for lists,
// nil for nulls.
func fetch(t *testing.T, e *Engine, snap data.Snapshot, p *Plan) []map[string]any {
	t.Helper()
	rr, err := e.Records(context.Background(), snap, p)
	if err != nil {
		t.Fatalf("Records: %v", err)
	}
	defer rr.Release()
	var out []map[string]any
	for rr.Next() {
		out = append(out, recordRows(t, rr.RecordBatch())...)
	}
	if err := rr.Err(); err != nil {
		t.Fatalf("reading records: %v", err)
	}
	return out
}

// recordRows converts a batch's rows.
func recordRows(t *testing.T, rec arrow.RecordBatch) []map[string]any {
	var out []map[string]any
	for i := 0; i < int(rec.NumRows()); i++ {
		row := map[string]any{}
		for c, col := range rec.Columns() {
			row[rec.ColumnName(c)] = value(t, col, i)
		}
		out = append(out, row)
	}
	return out
}

// value converts one Arrow cell.
func value(t *testing.T, col arrow.Array, i int) any {
	if col.IsNull(i) {
		return nil
	}
	switch a := col.(type) {
	case *array.Int64:
		return a.Value(i)
	case *array.Float64:
		return a.Value(i)
	case *array.String:
		// Value aliases the batch's buffer, which DuckDB frees with the
		// batch: copy it.
		return strings.Clone(a.Value(i))
	case *array.Timestamp:
		return a.Value(i).ToTime(arrow.Microsecond).Format(data.TimestampLayout)
	case *array.List:
		start, end := a.ValueOffsets(i)
		elems := a.ListValues().(*array.String)
		l := []string{}
		for j := start; j < end; j++ {
			l = append(l, strings.Clone(elems.Value(int(j))))
		}
		return l
	}
	t.Fatalf("unexpected column type %s", col.DataType())
	return nil
}

// ids runs a plan and returns the userWorklogIds in result order.
func ids(t *testing.T, e *Engine, snap data.Snapshot, p *Plan) []int64 {
	t.Helper()
	var out []int64
	for _, r := range fetch(t, e, snap, p) {
		out = append(out, r[data.KeyField].(int64))
	}
	return out
}

// mustParse parses a raw query string.
func mustParse(t *testing.T, query string, opts Options) *Plan {
	t.Helper()
	v, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(v, withFormats(opts))
	if err != nil {
		t.Fatalf("Parse(%s): %v", query, err)
	}
	return p
}

// testFormats stands in for export.FormatNames, which query cannot import.
var testFormats = []string{"json", "csv", "xlsx", "ndjson", "parquet", "arrow"}

// withFormats gives options without formats the test formats and json as
// the default, as export.PlanOptions would.
func withFormats(o Options) Options {
	if o.Formats == nil {
		o.Formats = testFormats
	}
	if o.DefaultFormat == "" {
		o.DefaultFormat = "json"
	}
	return o
}

// span returns the ids lo..hi.
func span(lo, hi int64) []int64 {
	var out []int64
	for i := lo; i <= hi; i++ {
		out = append(out, i)
	}
	return out
}

// join concatenates id lists.
func join(parts ...[]int64) []int64 {
	var out []int64
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// except returns 1..33 without the given ids.
func except(drop ...int64) []int64 {
	var out []int64
	for _, i := range span(1, 33) {
		keep := true
		for _, d := range drop {
			keep = keep && i != d
		}
		if keep {
			out = append(out, i)
		}
	}
	return out
}

func TestReferenceExampleRequest(t *testing.T) {
	snap := fixtureStore(t)
	e := newEngine(t, snap)
	const q = "limit=1&offset=0&orderByField=duration&orderByDirection=asc&format=json&filters[0][key]=date&filters[0][comparator]=between&filters[0][from]=2024-05-10&filters[0][to]=2024-05-11&filters[1][key]=action&filters[1][comparator]=in&filters[1][values][]=writeAction&filters[1][values][]=statusAction"
	p := mustParse(t, q, Options{})
	got := fetch(t, e, snap, p)

	// The expected row is the reference's example, first line of the fixture.
	raw, err := os.ReadFile(filepath.Join("testdata", "events.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(strings.SplitN(string(raw), "\n", 2)[0]))
	dec.UseNumber()
	var want map[string]any
	if err := dec.Decode(&want); err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		switch x := v.(type) {
		case json.Number:
			if n, err := x.Int64(); err == nil {
				want[k] = n
			} else {
				want[k], _ = x.Float64()
			}
		case []any:
			l := []string{}
			for _, s := range x {
				l = append(l, s.(string))
			}
			want[k] = l
		}
	}
	if len(got) != 1 {
		t.Fatalf("got %d rows, want 1", len(got))
	}
	if !reflect.DeepEqual(got[0], want) {
		t.Errorf("row mismatch\n got %v\nwant %v", got[0], want)
	}

	// The same request without the limit: the whole ordered page, nulls last.
	p.Limit = 0
	if g, w := ids(t, e, snap, p), []int64{1, 3, 7, 6}; !reflect.DeepEqual(g, w) {
		t.Errorf("unlimited ids = %v, want %v", g, w)
	}
	n, err := e.Count(context.Background(), snap, p)
	if err != nil || n != 4 {
		t.Errorf("Count = %d, %v; want 4", n, err)
	}
}

func TestSchema(t *testing.T) {
	snap := fixtureStore(t)
	e := newEngine(t, snap)
	for _, s := range []data.Snapshot{snap, {}} { // also an empty store
		rr, err := e.Records(context.Background(), s, mustParse(t, "limit=1", Options{}))
		if err != nil {
			t.Fatal(err)
		}
		schema := rr.Schema()
		fields := data.Fields()
		if schema.NumFields() != len(fields) {
			t.Fatalf("%d columns, want %d", schema.NumFields(), len(fields))
		}
		for i, f := range fields {
			got := schema.Field(i)
			var want arrow.DataType
			switch f.Kind {
			case data.KindTimestamp:
				want = &arrow.TimestampType{Unit: arrow.Microsecond}
			case data.KindInt, data.KindFlag:
				want = arrow.PrimitiveTypes.Int64
			case data.KindFloat:
				want = arrow.PrimitiveTypes.Float64
			case data.KindList:
				want = arrow.ListOf(arrow.BinaryTypes.String)
			default:
				want = arrow.BinaryTypes.String
			}
			if got.Name != f.Name || !arrow.TypeEqual(got.Type, want) {
				t.Errorf("column %d = %s %s, want %s %s", i, got.Name, got.Type, f.Name, want)
			}
		}
		rr.Release()
	}
}

// filter builds the parameters of one filter at index 0 plus order by id asc.
func filter(key, cmp string, operands ...string) string {
	v := url.Values{}
	v.Set("orderByField", "userWorklogId")
	v.Set("orderByDirection", "asc")
	v.Set("filters[0][key]", key)
	v.Set("filters[0][comparator]", cmp)
	for i := 0; i+1 < len(operands); i += 2 {
		k := "filters[0][" + operands[i] + "]"
		if operands[i] == "values[]" {
			k = "filters[0][values][]"
		}
		v.Add(k, operands[i+1])
	}
	return v.Encode()
}

func TestComparators(t *testing.T) {
	snap := fixtureStore(t)
	e := newEngine(t, snap)
	boring := span(10, 33)
	tests := []struct {
		name  string
		query string
		want  []int64
	}{
		// date-time
		{"date between dates covers the whole to-day", filter("date", "between", "from", "2024-05-10", "to", "2024-05-11"), []int64{1, 2, 3, 6, 7}},
		{"date between date-times is inclusive", filter("date", "between", "from", "2024-05-10 09:00:00", "to", "2024-05-10 10:00:00"), []int64{2, 7}},
		{"date equals a date means midnight", filter("date", "equals", "value", "2024-05-12"), []int64{4}},
		{"date equals RFC 3339 converts to UTC", filter("date", "equals", "value", "2024-05-10T16:52:37+02:00"), []int64{1}},
		{"date notEquals", filter("date", "notEquals", "value", "2024-05-12 00:00:00"), except(4)},
		{"date gt", filter("date", "gt", "value", "2024-06-01"), span(26, 32)},
		{"date gte", filter("date", "gte", "value", "2024-06-01"), join([]int64{9}, span(26, 32))},
		{"date lt", filter("date", "lt", "value", "2024-03-02"), []int64{10, 33}},
		{"date lte", filter("date", "lte", "value", "2024-03-02 08:00:00"), []int64{10, 11, 33}},
		{"date in", filter("date", "in", "values[]", "2024-05-12", "values[]", "2024-06-01 00:00:00"), []int64{4, 9}},
		{"date notIn", filter("date", "notIn", "values[]", "2024-05-12"), except(4)},
		{"date isNull", filter("date", "isNull"), nil},
		{"date isNotNull", filter("date", "isNotNull"), span(1, 33)},
		{"closingDateForSLA isNull", filter("closingDateForSLA", "isNull"), join([]int64{2}, boring)},
		{"closingDateForSLA isNotNull", filter("closingDateForSLA", "isNotNull"), []int64{1, 3, 4, 5, 6, 7, 8, 9}},
		{"pendingDueBy between one day", filter("pendingDueBy", "between", "from", "2024-05-12", "to", "2024-05-12"), []int64{2}},
		// integer
		{"duration equals", filter("duration", "equals", "value", "206"), []int64{1}},
		{"duration notEquals keeps nulls", filter("duration", "notEquals", "value", "30"), span(1, 9)},
		{"duration gt", filter("duration", "gt", "value", "206"), []int64{3, 7}},
		{"duration gte", filter("duration", "gte", "value", "206"), []int64{1, 3, 7}},
		{"duration lt", filter("duration", "lt", "value", "5"), []int64{4, 5, 9}},
		{"duration lte", filter("duration", "lte", "value", "5"), []int64{2, 4, 5, 9}},
		{"duration between", filter("duration", "between", "from", "1", "to", "7"), []int64{2, 4, 5, 8}},
		{"duration in", filter("duration", "in", "values[]", "0", "values[]", "400"), []int64{7, 9}},
		{"duration notIn keeps nulls", filter("duration", "notIn", "values[]", "30"), span(1, 9)},
		{"duration isNull", filter("duration", "isNull"), []int64{6}},
		{"duration isNotNull", filter("duration", "isNotNull"), except(6)},
		{"negative integer", filter("netSecondsClosedAfterSLA", "lt", "value", "-1"), []int64{1, 3, 4, 5, 6, 7, 8, 9}},
		// flag
		{"flag equals", filter("reOpened", "equals", "value", "1"), []int64{2}},
		{"flag notEquals", filter("reOpened", "notEquals", "value", "1"), except(2)},
		{"flag in", filter("skippedTicket", "in", "values[]", "1"), []int64{5}},
		{"flag gt", filter("customerIdentifiedCorrectly", "lt", "value", "1"), []int64{8}},
		// float
		{"float gt", filter("textAssistanceAccuracy", "gt", "value", "0.5"), []int64{3, 4}},
		{"float gte", filter("textAssistanceAccuracy", "gte", "value", "0.5"), []int64{2, 3, 4}},
		{"float lt", filter("textAssistanceAccuracy", "lt", "value", "0.5"), []int64{5, 9}},
		{"float lte", filter("textAssistanceAccuracy", "lte", "value", ".25"), []int64{5, 9}},
		{"float between", filter("textAssistanceAccuracy", "between", "from", "0.25", "to", "0.9"), []int64{2, 3, 5}},
		{"float equals an integer text", filter("textAssistanceAccuracy", "equals", "value", "1"), []int64{4}},
		{"float notEquals keeps nulls", filter("textAssistanceAccuracy", "notEquals", "value", "0"), except(9)},
		{"float in", filter("textAssistanceAccuracy", "in", "values[]", "0.5", "values[]", "1e0"), []int64{2, 4}},
		{"float isNotNull", filter("textAssistanceAccuracy", "isNotNull"), []int64{2, 3, 4, 5, 9}},
		// string
		{"string equals is case-sensitive", filter("name", "equals", "value", "a"), []int64{2}},
		{"string equals with a quote", filter("name", "equals", "value", "O'Brien"), []int64{9}},
		{"string notEquals", filter("name", "notEquals", "value", "a"), except(2)},
		{"string contains is case-insensitive", filter("name", "contains", "value", "A"), join([]int64{1, 2, 7}, boring)},
		{"string contains % and _ literally", filter("name", "contains", "value", "%_"), []int64{8}},
		{"string contains _ literally", filter("name", "contains", "value", "_"), []int64{8}},
		{"string contains non-ASCII", filter("name", "contains", "value", "Ä"), []int64{4}},
		{"string notContains", filter("name", "notContains", "value", "agent"), span(1, 9)},
		{"string notContains keeps nulls", filter("statusActionDetail", "notContains", "value", "solved"), except(7)},
		{"string startsWith", filter("name", "startsWith", "value", "o'b"), []int64{9}},
		{"string startsWith % literally", filter("name", "startsWith", "value", "%"), nil},
		{"string in", filter("name", "in", "values[]", "a", "values[]", "b", "values[]", "ä"), []int64{2, 4, 6}},
		{"string notIn", filter("name", "notIn", "values[]", "Zoe"), except(5)},
		{"string isNull", filter("statusActionDetail", "isNull"), except(6, 7)},
		{"string isNotNull", filter("statusActionDetail", "isNotNull"), []int64{6, 7}},
		// enum
		{"enum equals", filter("action", "equals", "value", "statusAction"), []int64{6, 7}},
		{"enum notEquals", filter("action", "notEquals", "value", "closeAction"), []int64{1, 2, 3, 4, 5, 6, 7, 9}},
		{"enum in", filter("action", "in", "values[]", "writeAction", "values[]", "statusAction"), []int64{1, 3, 4, 5, 6, 7}},
		{"enum notIn", filter("action", "notIn", "values[]", "closeAction"), []int64{1, 2, 3, 4, 5, 6, 7, 9}},
		{"enum contains", filter("action", "contains", "value", "STATUS"), []int64{6, 7}},
		{"enum startsWith", filter("action", "startsWith", "value", "auto"), []int64{9}},
		{"enum isNull", filter("channel", "isNull"), []int64{6}},
		{"enum notEquals keeps nulls", filter("channel", "notEquals", "value", "email"), except(1, 5)},
		{"enum notIn keeps nulls", filter("channel", "notIn", "values[]", "portal"), span(1, 9)},
		// list
		{"list contains is element membership, case-insensitive", filter("tags", "contains", "value", "billing"), []int64{1, 3, 5, 9}},
		{"list contains is not substring", filter("tags", "contains", "value", "Bill"), nil},
		{"list contains on another list", filter("aiAgentsUsed", "contains", "value", "GPT-4"), []int64{3, 4}},
		{"list notContains keeps nulls", filter("tags", "notContains", "value", "billing"), join([]int64{2, 4, 6, 7, 8}, boring)},
		{"list startsWith any element", filter("tags", "startsWith", "value", "pay"), []int64{1, 7}},
		{"list in: any element", filter("tags", "in", "values[]", "Shipping", "values[]", "General"), join([]int64{4, 9}, boring)},
		{"list notIn: no element", filter("tags", "notIn", "values[]", "General"), span(1, 9)},
		{"list equals a whole list", filter("tags", "equals", "value", `["Billing", "Payment reminder"]`), []int64{1}},
		{"list equals empty", filter("tags", "equals", "value", `[]`), []int64{2}},
		{"list notEquals keeps nulls", filter("tags", "notEquals", "value", `["General"]`), span(1, 9)},
		{"list isNull", filter("teams", "isNull"), []int64{4}},
		{"list isNotNull", filter("tags", "isNotNull"), except(6)},
		// several filters are AND-ed
		{"filters are AND-ed", "orderByField=userWorklogId&orderByDirection=asc&filters[3][key]=tags&filters[3][comparator]=contains&filters[3][value]=billing&filters[7][key]=date&filters[7][comparator]=lt&filters[7][value]=2024-05-10", []int64{5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, tc.query, Options{})
			got := ids(t, e, snap, p)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ids = %v, want %v", got, tc.want)
			}
			n, err := e.Count(context.Background(), snap, p)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(len(tc.want)) {
				t.Errorf("Count = %d, want %d", n, len(tc.want))
			}
		})
	}
}

func TestOrdering(t *testing.T) {
	snap := fixtureStore(t)
	e := newEngine(t, snap)
	boring := span(10, 33)
	reversed := func(in []int64) []int64 {
		out := make([]int64, len(in))
		for i, v := range in {
			out[len(in)-1-i] = v
		}
		return out
	}
	// Names in byte order: "100%_sure" < "A" < "Agent 10".."Agent 33" < "B"
	// < "Jane Doe" < "O'Brien" < "Zoe" < "a" < "b" < "ä".
	byName := join([]int64{8, 7}, span(10, 32), []int64{33, 3, 1, 9, 5, 2, 6, 4})
	tests := []struct {
		name  string
		query string
		opts  Options
		want  []int64
	}{
		{"strings in byte order asc", "orderByField=name&orderByDirection=asc", Options{}, byName},
		{"strings in byte order desc", "orderByField=name&orderByDirection=desc", Options{}, reversed(byName)},
		{"nulls last asc, ties by id asc", "orderByField=duration&orderByDirection=asc", Options{},
			join([]int64{9, 4, 5, 2, 8}, boring, []int64{1, 3, 7, 6})},
		{"nulls last desc, ties by id desc", "orderByField=duration", Options{},
			join([]int64{7, 3, 1}, reversed(boring), []int64{8, 2, 5, 4, 9, 6})},
		{"default is date desc", "", Options{},
			join(reversed(span(26, 32)), []int64{9, 4, 3, 6, 1, 7, 2, 5, 8}, reversed(span(18, 25)), reversed(span(11, 17)), []int64{33, 10})},
		{"date asc", "orderByDirection=ASC", Options{},
			join([]int64{10, 33}, span(11, 17), span(18, 25), []int64{8, 5, 2, 7, 1, 6, 3, 4, 9}, span(26, 32))},
		{"day precision orders by date part, ties by id", "orderByDirection=asc&filters[0][key]=date&filters[0][comparator]=between&filters[0][from]=2024-05-10&filters[0][to]=2024-05-11",
			Options{DayPrecisionDate: true}, []int64{1, 2, 7, 3, 6}},
		{"lists order element-wise", "orderByField=tags&orderByDirection=asc&filters[0][key]=userWorklogId&filters[0][comparator]=lte&filters[0][value]=9", Options{},
			// [] < ["50%_off"] < ["Billing"] < ["Billing","Payment reminder"] < ["Billing","Shipping"] < ["Payment reminder"] < ["Shipping"] < ["billing"], null last
			[]int64{2, 8, 5, 1, 9, 7, 4, 3, 6}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ids(t, e, snap, mustParse(t, tc.query, tc.opts))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ids = %v\n          want %v", got, tc.want)
			}
		})
	}
}

func TestDayPrecisionFilters(t *testing.T) {
	snap := fixtureStore(t)
	e := newEngine(t, snap)
	opts := Options{DayPrecisionDate: true}
	tests := []struct {
		name  string
		query string
		want  []int64
	}{
		{"equals ignores the time of the operand", filter("date", "equals", "value", "2024-05-10 15:00:00"), []int64{1, 2, 7}},
		{"between days", filter("date", "between", "from", "2024-05-11", "to", "2024-05-12 00:00:00"), []int64{3, 4, 6}},
		{"gt a day excludes that whole day", filter("date", "gt", "value", "2024-05-11 01:00:00"), join([]int64{4, 9}, span(26, 32))},
		{"other date-times at day precision too", filter("pendingDueBy", "equals", "value", "2024-05-12"), []int64{2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ids(t, e, snap, mustParse(t, tc.query, opts))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ids = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPagination(t *testing.T) {
	snap := fixtureStore(t)
	e := newEngine(t, snap)
	for _, order := range []string{"", "orderByField=duration&orderByDirection=asc", "orderByField=name", "orderByField=tags&orderByDirection=asc", "orderByField=channel"} {
		for _, size := range []int{1, 4, 7} {
			t.Run(fmt.Sprintf("%s/%d", order, size), func(t *testing.T) {
				full := ids(t, e, snap, mustParse(t, order, Options{}))
				if len(full) != 33 {
					t.Fatalf("full export has %d rows, want 33", len(full))
				}
				var paged []int64
				for off := 0; off < len(full)+size; off += size {
					p := mustParse(t, fmt.Sprintf("%s&limit=%d&offset=%d", order, size, off), Options{})
					page := ids(t, e, snap, p)
					if len(page) > size {
						t.Fatalf("page at %d has %d rows", off, len(page))
					}
					paged = append(paged, page...)
					n, err := e.Count(context.Background(), snap, p)
					if err != nil || n != 33 {
						t.Fatalf("Count = %d, %v; want 33 (before limit/offset)", n, err)
					}
				}
				if !reflect.DeepEqual(paged, full) {
					t.Errorf("pages concatenate to %v\nwant %v", paged, full)
				}
			})
		}
	}
}

func TestInjectionIsInert(t *testing.T) {
	snap := fixtureStore(t)
	e := newEngine(t, snap)
	refused := []string{
		"filters[0][key]=date; DROP TABLE x&filters[0][comparator]=isNull",
		"filters[0][key]=date&filters[0][comparator]=isNull; DROP TABLE x",
		`orderByField=date" DESC; --`,
		"orderByDirection=desc; DROP TABLE x",
		"filters[0][key]=name&filters[0][comparator]=equals&filters[0][value]=a&filters[0][value' OR 1=1 --]=x",
	}
	for _, q := range refused {
		v, err := url.ParseQuery(strings.ReplaceAll(q, ";", "%3B"))
		if err != nil {
			t.Fatal(err)
		}
		var pe *ParamError
		if _, err := Parse(v, Options{}); !errors.As(err, &pe) {
			t.Errorf("Parse(%q) = %v, want a ParamError", q, err)
		}
	}
	literal := []struct {
		query string
		want  []int64
	}{
		{filter("name", "equals", "value", "x' OR '1'='1"), nil},
		{filter("name", "contains", "value", "x' OR '1'='1"), nil},
		{filter("name", "in", "values[]", "a') OR ('1'='1", "values[]", "a"), []int64{2}},
		{filter("tags", "contains", "value", "'); DROP TABLE t; --"), nil},
		{filter("name", "startsWith", "value", `\`), nil},
	}
	for _, tc := range literal {
		if got := ids(t, e, snap, mustParse(t, tc.query, Options{})); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: ids = %v, want %v", tc.query, got, tc.want)
		}
	}
	// The engine keeps answering correctly afterwards.
	n, err := e.Count(context.Background(), snap, mustParse(t, "", Options{}))
	if err != nil || n != 33 {
		t.Errorf("Count after injection attempts = %d, %v; want 33", n, err)
	}
}

func TestPartitionPruning(t *testing.T) {
	snap := fixtureStore(t)
	// A file of a month no request below needs, that DuckDB cannot read:
	// any query that opened it would fail.
	bad := filepath.Join(t.TempDir(), "worklog", "month=2023-01", "part-0.parquet")
	if err := os.MkdirAll(filepath.Dir(bad), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("not parquet"), 0o644); err != nil {
		t.Fatal(err)
	}
	snap.Files = append([]data.PartFile{{Month: "2023-01", Path: bad, Rows: 1}}, snap.Files...)
	e := newEngine(t, snap)

	pruned := []struct {
		query string
		want  []int64
	}{
		{filter("date", "between", "from", "2024-05-10", "to", "2024-05-11"), []int64{1, 2, 3, 6, 7}},
		{filter("date", "gte", "value", "2024-06-01"), join([]int64{9}, span(26, 32))},
		{filter("date", "in", "values[]", "2024-05-12"), []int64{4}},
	}
	for _, tc := range pruned {
		p := mustParse(t, tc.query, Options{})
		if got := ids(t, e, snap, p); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: ids = %v, want %v", tc.query, got, tc.want)
		}
		if _, err := e.Count(context.Background(), snap, p); err != nil {
			t.Errorf("%s: Count: %v", tc.query, err)
		}
	}
	// Without a date filter the unreadable month is read, and fails: the
	// successes above are due to pruning.
	if _, err := e.Count(context.Background(), snap, mustParse(t, filter("duration", "equals", "value", "1"), Options{})); err == nil {
		t.Error("Count over all months succeeded; the unreadable file was not read")
	}
}

func TestRecordsCancel(t *testing.T) {
	snap := fixtureStore(t)
	e := newEngine(t, snap)
	ctx, cancel := context.WithCancel(context.Background())
	rr, err := e.Records(ctx, snap, mustParse(t, "", Options{}))
	if err != nil {
		t.Fatal(err)
	}
	if !rr.Next() {
		t.Fatalf("no first batch: %v", rr.Err())
	}
	cancel()
	for rr.Next() {
	}
	if !errors.Is(rr.Err(), context.Canceled) {
		t.Errorf("Err after cancel = %v, want context.Canceled", rr.Err())
	}
	rr.Release()

	// A cancelled context refuses to start; the engine still works after.
	if _, err := e.Records(ctx, snap, mustParse(t, "", Options{})); err == nil {
		t.Error("Records with a cancelled context succeeded")
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	if n, err := e.Count(ctx2, snap, mustParse(t, "", Options{})); err != nil || n != 33 {
		t.Errorf("Count after cancel = %d, %v", n, err)
	}
}

// The chunks of a chunked export are read on a database of half the cores'
// threads (chunkThreads), the engine's other queries on one of Threads (all
// cores by default); an engine of that few threads already reads its chunks
// on its one database.
func TestChunkDatabaseThreads(t *testing.T) {
	threads := func(db *sql.DB) int {
		var n int
		if err := db.QueryRow("SELECT current_setting('threads')").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	snap := data.Snapshot{}
	for _, tc := range []struct {
		opts             int
		main, chunk      int
		sharedWithChunks bool
	}{
		{0, runtime.NumCPU(), chunkThreads(runtime.NumCPU()), runtime.NumCPU() == 1},
		{1, 1, 1, true},
	} {
		e, err := NewEngine(fixedSource{snap}, EngineOptions{Threads: tc.opts, TempDirectory: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if got := threads(e.db); got != tc.main {
			t.Errorf("Threads %d: the engine's database has %d threads, want %d", tc.opts, got, tc.main)
		}
		if got := threads(e.chunkDB); got != tc.chunk {
			t.Errorf("Threads %d: the chunks' database has %d threads, want %d", tc.opts, got, tc.chunk)
		}
		if (e.chunkDB == e.db) != tc.sharedWithChunks {
			t.Errorf("Threads %d: one database for both: %v, want %v", tc.opts, e.chunkDB == e.db, tc.sharedWithChunks)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for cores, want := range map[int]int{1: 1, 2: 1, 3: 1, 4: 2, 16: 8} {
		if got := chunkThreads(cores); got != want {
			t.Errorf("chunkThreads(%d) = %d, want %d", cores, got, want)
		}
	}
}

// The chunks' database and the engine's share one memory limit: the
// setting (or DuckDB's default) is split, not given to each; a limit too
// small to share keeps one database.
func TestChunkDatabaseSharesMemoryLimit(t *testing.T) {
	if chunkThreads(runtime.NumCPU()) >= runtime.NumCPU() {
		t.Skip("one core: the chunks are read on the engine's database")
	}
	for _, tc := range []struct {
		setting string
		want    int64 // the limit both databases share, in bytes
		shared  bool
	}{
		{"1GB", 1e9, true},
		{"2GiB", 2 << 30, true},
		{"200MB", 200e6, false},
	} {
		e, err := NewEngine(fixedSource{data.Snapshot{}}, EngineOptions{MemoryLimit: tc.setting, TempDirectory: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		main, err := memoryLimit(e.db)
		if err != nil {
			t.Fatal(err)
		}
		if (e.chunkDB != e.db) != tc.shared {
			t.Errorf("%s: a database for the chunks: %v, want %v", tc.setting, e.chunkDB != e.db, tc.shared)
		}
		total := main
		if e.chunkDB != e.db {
			chunk, err := memoryLimit(e.chunkDB)
			if err != nil {
				t.Fatal(err)
			}
			total += chunk
			// DuckDB prints limits rounded to a tenth of their unit.
			if d := chunk - tc.want/chunkMemoryShare; d > 1<<20 || d < -(1<<20) {
				t.Errorf("%s: the chunks' database may take %d bytes, want a share of %d", tc.setting, chunk, tc.want/chunkMemoryShare)
			}
		}
		if d := total - tc.want; d > 1<<20 || d < -(1<<20) {
			t.Errorf("%s: the databases may take %d bytes together, want %d", tc.setting, total, tc.want)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestParseMemorySize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"953.6 MiB", 999922073, true},
		{"1.0 GiB", 1 << 30, true},
		{"512 bytes", 512, true},
		{"18.8 GiB", 20186346291, true},
		{"", 0, false},
		{"1GB", 0, false},
		{"12 parsecs", 0, false},
		{"-1.0 GiB", 0, false},
	} {
		got, err := parseMemorySize(tc.in)
		if (err == nil) != tc.ok || tc.ok && got != tc.want {
			t.Errorf("parseMemorySize(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
