package query

import (
	"slices"
	"sort"
	"strings"

	"worklog/data"
)

// The comparators of SPEC §4, by their canonical names. Requests may spell
// them in any case.
const (
	Between     = "between"
	In          = "in"
	NotIn       = "notIn"
	Equals      = "equals"
	NotEquals   = "notEquals"
	Gt          = "gt"
	Gte         = "gte"
	Lt          = "lt"
	Lte         = "lte"
	Contains    = "contains"
	NotContains = "notContains"
	StartsWith  = "startsWith"
	IsNull      = "isNull"
	IsNotNull   = "isNotNull"
)

// Operands says which operand parameters a comparator takes.
type Operands int

// The operand shapes of the comparators.
const (
	// NoOperand comparators (isNull, isNotNull) take no operand.
	NoOperand Operands = iota
	// OneValue comparators take filters[i][value].
	OneValue
	// Range comparators (between) take filters[i][from] and filters[i][to].
	Range
	// ValueList comparators (in, notIn) take filters[i][values][].
	ValueList
)

// Params names the operand sub-keys of filters[i] that o takes, as a
// request writes them: none, "value", "from" and "to", or "values[]".
func (o Operands) Params() []string {
	switch o {
	case OneValue:
		return []string{subValue}
	case Range:
		return []string{subFrom, subTo}
	case ValueList:
		return []string{subValues + "[]"}
	}
	return nil
}

// Comparator describes one filter comparator of SPEC §4.
type Comparator struct {
	// Name is the canonical spelling, one of the constants Between, In, ...
	Name string
	// Operands says which operand parameters it takes.
	Operands Operands
	// Kinds are the field kinds it applies to.
	Kinds []data.Kind
}

// AppliesTo reports whether the comparator may filter a field of kind k.
func (c Comparator) AppliesTo(k data.Kind) bool { return slices.Contains(c.Kinds, k) }

var (
	orderedKinds = []data.Kind{data.KindTimestamp, data.KindInt, data.KindFlag, data.KindFloat}
	allKinds     = []data.Kind{data.KindTimestamp, data.KindInt, data.KindFlag, data.KindFloat, data.KindString, data.KindEnum, data.KindList}
	textKinds    = []data.Kind{data.KindString, data.KindEnum, data.KindList}
)

// comparators is the one list of comparators, in the order of SPEC §4's
// table. Parse validates against it; Comparators hands out copies.
var comparators = [...]Comparator{
	{Between, Range, orderedKinds},
	{In, ValueList, allKinds},
	{NotIn, ValueList, allKinds},
	{Equals, OneValue, allKinds},
	{NotEquals, OneValue, allKinds},
	{Gt, OneValue, orderedKinds},
	{Gte, OneValue, orderedKinds},
	{Lt, OneValue, orderedKinds},
	{Lte, OneValue, orderedKinds},
	{Contains, OneValue, textKinds},
	{NotContains, OneValue, textKinds},
	{StartsWith, OneValue, textKinds},
	{IsNull, NoOperand, allKinds},
	{IsNotNull, NoOperand, allKinds},
}

// Comparators returns the comparators in the order of SPEC §4's table, for
// documents such as OpenAPI. The slice and each Kinds are fresh copies: a
// caller may change them without changing what Parse accepts.
func Comparators() []Comparator {
	out := make([]Comparator, len(comparators))
	for i, c := range comparators {
		c.Kinds = slices.Clone(c.Kinds)
		out[i] = c
	}
	return out
}

// lookupComparator finds a comparator as spelled in a request (any case).
func lookupComparator(s string) (Comparator, bool) {
	for _, c := range comparators {
		if strings.EqualFold(c.Name, s) {
			return c, true
		}
	}
	return Comparator{}, false
}

// comparatorNames lists the comparators for error messages, sorted.
func comparatorNames() string {
	names := make([]string, 0, len(comparators))
	for _, c := range comparators {
		names = append(names, c.Name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
