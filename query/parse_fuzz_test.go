package query

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"worklog/data"
)

// FuzzParse feeds the export parser arbitrary query strings: it never
// panics, every refusal is a *ParamError naming a parameter, and a plan it
// accepts carries request text into SQL only as bound arguments — a value
// holding a quote or a semicolon never appears in the statement, and the
// statement has one placeholder per argument.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"format=csv&orderByField=duration&orderByDirection=asc&limit=10&offset=5",
		"filters[0][key]=action&filters[0][comparator]=notIn&filters[0][values][]=closeAction&filters[0][values][]=x';DROP TABLE t;--",
		"filters[0][key]=date&filters[0][comparator]=between&filters[0][from]=2024-01-01&filters[0][to]=2024-02-01",
		"filters[0][key]=name&filters[0][comparator]=contains&filters[0][value]=O'Brien;",
		"filters[0][key]=duration&filters[0][comparator]=gt&filters[0][value]=1e3",
		"filters[1][key]=tags&filters[1][comparator]=in&filters[1][values][3]=a&filters[1][values][0]=b",
		"orderByField=date&orderByDirection=desc&cursor=abc",
		"filters[0][key]=userId&filters[0][comparator]=isNull",
		"limit=-1&offset=x&format=pdf&unknown=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		p, err := Parse(v, Options{})
		if err != nil {
			var pe *ParamError
			_, emptyName := v[""] // "=x" names the parameter "" itself
			if !errors.As(err, &pe) || pe.Param == "" && !emptyName || pe.Message == "" {
				t.Fatalf("error %v is not a ParamError naming a parameter", err)
			}
			return
		}
		sqlText, args := p.SelectSQL(data.Snapshot{})
		if n := strings.Count(sqlText, "?"); n != len(args) {
			t.Fatalf("%d placeholders, %d arguments: %s", n, len(args), sqlText)
		}
		for _, vals := range v {
			for _, s := range vals {
				if strings.ContainsAny(s, "';") && strings.Contains(sqlText, s) {
					t.Fatalf("request value %q in the statement: %s", s, sqlText)
				}
			}
		}
	})
}
