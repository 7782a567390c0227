package query

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"worklog/data"
)

// The top-level parameters of SPEC §4. Any other parameter is refused
// (unknown_parameter): a misspelt `orderbyfield` or `filter[0][key]` would
// otherwise be ignored, and the user would take an unfiltered result for a
// filtered one.
const (
	paramFormat    = "format"
	paramLimit     = "limit"
	paramOffset    = "offset"
	paramCursor    = "cursor"
	paramBOM       = "bom"
	paramOrderBy   = "orderByField"
	paramDirection = "orderByDirection"
	paramFilters   = "filters"
)

// ParamAccessToken is refused with its own message on every route: a token
// in a URL ends up in proxy logs, browser history and Referer headers.
const ParamAccessToken = "access_token"

// Params lists the top-level parameters Parse accepts besides
// filters[i][...], in the order documents name them.
func Params() []string {
	return []string{paramFormat, paramLimit, paramOffset, paramCursor, paramBOM, paramOrderBy, paramDirection}
}

// UnknownParam is the error for a parameter k that an endpoint does not
// know, given the names it does know. It suggests the parameter the user
// probably meant.
func UnknownParam(k string, known []string) *ParamError {
	if k == ParamAccessToken {
		return &ParamError{Param: k, Code: CodeUnknownParameter,
			Message: "tokens are not accepted in the query string, where logs and browser history keep them; send it as Authorization: Bearer <token>"}
	}
	msg := fmt.Sprintf("unknown parameter %q", k)
	for _, p := range known {
		if strings.EqualFold(p, k) {
			return &ParamError{Param: k, Code: CodeUnknownParameter, Message: msg + fmt.Sprintf("; did you mean %s? (names are case-sensitive)", p)}
		}
	}
	if len(known) == 0 {
		return &ParamError{Param: k, Code: CodeUnknownParameter, Message: msg + "; this route takes no query parameters"}
	}
	return &ParamError{Param: k, Code: CodeUnknownParameter, Message: msg + "; the parameters are " + strings.Join(known, ", ")}
}

// unknownExportParam is UnknownParam for the export endpoint, which also
// points a misspelt filter at the right spelling.
func unknownExportParam(k string) *ParamError {
	lk := strings.ToLower(k)
	if k != ParamAccessToken && (strings.HasPrefix(lk, "filter[") || strings.HasPrefix(lk, "filters.") || strings.HasPrefix(lk, "filter.")) {
		return &ParamError{Param: k, Code: CodeUnknownParameter,
			Message: fmt.Sprintf("unknown parameter %q; filters are written filters[i][key], filters[i][comparator] and filters[i][value] (or from, to, values[])", k)}
	}
	return UnknownParam(k, append(Params(), "filters[i][...]"))
}

// The sub-keys of filters[i].
const (
	subKey        = "key"
	subComparator = "comparator"
	subValue      = "value"
	subFrom       = "from"
	subTo         = "to"
	subValues     = "values"
)

// lookupField finds a field in the catalogue; Parse refuses the fields the
// catalogue declares not filterable or not sortable. Tests replace it, since
// today every field is both.
var lookupField = data.Lookup

// rawFilter collects the parameters of one filters[i] before validation.
type rawFilter struct {
	index   int
	param   string            // "filters[i]" as spelled in the request
	scalars map[string]string // key, comparator, value, from, to
	values  []rawValue        // values[] and values[n], in request order
	given   map[string]string // sub-key → full parameter name, for errors
}

// rawValue is one element of values[]: its parameter name and its text.
type rawValue struct {
	param string
	text  string
	pos   int // n of values[n]; -1 for values[]
}

// Parse validates request parameters against SPEC §4 and returns the plan.
// Every error is a *ParamError naming the offending parameter.
func Parse(values url.Values, opts Options) (*Plan, error) {
	maxFilters, maxValues := opts.MaxFilters, opts.MaxValues
	if maxFilters <= 0 {
		maxFilters = DefaultMaxFilters
	}
	if maxValues <= 0 {
		maxValues = DefaultMaxValues
	}
	p := &Plan{Format: opts.DefaultFormat, OrderBy: data.DateField, Desc: true, DayPrecisionDate: opts.DayPrecisionDate}

	// Visit the keys in a fixed order so that, of several bad parameters,
	// the same one is always reported.
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	raw := map[int]*rawFilter{}
	for _, k := range keys {
		vs := values[k]
		if k == paramFilters || strings.HasPrefix(k, paramFilters+"[") {
			if err := collectFilterParam(raw, k, vs); err != nil {
				return nil, err
			}
			if len(raw) > maxFilters {
				return nil, invalid(paramFilters, "at most %d filters are allowed", maxFilters)
			}
			continue
		}
		if !slices.Contains(Params(), k) {
			return nil, unknownExportParam(k)
		}
		if len(vs) != 1 {
			return nil, invalid(k, "given %d times; give it once", len(vs))
		}
		if k == paramCursor {
			continue // read once the plan it must belong to is known
		}
		if err := p.setScalar(k, vs[0], opts); err != nil {
			return nil, err
		}
	}
	if err := checkField(p.OrderBy, paramOrderBy, opts); err != nil {
		return nil, err
	}

	filters, err := buildFilters(raw, opts, maxValues)
	if err != nil {
		return nil, err
	}
	p.Filters = filters
	if values.Has(paramCursor) {
		if err := p.setCursor(values.Get(paramCursor), values.Has(paramOffset), opts.CursorKey); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// buildFilters validates the collected filters in the order of their
// indices. Exports and aggregates share it, so a filter means the same in
// both.
func buildFilters(raw map[int]*rawFilter, opts Options, maxValues int) ([]Filter, error) {
	indices := make([]int, 0, len(raw))
	for i := range raw {
		indices = append(indices, i)
	}
	sort.Ints(indices)
	var out []Filter
	for _, i := range indices {
		f, err := buildFilter(raw[i], opts, maxValues)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// setScalar validates one top-level parameter into the plan.
func (p *Plan) setScalar(k, v string, opts Options) error {
	switch k {
	case paramFormat:
		f := strings.ToLower(v)
		if !slices.Contains(opts.Formats, f) {
			return invalid(k, "unknown format %q; use one of %s", v, strings.Join(opts.Formats, ", "))
		}
		p.Format = f
	case paramLimit:
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			return invalid(k, "must be an integer from 1 to %d, got %q; leave it out to export every row", MaxLimit, v)
		}
		p.Limit = n
	case paramOffset:
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return invalid(k, "must be an integer ≥ 0, got %q", v)
		}
		p.Offset = n
	case paramBOM:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return invalid(k, "must be true or false, got %q", v)
		}
		p.BOM = &b
	case paramOrderBy:
		f, ok := lookupField(v)
		if !ok {
			return invalid(k, "unknown field %q", v)
		}
		if !f.Sortable {
			return invalid(k, "field %q cannot be ordered by", v)
		}
		p.OrderBy = v
	case paramDirection:
		switch strings.ToLower(v) {
		case "asc":
			p.Desc = false
		case "desc":
			p.Desc = true
		default:
			return invalid(k, "must be asc or desc, got %q", v)
		}
	}
	return nil
}

// checkField asks the privacy policy whether a field may be used.
func checkField(name, param string, opts Options) error {
	if opts.FieldAllowed == nil {
		return nil
	}
	if err := opts.FieldAllowed(name); err != nil {
		// The policy's error already names the field and the reason.
		return &ParamError{Param: param, Code: CodeFieldNotAvailable, Message: err.Error()}
	}
	return nil
}

// collectFilterParam files one filters[...] parameter under its filter.
// Accepted shapes: filters[i][key|comparator|value|from|to] (once each),
// filters[i][values][] and filters[i][values][n].
func collectFilterParam(raw map[int]*rawFilter, k string, vs []string) error {
	parts, ok := splitBrackets(k[len(paramFilters):])
	if !ok || len(parts) < 2 || len(parts) > 3 {
		return invalid(k, "not a filter parameter; use filters[i][key], filters[i][comparator], filters[i][value], filters[i][from], filters[i][to] or filters[i][values][]")
	}
	idx, ok := parseIndex(parts[0])
	if !ok {
		return invalid(k, "filter index %q is not a non-negative integer", parts[0])
	}
	rf := raw[idx]
	if rf == nil {
		rf = &rawFilter{index: idx, param: fmt.Sprintf("filters[%s]", parts[0]),
			scalars: map[string]string{}, given: map[string]string{}}
		raw[idx] = rf
	}
	sub := parts[1]
	switch sub {
	case subKey, subComparator, subValue, subFrom, subTo:
		if len(parts) != 2 {
			return invalid(k, "unknown filter parameter; %s takes no further index", sub)
		}
		if len(vs) != 1 {
			return invalid(k, "given %d times; give it once", len(vs))
		}
		if _, dup := rf.scalars[sub]; dup {
			return invalid(k, "given more than once")
		}
		rf.scalars[sub] = vs[0]
		rf.given[sub] = k
	case subValues:
		if len(parts) != 3 {
			return invalid(k, "write values as filters[i][values][] (repeated) or filters[i][values][0], filters[i][values][1], ...")
		}
		pos := -1
		if parts[2] != "" {
			n, ok := parseIndex(parts[2])
			if !ok {
				return invalid(k, "value index %q is not a non-negative integer", parts[2])
			}
			if len(vs) != 1 {
				return invalid(k, "given %d times; give it once", len(vs))
			}
			pos = n
		}
		for _, v := range vs {
			rf.values = append(rf.values, rawValue{param: k, text: v, pos: pos})
		}
		if _, seen := rf.given[subValues]; !seen {
			rf.given[subValues] = rf.param + "[values]"
		}
	default:
		return invalid(k, "unknown filter parameter %q; use key, comparator, value, from, to or values[]", sub)
	}
	return nil
}

// splitBrackets splits "[a][b][]" into ["a","b",""]. It refuses text outside
// brackets and brackets inside a part.
func splitBrackets(s string) ([]string, bool) {
	var parts []string
	for s != "" {
		if s[0] != '[' {
			return nil, false
		}
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return nil, false
		}
		part := s[1:end]
		if strings.ContainsRune(part, '[') {
			return nil, false
		}
		parts = append(parts, part)
		s = s[end+1:]
	}
	return parts, true
}

// parseIndex accepts a canonical non-negative decimal: "0", "17", not "01",
// "+1" or "-1", so that two spellings can never name the same filter.
func parseIndex(s string) (int, bool) {
	if s == "" || len(s) > 9 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// buildFilter validates one collected filter.
func buildFilter(rf *rawFilter, opts Options, maxValues int) (Filter, error) {
	keyParam := rf.param + "[" + subKey + "]"
	cmpParam := rf.param + "[" + subComparator + "]"
	name, ok := rf.scalars[subKey]
	if !ok {
		return Filter{}, invalid(keyParam, "missing; name the field to filter on")
	}
	field, ok := lookupField(name)
	if !ok {
		return Filter{}, invalid(keyParam, "unknown field %q", name)
	}
	if !field.Filterable {
		return Filter{}, invalid(keyParam, "field %q cannot be filtered on", name)
	}
	if err := checkField(name, keyParam, opts); err != nil {
		return Filter{}, err
	}
	rawCmp, ok := rf.scalars[subComparator]
	if !ok {
		return Filter{}, invalid(cmpParam, "missing; use one of %s", comparatorNames())
	}
	spec, ok := lookupComparator(rawCmp)
	if !ok {
		return Filter{}, invalid(cmpParam, "unknown comparator %q; use one of %s", rawCmp, comparatorNames())
	}
	cmp := spec.name
	if !spec.applies(field.Kind) {
		return Filter{}, invalid(cmpParam, "comparator %s does not apply to %s, a %s field", cmp, name, field.Kind)
	}

	// Operands the comparator does not take are refused rather than
	// silently ignored: they are almost always a mistake in the request.
	want := map[string]bool{}
	switch spec.operands {
	case opValue:
		want[subValue] = true
	case opRange:
		want[subFrom], want[subTo] = true, true
	case opValues:
		want[subValues] = true
	}
	for _, sub := range []string{subValue, subFrom, subTo, subValues} {
		param, given := rf.given[sub]
		if given && !want[sub] {
			return Filter{}, invalid(param, "comparator %s takes no %s", cmp, sub)
		}
		if !given && want[sub] {
			return Filter{}, invalid(rf.param+"["+sub+"]", "missing; comparator %s needs it", cmp)
		}
	}

	f := Filter{Field: field, Comparator: cmp, Param: rf.param}
	dayOnly := opts.DayPrecisionDate && field.Kind == data.KindTimestamp && field.Privacy == data.PrivacyTimestamp
	conv := func(param, text string) (any, error) {
		v, err := convertOperand(field, cmp, text, dayOnly)
		if err != nil {
			return nil, invalid(param, "%v", err)
		}
		return v, nil
	}
	var err error
	switch spec.operands {
	case opValue:
		f.Value, err = conv(rf.given[subValue], rf.scalars[subValue])
	case opRange:
		if f.From, err = conv(rf.given[subFrom], rf.scalars[subFrom]); err != nil {
			return Filter{}, err
		}
		if f.To, err = conv(rf.given[subTo], rf.scalars[subTo]); err != nil {
			return Filter{}, err
		}
		if field.Kind == data.KindTimestamp && !dayOnly && isDateOnly(rf.scalars[subTo]) {
			f.ToEndOfDay = true
		}
	case opValues:
		f.Values, err = convertValues(rf, conv, maxValues)
	}
	if err != nil {
		return Filter{}, err
	}
	return f, nil
}

// convertValues converts values[] in position order (values[n] by n, then
// values[] in request order) and drops duplicates.
func convertValues(rf *rawFilter, conv func(param, text string) (any, error), maxValues int) ([]any, error) {
	param := rf.param + "[" + subValues + "]"
	if len(rf.values) > maxValues {
		return nil, invalid(param, "at most %d values are allowed, got %d", maxValues, len(rf.values))
	}
	vals := append([]rawValue(nil), rf.values...)
	sort.SliceStable(vals, func(i, j int) bool {
		a, b := vals[i].pos, vals[j].pos
		if (a < 0) != (b < 0) {
			return b < 0
		}
		return a < b
	})
	var out []any
	seen := map[any]bool{}
	for i, rv := range vals {
		if i > 0 && rv.pos >= 0 && rv.pos == vals[i-1].pos {
			return nil, invalid(rv.param, "given more than once")
		}
		v, err := conv(rv.param, rv.text)
		if err != nil {
			return nil, err
		}
		key := v
		if t, ok := v.(time.Time); ok {
			key = t.UnixMicro()
		}
		if !seen[key] {
			seen[key] = true
			out = append(out, v)
		}
	}
	return out, nil
}

// errOperand is the root of operand conversion errors.
var errOperand = errors.New("bad operand")

// convertOperand converts one operand text to the field's kind. Element
// operands of list fields are strings; equals/notEquals on a list field take
// a whole list as a JSON array (the export's own rendering).
func convertOperand(f data.Field, cmp, text string, dayOnly bool) (any, error) {
	switch f.Kind {
	case data.KindInt, data.KindFlag:
		n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("expected an integer, got %q", text)
		}
		if f.Kind == data.KindFlag && n != 0 && n != 1 {
			return nil, fmt.Errorf("expected 0 or 1, got %q", text)
		}
		return n, nil
	case data.KindFloat:
		x, err := strconv.ParseFloat(strings.TrimSpace(text), 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("expected a number, got %q", text)
		}
		return x, nil
	case data.KindTimestamp:
		t, err := parseTime(text)
		if err != nil {
			return nil, err
		}
		if dayOnly {
			t = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		}
		return t, nil
	case data.KindEnum:
		switch cmp {
		case Equals, NotEquals, In, NotIn:
			if !f.AllowsEnum(text) {
				return nil, fmt.Errorf("%q is not a value of %s; use one of %s", text, f.Name, strings.Join(f.Enum, ", "))
			}
		}
		return text, nil
	case data.KindList:
		if cmp == Equals || cmp == NotEquals {
			return parseList(text)
		}
		return text, nil
	}
	return text, nil
}

// parseTime reads a date-time operand, surrounding white space ignored, in
// the forms data.ParseDateTime accepts: YYYY-MM-DD, YYYY-MM-DD HH:MM:SS
// (also with a T and fractional seconds) as wall-clock time, and RFC 3339
// with a zone as that instant's UTC wall time.
func parseTime(text string) (time.Time, error) {
	if t, ok := data.ParseDateTime(strings.TrimSpace(text)); ok {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%w: expected a date-time as YYYY-MM-DD, YYYY-MM-DD HH:MM:SS or RFC 3339, got %q", errOperand, text)
}

// isDateOnly reports whether a date-time operand was written as a bare date.
func isDateOnly(text string) bool {
	_, err := time.Parse(data.DateLayout, strings.TrimSpace(text))
	return err == nil
}

// parseList reads a whole-list operand: a JSON array of strings such as
// ["Billing", "Payment reminder"], or [] for the empty list.
func parseList(text string) ([]string, error) {
	var l []string
	if err := json.Unmarshal([]byte(text), &l); err != nil || l == nil {
		return nil, fmt.Errorf("%w: expected a JSON array of strings such as [\"a\", \"b\"], got %q", errOperand, text)
	}
	return l, nil
}
