package query

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"worklog/data"
)

func TestComparatorsInSpecOrder(t *testing.T) {
	var names []string
	for _, c := range Comparators() {
		names = append(names, c.Name)
	}
	want := []string{"between", "in", "notIn", "equals", "notEquals", "gt", "gte", "lt", "lte",
		"contains", "notContains", "startsWith", "isNull", "isNotNull"}
	if !slices.Equal(names, want) {
		t.Errorf("Comparators() = %v, want %v", names, want)
	}
}

func TestComparatorsAreCopies(t *testing.T) {
	cs := Comparators()
	cs[0].Name = "changed"
	cs[0].Kinds[0] = data.KindList
	cs[0].Kinds = cs[0].Kinds[:0]
	again := Comparators()
	if again[0].Name != Between || !again[0].AppliesTo(data.KindTimestamp) {
		t.Errorf("Comparators() changed by a caller: %+v", again[0])
	}
	q := "filters[0][key]=date&filters[0][comparator]=between&filters[0][from]=2024-01-01&filters[0][to]=2024-01-02"
	if _, err := Parse(mustQuery(t, q), Options{}); err != nil {
		t.Errorf("Parse after a caller changed Comparators(): %v", err)
	}
}

// TestComparatorsDescribeParse checks that what Comparators says of each
// comparator is what Parse does: the operands it takes and the kinds it
// applies to.
func TestComparatorsDescribeParse(t *testing.T) {
	// One field of each kind and an operand text valid for it.
	fields := map[data.Kind][2]string{
		data.KindTimestamp: {"date", "2024-05-10"},
		data.KindInt:       {"duration", "5"},
		data.KindFlag:      {"reOpened", "1"},
		data.KindFloat:     {"textAssistanceAccuracy", "0.5"},
		data.KindString:    {"topic", "Billing"},
		data.KindEnum:      {"channel", "email"},
		data.KindList:      {"tags", "Billing"},
	}
	for _, c := range Comparators() {
		for kind, fv := range fields {
			v := url.Values{"filters[0][key]": {fv[0]}, "filters[0][comparator]": {strings.ToUpper(c.Name)}}
			for _, p := range c.Operands.Params() {
				operand := fv[1]
				if kind == data.KindList && (c.Name == Equals || c.Name == NotEquals) {
					operand = `["Billing"]`
				}
				name := "filters[0][" + p + "]"
				if base, ok := strings.CutSuffix(p, "[]"); ok {
					name = "filters[0][" + base + "][]" // values[]
				}
				v.Set(name, operand)
			}
			p, err := Parse(v, Options{})
			if c.AppliesTo(kind) {
				if err != nil {
					t.Errorf("%s on %s (%s): %v", c.Name, fv[0], kind, err)
				} else if p.Filters[0].Comparator != c.Name {
					t.Errorf("%s parsed as %s", c.Name, p.Filters[0].Comparator)
				}
			} else if pe, ok := err.(*ParamError); !ok || pe.Param != "filters[0][comparator]" {
				t.Errorf("%s on %s (%s): err %v, want one naming filters[0][comparator]", c.Name, fv[0], kind, err)
			}
		}
	}
}

func mustQuery(t *testing.T, q string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
