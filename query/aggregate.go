package query

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"worklog/data"
)

// This file parses the analytics endpoint's parameters (SPEC §10) into an
// AggregatePlan. Filters are the export's (buildFilter), so a filter means
// the same in both; dimensions and measures are checked against the
// catalogue's Groupable and Numeric flags and its 0/1 fields (KindFlag).

// The analytics parameters besides the export's.
const (
	paramGroupBy  = "groupBy"
	paramMeasures = "measures"
)

// Bounds of an aggregate request (SPEC §10).
const (
	// MaxDimensions is the most groupBy entries of a request.
	MaxDimensions = 4
	// MaxMeasures is the most measures of a request.
	MaxMeasures = 20
	// DefaultGroupLimit is the page size of groups when limit is absent.
	DefaultGroupLimit = 1000
	// MaxGroupLimit is the largest limit of an aggregate request.
	MaxGroupLimit = 10000
)

// Bucket is a time bucket of a date-time dimension, e.g. "week" in
// "date:week".
type Bucket string

// The time buckets, finest first.
const (
	BucketHour    Bucket = "hour"
	BucketDay     Bucket = "day"
	BucketWeek    Bucket = "week"
	BucketMonth   Bucket = "month"
	BucketQuarter Bucket = "quarter"
	BucketYear    Bucket = "year"
)

// Buckets lists the time buckets, finest first, as OpenAPI documents them.
func Buckets() []Bucket {
	return []Bucket{BucketHour, BucketDay, BucketWeek, BucketMonth, BucketQuarter, BucketYear}
}

// MeasureKind is what a measure computes.
type MeasureKind string

// The measure kinds. Those without a field are written bare ("count"); the
// others take one catalogue field ("avg(duration)").
const (
	// MeasureCount is the number of events (of group entries, for a list
	// dimension).
	MeasureCount MeasureKind = "count"
	// MeasureTickets is the number of distinct ticketId.
	MeasureTickets MeasureKind = "tickets"
	// MeasureAgents is the number of distinct agents: userId, or name
	// where userId is null.
	MeasureAgents MeasureKind = "agents"
	// MeasureSLAMetRate is the share of events with
	// netSecondsClosedAfterSLA ≤ 0 among those where it is not null.
	MeasureSLAMetRate MeasureKind = "slaMetRate"
	// MeasureSum, MeasureAvg, MeasureMin, MeasureMax and the percentiles
	// apply to a Numeric field.
	MeasureSum MeasureKind = "sum"
	MeasureAvg MeasureKind = "avg"
	MeasureMin MeasureKind = "min"
	MeasureMax MeasureKind = "max"
	MeasureP50 MeasureKind = "p50"
	MeasureP90 MeasureKind = "p90"
	MeasureP95 MeasureKind = "p95"
	// MeasureRate is the share of 1 among the non-null values of a 0/1 field.
	MeasureRate MeasureKind = "rate"
)

// slaField is the field slaMetRate reads.
const slaField = "netSecondsClosedAfterSLA"

// agentIDField and agentNameField identify an agent: the userId, or the
// name where userId is null (SPEC §6, §10).
const (
	agentIDField   = "userId"
	agentNameField = "name"
)

// ticketField is the field the tickets measure counts.
const ticketField = "ticketId"

// MeasureDoc describes one measure kind for clients (OpenAPI).
type MeasureDoc struct {
	// Kind is the measure's name, as written bare or before "(F)".
	Kind MeasureKind
	// Fields lists the fields F it takes, in catalogue order; empty for a
	// bare measure.
	Fields []string
	// Integer says the values are integers (counts; sum, min and max of an
	// integer field); else numbers.
	Integer bool
	// Description says what it computes.
	Description string
}

// measureKinds lists every measure kind in the order of SPEC §10.
var measureKinds = []MeasureKind{MeasureCount, MeasureTickets, MeasureAgents,
	MeasureSum, MeasureAvg, MeasureMin, MeasureMax, MeasureP50, MeasureP90, MeasureP95,
	MeasureRate, MeasureSLAMetRate}

// quantiles are the fractions of the percentile measures.
var quantiles = map[MeasureKind]string{MeasureP50: "0.5", MeasureP90: "0.9", MeasureP95: "0.95"}

// MeasureDocs documents the measure kinds, fields taken from the catalogue.
func MeasureDocs() []MeasureDoc {
	desc := map[MeasureKind]string{
		MeasureCount:      "number of events (an event counts once in each group of a list dimension)",
		MeasureTickets:    "number of distinct ticketId",
		MeasureAgents:     "number of distinct agents (userId, or name where userId is null)",
		MeasureSum:        "sum of F",
		MeasureAvg:        "mean of F (avg(duration) is the average handling time)",
		MeasureMin:        "smallest F",
		MeasureMax:        "largest F",
		MeasureP50:        "median of F, continuous (interpolated)",
		MeasureP90:        "90th percentile of F, continuous (interpolated)",
		MeasureP95:        "95th percentile of F, continuous (interpolated)",
		MeasureRate:       "share of 1 among the non-null values of the 0/1 field F",
		MeasureSLAMetRate: "share of events with netSecondsClosedAfterSLA ≤ 0 among those where it is not null",
	}
	var out []MeasureDoc
	for _, k := range measureKinds {
		d := MeasureDoc{Kind: k, Fields: measureFields(k), Description: desc[k]}
		d.Integer = k == MeasureCount || k == MeasureTickets || k == MeasureAgents
		out = append(out, d)
	}
	return out
}

// measureFields lists the catalogue fields a measure kind takes.
func measureFields(k MeasureKind) []string {
	var out []string
	for _, f := range data.Fields() {
		if takesField(k, f) {
			out = append(out, f.Name)
		}
	}
	return out
}

// takesField reports whether measure kind k applies to field f.
func takesField(k MeasureKind, f data.Field) bool {
	switch k {
	case MeasureSum, MeasureAvg, MeasureMin, MeasureMax, MeasureP50, MeasureP90, MeasureP95:
		return f.Numeric
	case MeasureRate:
		return f.Kind == data.KindFlag
	}
	return false
}

// DimensionNames lists every groupBy value a request may use, in catalogue
// order, a date-time field once per bucket ("date:hour", ...).
func DimensionNames() []string {
	var out []string
	for _, f := range data.Fields() {
		if !f.Groupable {
			continue
		}
		if f.Kind == data.KindTimestamp {
			for _, b := range Buckets() {
				out = append(out, f.Name+":"+string(b))
			}
			continue
		}
		out = append(out, f.Name)
	}
	return out
}

// Dimension is one validated groupBy entry.
type Dimension struct {
	// Name is the entry as written, e.g. "date:week" or "teams"; it names
	// the result column.
	Name string
	// Field is the catalogue field grouped by.
	Field data.Field
	// Bucket is the time bucket of a date-time field, else "".
	Bucket Bucket
	// ByAgent groups the name field by agent (userId, or name where userId
	// is null) rather than by its text, and adds a userId column so that the
	// privacy layer can label each group with the agent's pseudonym.
	ByAgent bool
}

// Measure is one validated measures entry.
type Measure struct {
	// Name is the entry as written, e.g. "avg(duration)"; it names the
	// result column.
	Name string
	// Kind is what it computes.
	Kind MeasureKind
	// Field is the field of sum, avg, min, max, the percentiles and rate;
	// the zero Field otherwise.
	Field data.Field
}

// Integer reports whether the measure's values are integers.
func (m Measure) Integer() bool {
	switch m.Kind {
	case MeasureCount, MeasureTickets, MeasureAgents:
		return true
	case MeasureSum, MeasureMin, MeasureMax:
		return m.Field.Kind != data.KindFloat
	}
	return false
}

// AggregateOptions are the server settings and the privacy rules that shape
// an aggregate request. The embedded Options apply to the filters as in an
// export (FieldAllowed, DayPrecisionDate, MaxFilters, MaxValues) and give
// the default format.
type AggregateOptions struct {
	Options
	// ReadAllowed, when set, is asked about every field a dimension or a
	// measure reads (not the counts tickets and agents, which reveal no
	// identifier). A non-nil error refuses it with code
	// field_not_available. Nil allows every field.
	ReadAllowed func(field string) error
	// GroupAllowed, when set, is asked about every field grouped by, after
	// ReadAllowed; it refuses grouping by agent while small groups are
	// suppressed.
	GroupAllowed func(field string) error
	// NameByAgent groups `name` by agent and leaves the labelling to the
	// privacy layer (the levels that pseudonymize names).
	NameByAgent bool
	// MinGroupAgents, when > 1, leaves out the groups with fewer distinct
	// agents (the privacy policy decides at which levels it applies).
	MinGroupAgents int
	// AgentLabel, with NameByAgent, is the label the privacy layer gives an
	// agent (userId, or name where it is nil): groups by agent are ordered
	// by it, as shown, never by the hidden user ids.
	AgentLabel func(userID *int64, name string) string
}

// AggregatePlan is a validated analytics request.
type AggregatePlan struct {
	// Format is the format parameter (one of Options.Formats), else
	// Options.DefaultFormat (which may be empty: the caller negotiates).
	Format string
	// Dimensions are the groupBy entries, in order (0–4).
	Dimensions []Dimension
	// Measures are the measures entries, in order (1–20).
	Measures []Measure
	// Filters are AND-ed, as in an export.
	Filters []Filter
	// OrderBy is the name of a dimension or measure to order groups by;
	// "" orders by the dimensions in order.
	OrderBy string
	// Desc orders descending; nulls sort last either way, and ties are
	// broken by the dimensions in order, ascending.
	Desc bool
	// Limit is the number of groups returned (1..MaxGroupLimit) and Offset
	// the number skipped.
	Limit, Offset int
	// DayPrecisionDate compares `date` by its date part only (filters).
	DayPrecisionDate bool
	// MinGroupAgents > 1 leaves out groups with fewer distinct agents.
	MinGroupAgents int
	// AgentLabel labels agents for ordering groups by agent (see
	// AggregateOptions.AgentLabel); nil orders them by name and userId.
	AgentLabel func(userID *int64, name string) string
}

// Columns returns the result's column names in order: the dimensions, then
// the measures.
func (p *AggregatePlan) Columns() []string {
	var out []string
	for _, d := range p.Dimensions {
		out = append(out, d.Name)
	}
	for _, m := range p.Measures {
		out = append(out, m.Name)
	}
	return out
}

// listParam collects the entries of groupBy[] or measures[]: "name[]"
// (repeated, in request order), "name[n]" (by n) or bare "name"; the two
// spellings may not be mixed.
type listParam struct {
	name    string
	plain   []string       // name[] and name, in request order
	indexed map[int]string // name[n]
}

// add files one parameter under the list.
func (l *listParam) add(k string, vs []string) error {
	rest := k[len(l.name):]
	switch {
	case rest == "" || rest == "[]":
		l.plain = append(l.plain, vs...)
	case strings.HasPrefix(rest, "[") && strings.HasSuffix(rest, "]"):
		n, ok := parseIndex(rest[1 : len(rest)-1])
		if !ok {
			return invalid(k, "index %q is not a non-negative integer; write %s[] or %s[0], %s[1], ...", rest[1:len(rest)-1], l.name, l.name, l.name)
		}
		if len(vs) != 1 {
			return invalid(k, "given %d times; give it once", len(vs))
		}
		if l.indexed == nil {
			l.indexed = map[int]string{}
		}
		l.indexed[n] = vs[0]
	default:
		return invalid(k, "not a %s parameter; write %s[] or %s[0], %s[1], ...", l.name, l.name, l.name, l.name)
	}
	if len(l.plain) > 0 && len(l.indexed) > 0 {
		return invalid(k, "write either %s[] (repeated) or %s[0], %s[1], ..., not both", l.name, l.name, l.name)
	}
	return nil
}

// entry is one list entry and the parameter name errors give it.
type entry struct {
	param, text string
}

// entries returns the entries in order, each with the parameter name that
// errors cite: name[i] with i its position (or its index as written).
func (l *listParam) entries() []entry {
	var out []entry
	if len(l.indexed) > 0 {
		idx := make([]int, 0, len(l.indexed))
		for i := range l.indexed {
			idx = append(idx, i)
		}
		sort.Ints(idx)
		for _, i := range idx {
			out = append(out, entry{fmt.Sprintf("%s[%d]", l.name, i), l.indexed[i]})
		}
		return out
	}
	for i, v := range l.plain {
		out = append(out, entry{fmt.Sprintf("%s[%d]", l.name, i), v})
	}
	return out
}

// AggregateParams lists the parameters ParseAggregate accepts, in the order
// documents name them.
func AggregateParams() []string {
	return []string{paramGroupBy + "[]", paramMeasures + "[]", "filters[i][...]", paramOrderBy, paramDirection, paramLimit, paramOffset, paramFormat}
}

// ParseAggregate validates the analytics parameters (SPEC §10) and returns
// the plan. Every error is a *ParamError naming the offending parameter
// (groupBy[1], measures[0], filters[2][key], ...). A parameter the endpoint
// does not know is refused.
func ParseAggregate(values url.Values, opts AggregateOptions) (*AggregatePlan, error) {
	maxFilters, maxValues := opts.MaxFilters, opts.MaxValues
	if maxFilters <= 0 {
		maxFilters = DefaultMaxFilters
	}
	if maxValues <= 0 {
		maxValues = DefaultMaxValues
	}
	p := &AggregatePlan{Format: opts.DefaultFormat, Limit: DefaultGroupLimit,
		DayPrecisionDate: opts.DayPrecisionDate, AgentLabel: opts.AgentLabel}
	if opts.MinGroupAgents > 1 {
		p.MinGroupAgents = opts.MinGroupAgents
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	groupBy := &listParam{name: paramGroupBy}
	measures := &listParam{name: paramMeasures}
	raw := map[int]*rawFilter{}
	var orderBy, orderParam string
	for _, k := range keys {
		vs := values[k]
		switch {
		case k == paramFilters || strings.HasPrefix(k, paramFilters+"["):
			if err := collectFilterParam(raw, k, vs); err != nil {
				return nil, err
			}
			if len(raw) > maxFilters {
				return nil, invalid(paramFilters, "at most %d filters are allowed", maxFilters)
			}
			continue
		case k == paramGroupBy || strings.HasPrefix(k, paramGroupBy+"["):
			if err := groupBy.add(k, vs); err != nil {
				return nil, err
			}
			continue
		case k == paramMeasures || strings.HasPrefix(k, paramMeasures+"["):
			if err := measures.add(k, vs); err != nil {
				return nil, err
			}
			continue
		}
		switch k {
		case paramFormat, paramLimit, paramOffset, paramOrderBy, paramDirection:
		case "":
			continue // "?=x" names nothing
		default:
			return nil, UnknownParam(k, AggregateParams())
		}
		if len(vs) != 1 {
			return nil, invalid(k, "given %d times; give it once", len(vs))
		}
		v := vs[0]
		switch k {
		case paramFormat:
			f := strings.ToLower(v)
			if !slices.Contains(opts.Formats, f) {
				return nil, invalid(k, "unknown format %q; use one of %s", v, strings.Join(opts.Formats, ", "))
			}
			p.Format = f
		case paramLimit:
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxGroupLimit {
				return nil, invalid(k, "must be an integer from 1 to %d, got %q", MaxGroupLimit, v)
			}
			p.Limit = n
		case paramOffset:
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, invalid(k, "must be an integer ≥ 0, got %q", v)
			}
			p.Offset = n
		case paramOrderBy:
			orderBy, orderParam = v, k
		case paramDirection:
			switch strings.ToLower(v) {
			case "asc":
				p.Desc = false
			case "desc":
				p.Desc = true
			default:
				return nil, invalid(k, "must be asc or desc, got %q", v)
			}
		}
	}

	dims := groupBy.entries()
	if len(dims) > MaxDimensions {
		return nil, invalid(dims[MaxDimensions].param, "at most %d dimensions are allowed", MaxDimensions)
	}
	seen := map[string]string{}
	for _, e := range dims {
		d, err := parseDimension(e, opts)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[d.Name]; dup {
			return nil, invalid(e.param, "%q is already %s", d.Name, prev)
		}
		seen[d.Name] = e.param
		p.Dimensions = append(p.Dimensions, d)
	}
	ms := measures.entries()
	if len(ms) == 0 {
		return nil, invalid(paramMeasures+"[0]", "missing; name 1 to %d measures, e.g. measures[]=count&measures[]=avg(duration)", MaxMeasures)
	}
	if len(ms) > MaxMeasures {
		return nil, invalid(ms[MaxMeasures].param, "at most %d measures are allowed", MaxMeasures)
	}
	for _, e := range ms {
		m, err := parseMeasure(e, opts)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[m.Name]; dup {
			return nil, invalid(e.param, "%q is already %s", m.Name, prev)
		}
		seen[m.Name] = e.param
		p.Measures = append(p.Measures, m)
	}
	if orderParam != "" {
		if _, ok := seen[orderBy]; !ok {
			return nil, invalid(orderParam, "%q is neither a groupBy entry nor a measure of this request; use one of %s", orderBy, strings.Join(p.Columns(), ", "))
		}
		p.OrderBy = orderBy
	}
	filters, err := buildFilters(raw, opts.Options, maxValues)
	if err != nil {
		return nil, err
	}
	p.Filters = filters
	return p, nil
}

// parseDimension validates one groupBy entry.
func parseDimension(e entry, opts AggregateOptions) (Dimension, error) {
	name, bucket, hasBucket := strings.Cut(e.text, ":")
	f, ok := data.Lookup(name)
	if !ok || !f.Groupable {
		return Dimension{}, invalid(e.param, "cannot group by %q; use one of %s", e.text, strings.Join(DimensionNames(), ", "))
	}
	d := Dimension{Name: e.text, Field: f}
	if f.Kind == data.KindTimestamp {
		if !hasBucket {
			return Dimension{}, invalid(e.param, "group %s by a time bucket: %s:hour, :day, :week, :month, :quarter or :year", name, name)
		}
		if !slices.Contains(Buckets(), Bucket(bucket)) {
			return Dimension{}, invalid(e.param, "unknown time bucket %q; use hour, day, week, month, quarter or year", bucket)
		}
		d.Bucket = Bucket(bucket)
	} else if hasBucket {
		return Dimension{}, invalid(e.param, "only date-time fields take a time bucket; %s is a %s field", name, f.Kind)
	}
	if err := allowed(opts.ReadAllowed, f.Name, e.param); err != nil {
		return Dimension{}, err
	}
	if err := allowed(opts.GroupAllowed, f.Name, e.param); err != nil {
		return Dimension{}, err
	}
	if d.Bucket == BucketHour && opts.DayPrecisionDate && f.Privacy == data.PrivacyTimestamp {
		return Dimension{}, &ParamError{Param: e.param, Code: CodeFieldNotAvailable,
			Message: fmt.Sprintf("%s is cut to its day at this privacy level; group by %s:day or coarser", name, name)}
	}
	d.ByAgent = opts.NameByAgent && f.Name == agentNameField
	return d, nil
}

// parseMeasure validates one measures entry.
func parseMeasure(e entry, opts AggregateOptions) (Measure, error) {
	text := e.text
	switch MeasureKind(text) {
	case MeasureCount, MeasureTickets, MeasureAgents:
		return Measure{Name: text, Kind: MeasureKind(text)}, nil
	case MeasureSLAMetRate:
		f, _ := data.Lookup(slaField)
		if err := allowed(opts.ReadAllowed, f.Name, e.param); err != nil {
			return Measure{}, err
		}
		return Measure{Name: text, Kind: MeasureSLAMetRate, Field: f}, nil
	}
	fn, rest, ok := strings.Cut(text, "(")
	if !ok || !strings.HasSuffix(rest, ")") {
		return Measure{}, invalid(e.param, "unknown measure %q; use count, tickets, agents, slaMetRate, sum(F), avg(F), min(F), max(F), p50(F), p90(F), p95(F) or rate(F)", text)
	}
	kind := MeasureKind(fn)
	arg := strings.TrimSuffix(rest, ")")
	var numeric bool
	switch kind {
	case MeasureSum, MeasureAvg, MeasureMin, MeasureMax, MeasureP50, MeasureP90, MeasureP95:
		numeric = true
	case MeasureRate:
	default:
		return Measure{}, invalid(e.param, "unknown measure function %q; use sum, avg, min, max, p50, p90, p95 or rate", fn)
	}
	f, ok := data.Lookup(arg)
	if !ok || !takesField(kind, f) {
		what := "a numeric field"
		if !numeric {
			what = "a 0/1 field"
		}
		return Measure{}, invalid(e.param, "%s takes %s: one of %s; got %q", fn, what, strings.Join(measureFields(kind), ", "), arg)
	}
	if err := allowed(opts.ReadAllowed, f.Name, e.param); err != nil {
		return Measure{}, err
	}
	return Measure{Name: text, Kind: kind, Field: f}, nil
}

// allowed asks a privacy rule about a field and names the parameter in its
// refusal.
func allowed(rule func(string) error, field, param string) error {
	if rule == nil {
		return nil
	}
	if err := rule(field); err != nil {
		return &ParamError{Param: param, Code: CodeFieldNotAvailable, Message: err.Error()}
	}
	return nil
}
