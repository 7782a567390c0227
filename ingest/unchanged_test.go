package ingest

import (
	"testing"
)

// TestUnchanged checks how a re-ingest counts its events: an event stored
// with the same content is unchanged, one with any other content updated;
// and a re-ingest that changes nothing commits nothing.
func TestUnchanged(t *testing.T) {
	const (
		a = `{"date":"2024-01-15 10:00:00","name":"Ann Smith","userId":7,"email":"ann@example.com","action":"readAction","userWorklogId":1,"duration":10,"tags":["a","b"],"rawData":"{}"}`
		b = `{"date":"2024-01-16 11:00:00","action":"writeAction","userWorklogId":2,"duration":20,"textAssistanceAccuracy":0.25}`
		c = `{"date":"2024-02-03 09:30:00","action":"closeAction","userWorklogId":3,"channel":"chat"}`
	)
	first := a + "\n" + b + "\n" + c + "\n"
	tests := []struct {
		name                    string
		again                   string
		new, updated, unchanged int64
		committed               bool // a new generation
		wantRows                int64
	}{
		{"the same dump", first, 0, 0, 3, false, 3},
		{"the same events in another order and format",
			"date,action,userWorklogId,channel\n2024-02-03 09:30:00,closeAction,3,chat\n" +
				"", 0, 0, 1, false, 3},
		{"one field changed",
			a + "\n" + `{"date":"2024-01-16 11:00:00","action":"writeAction","userWorklogId":2,"duration":21,"textAssistanceAccuracy":0.25}` + "\n" + c,
			0, 1, 2, true, 3},
		{"a value cleared by an explicit null",
			`{"date":"2024-02-03 09:30:00","action":"closeAction","userWorklogId":3,"channel":null}`, 0, 1, 0, true, 3},
		{"a list reordered",
			`{"date":"2024-01-15 10:00:00","name":"Ann Smith","userId":7,"email":"ann@example.com","action":"readAction","userWorklogId":1,"duration":10,"tags":["b","a"],"rawData":"{}"}`,
			0, 1, 0, true, 3},
		{"a record that leaves fields out and gives the rest as stored",
			`{"date":"2024-01-15 10:00:00","action":"readAction","userWorklogId":1,"duration":10}`, 0, 0, 1, false, 3},
		{"a record that leaves fields out and changes one",
			`{"date":"2024-01-15 10:00:00","action":"readAction","userWorklogId":1,"duration":11}`, 0, 1, 0, true, 3},
		{"moved to another month",
			`{"date":"2024-02-15 10:00:00","action":"writeAction","userWorklogId":2,"duration":20,"textAssistanceAccuracy":0.25}`, 0, 1, 0, true, 3},
		{"moved within its month",
			`{"date":"2024-01-16 11:00:01","action":"writeAction","userWorklogId":2,"duration":20,"textAssistanceAccuracy":0.25}`, 0, 1, 0, true, 3},
		{"the last record of an id is the stored one",
			`{"date":"2024-02-03 09:30:00","action":"closeAction","userWorklogId":3,"channel":"email"}` + "\n" + c, 0, 0, 1, false, 3},
		{"new events beside unchanged ones in the same month",
			b + "\n" + `{"date":"2024-01-20 08:00:00","action":"readAction","userWorklogId":4}`, 1, 0, 1, true, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			mustIngest(t, st, first)
			before, err := st.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			want := readBack(t, st)
			sum := mustIngest(t, st, tc.again+"\n")
			if sum.New != tc.new || sum.Updated != tc.updated || sum.Unchanged != tc.unchanged {
				t.Errorf("summary %v, want new %d, updated %d, unchanged %d", sum, tc.new, tc.updated, tc.unchanged)
			}
			after, err := st.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if (after.Generation != before.Generation) != tc.committed {
				t.Errorf("generation %d after %d, want a commit: %v", after.Generation, before.Generation, tc.committed)
			}
			if sum.Snapshot.Generation != after.Generation {
				t.Errorf("summary's snapshot is generation %d, the store's %d", sum.Snapshot.Generation, after.Generation)
			}
			if after.Rows() != tc.wantRows {
				t.Errorf("rows %d, want %d", after.Rows(), tc.wantRows)
			}
			if !tc.committed {
				if got := readBack(t, st); got != want {
					t.Errorf("rows changed:\n%s\nwere:\n%s", got, want)
				}
			}
		})
	}
}
