package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goccy/go-json"
	"github.com/klauspost/compress/zstd"

	"worklog/data"
)

// openStore opens a store in a fresh directory; replaced files are deleted
// at once so tests see exactly the live files on disk.
func openStore(t *testing.T) *data.Store {
	t.Helper()
	st, err := data.Open(t.TempDir(), data.StoreOptions{RetireGrace: -1})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func ingestText(t *testing.T, st *data.Store, opts Options, texts ...string) (Summary, error) {
	t.Helper()
	var in []Input
	for i, s := range texts {
		in = append(in, Input{Name: "in" + string(rune('1'+i)), R: strings.NewReader(s)})
	}
	return Run(context.Background(), st, in, opts)
}

func mustIngest(t *testing.T, st *data.Store, texts ...string) Summary {
	t.Helper()
	sum, err := ingestText(t, st, Options{}, texts...)
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	return sum
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readBack renders every event of the store, ordered by userWorklogId, as
// one JSON object per line with keys in catalogue order, read through the
// store's DuckDB read path (data.ScanSQL).
func readBack(t *testing.T, st *data.Store) string {
	t.Helper()
	snap, err := st.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT * FROM " + data.ScanSQL(snap.Files) + " ORDER BY " + data.QuoteIdent(data.KeyField))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	fields := data.Fields()
	var out strings.Builder
	for rows.Next() {
		vals := make([]any, len(fields))
		ptrs := make([]any, len(fields))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out.WriteString("{")
		for i, f := range fields {
			if i > 0 {
				out.WriteString(", ")
			}
			out.WriteString(`"` + f.Name + `": `)
			switch v := vals[i].(type) {
			case time.Time:
				out.WriteString(`"` + v.Format(data.TimestampLayout) + `"`)
			default:
				b, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				out.Write(b)
			}
		}
		out.WriteString("}\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// TestReadBackEveryKind checks that DuckDB reads back exactly what was
// ingested, for every field kind, nulls and lists included.
func TestReadBackEveryKind(t *testing.T) {
	st := openStore(t)
	sum := mustIngest(t, st, string(fixture(t, "full.ndjson")))
	if sum.New != 3 || sum.Updated != 0 || sum.Rejected != 0 || sum.UnknownKeys != 1 {
		t.Errorf("summary = %+v, want new 3, updated 0, rejected 0, 1 unknown key", sum)
	}
	got := readBack(t, st)
	want := string(fixture(t, "full.golden"))
	if got != want {
		t.Errorf("read back:\n%s\nwant:\n%s", got, want)
	}
	if months := sum.Snapshot.Months(); strings.Join(months, ",") != "2024-05,2024-06" {
		t.Errorf("months = %v", months)
	}
}

// TestFormatsRoundTrip ingests the same events in every input format and
// compression; the store must read back the same.
func TestFormatsRoundTrip(t *testing.T) {
	nd := fixture(t, "full.ndjson")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(fixture(t, "full.json"))
	zw.Close()
	var zs bytes.Buffer
	zsw, _ := zstd.NewWriter(&zs)
	zsw.Write(fixture(t, "full.csv"))
	zsw.Close()
	want := string(fixture(t, "full.golden"))
	tests := []struct {
		name string
		in   []byte
	}{
		{"ndjson", nd},
		{"ndjson CRLF", bytes.ReplaceAll(nd, []byte("\n"), []byte("\r\n"))},
		{"json array", fixture(t, "full.json")},
		{"json array on one line", mustCompactArray(t, nd)},
		{"csv", fixture(t, "full.csv")},
		{"gzip json array", gz.Bytes()},
		{"zstd csv", zs.Bytes()},
		{"export's own json", []byte(exportJSON(t, want))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			sum := mustIngest(t, st, string(tc.in))
			if sum.New != 3 {
				t.Errorf("new = %d, want 3", sum.New)
			}
			if got := readBack(t, st); got != want {
				t.Errorf("read back:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func mustCompactArray(t *testing.T, ndjson []byte) []byte {
	var parts []string
	for _, l := range strings.Split(string(ndjson), "\n") {
		if strings.TrimSpace(l) != "" {
			parts = append(parts, l)
		}
	}
	return []byte("[" + strings.Join(parts, ",") + "]")
}

// exportJSON turns read-back lines into a JSON array the way the export
// writes it: lists as JSON-array strings with ", " between items.
func exportJSON(t *testing.T, lines string) string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(lines), "\n") {
		for _, f := range data.Fields() {
			if f.Kind != data.KindList {
				continue
			}
			key := `"` + f.Name + `": `
			i := strings.Index(l, key) + len(key)
			j := i + strings.Index(l[i:], "]") + 1
			list := l[i:j]
			asString, _ := json.Marshal(strings.ReplaceAll(list, `","`, `", "`))
			l = l[:i] + string(asString) + l[j:]
		}
		out = append(out, l)
	}
	return "[\n" + strings.Join(out, ",\n") + "\n]\n"
}

const (
	ev1 = `{"date":"2024-01-15 10:00:00","action":"readAction","userWorklogId":1,"duration":10}`
	ev2 = `{"date":"2024-02-15 10:00:00","action":"readAction","userWorklogId":2,"duration":20}`
	ev3 = `{"date":"2024-03-15 10:00:00","action":"readAction","userWorklogId":3,"duration":30}`
)

func TestUpsert(t *testing.T) {
	dump := ev1 + "\n" + ev2 + "\n" + ev3 + "\n"
	t.Run("same dump twice leaves the rows unchanged", func(t *testing.T) {
		st := openStore(t)
		mustIngest(t, st, dump)
		before := readBack(t, st)
		sum := mustIngest(t, st, dump)
		if sum.New != 0 || sum.Updated != 0 || sum.Unchanged != 3 {
			t.Errorf("second ingest: %v", sum)
		}
		if after := readBack(t, st); after != before {
			t.Errorf("rows changed:\n%s\nwas:\n%s", after, before)
		}
	})
	t.Run("changed record replaces the old one, also across months", func(t *testing.T) {
		st := openStore(t)
		mustIngest(t, st, dump)
		moved := `{"date":"2024-03-20 09:00:00","action":"closeAction","userWorklogId":1,"duration":99}`
		sum := mustIngest(t, st, moved+"\n")
		if sum.New != 0 || sum.Updated != 1 {
			t.Errorf("summary: %v", sum)
		}
		got := readBack(t, st)
		if strings.Count(got, `"userWorklogId": 1,`) != 1 || !strings.Contains(got, `"duration": 99`) {
			t.Errorf("read back:\n%s", got)
		}
		snap, _ := st.Snapshot()
		if m := strings.Join(snap.Months(), ","); m != "2024-02,2024-03" {
			t.Errorf("months = %s, want 2024-01 emptied", m)
		}
		if snap.Rows() != 3 {
			t.Errorf("rows = %d, want 3", snap.Rows())
		}
	})
	t.Run("last record wins within a dump and across inputs", func(t *testing.T) {
		st := openStore(t)
		a := `{"date":"2024-01-01 00:00:00","action":"readAction","userWorklogId":7,"duration":1}`
		b := `{"date":"2024-05-01 00:00:00","action":"readAction","userWorklogId":7,"duration":2}`
		c := `{"date":"2024-01-02 00:00:00","action":"readAction","userWorklogId":7,"duration":3}`
		sum := mustIngest(t, st, a+"\n"+b+"\n", c+"\n")
		if sum.New != 1 {
			t.Errorf("summary: %v", sum)
		}
		got := readBack(t, st)
		if !strings.Contains(got, `"date": "2024-01-02 00:00:00"`) || strings.Count(got, "\n") != 1 {
			t.Errorf("read back:\n%s", got)
		}
	})
}

// storeFiles maps every file under the store to its content.
func storeFiles(t *testing.T, st *data.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(st.Dir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFailCommitsNothing(t *testing.T) {
	st := openStore(t)
	mustIngest(t, st, ev1+"\n"+ev2+"\n")
	before := storeFiles(t, st)
	bad := ev3 + "\n" + `{"date":"2024-02-01 00:00:00","action":"readAction","userWorklogId":9,"duration":"abc"}` + "\n" + ev1 + "\n"
	sum, err := ingestText(t, st, Options{}, bad)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want *ValidationError", err)
	}
	if ve.Count != 1 || len(ve.Errors) != 1 || ve.Errors[0].Error() != `line 2: duration: expected integer, got "abc"` {
		t.Errorf("errors = %v (count %d)", ve.Errors, ve.Count)
	}
	if sum.Rejected != 1 || sum.Ingested() != 0 {
		t.Errorf("summary = %v", sum)
	}
	after := storeFiles(t, st)
	if len(after) != len(before) {
		t.Errorf("store has %d files, had %d", len(after), len(before))
	}
	for p, b := range before {
		if after[p] != b {
			t.Errorf("%s changed", p)
		}
	}
}

func TestSkipWritesRejects(t *testing.T) {
	st := openStore(t)
	var rejects bytes.Buffer
	in := ev1 + "\n" +
		`{"date":"2024-02-01 00:00:00","action":"flyAction","userWorklogId":9}` + "\n" +
		"not json\n" +
		ev2 + "\n"
	sum, err := ingestText(t, st, Options{OnError: Skip, Rejects: &rejects}, in)
	if err != nil {
		t.Fatal(err)
	}
	if sum.New != 2 || sum.Rejected != 2 {
		t.Errorf("summary = %v", sum)
	}
	want := `{"date":"2024-02-01 00:00:00","action":"flyAction","userWorklogId":9,"_line":2,"_error":"line 2: action: expected one of closeAction, readAction, statusAction, writeAction, autoProcessAction, got \"flyAction\""}` + "\n" +
		`{"_raw":"not json","_line":3,"_error":"line 3: expected a JSON object"}` + "\n"
	if rejects.String() != want {
		t.Errorf("rejects:\n%s\nwant:\n%s", rejects.String(), want)
	}
	for _, l := range strings.Split(strings.TrimSpace(rejects.String()), "\n") {
		if !json.Valid([]byte(l)) {
			t.Errorf("reject line is not JSON: %s", l)
		}
	}
}

// TestRecordErrors lists what users see for each kind of bad record.
func TestRecordErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"missing date", `{"action":"readAction","userWorklogId":1}`, `line 1: date: required field is missing`},
		{"null id", `{"date":"2024-01-01","action":"readAction","userWorklogId":null}`, `line 1: userWorklogId: required field is missing`},
		{"bad date", `{"date":"yesterday","action":"readAction","userWorklogId":1}`, `line 1: date: expected date-time "YYYY-MM-DD HH:MM:SS", got "yesterday"`},
		{"flag 2", `{"date":"2024-01-01","action":"readAction","userWorklogId":1,"reOpened":2}`, `line 1: reOpened: expected 0 or 1, got 2`},
		{"level 7", `{"date":"2024-01-01","action":"readAction","userWorklogId":1,"aiAutomationLevel":7}`, `line 1: aiAutomationLevel: expected integer 0 to 5, got 7`},
		{"fraction", `{"date":"2024-01-01","action":"readAction","userWorklogId":1,"duration":1.5}`, `line 1: duration: expected integer, got 1.5`},
		{"bad channel", `{"date":"2024-01-01","action":"readAction","userWorklogId":1,"channel":"fax"}`, `line 1: channel: expected one of email, portal, phone, system, chat, walkIn, letter, got "fax"`},
		{"number as string field", `{"date":"2024-01-01","action":"readAction","userWorklogId":1,"status":5}`, `line 1: status: expected string, got 5`},
		{"list of numbers", `{"date":"2024-01-01","action":"readAction","userWorklogId":1,"tags":[1,2]}`, `line 1: tags: expected JSON array of strings, got [1,2]`},
		{"bad list string", `{"date":"2024-01-01","action":"readAction","userWorklogId":1,"teams":"a, b"}`, `line 1: teams: expected JSON array of strings, got "a, b"`},
		{"float text", `{"date":"2024-01-01","action":"readAction","userWorklogId":1,"textAssistanceAccuracy":"high"}`, `line 1: textAssistanceAccuracy: expected number, got "high"`},
		{"broken json", `{"date":"2024-01-01","action":"readAction"`, `line 1: invalid JSON object`},
		{"json array element", `[` + "\n" + `{"date":"2024-01-01","action":"readAction","userWorklogId":1},` + "\n" + `{"date":"2024-01-01",` + "\n" + `"action":"x","userWorklogId":2}]`, `line 3: action: expected one of closeAction, readAction, statusAction, writeAction, autoProcessAction, got "x"`},
		{"csv cell", "date,action,userWorklogId,duration\n2024-01-01,readAction,1,5\n2024-01-01,readAction,2,abc\n", `line 3: duration: expected integer, got "abc"`},
		{"csv short row", "date,action,userWorklogId\n2024-01-01,readAction\n", `line 2: expected 3 CSV fields (the header's), got 2`},
		{"long value is cut", `{"date":"2024-01-01","action":"readAction","userWorklogId":1,"duration":"` + strings.Repeat("x", 100) + `"}`, `line 1: duration: expected integer, got "` + strings.Repeat("x", 39) + `…`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			_, err := ingestText(t, st, Options{}, tc.in)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want *ValidationError", err)
			}
			if got := ve.Errors[0].Error(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestFatalInputErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"truncated array", `[{"date":"2024-01-01","action":"readAction","userWorklogId":1}`, "JSON array is not closed"},
		{"text after array", `[] x`, `unexpected 'x' after the end`},
		{"duplicate csv column", "date,date\n", `column "date" appears twice`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			_, err := ingestText(t, st, Options{OnError: Skip}, tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if snap, _ := st.Snapshot(); len(snap.Files) != 0 {
				t.Errorf("committed %v", snap.Files)
			}
		})
	}
}

func TestEmptyInputCommitsNothing(t *testing.T) {
	st := openStore(t)
	for _, in := range []string{"", "\n\n", "[]", "date,action,userWorklogId\n"} {
		sum := mustIngest(t, st, in)
		if sum.Ingested() != 0 || sum.Snapshot.Generation != 0 {
			t.Errorf("%q: %v gen %d", in, sum, sum.Snapshot.Generation)
		}
	}
}

func TestStoreFilesAreSortedZstdSmallRowGroups(t *testing.T) {
	st := openStore(t)
	var b strings.Builder
	// 40,000 events of one month in reverse order.
	for i := 40000; i > 0; i-- {
		b.WriteString(`{"date":"2024-04-01 00:00:00","action":"readAction","userWorklogId":`)
		b.WriteString(strconv.Itoa(i) + "}\n")
	}
	sum := mustIngest(t, st, b.String())
	if len(sum.Snapshot.Files) != 1 {
		t.Fatalf("files = %v", sum.Snapshot.Files)
	}
	db, _ := sql.Open("duckdb", "")
	defer db.Close()
	p := data.QuoteString(sum.Snapshot.Files[0].Path)
	var groups, maxRows int64
	var codec string
	if err := db.QueryRow("SELECT count(DISTINCT row_group_id), max(row_group_num_rows), any_value(compression) FROM parquet_metadata("+p+")").Scan(&groups, &maxRows, &codec); err != nil {
		t.Fatal(err)
	}
	if groups != 3 || maxRows != storeRowGroup || codec != "ZSTD" {
		t.Errorf("row groups %d, max rows %d, codec %s", groups, maxRows, codec)
	}
	var unsorted int64
	if err := db.QueryRow(`SELECT count(*) FROM (SELECT "userWorklogId" - lag("userWorklogId") OVER () AS d FROM read_parquet(` + p + `)) WHERE d <> 1`).Scan(&unsorted); err != nil {
		t.Fatal(err)
	}
	if unsorted != 0 {
		t.Errorf("%d rows out of order", unsorted)
	}
}

// TestLargeMonthIsSplitIntoSortedParts checks that a month larger than the
// part size becomes several parts with disjoint, ordered date ranges that
// together hold every row once.
// Input in store order takes the merge's copy path, reverse order the
// sorting one; both must split alike.
func TestLargeMonthIsSplitIntoSortedParts(t *testing.T) {
	for _, reverse := range []bool{true, false} {
		t.Run(fmt.Sprintf("reverse=%v", reverse), func(t *testing.T) { testLargeMonthSplit(t, reverse) })
	}
}

func testLargeMonthSplit(t *testing.T, reverse bool) {
	st := openStore(t)
	var b strings.Builder
	for n := range 3000 { // 10 events per second
		i := n + 1
		if reverse {
			i = 3000 - n
		}
		fmt.Fprintf(&b, `{"date":"2024-04-01 10:%02d:%02d","action":"readAction","userWorklogId":%d}`+"\n", i/600, i/10%60, i)
	}
	sum, err := runWith(context.Background(), st, []Input{{Name: "big", R: strings.NewReader(b.String())}}, Options{}, mergeLimits{partRows: 1000, idBucketRows: defaultIDBucketRows})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(sum.Snapshot.Files); n < 3 || n > 4 {
		t.Errorf("%d parts, want 3 or 4: %v", n, sum.Snapshot.Files)
	}
	db, _ := sql.Open("duckdb", "")
	defer db.Close()
	var total, distinct int64
	var lastMax time.Time
	for _, f := range sum.Snapshot.Files {
		var n int64
		var lo, hi time.Time
		var unsorted int64
		p := data.QuoteString(f.Path)
		err := db.QueryRow(`SELECT count(*), min("date"), max("date"), count(*) FILTER (WHERE d < 0) FROM (SELECT "date", "userWorklogId" - lag("userWorklogId", 1, 0) OVER () AS d FROM read_parquet(`+p+`))`).Scan(&n, &lo, &hi, &unsorted)
		if err != nil {
			t.Fatal(err)
		}
		if n != f.Rows || unsorted != 0 || !lo.After(lastMax) {
			t.Errorf("%s: %d rows (manifest %d), %d out of order, starts %v after previous end %v", filepath.Base(f.Path), n, f.Rows, unsorted, lo, lastMax)
		}
		lastMax = hi
		total += n
	}
	if err := db.QueryRow("SELECT count(DISTINCT \"userWorklogId\") FROM " + data.ScanSQL(sum.Snapshot.Files)).Scan(&distinct); err != nil {
		t.Fatal(err)
	}
	if total != 3000 || distinct != 3000 {
		t.Errorf("total %d, distinct ids %d, want 3000", total, distinct)
	}
}

func TestConcurrentRunsSerialize(t *testing.T) {
	st := openStore(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := fmt.Sprintf(`{"date":"2024-0%d-01 00:00:00","action":"readAction","userWorklogId":%d}`, 1+i%2, 100+i)
			_, err := Run(context.Background(), st, []Input{{Name: "x", R: strings.NewReader(ev)}}, Options{})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	snap, _ := st.Snapshot()
	if snap.Rows() != 4 || snap.Generation != 4 {
		t.Errorf("rows %d, generation %d; want 4 and 4", snap.Rows(), snap.Generation)
	}
}

func TestCancelledRunCommitsNothing(t *testing.T) {
	st := openStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, st, []Input{{Name: "x", R: strings.NewReader(ev1)}}, Options{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if snap, _ := st.Snapshot(); snap.Generation != 0 {
		t.Errorf("committed generation %d", snap.Generation)
	}
}

func TestCSVRejects(t *testing.T) {
	st := openStore(t)
	var rejects bytes.Buffer
	in := "date,action,userWorklogId,reOpened,note\n2024-01-01,readAction,1,0,x\n2024-01-01,readAction,2,yes,\n"
	sum, err := ingestText(t, st, Options{OnError: Skip, Rejects: &rejects}, in)
	if err != nil {
		t.Fatal(err)
	}
	if sum.New != 1 || sum.Rejected != 1 || sum.UnknownKeys != 1 {
		t.Errorf("summary %+v", sum)
	}
	want := `{"date":"2024-01-01","action":"readAction","userWorklogId":"2","reOpened":"yes","note":null,"_line":3,"_error":"line 3: reOpened: expected 0 or 1, got \"yes\""}` + "\n"
	if rejects.String() != want {
		t.Errorf("rejects %s\nwant    %s", rejects.String(), want)
	}
}

// TestMergeKeepsStoreOrderAndLatest covers the merge's two ways of writing a
// month — a plain copy of a dump already in store order whose rows replace
// the whole month, and the join and sort otherwise — by what a reader sees:
// the latest record of every id, once, and files sorted by date and id.
func TestMergeKeepsStoreOrderAndLatest(t *testing.T) {
	ev := func(date string, id, duration int) string {
		return fmt.Sprintf(`{"date":"2024-%s","action":"readAction","userWorklogId":%d,"duration":%d}`+"\n", date, id, duration)
	}
	tests := []struct {
		name  string
		dumps []string // ingested in turn
		want  string   // id:duration of every stored event, by id
	}{
		{"sorted dump into an empty store",
			[]string{ev("01-01 10:00:00", 2, 1) + ev("01-01 10:00:00", 3, 1) + ev("02-01 10:00:00", 1, 1)},
			"1:1 2:1 3:1"},
		{"sorted dump whose id comes back in a later month",
			[]string{ev("01-01 10:00:00", 7, 1) + ev("02-01 10:00:00", 8, 1) + ev("03-01 10:00:00", 7, 2)},
			"7:2 8:1"},
		{"same date and id twice in a sorted dump",
			[]string{ev("01-01 10:00:00", 5, 1) + ev("01-01 10:00:00", 5, 2)},
			"5:2"},
		{"sorted dump into a month with other events",
			[]string{ev("01-10 10:00:00", 1, 1), ev("01-05 10:00:00", 2, 2) + ev("01-20 10:00:00", 3, 2)},
			"1:1 2:2 3:2"},
		{"sorted dump updating part of a month",
			[]string{ev("01-10 10:00:00", 1, 1) + ev("01-11 10:00:00", 2, 1), ev("01-11 10:00:00", 2, 2)},
			"1:1 2:2"},
		{"sorted dump replacing a whole month",
			[]string{ev("01-10 10:00:00", 1, 1) + ev("01-11 10:00:00", 2, 1), ev("01-09 10:00:00", 2, 2) + ev("01-12 10:00:00", 1, 2)},
			"1:2 2:2"},
		{"unsorted dump",
			[]string{ev("02-01 10:00:00", 1, 1) + ev("01-01 10:00:00", 3, 1) + ev("01-01 09:00:00", 2, 1)},
			"1:1 2:1 3:1"},
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Each case runs with the default limits, and with the dump's ids
	// grouped two per bucket, the path a dump of many millions takes.
	limits := map[string]mergeLimits{
		"":          {partRows: defaultPartRows, idBucketRows: defaultIDBucketRows},
		"/bucketed": {partRows: defaultPartRows, idBucketRows: 2},
	}
	for _, tt := range tests {
		for suffix, lim := range limits {
			t.Run(tt.name+suffix, func(t *testing.T) {
				st := openStore(t)
				for i, d := range tt.dumps {
					if _, err := runWith(context.Background(), st, []Input{{Name: fmt.Sprint("dump", i), R: strings.NewReader(d)}}, Options{}, lim); err != nil {
						t.Fatalf("ingest dump %d: %v", i, err)
					}
				}
				snap, err := st.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				var got string
				err = db.QueryRow(`SELECT string_agg("userWorklogId" || ':' || "duration", ' ' ORDER BY "userWorklogId") FROM ` + data.ScanSQL(snap.Files)).Scan(&got)
				if err != nil {
					t.Fatal(err)
				}
				if got != tt.want {
					t.Errorf("stored %q, want %q", got, tt.want)
				}
				for _, f := range snap.Files {
					var unsorted int64
					err := db.QueryRow(`SELECT count(*) FROM (SELECT "date" < lag("date") OVER () OR ("date" = lag("date") OVER () AND "userWorklogId" <= lag("userWorklogId") OVER ()) AS bad FROM read_parquet(` + data.QuoteString(f.Path) + `)) WHERE bad`).Scan(&unsorted)
					if err != nil {
						t.Fatal(err)
					}
					if unsorted != 0 {
						t.Errorf("%s: %d rows out of order", f.Month, unsorted)
					}
				}
			})
		}
	}
}

// TestOnReject checks that OnReject sees every invalid record, typed, in
// input order, under Skip and Fail alike, and agrees with the rejects file.
func TestOnReject(t *testing.T) {
	var in strings.Builder
	in.WriteString(ev1 + "\n")
	type want struct {
		line  int64
		field string
		cause string
	}
	var wants []want
	for i := range 12 { // more than a ValidationError keeps
		line := int64(i + 2)
		switch i % 3 {
		case 0:
			fmt.Fprintf(&in, `{"date":"2024-01-01","action":"readAction","userWorklogId":%d,"duration":"abc"}`+"\n", 100+i)
			wants = append(wants, want{line, "duration", `expected integer, got "abc"`})
		case 1:
			fmt.Fprintf(&in, `{"action":"readAction","userWorklogId":%d}`+"\n", 100+i)
			wants = append(wants, want{line, "date", "required field is missing"})
		case 2:
			in.WriteString("not json\n")
			wants = append(wants, want{line, "", "expected a JSON object"})
		}
	}
	in.WriteString(ev2 + "\n")

	for name, mode := range map[string]OnError{"skip": Skip, "fail": Fail} {
		t.Run(name, func(t *testing.T) {
			st := openStore(t)
			var got []*RecordError
			var rejects bytes.Buffer
			sum, err := ingestText(t, st, Options{OnError: mode, Rejects: &rejects, OnReject: func(e *RecordError) { got = append(got, e) }}, in.String())
			if mode == Skip && (err != nil || sum.New != 2) {
				t.Fatalf("Run = %v, %v", sum, err)
			}
			var ve *ValidationError
			if mode == Fail && (!errors.As(err, &ve) || ve.Count != 12 || len(ve.Errors) != maxReported) {
				t.Fatalf("Run err = %v, want a ValidationError of 12 records", err)
			}
			if len(got) != len(wants) {
				t.Fatalf("OnReject called %d times, want %d", len(got), len(wants))
			}
			var lines []string
			if mode == Skip {
				lines = strings.Split(strings.TrimSpace(rejects.String()), "\n")
				if len(lines) != len(got) {
					t.Fatalf("%d rejects lines, %d OnReject calls", len(lines), len(got))
				}
			}
			for i, e := range got {
				w := wants[i]
				if e.Line != w.line || e.Field != w.field || e.Cause() != w.cause || e.Source != "in1" {
					t.Errorf("reject %d = line %d, field %q, cause %q, source %q; want %+v", i, e.Line, e.Field, e.Cause(), e.Source, w)
				}
				if w.field == "date" && !errors.Is(e, errRequired) {
					t.Errorf("reject %d does not unwrap to its cause: %v", i, e)
				}
				if mode == Fail && i < maxReported && ve.Errors[i] != e {
					t.Errorf("reject %d differs from ValidationError.Errors[%d]", i, i)
				}
				if mode == Skip {
					var rec struct {
						Line  int64  `json:"_line"`
						Error string `json:"_error"`
					}
					if err := json.Unmarshal([]byte(lines[i]), &rec); err != nil || rec.Line != e.Line || rec.Error != e.Error() {
						t.Errorf("rejects line %d = %s; OnReject got %v", i, lines[i], e)
					}
				}
			}
		})
	}
}
