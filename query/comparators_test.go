package query

import (
	"net/url"
	"testing"

	"worklog/data"
)

// TestComparatorDocs checks the documented comparators against what Parse
// accepts: every comparator once, and for every kind, a filter built from
// the documented operands parses exactly when the kind is documented.
func TestComparatorDocs(t *testing.T) {
	docs := ComparatorDocs()
	if len(docs) != len(comparatorSpecs) {
		t.Fatalf("%d documented comparators, Parse knows %d", len(docs), len(comparatorSpecs))
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
