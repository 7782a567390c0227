package query

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestParseAggregateErrors(t *testing.T) {
	hidden := func(field string) error {
		if field == "ticketId" || field == "email" {
			return errors.New("hidden at this level")
		}
		return nil
	}
	noAgents := func(field string) error {
		if field == "name" {
			return errors.New("groups of agents are refused while small groups are suppressed")
		}
		return nil
	}
	tooManyMeasures := url.Values{}
	for i := 0; i <= MaxMeasures; i++ {
		tooManyMeasures.Add("measures[]", fmt.Sprintf("p%d(duration)", 50))
	}
	tests := []struct {
		name      string
		query     string
		values    url.Values
		opts      AggregateOptions
		wantParam string
		wantCode  string
	}{
		{"no measure", "groupBy[]=channel", nil, AggregateOptions{}, "measures[0]", CodeInvalidParameter},
		{"unknown measure", "measures[]=median", nil, AggregateOptions{}, "measures[0]", CodeInvalidParameter},
		{"unknown function", "measures[]=count&measures[]=stddev(duration)", nil, AggregateOptions{}, "measures[1]", CodeInvalidParameter},
		{"avg of a string", "measures[]=avg(topic)", nil, AggregateOptions{}, "measures[0]", CodeInvalidParameter},
		{"avg of an id", "measures[]=avg(ticketId)", nil, AggregateOptions{}, "measures[0]", CodeInvalidParameter},
		{"rate of a number", "measures[]=rate(duration)", nil, AggregateOptions{}, "measures[0]", CodeInvalidParameter},
		{"unknown field", "measures[]=sum(nope)", nil, AggregateOptions{}, "measures[0]", CodeInvalidParameter},
		{"unclosed", "measures[]=sum(duration", nil, AggregateOptions{}, "measures[0]", CodeInvalidParameter},
		{"measure twice", "measures[]=count&measures[]=count", nil, AggregateOptions{}, "measures[1]", CodeInvalidParameter},
		{"too many measures", "", tooManyMeasures, AggregateOptions{}, "measures[20]", CodeInvalidParameter},
		{"unknown dimension", "groupBy[]=channel&groupBy[]=email&measures[]=count", nil, AggregateOptions{}, "groupBy[1]", CodeInvalidParameter},
		{"id dimension", "groupBy[]=ticketId&measures[]=count", nil, AggregateOptions{}, "groupBy[0]", CodeInvalidParameter},
		{"date without bucket", "groupBy[]=date&measures[]=count", nil, AggregateOptions{}, "groupBy[0]", CodeInvalidParameter},
		{"unknown bucket", "groupBy[]=date:fortnight&measures[]=count", nil, AggregateOptions{}, "groupBy[0]", CodeInvalidParameter},
		{"bucket on a string", "groupBy[]=topic:day&measures[]=count", nil, AggregateOptions{}, "groupBy[0]", CodeInvalidParameter},
		{"bucket on another date-time", "groupBy[]=pendingDueBy:day&measures[]=count", nil, AggregateOptions{}, "groupBy[0]", CodeInvalidParameter},
		{"dimension twice", "groupBy[]=topic&groupBy[]=topic&measures[]=count", nil, AggregateOptions{}, "groupBy[1]", CodeInvalidParameter},
		{"five dimensions", "groupBy[]=topic&groupBy[]=channel&groupBy[]=action&groupBy[]=status&groupBy[]=tags&measures[]=count", nil, AggregateOptions{}, "groupBy[4]", CodeInvalidParameter},
		{"indexed and plain mixed", "groupBy[]=topic&groupBy[0]=channel&measures[]=count", nil, AggregateOptions{}, "groupBy[]", CodeInvalidParameter},
		{"bad index", "groupBy[01]=topic&measures[]=count", nil, AggregateOptions{}, "groupBy[01]", CodeInvalidParameter},
		{"indexed twice", "", url.Values{"groupBy[0]": {"topic", "channel"}, "measures[]": {"count"}}, AggregateOptions{}, "groupBy[0]", CodeInvalidParameter},
		{"nested brackets", "groupBy[0][x]=topic&measures[]=count", nil, AggregateOptions{}, "groupBy[0][x]", CodeInvalidParameter},
		{"unknown parameter", "measures[]=count&groupby[]=topic", nil, AggregateOptions{}, "groupby[]", CodeUnknownParameter},
		{"token in the query", "measures[]=count&access_token=x", nil, AggregateOptions{}, "access_token", CodeUnknownParameter},
		{"order by another name", "groupBy[]=topic&measures[]=count&orderByField=duration", nil, AggregateOptions{}, "orderByField", CodeInvalidParameter},
		{"bad direction", "measures[]=count&orderByDirection=down", nil, AggregateOptions{}, "orderByDirection", CodeInvalidParameter},
		{"limit too large", "measures[]=count&limit=10001", nil, AggregateOptions{}, "limit", CodeInvalidParameter},
		{"limit zero", "measures[]=count&limit=0", nil, AggregateOptions{}, "limit", CodeInvalidParameter},
		{"negative offset", "measures[]=count&offset=-1", nil, AggregateOptions{}, "offset", CodeInvalidParameter},
		{"unknown format", "measures[]=count&format=pdf", nil, AggregateOptions{}, "format", CodeInvalidParameter},
		{"bad filter", "measures[]=count&filters[3][key]=nope&filters[3][comparator]=isNull", nil, AggregateOptions{}, "filters[3][key]", CodeInvalidParameter},
		{"hidden filter", "measures[]=count&filters[0][key]=email&filters[0][comparator]=isNull",
			nil, AggregateOptions{Options: Options{FieldAllowed: hidden}}, "filters[0][key]", CodeFieldNotAvailable},
		{"hour at day precision", "groupBy[]=topic&groupBy[]=date:hour&measures[]=count", nil,
			AggregateOptions{Options: Options{DayPrecisionDate: true}}, "groupBy[1]", CodeFieldNotAvailable},
		{"agents refused", "groupBy[]=name&measures[]=count", nil, AggregateOptions{GroupAllowed: noAgents}, "groupBy[0]", CodeFieldNotAvailable},
		{"hidden measure field", "measures[]=count&measures[]=sum(duration)", nil,
			AggregateOptions{ReadAllowed: func(f string) error {
				if f == "duration" {
					return errors.New("hidden")
				}
				return nil
			}}, "measures[1]", CodeFieldNotAvailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.values
			if v == nil {
				var err error
				if v, err = url.ParseQuery(tt.query); err != nil {
					t.Fatal(err)
				}
			}
			_, err := ParseAggregate(v, tt.opts)
			var pe *ParamError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v, want a *ParamError", err)
			}
			if pe.Param != tt.wantParam || pe.Code != tt.wantCode {
				t.Errorf("param %q code %q (%s), want %q %q", pe.Param, pe.Code, pe.Message, tt.wantParam, tt.wantCode)
			}
		})
	}
}

func TestParseAggregate(t *testing.T) {
	v, _ := url.ParseQuery("groupBy[1]=channel&groupBy[0]=date:week&measures[]=count&measures[]=avg(duration)" +
		"&orderByField=avg(duration)&orderByDirection=desc&limit=10&offset=20&format=csv" +
		"&filters[0][key]=date&filters[0][comparator]=between&filters[0][from]=2024-05-01&filters[0][to]=2024-05-31")
	p, err := ParseAggregate(v, AggregateOptions{Options: Options{Formats: []string{"json", "csv"}}, NameByAgent: true, MinGroupAgents: 5})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.Columns(), ","); got != "date:week,channel,count,avg(duration)" {
		t.Errorf("columns %s", got)
	}
	if p.Dimensions[0].Bucket != BucketWeek || p.OrderBy != "avg(duration)" || !p.Desc || p.Limit != 10 || p.Offset != 20 ||
		p.Format != "csv" || len(p.Filters) != 1 || p.MinGroupAgents != 5 {
		t.Errorf("plan %+v", p)
	}
	v, _ = url.ParseQuery("groupBy=name&measures=count")
	p, err = ParseAggregate(v, AggregateOptions{NameByAgent: true, MinGroupAgents: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Dimensions[0].ByAgent || p.Limit != DefaultGroupLimit || p.Desc || p.MinGroupAgents != 0 {
		t.Errorf("plan %+v", p)
	}
}

func FuzzParseAnalytics(f *testing.F) {
	for _, s := range []string{
		"groupBy[]=date:week&groupBy[]=channel&measures[]=count&measures[]=avg(duration)",
		"groupBy[0]=tags&measures[0]=p90(duration)&orderByField=p90(duration)&orderByDirection=desc&limit=5&offset=1",
		"measures[]=rate(reOpened)&filters[0][key]=date&filters[0][comparator]=between&filters[0][from]=2024-01-01&filters[0][to]=2024-02-01",
		"measures[]=sum(&groupBy[]=:&groupBy[9]=x",
		"measures[]=slaMetRate&groupBy=name",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		v, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		p, err := ParseAggregate(v, AggregateOptions{})
		if err != nil {
			var pe *ParamError
			if !errors.As(err, &pe) || pe.Param == "" || pe.Message == "" {
				t.Fatalf("error %v is not a ParamError naming a parameter", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed plan invalid: %v", err)
		}
		// Every name that reaches SQL comes from the catalogue or this
		// package: the statement holds no request text but as arguments.
		sqlText, _ := p.aggregateSQL(nil, nil)
		for _, d := range p.Dimensions {
			if !strings.Contains(sqlText, `"`+d.Name+`"`) {
				t.Fatalf("dimension %q not quoted in %s", d.Name, sqlText)
			}
		}
		if len(p.Columns()) != len(p.Dimensions)+len(p.Measures) {
			t.Fatal("columns")
		}
	})
}
