package query

import (
	"net/url"
	"slices"
	"testing"

	"worklog/data"
)

// TestComparatorDocs checks the documented comparators against what Parse
// accepts: every comparator once, and for every kind, a filter built from
// the documented operands parses exactly when the kind is documented.
func TestComparatorDocs(t *testing.T) {
	docs := ComparatorDocs()
	if len(docs) != len(comparators) {
		t.Fatalf("%d documented comparators, Parse knows %d", len(docs), len(comparators))
	}
	seen := map[string]bool{}
	// A field of each kind and an operand valid for it.
	samples := map[data.Kind]struct{ field, value string }{
		data.KindTimestamp: {"date", "2024-05-01"},
		data.KindInt:       {"duration", "5"},
		data.KindFlag:      {"reOpened", "1"},
		data.KindFloat:     {"textAssistanceAccuracy", "0.5"},
		data.KindString:    {"topic", "Billing"},
		data.KindEnum:      {"channel", "email"},
		data.KindList:      {"tags", "Billing"},
	}
	for _, d := range docs {
		if seen[d.Name] {
			t.Errorf("%s listed twice", d.Name)
		}
		seen[d.Name] = true
		for kind, s := range samples {
			v := url.Values{"filters[0][key]": {s.field}, "filters[0][comparator]": {d.Name}}
			for _, op := range d.Operands {
				if op == "values" {
					v.Set("filters[0][values][]", s.value)
				} else {
					v.Set("filters[0]["+op+"]", s.value)
				}
			}
			if kind == data.KindList && (d.Name == Equals || d.Name == NotEquals) {
				v.Set("filters[0][value]", `["Billing"]`) // the whole list
			}
			_, err := Parse(v, Options{})
			if d.Applies(kind) && err != nil {
				t.Errorf("%s on %s (%s): documented, but Parse says %v", d.Name, s.field, kind, err)
			}
			if !d.Applies(kind) && err == nil {
				t.Errorf("%s on %s (%s): not documented, but Parse accepts it", d.Name, s.field, kind)
			}
		}
	}
}

func TestComparatorDocsInSpecOrder(t *testing.T) {
	var names []string
	for _, c := range ComparatorDocs() {
		names = append(names, c.Name)
	}
	want := []string{"between", "in", "notIn", "equals", "notEquals", "gt", "gte", "lt", "lte",
		"contains", "notContains", "startsWith", "isNull", "isNotNull"}
	if !slices.Equal(names, want) {
		t.Errorf("ComparatorDocs() = %v, want %v", names, want)
	}
}

func TestComparatorDocsAreCopies(t *testing.T) {
	docs := ComparatorDocs()
	docs[0].Name = "changed"
	docs[0].Kinds[0] = data.KindList
	docs[0].Operands[0] = "changed"
	again := ComparatorDocs()
	if again[0].Name != Between || !again[0].Applies(data.KindTimestamp) || again[0].Operands[0] != "from" {
		t.Errorf("ComparatorDocs() changed by a caller: %+v", again[0])
	}
	v := url.Values{"filters[0][key]": {"date"}, "filters[0][comparator]": {"between"},
		"filters[0][from]": {"2024-01-01"}, "filters[0][to]": {"2024-01-02"}}
	if _, err := Parse(v, Options{}); err != nil {
		t.Errorf("Parse after a caller changed ComparatorDocs(): %v", err)
	}
}
