package privacy

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	duckdb "github.com/duckdb/duckdb-go/v2"

	"worklog/data"
)

// TestTransformDuckDBParquet runs the fixture through the real read path:
// DuckDB writes it as a Parquet part file, reads it back with the store's
// scan as Arrow batches, and the policy transforms them.
func TestTransformDuckDBParquet(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	part := filepath.Join(t.TempDir(), "part-0.parquet")
	var cols []string
	for _, f := range data.Fields() {
		cols = append(cols, data.QuoteString(f.Name)+": "+data.QuoteString(f.Kind.SQLType()))
	}
	copySQL := "COPY (SELECT * FROM read_json(" + data.QuoteString("testdata/events.json") +
		", format = 'array', columns = {" + strings.Join(cols, ", ") + "})) TO " +
		data.QuoteString(part) + " (FORMAT parquet)"
	if _, err := conn.ExecContext(ctx, copySQL); err != nil {
		t.Fatalf("write parquet: %v", err)
	}

	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	p := checkedPolicy(t, Pseudonymized, []string{PermViewEmail}, mem)

	var dates, pseudonyms []string
	var outSchema *arrow.Schema
	err = conn.Raw(func(dc any) error {
		ar, err := duckdb.NewArrowFromConn(dc.(driver.Conn))
		if err != nil {
			return err
		}
		rr, err := ar.QueryContext(ctx, "SELECT * FROM "+data.ScanSQL([]data.PartFile{{Path: part}})+
			" ORDER BY "+data.QuoteIdent(data.KeyField))
		if err != nil {
			return err
		}
		defer rr.Release()
		// The types the transform and the tests assume are DuckDB's.
		for _, f := range storeSchema().Fields() {
			got, ok := rr.Schema().FieldsByName(f.Name)
			if !ok || !arrow.TypeEqual(got[0].Type, f.Type) {
				t.Errorf("DuckDB column %s: %v, want type %s", f.Name, got, f.Type)
			}
		}
		for rr.Next() {
			out, err := p.Transform(rr.RecordBatch())
			if err != nil {
				return err
			}
			outSchema = out.Schema()
			dates = append(dates, texts(column(out, "date"))...)
			pseudonyms = append(pseudonyms, texts(column(out, "name"))...)
			out.Release()
		}
		return rr.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	wantDates := []string{"2024-03-05", "2024-03-05", "1969-12-31", "2024-02-29", "2024-04-01", "2024-04-02", "null"}
	if !slices.Equal(dates, wantDates) {
		t.Errorf("date = %q\nwant %q", dates, wantDates)
	}
	wantNames := []string{wantID(testKey, 42), wantID(testKey, 42), wantID(testKey, 7),
		wantPseudonym(testKey, "name:Carol NoId"), "null", wantID(testKey, 7), wantID(testKey, 99)}
	if !slices.Equal(pseudonyms, wantNames) {
		t.Errorf("name = %q\nwant %q", pseudonyms, wantNames)
	}
	for _, hidden := range []string{"email", "ticketId", "conversationId", "userId", "rawData"} {
		if outSchema == nil || len(outSchema.FieldIndices(hidden)) != 0 {
			t.Errorf("output schema %v shows %s", outSchema, hidden)
		}
	}
	if outSchema != nil && outSchema.NumFields() != 30 {
		t.Errorf("output has %d columns, want 30", outSchema.NumFields())
	}
}
