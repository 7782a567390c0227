package main

import (
	"net/url"
	"testing"
)

func TestAddFilterFlags(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		filters []string
		want    string // url.Values.Encode() of the result
		wantErr bool
	}{
		{name: "equals", filters: []string{"department:equals:Customer care"},
			want: "filters%5B0%5D%5Bcomparator%5D=equals&filters%5B0%5D%5Bkey%5D=department&filters%5B0%5D%5Bvalue%5D=Customer+care"},
		{name: "timestamp value keeps its colons", filters: []string{"date:gte:2024-05-10 08:00:00"},
			want: "filters%5B0%5D%5Bcomparator%5D=gte&filters%5B0%5D%5Bkey%5D=date&filters%5B0%5D%5Bvalue%5D=2024-05-10+08%3A00%3A00"},
		{name: "between", filters: []string{"date:between:2024-05-10..2024-05-11"},
			want: "filters%5B0%5D%5Bcomparator%5D=between&filters%5B0%5D%5Bfrom%5D=2024-05-10&filters%5B0%5D%5Bkey%5D=date&filters%5B0%5D%5Bto%5D=2024-05-11"},
		{name: "in", filters: []string{"action:in:readAction|writeAction"},
			want: "filters%5B0%5D%5Bcomparator%5D=in&filters%5B0%5D%5Bkey%5D=action&filters%5B0%5D%5Bvalues%5D%5B%5D=readAction&filters%5B0%5D%5Bvalues%5D%5B%5D=writeAction"},
		{name: "no operand", filters: []string{"channel:isNull"},
			want: "filters%5B0%5D%5Bcomparator%5D=isNull&filters%5B0%5D%5Bkey%5D=channel"},
		{name: "numbered after --query", query: "filters[4][key]=channel&filters[4][comparator]=isNull", filters: []string{"duration:gt:10"},
			want: "filters%5B4%5D%5Bcomparator%5D=isNull&filters%5B4%5D%5Bkey%5D=channel&filters%5B5%5D%5Bcomparator%5D=gt&filters%5B5%5D%5Bkey%5D=duration&filters%5B5%5D%5Bvalue%5D=10"},
		{name: "missing comparator", filters: []string{"duration"}, wantErr: true},
		{name: "between without ..", filters: []string{"date:between:2024-05-10"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			values, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			err = addFilterFlags(values, tc.filters)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error; values %v", values)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := values.Encode(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
