package ingest

import (
	"errors"
	"strings"
	"testing"
)

// full is an event giving every field it cares about; the re-ingests below
// leave some out, null some, and move it between months.
const full = `{"date":"2024-01-15 10:00:00","name":"Ann Smith","userId":7,"email":"ann@example.com","ticketId":55,` +
	`"action":"readAction","userWorklogId":1,"duration":10,"tags":["a","b"],"rawData":"{}"}`

func TestReingestNeverDegrades(t *testing.T) {
	tests := []struct {
		name   string
		again  []string // dumps ingested after full
		want   []string // substrings of the read-back row
		absent []string // substrings it must not hold
	}{
		{"absent keys keep the stored values",
			[]string{`{"date":"2024-01-15 10:00:00","action":"writeAction","userWorklogId":1,"duration":11}`},
			[]string{`"name": "Ann Smith"`, `"email": "ann@example.com"`, `"ticketId": 55`, `"tags": ["a","b"]`, `"action": "writeAction"`, `"duration": 11`}, nil},
		{"explicit null clears",
			[]string{`{"date":"2024-01-15 10:00:00","action":"readAction","userWorklogId":1,"email":null,"tags":null}`},
			[]string{`"email": null`, `"tags": []`, `"name": "Ann Smith"`}, []string{"ann@example.com"}},
		{"a record moved to another month keeps what it leaves out",
			[]string{`{"date":"2024-03-02 08:00:00","action":"readAction","userWorklogId":1}`},
			[]string{`"date": "2024-03-02 08:00:00"`, `"email": "ann@example.com"`, `"name": "Ann Smith"`}, nil},
		{"CSV without a column keeps it, an empty cell clears",
			[]string{"date,action,userWorklogId,email,duration\n2024-01-15 10:00:00,readAction,1,,12\n"},
			[]string{`"name": "Ann Smith"`, `"email": null`, `"duration": 12`, `"ticketId": 55`}, nil},
		{"the last of several records of an id wins, field by field over the store",
			[]string{`{"date":"2024-01-15 10:00:00","action":"readAction","userWorklogId":1,"name":"Ann Jones"}` + "\n" +
				`{"date":"2024-01-15 10:00:00","action":"closeAction","userWorklogId":1}`},
			[]string{`"name": "Ann Smith"`, `"action": "closeAction"`}, []string{"Ann Jones"}},
		{"new ids get nulls and empty lists for what they leave out",
			[]string{`{"date":"2024-01-16 10:00:00","action":"readAction","userWorklogId":2}`},
			nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			mustIngest(t, st, full+"\n")
			for _, d := range tc.again {
				mustIngest(t, st, d+"\n")
			}
			got := readBack(t, st)
			row, _, _ := strings.Cut(got, "\n")
			if strings.Contains(tc.name, "new ids") {
				_, row, _ = strings.Cut(got, "\n")
				if !strings.Contains(row, `"email": null`) || !strings.Contains(row, `"tags": []`) {
					t.Errorf("new id: %s", row)
				}
				return
			}
			for _, w := range tc.want {
				if !strings.Contains(row, w) {
					t.Errorf("read back lacks %s:\n%s", w, got)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(row, a) {
					t.Errorf("read back still holds %s:\n%s", a, got)
				}
			}
		})
	}
}

func TestPseudonymsAndUnsafeIdsRefused(t *testing.T) {
	st := openStore(t)
	mustIngest(t, st, full+"\n")
	before := readBack(t, st)
	tests := []struct {
		dump, want string
	}{
		{`{"date":"2024-01-15","action":"readAction","userWorklogId":1,"name":"Agent-0123456789"}`,
			"line 1: name: looks like a pseudonym; only exports made at level none can be re-ingested"},
		{"date,action,userWorklogId,name\n2024-01-15,readAction,1,Agent-abcdef0123\n",
			"line 2: name: looks like a pseudonym"},
		{`{"date":"2024-01-15 10:00:00","action":"readAction","userWorklogId":9007199254740993.0}`,
			"line 1: userWorklogId: expected integer"},
		{`{"date":"2024-01-15 10:00:00","action":"readAction","userWorklogId":1,"ticketId":1e17}`,
			"line 1: ticketId: expected integer"},
	}
	for _, tc := range tests {
		_, err := ingestText(t, st, Options{}, tc.dump)
		var ve *ValidationError
		if !errors.As(err, &ve) || !strings.HasPrefix(ve.Errors[0].Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.dump, err, tc.want)
		}
	}
	if after := readBack(t, st); after != before {
		t.Errorf("store changed:\n%s\nwas\n%s", after, before)
	}
	// Names that only resemble a pseudonym pass.
	for _, name := range []string{"Agent-0123", "Agent-ABCDEF0123", "agent-0123456789", "Agent-0123456789x"} {
		if _, err := ingestText(t, st, Options{}, `{"date":"2024-01-15 10:00:00","action":"readAction","userWorklogId":3,"name":"`+name+`"}`); err != nil {
			t.Errorf("name %q: %v", name, err)
		}
	}
	// 2^53 - 1 is exact.
	mustIngest(t, st, `{"date":"2024-01-15 10:00:00","action":"readAction","userWorklogId":9007199254740991.0}`)
}
