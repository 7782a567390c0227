package query

import (
	"slices"

	"worklog/data"
)

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

// comparatorOrder is the order of SPEC §4's table, in which clients list the
// comparators. TestComparatorDocs keeps it equal to comparatorSpecs' keys.
var comparatorOrder = []string{Between, In, NotIn, Equals, NotEquals, Gt, Gte, Lt, Lte,
	Contains, NotContains, StartsWith, IsNull, IsNotNull}

// ComparatorDocs lists the comparators Parse accepts, in SPEC order, with
// their operands and the kinds they apply to. The slices are fresh copies.
func ComparatorDocs() []ComparatorDoc {
	out := make([]ComparatorDoc, 0, len(comparatorOrder))
	for _, name := range comparatorOrder {
		spec := comparatorSpecs[name]
		out = append(out, ComparatorDoc{Name: name, Operands: spec.operands.names(), Kinds: slices.Clone(spec.kinds)})
	}
	return out
}

// Applies reports whether the comparator can be used on a field of kind k.
func (d ComparatorDoc) Applies(k data.Kind) bool { return slices.Contains(d.Kinds, k) }

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
