package query

import (
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"worklog/data"
)

func TestParseErrors(t *testing.T) {
	hidden := func(field string) error {
		if field == "email" || field == "name" {
			return errors.New("hidden by privacy level pseudonymized")
		}
		return nil
	}
	many := url.Values{}
	for i := 0; i <= 50; i++ {
		many.Set(fmt.Sprintf("filters[%d][key]", i), "duration")
		many.Set(fmt.Sprintf("filters[%d][comparator]", i), "isNull")
	}
	tooManyValues := url.Values{"filters[0][key]": {"duration"}, "filters[0][comparator]": {"in"}}
	for i := 0; i <= 1000; i++ {
		tooManyValues.Add("filters[0][values][]", fmt.Sprint(i))
	}
	tests := []struct {
		name      string
		query     string
		values    url.Values // instead of query
		opts      Options
		wantParam string
		wantCode  string
	}{
		{"unknown format", "format=pdf", nil, Options{}, "format", CodeInvalidParameter},
		{"unknown parameter", "_=123", nil, Options{}, "_", CodeUnknownParameter},
		{"parameter in another case", "orderbyfield=date", nil, Options{}, "orderbyfield", CodeUnknownParameter},
		{"filter without s", "filter[0][key]=date&filter[0][comparator]=isNull", nil, Options{}, "filter[0][comparator]", CodeUnknownParameter},
		{"access token in the query", "access_token=abc", nil, Options{}, "access_token", CodeUnknownParameter},
		{"unknown beside good ones", "limit=5&orderByField=date&zzz=1", nil, Options{}, "zzz", CodeUnknownParameter},
		{"cursor without limit", "cursor=abc", nil, Options{CursorKey: []byte("k")}, "cursor", CodeInvalidParameter},
		{"cursor with offset", "cursor=abc&limit=5&offset=5", nil, Options{CursorKey: []byte("k")}, "cursor", CodeInvalidParameter},
		{"cursor without a key", "cursor=abc&limit=5", nil, Options{}, "cursor", CodeInvalidParameter},
		{"cursor not sealed", "cursor=eyJ2IjoxfQ&limit=5", nil, Options{CursorKey: []byte("k")}, "cursor", CodeInvalidParameter},
		{"cursor twice", "cursor=a&cursor=b&limit=5", nil, Options{CursorKey: []byte("k")}, "cursor", CodeInvalidParameter},
		{"format twice", "format=csv&format=json", nil, Options{}, "format", CodeInvalidParameter},
		{"bom not a boolean", "bom=yes", nil, Options{}, "bom", CodeInvalidParameter},
		{"bom twice", "bom=true&bom=false", nil, Options{}, "bom", CodeInvalidParameter},
		{"BOM misspelt", "BOM=true", nil, Options{}, "BOM", CodeUnknownParameter},
		{"limit zero", "limit=0", nil, Options{}, "limit", CodeInvalidParameter},
		{"limit too large", "limit=1001", nil, Options{}, "limit", CodeInvalidParameter},
		{"limit not a number", "limit=ten", nil, Options{}, "limit", CodeInvalidParameter},
		{"limit empty", "limit=", nil, Options{}, "limit", CodeInvalidParameter},
		{"negative offset", "offset=-1", nil, Options{}, "offset", CodeInvalidParameter},
		{"offset twice", "offset=1&offset=2", nil, Options{}, "offset", CodeInvalidParameter},
		{"unknown order field", "orderByField=Date", nil, Options{}, "orderByField", CodeInvalidParameter},
		{"bad direction", "orderByDirection=up", nil, Options{}, "orderByDirection", CodeInvalidParameter},
		{"hidden order field", "orderByField=name", nil, Options{FieldAllowed: hidden}, "orderByField", CodeFieldNotAvailable},
		{"missing key", "filters[0][comparator]=isNull", nil, Options{}, "filters[0][key]", CodeInvalidParameter},
		{"unknown key", "filters[2][key]=nope&filters[2][comparator]=isNull", nil, Options{}, "filters[2][key]", CodeInvalidParameter},
		{"key with SQL", "filters[0][key]=date%3B+DROP+TABLE+x&filters[0][comparator]=isNull", nil, Options{}, "filters[0][key]", CodeInvalidParameter},
		{"hidden key", "filters[0][key]=email&filters[0][comparator]=isNull", nil, Options{FieldAllowed: hidden}, "filters[0][key]", CodeFieldNotAvailable},
		{"missing comparator", "filters[0][key]=date", nil, Options{}, "filters[0][comparator]", CodeInvalidParameter},
		{"unknown comparator", "filters[1][key]=date&filters[1][comparator]=like", nil, Options{}, "filters[1][comparator]", CodeInvalidParameter},
		{"gt on a string", "filters[0][key]=name&filters[0][comparator]=gt&filters[0][value]=a", nil, Options{}, "filters[0][comparator]", CodeInvalidParameter},
		{"between on a list", "filters[0][key]=tags&filters[0][comparator]=between&filters[0][from]=a&filters[0][to]=b", nil, Options{}, "filters[0][comparator]", CodeInvalidParameter},
		{"contains on a number", "filters[0][key]=duration&filters[0][comparator]=contains&filters[0][value]=1", nil, Options{}, "filters[0][comparator]", CodeInvalidParameter},
		{"missing value", "filters[0][key]=duration&filters[0][comparator]=equals", nil, Options{}, "filters[0][value]", CodeInvalidParameter},
		{"missing to", "filters[0][key]=duration&filters[0][comparator]=between&filters[0][from]=1", nil, Options{}, "filters[0][to]", CodeInvalidParameter},
		{"missing values", "filters[0][key]=duration&filters[0][comparator]=in", nil, Options{}, "filters[0][values]", CodeInvalidParameter},
		{"operand the comparator does not take", "filters[0][key]=duration&filters[0][comparator]=isNull&filters[0][value]=1", nil, Options{}, "filters[0][value]", CodeInvalidParameter},
		{"value given for in", "filters[0][key]=duration&filters[0][comparator]=in&filters[0][value]=1", nil, Options{}, "filters[0][value]", CodeInvalidParameter},
		{"bad integer", "filters[0][key]=duration&filters[0][comparator]=equals&filters[0][value]=abc", nil, Options{}, "filters[0][value]", CodeInvalidParameter},
		{"bad flag", "filters[0][key]=reOpened&filters[0][comparator]=equals&filters[0][value]=2", nil, Options{}, "filters[0][value]", CodeInvalidParameter},
		{"bad float", "filters[0][key]=textAssistanceAccuracy&filters[0][comparator]=gt&filters[0][value]=NaN", nil, Options{}, "filters[0][value]", CodeInvalidParameter},
		{"bad date", "filters[0][key]=date&filters[0][comparator]=between&filters[0][from]=2024-13-01&filters[0][to]=2024-05-01", nil, Options{}, "filters[0][from]", CodeInvalidParameter},
		{"bad date to", "filters[0][key]=date&filters[0][comparator]=between&filters[0][from]=2024-05-01&filters[0][to]=yesterday", nil, Options{}, "filters[0][to]", CodeInvalidParameter},
		{"bad enum", "filters[0][key]=action&filters[0][comparator]=equals&filters[0][value]=sleepAction", nil, Options{}, "filters[0][value]", CodeInvalidParameter},
		{"bad enum in values", "filters[1][key]=action&filters[1][comparator]=in&filters[1][values][]=writeAction&filters[1][values][]=x", nil, Options{}, "filters[1][values][]", CodeInvalidParameter},
		{"bad indexed value", "filters[0][key]=duration&filters[0][comparator]=in&filters[0][values][0]=1&filters[0][values][1]=x", nil, Options{}, "filters[0][values][1]", CodeInvalidParameter},
		{"duplicate indexed value", "", url.Values{"filters[0][key]": {"duration"}, "filters[0][comparator]": {"in"}, "filters[0][values][0]": {"1", "2"}}, Options{}, "filters[0][values][0]", CodeInvalidParameter},
		{"list equals needs a JSON array", "filters[0][key]=tags&filters[0][comparator]=equals&filters[0][value]=Billing", nil, Options{}, "filters[0][value]", CodeInvalidParameter},
		{"duplicate comparator", "filters[0][key]=date&filters[0][comparator]=isNull&filters[0][comparator]=isNotNull", nil, Options{}, "filters[0][comparator]", CodeInvalidParameter},
		{"unknown sub-key", "filters[0][key]=date&filters[0][comparator]=isNull&filters[0][op]=x", nil, Options{}, "filters[0][op]", CodeInvalidParameter},
		{"values without brackets", "filters[0][key]=duration&filters[0][comparator]=in&filters[0][values]=1", nil, Options{}, "filters[0][values]", CodeInvalidParameter},
		{"value with an index", "filters[0][key]=duration&filters[0][comparator]=equals&filters[0][value][]=1", nil, Options{}, "filters[0][value][]", CodeInvalidParameter},
		{"index not a number", "filters[a][key]=date", nil, Options{}, "filters[a][key]", CodeInvalidParameter},
		{"negative index", "filters[-1][key]=date", nil, Options{}, "filters[-1][key]", CodeInvalidParameter},
		{"index with leading zero", "filters[01][key]=date", nil, Options{}, "filters[01][key]", CodeInvalidParameter},
		{"bare filters", "filters=date", nil, Options{}, "filters", CodeInvalidParameter},
		{"filters without sub-key", "filters[0]=date", nil, Options{}, "filters[0]", CodeInvalidParameter},
		{"trailing text", "filters[0][key]x=date", nil, Options{}, "filters[0][key]x", CodeInvalidParameter},
		{"too many filters", "", many, Options{}, "filters", CodeInvalidParameter},
		{"too many values", "", tooManyValues, Options{}, "filters[0][values]", CodeInvalidParameter},
		{"lower MaxValues", "filters[0][key]=duration&filters[0][comparator]=in&filters[0][values][]=1&filters[0][values][]=2", nil, Options{MaxValues: 1}, "filters[0][values]", CodeInvalidParameter},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.values
			if v == nil {
				var err error
				if v, err = url.ParseQuery(tc.query); err != nil {
					t.Fatal(err)
				}
			}
			p, err := Parse(v, withFormats(tc.opts))
			var pe *ParamError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse = %+v, %v; want a *ParamError", p, err)
			}
			if pe.Param != tc.wantParam || pe.Code != tc.wantCode {
				t.Errorf("ParamError{Param: %q, Code: %q} (%s), want param %q code %q", pe.Param, pe.Code, pe.Message, tc.wantParam, tc.wantCode)
			}
			if pe.Message == "" || !strings.HasPrefix(pe.Error(), pe.Param+": ") {
				t.Errorf("Error() = %q", pe.Error())
			}
		})
	}
}

func TestParsePlan(t *testing.T) {
	day := func(s string) time.Time { t, _ := time.Parse("2006-01-02 15:04:05", s); return t }
	field := func(name string) data.Field { f, _ := data.Lookup(name); return f }
	tests := []struct {
		name  string
		query string
		opts  Options
		want  Plan
	}{
		{"defaults", "", Options{},
			Plan{Format: "json", OrderBy: "date", Desc: true}},
		{"server default format", "", Options{DefaultFormat: "csv"},
			Plan{Format: "csv", OrderBy: "date", Desc: true}},
		{"page", "format=XLSX&limit=1000&offset=20&orderByField=duration&orderByDirection=asc", Options{},
			Plan{Format: "xlsx", Limit: 1000, Offset: 20, OrderBy: "duration"}},
		{"filters sorted by index, indexed and bracket values merged, duplicates dropped",
			"filters[10][key]=duration&filters[10][comparator]=in&filters[10][values][]=7&filters[10][values][1]=5&filters[10][values][0]=7" +
				"&filters[2][key]=date&filters[2][comparator]=Between&filters[2][from]=2024-05-10T12:00:00%2B02:00&filters[2][to]=2024-05-11",
			Options{}, Plan{Format: "json", OrderBy: "date", Desc: true, Filters: []Filter{
				{Field: field("date"), Comparator: Between, From: day("2024-05-10 10:00:00"), To: day("2024-05-11 00:00:00"), ToEndOfDay: true, Param: "filters[2]"},
				{Field: field("duration"), Comparator: In, Values: []any{int64(7), int64(5)}, Param: "filters[10]"},
			}}},
		{"day precision drops the time of date operands", "filters[0][key]=date&filters[0][comparator]=between&filters[0][from]=2024-05-10 13:00:00&filters[0][to]=2024-05-11",
			Options{DayPrecisionDate: true}, Plan{Format: "json", OrderBy: "date", Desc: true, DayPrecisionDate: true, Filters: []Filter{
				{Field: field("date"), Comparator: Between, From: day("2024-05-10 00:00:00"), To: day("2024-05-11 00:00:00"), Param: "filters[0]"},
			}}},
		{"list equals takes a JSON array", `filters[0][key]=tags&filters[0][comparator]=notEquals&filters[0][value]=["a", "b"]`, Options{},
			Plan{Format: "json", OrderBy: "date", Desc: true, Filters: []Filter{{Field: field("tags"), Comparator: NotEquals, Value: []string{"a", "b"}, Param: "filters[0]"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mustParse(t, strings.ReplaceAll(tc.query, " ", "%20"), tc.opts)
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("plan = %+v\n want %+v", *got, tc.want)
			}
		})
	}
}

func TestMonths(t *testing.T) {
	all := []string{"2024-03", "2024-04", "2024-05", "2024-06"}
	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{"no filter reads every month", "", all},
		{"between", "filters[0][key]=date&filters[0][comparator]=between&filters[0][from]=2024-04-30&filters[0][to]=2024-05-01", []string{"2024-04", "2024-05"}},
		{"date-only to stays in its month", "filters[0][key]=date&filters[0][comparator]=between&filters[0][from]=2024-05-01&filters[0][to]=2024-05-31", []string{"2024-05"}},
		{"equals", "filters[0][key]=date&filters[0][comparator]=equals&filters[0][value]=2024-06-01", []string{"2024-06"}},
		{"in", "filters[0][key]=date&filters[0][comparator]=in&filters[0][values][]=2024-03-02&filters[0][values][]=2024-06-01", []string{"2024-03", "2024-06"}},
		{"gte", "filters[0][key]=date&filters[0][comparator]=gte&filters[0][value]=2024-05-20", []string{"2024-05", "2024-06"}},
		{"lt", "filters[0][key]=date&filters[0][comparator]=lt&filters[0][value]=2024-04-02", []string{"2024-03", "2024-04"}},
		{"AND-ed date filters intersect", "filters[0][key]=date&filters[0][comparator]=gte&filters[0][value]=2024-04-01&filters[1][key]=date&filters[1][comparator]=lte&filters[1][value]=2024-05-01", []string{"2024-04", "2024-05"}},
		{"RFC 3339 in UTC crosses a month", "filters[0][key]=date&filters[0][comparator]=equals&filters[0][value]=2024-06-01T01:00:00%2B02:00", []string{"2024-05"}},
		{"isNull on the required date", "filters[0][key]=date&filters[0][comparator]=isNull", nil},
		{"negations do not prune", "filters[0][key]=date&filters[0][comparator]=notEquals&filters[0][value]=2024-05-01", all},
		{"other date-times do not prune", "filters[0][key]=pendingDueBy&filters[0][comparator]=equals&filters[0][value]=2024-05-01", all},
		{"no month in range", "filters[0][key]=date&filters[0][comparator]=gt&filters[0][value]=2025-01-01", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mustParse(t, tc.query, Options{}).Months(all)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Months = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSQLBindsEveryValue(t *testing.T) {
	// The SQL text never contains an operand; it only grows placeholders.
	q := "orderByField=name&filters[0][key]=name&filters[0][comparator]=equals&filters[0][value]=secret'value" +
		"&filters[1][key]=tags&filters[1][comparator]=in&filters[1][values][]=other'secret&limit=10&offset=5"
	v, _ := url.ParseQuery(q)
	p, err := Parse(v, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sql, args := p.selectSQL(nil)
	if strings.Contains(sql, "secret") {
		t.Errorf("operand spliced into SQL: %s", sql)
	}
	if got := strings.Count(sql, "?"); got != len(args) || len(args) != 4 {
		t.Errorf("%d placeholders, %d args (%v); want 4 each", got, len(args), args)
	}
}

// TestParseReadsCatalogueFacts checks that Parse refuses a field the
// catalogue declares not filterable or not sortable, naming the parameter.
// No field is either today, so the test declares one.
func TestParseReadsCatalogueFacts(t *testing.T) {
	defer func(l func(string) (data.Field, bool)) { lookupField = l }(lookupField)
	lookupField = func(name string) (data.Field, bool) {
		f, ok := data.Lookup(name)
		if name == "rawData" {
			f.Filterable, f.Sortable = false, false
		}
		return f, ok
	}
	tests := []struct{ query, wantParam string }{
		{"orderByField=rawData", "orderByField"},
		{"filters[3][key]=rawData&filters[3][comparator]=isNull", "filters[3][key]"},
	}
	for _, tc := range tests {
		v, _ := url.ParseQuery(tc.query)
		_, err := Parse(v, Options{})
		var pe *ParamError
		if !errors.As(err, &pe) || pe.Param != tc.wantParam || pe.Code != CodeInvalidParameter {
			t.Errorf("%s: err = %v, want invalid_parameter naming %s", tc.query, err, tc.wantParam)
		}
	}
	for _, q := range []string{"orderByField=email", "filters[0][key]=email&filters[0][comparator]=isNull"} {
		v, _ := url.ParseQuery(q)
		if _, err := Parse(v, Options{}); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
}

// The bom parameter is tri-state: absent leaves the choice to the server's
// setting.
func TestParseBOM(t *testing.T) {
	for q, want := range map[string]string{"": "<nil>", "bom=true": "true", "bom=false": "false", "bom=1": "true"} {
		values, _ := url.ParseQuery(q)
		p, err := Parse(values, Options{})
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		got := "<nil>"
		if p.BOM != nil {
			got = fmt.Sprint(*p.BOM)
		}
		if got != want {
			t.Errorf("%q: BOM %s, want %s", q, got, want)
		}
	}
}
