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

// operandSet says which operand sub-keys a comparator takes.
type operandSet int

const (
	opNone   operandSet = iota // isNull, isNotNull
	opValue                    // filters[i][value]
	opRange                    // filters[i][from] and filters[i][to]
	opValues                   // filters[i][values][]
)

// names lists the operand sub-keys of an operand set.
func (o operandSet) names() []string {
	switch o {
	case opValue:
		return []string{subValue}
	case opRange:
		return []string{subFrom, subTo}
	case opValues:
		return []string{subValues}
	}
	return nil
}

// comparatorSpec describes one comparator: its name, its operands and the
// field kinds it applies to.
type comparatorSpec struct {
	name     string
	operands operandSet
	kinds    []data.Kind
}

// applies reports whether the comparator may filter a field of kind k.
func (c comparatorSpec) applies(k data.Kind) bool { return slices.Contains(c.kinds, k) }

var (
	orderedKinds = []data.Kind{data.KindTimestamp, data.KindInt, data.KindFlag, data.KindFloat}
	allKinds     = []data.Kind{data.KindTimestamp, data.KindInt, data.KindFlag, data.KindFloat, data.KindString, data.KindEnum, data.KindList}
	textKinds    = []data.Kind{data.KindString, data.KindEnum, data.KindList}
)

// comparators is the one list of comparators, in the order of SPEC §4's
// table. Parse validates against it; ComparatorDocs hands out copies.
var comparators = [...]comparatorSpec{
	{Between, opRange, orderedKinds},
	{In, opValues, allKinds},
	{NotIn, opValues, allKinds},
	{Equals, opValue, allKinds},
	{NotEquals, opValue, allKinds},
	{Gt, opValue, orderedKinds},
	{Gte, opValue, orderedKinds},
	{Lt, opValue, orderedKinds},
	{Lte, opValue, orderedKinds},
	{Contains, opValue, textKinds},
	{NotContains, opValue, textKinds},
	{StartsWith, opValue, textKinds},
	{IsNull, opNone, allKinds},
	{IsNotNull, opNone, allKinds},
}

// lookupComparator finds a comparator as spelled in a request (any case).
func lookupComparator(s string) (comparatorSpec, bool) {
	for _, c := range comparators {
		if strings.EqualFold(c.name, s) {
			return c, true
		}
	}
	return comparatorSpec{}, false
}

// comparatorNames lists the comparators for error messages, sorted.
func comparatorNames() string {
	names := make([]string, 0, len(comparators))
	for _, c := range comparators {
		names = append(names, c.name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// ComparatorDoc describes one filter comparator for clients: the OpenAPI
// document and the API's catalogue route read it, so that the page's filter
// builder offers exactly what Parse accepts.
type ComparatorDoc struct {
	// Name is the comparator as written in filters[i][comparator].
	Name string
	// Operands are the sub-keys it takes: "value"; "from" and "to"; "values"
	// (values[]); or none.
	Operands []string
	// Kinds are the field kinds it applies to.
	Kinds []data.Kind
}

// ComparatorDocs lists the comparators Parse accepts, in SPEC order, with
// their operands and the kinds they apply to. The slices are fresh copies:
// a caller may change them without changing what Parse accepts.
func ComparatorDocs() []ComparatorDoc {
	out := make([]ComparatorDoc, 0, len(comparators))
	for _, c := range comparators {
		out = append(out, ComparatorDoc{Name: c.name, Operands: c.operands.names(), Kinds: slices.Clone(c.kinds)})
	}
	return out
}

// Applies reports whether the comparator can be used on a field of kind k.
func (d ComparatorDoc) Applies(k data.Kind) bool { return slices.Contains(d.Kinds, k) }
