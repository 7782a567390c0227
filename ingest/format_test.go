package ingest

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
)

// TestStagedPartsHaveTheStoreFormat checks that parts written by Go (a
// month in store order takes its staged parts as they are) have the layout
// of the parts DuckDB writes (a month out of order is sorted by DuckDB):
// the same columns in the same order, with the same physical and logical
// types and repetition (plain TIMESTAMP, Parquet lists), zstd, row groups
// of at most storeRowGroup rows, min/max statistics on the sort key, rows
// in store order.
func TestStagedPartsHaveTheStoreFormat(t *testing.T) {
	st := openStore(t)
	var b strings.Builder
	line := func(month, i int) {
		fmt.Fprintf(&b, `{"date":"2024-%02d-01 %02d:%02d:%02d","name":"Agent %d","action":"readAction","userWorklogId":%d,`+
			`"tags":["a","b"],"teams":[],"closingDateForSLA":"2024-%02d-02 00:00:00","textAssistanceAccuracy":0.5,"rawData":"{\"x\":%d}"}`+"\n",
			month, i/3600, i/60%60, i%60, i%7, month*100000+i, month, i)
	}
	for i := range 20000 { // April in store order: written by Go
		line(4, i)
	}
	for i := 20000; i > 0; i-- { // May in reverse: sorted by DuckDB
		line(5, i)
	}
	sum := mustIngest(t, st, b.String())
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	layout := func(path string) string {
		t.Helper()
		rows, err := db.Query(`SELECT name, type, logical_type, converted_type, repetition_type FROM parquet_schema(` + quote(path) + `)`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := []string{"root"}
		for rows.Next() {
			var name string
			var typ, logical, converted, rep sql.NullString
			if err := rows.Scan(&name, &typ, &logical, &converted, &rep); err != nil {
				t.Fatal(err)
			}
			if len(out) == 1 && (rep.String == "" || rep.String == "REQUIRED") && !typ.Valid {
				continue // the root: its repetition is written by DuckDB only
			}
			// parquet-go also writes the logical type of strings, integers
			// and lists, which DuckDB gives by converted type alone; both
			// read alike. Date-times must be the naive kind on both sides.
			if converted.String != "TIMESTAMP_MICROS" {
				logical.String = ""
			}
			out = append(out, fmt.Sprintf("%s %s %s %s %s", name, typ.String, logical.String, converted.String, rep.String))
		}
		return strings.Join(out, "\n")
	}
	byMonth := map[string]string{}
	for _, f := range sum.Snapshot.Files {
		byMonth[f.Month] = f.Path
		var groups, maxRows, unsorted int64
		var codecs string
		if err := db.QueryRow(`SELECT count(DISTINCT row_group_id), max(row_group_num_rows), string_agg(DISTINCT compression, ',') FROM parquet_metadata(`+quote(f.Path)+`)`).Scan(&groups, &maxRows, &codecs); err != nil {
			t.Fatal(err)
		}
		if maxRows > storeRowGroup || codecs != "ZSTD" {
			t.Errorf("%s: %d row groups of at most %d rows, codecs %s", f.Month, groups, maxRows, codecs)
		}
		var lo, hi sql.NullString
		if err := db.QueryRow(`SELECT min(stats_min_value), max(stats_max_value) FROM parquet_metadata(`+quote(f.Path)+`) WHERE path_in_schema = 'userWorklogId'`).Scan(&lo, &hi); err != nil {
			t.Fatal(err)
		}
		if !lo.Valid || !hi.Valid {
			t.Errorf("%s: no min/max statistics on userWorklogId", f.Month)
		}
		if err := db.QueryRow(`SELECT count(*) FILTER (WHERE d < 0 OR d = 0 AND i <= 0) FROM (SELECT epoch_us("date") - lag(epoch_us("date")) OVER () AS d, "userWorklogId" - lag("userWorklogId") OVER () AS i FROM read_parquet(` + quote(f.Path) + `))`).Scan(&unsorted); err != nil {
			t.Fatal(err)
		}
		if unsorted != 0 {
			t.Errorf("%s: %d rows out of store order", f.Month, unsorted)
		}
	}
	goPart, duckPart := byMonth["2024-04"], byMonth["2024-05"]
	if goPart == "" || duckPart == "" {
		t.Fatalf("files %v", sum.Snapshot.Files)
	}
	if g, d := layout(goPart), layout(duckPart); g != d {
		t.Errorf("layout of the Go-written part:\n%s\nof the DuckDB-written part:\n%s", g, d)
	}
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// TestInOrderDumpWithARepeatedID checks that a dump in store order whose
// ids do not all increase (an id comes again, in a later month) is not
// taken for a dump of distinct ids: the last record of the id wins, and
// its first month loses it.
func TestInOrderDumpWithARepeatedID(t *testing.T) {
	st := openStore(t)
	dump := `{"date":"2024-04-01 10:00:00","action":"readAction","userWorklogId":1}
{"date":"2024-04-02 10:00:00","action":"readAction","userWorklogId":7}
{"date":"2024-05-01 10:00:00","action":"writeAction","userWorklogId":2}
{"date":"2024-05-02 10:00:00","action":"closeAction","userWorklogId":7}
`
	sum := mustIngest(t, st, dump)
	if sum.New != 3 {
		t.Errorf("new = %d, want 3", sum.New)
	}
	got := readBack(t, st)
	if n := strings.Count(got, "\n"); n != 3 || !strings.Contains(got, `"action": "closeAction"`) || strings.Contains(got, `"date": "2024-04-02`) {
		t.Errorf("read back:\n%s", got)
	}
}
