package demo_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"worklog/data"
	"worklog/ingest"
	"worklog/ingest/demo"
)

// TestGenerateIngestRoundTrip feeds generated events through the real
// ingest into a Parquet store and reads them back with DuckDB: every event
// must be accepted, and every field must come back as generated.
func TestGenerateIngestRoundTrip(t *testing.T) {
	const rows = 2000
	var dump bytes.Buffer
	if err := demo.Generate(context.Background(), &dump, demo.Options{Rows: rows, Seed: 11}); err != nil {
		t.Fatal(err)
	}
	generated := dump.Bytes()

	store, err := data.Open(t.TempDir(), data.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sum, err := ingest.Run(context.Background(), store, []ingest.Input{{Name: "demo", R: bytes.NewReader(generated)}}, ingest.Options{})
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	if sum.New != rows || sum.Updated != 0 || sum.Rejected != 0 || sum.UnknownKeys != 0 {
		t.Fatalf("ingest summary %+v, want %d new and nothing else", sum, rows)
	}

	snap, err := store.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(snap.Months()); n != 13 {
		t.Errorf("store has %d month partitions, want 13", n)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.Query("SELECT * FROM " + data.ScanSQL(snap.Files) + " ORDER BY " + data.QuoteIdent(data.KeyField))
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()

	fields := data.Fields()
	sc := bufio.NewScanner(bytes.NewReader(generated))
	sc.Buffer(nil, 1<<20)
	line := 0
	for got.Next() {
		if !sc.Scan() {
			t.Fatalf("store has more than the %d generated events", line)
		}
		line++
		var want map[string]any
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("line %d: %v", line, err)
		}
		vals := make([]any, len(fields))
		ptrs := make([]any, len(fields))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := got.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, f := range fields {
			if g, w := render(vals[i]), render(want[f.Name]); g != w {
				t.Fatalf("event %d, %s: store has %s, generated %s", line, f.Name, g, w)
			}
		}
	}
	if err := got.Err(); err != nil {
		t.Fatal(err)
	}
	if line != rows {
		t.Fatalf("store has %d events, want %d", line, rows)
	}
}

// render gives a value read from DuckDB and the same value decoded from
// NDJSON one comparable form.
func render(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case time.Time:
		return v.Format(data.TimestampLayout)
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return strconv.FormatInt(i, 10)
		}
		if f, err := v.Float64(); err == nil {
			return strconv.FormatFloat(f, 'g', -1, 64)
		}
		return string(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case []any:
		b, _ := json.Marshal(v)
		return string(b)
	default:
		return fmt.Sprint(v)
	}
}
