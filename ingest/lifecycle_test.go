package ingest

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"worklog/data"
)

// lifecycleDump is 400 events of five users (userId 100..104) over four
// months of 2024, in no particular order.
func lifecycleDump() string {
	var b strings.Builder
	for i := 1; i <= 400; i++ {
		u := 100 + i%5
		fmt.Fprintf(&b, `{"date":"2024-%02d-%02d %02d:%02d:00","action":"writeAction","userWorklogId":%d,"userId":%d,"name":"Agent %d","email":"a%d@example.com","rawData":"{\"n\":%d}","duration":%d,"tags":["t%d"],"ticketId":%d}`+"\n",
			1+(i*7)%4, 1+(i*13)%28, i%24, i%60, i, u, u, u, i, i, i%3, 5000+i)
	}
	return b.String()
}

// openLifecycleStore ingests lifecycleDump into a fresh store with parts of
// at most 40 rows, so each month has several parts and a user's events
// fall in some of them only.
func openLifecycleStore(t *testing.T) *data.Store {
	t.Helper()
	st := openStore(t)
	_, err := runWith(context.Background(), st, []Input{{Name: "dump", R: strings.NewReader(lifecycleDump())}}, Options{},
		mergeLimits{partRows: 40, idBucketRows: defaultIDBucketRows})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// lines splits readBack output into lines keyed by userWorklogId.
func linesByID(t *testing.T, s string) map[int64]string {
	t.Helper()
	out := map[int64]string{}
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l == "" {
			continue
		}
		var ev struct {
			ID int64 `json:"userWorklogId"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		out[ev.ID] = l
	}
	return out
}

// checkStoreOrder checks that every month's parts, in snapshot order, hold
// rows strictly ordered by date then userWorklogId.
func checkStoreOrder(t *testing.T, st *data.Store) {
	t.Helper()
	snap, err := st.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	db, _ := sql.Open("duckdb", "")
	defer db.Close()
	for _, m := range snap.Months() {
		var prevDate time.Time
		var prevID int64 = -1
		for _, f := range snap.FilesIn(func(month string) bool { return month == m }) {
			rows, err := db.Query(`SELECT "date", "userWorklogId" FROM read_parquet(` + data.QuoteString(f.Path) + `)`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var d time.Time
				var id int64
				if err := rows.Scan(&d, &id); err != nil {
					t.Fatal(err)
				}
				if d.Before(prevDate) || d.Equal(prevDate) && id <= prevID {
					t.Errorf("month %s: %s/%d after %s/%d", m, d, id, prevDate, prevID)
				}
				if d.Format("2006-01") != m {
					t.Errorf("month %s holds %s", m, d)
				}
				prevDate, prevID = d, id
			}
			rows.Close()
		}
	}
}

func TestForget(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []ForgetMode{Anonymize, Delete} {
		t.Run(string(mode), func(t *testing.T) {
			st := openLifecycleStore(t)
			before := linesByID(t, readBack(t, st))
			snapBefore, _ := st.Snapshot()
			var want int64
			months := map[string]bool{}
			for _, l := range before {
				if strings.Contains(l, `"userId": 102,`) {
					want++
					months[l[10:17]] = true
				}
			}
			ch, err := Forget(ctx, st, 102, mode, LifecycleOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if ch.Events != want || ch.Months != len(months) || want != 80 {
				t.Errorf("change %+v, want %d events in %d months", ch, want, len(months))
			}
			if ch.Snapshot.Generation != snapBefore.Generation+1 {
				t.Errorf("generation %d, was %d", ch.Snapshot.Generation, snapBefore.Generation)
			}
			after := linesByID(t, readBack(t, st))
			for id, old := range before {
				got, ok := after[id]
				if !strings.Contains(old, `"userId": 102,`) {
					if got != old {
						t.Errorf("event %d changed:\n%s\nwas\n%s", id, got, old)
					}
					continue
				}
				switch mode {
				case Delete:
					if ok {
						t.Errorf("event %d of the user still there: %s", id, got)
					}
				case Anonymize:
					wantLine := old
					for _, kv := range [][2]string{
						{`"name": "Agent 102"`, `"name": null`},
						{`"userId": 102`, `"userId": null`},
						{`"email": "a102@example.com"`, `"email": null`},
						{`"rawData": "{\"n\":` + fmt.Sprint(id) + `}"`, `"rawData": null`},
					} {
						if !strings.Contains(wantLine, kv[0]) {
							t.Fatalf("fixture line lacks %s: %s", kv[0], old)
						}
						wantLine = strings.Replace(wantLine, kv[0], kv[1], 1)
					}
					if got != wantLine {
						t.Errorf("event %d:\n%s\nwant\n%s", id, got, wantLine)
					}
				}
			}
			checkStoreOrder(t, st)

			again, err := Forget(ctx, st, 102, mode, LifecycleOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if again.Events != 0 || again.Months != 0 || again.Snapshot.Generation != ch.Snapshot.Generation {
				t.Errorf("second forget: %+v (generation %d), want nothing committed", again, again.Snapshot.Generation)
			}
		})
	}
}

// TestForgetRewritesOnlyFilesHoldingTheUser checks the cost claim: a file of
// a changed month that does not hold the user is carried over as it was.
func TestForgetRewritesOnlyFilesHoldingTheUser(t *testing.T) {
	st := openStore(t)
	// Month 2024-05 in two parts: user 7 only in the first, user 8 in both.
	var b strings.Builder
	for i := 1; i <= 80; i++ {
		u := 8
		if i <= 30 && i%2 == 0 {
			u = 7
		}
		fmt.Fprintf(&b, `{"date":"2024-05-01 00:%02d:%02d","action":"readAction","userWorklogId":%d,"userId":%d}`+"\n", i/60, i%60, i, u)
	}
	if _, err := runWith(context.Background(), st, []Input{{Name: "d", R: strings.NewReader(b.String())}}, Options{},
		mergeLimits{partRows: 40, idBucketRows: defaultIDBucketRows}); err != nil {
		t.Fatal(err)
	}
	snap, _ := st.Snapshot()
	if len(snap.Files) != 2 {
		t.Fatalf("want two parts, got %v", snap.Files)
	}
	second := storeFiles(t, st)[snap.Files[1].Path]
	ch, err := Forget(context.Background(), st, 7, Delete, LifecycleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Events != 15 || ch.Months != 1 || len(ch.Snapshot.Files) != 2 {
		t.Fatalf("change %+v, files %v", ch, ch.Snapshot.Files)
	}
	if got := storeFiles(t, st)[ch.Snapshot.Files[1].Path]; got != second {
		t.Error("the part without the user was rewritten")
	}
	if ch.Snapshot.Files[0].Rows != snap.Files[0].Rows-15 {
		t.Errorf("first part holds %d rows, want 15 fewer", ch.Snapshot.Files[0].Rows)
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	st := openLifecycleStore(t)
	before := linesByID(t, readBack(t, st))
	cutoff := time.Date(2024, 3, 10, 6, 30, 0, 0, time.UTC)
	var want int64
	for _, l := range before {
		if l[10:29] < cutoff.Format(data.TimestampLayout) {
			want++
		}
	}
	ch, err := Prune(ctx, st, cutoff, LifecycleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Events != want || ch.Months != 3 {
		t.Errorf("change %+v, want %d events in 3 months", ch, want)
	}
	after := linesByID(t, readBack(t, st))
	for id, l := range before {
		old := l[10:29] < cutoff.Format(data.TimestampLayout)
		got, ok := after[id]
		if old && ok {
			t.Errorf("event %d older than the cutoff kept", id)
		}
		if !old && got != l {
			t.Errorf("event %d changed or lost:\n%s\nwas\n%s", id, got, l)
		}
	}
	if m := strings.Join(ch.Snapshot.Months(), ","); m != "2024-03,2024-04" {
		t.Errorf("months %s", m)
	}
	checkStoreOrder(t, st)
	again, err := Prune(ctx, st, cutoff, LifecycleOptions{})
	if err != nil || again.Events != 0 || again.Snapshot.Generation != ch.Snapshot.Generation {
		t.Errorf("second prune: %+v, %v", again, err)
	}
}

// TestLifecycleAbortCommitsNothing: a forget or prune that stops after
// writing its parts, or that is cancelled, leaves the store as it was and
// no temporary part behind.
func TestLifecycleAbortCommitsNothing(t *testing.T) {
	stop := errors.New("stop before the commit")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for name, run := range map[string]func(*data.Store) error{
		"forget aborted before commit": func(st *data.Store) error {
			_, err := Forget(context.Background(), st, 101, Anonymize, LifecycleOptions{beforeCommit: func() error { return stop }})
			return err
		},
		"prune aborted before commit": func(st *data.Store) error {
			_, err := Prune(context.Background(), st, time.Date(2024, 3, 5, 0, 0, 0, 0, time.UTC), LifecycleOptions{beforeCommit: func() error { return stop }})
			return err
		},
		"forget cancelled": func(st *data.Store) error {
			_, err := Forget(cancelled, st, 101, Delete, LifecycleOptions{})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			st := openLifecycleStore(t)
			before := storeFiles(t, st)
			if err := run(st); err == nil {
				t.Fatal("no error")
			}
			after := storeFiles(t, st)
			if len(after) != len(before) {
				t.Errorf("files: %d, were %d", len(after), len(before))
			}
			for p, b := range before {
				if after[p] != b {
					t.Errorf("%s changed", p)
				}
			}
		})
	}
}

func TestParseForgetMode(t *testing.T) {
	for in, want := range map[string]ForgetMode{"": Anonymize, "anonymize": Anonymize, "delete": Delete} {
		if got, err := ParseForgetMode(in); err != nil || got != want {
			t.Errorf("%q: %v, %v", in, got, err)
		}
	}
	if _, err := ParseForgetMode("erase"); err == nil || !strings.Contains(err.Error(), `"erase"`) {
		t.Errorf("erase: %v", err)
	}
}
