//go:build duckdb_arrow

package export

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	duckdb "github.com/duckdb/duckdb-go/v2"

	"worklog/data"
)

// TestDuckDBParquetReference writes the reference event to a Parquet file
// with DuckDB, reads it back as Arrow batches the way the query layer does,
// and checks that each encoder reproduces the reference. This pins the
// encoders to the Arrow types DuckDB really returns (timestamp[us],
// list<utf8>, ...), including the date32 the pseudonymized level uses.
func TestDuckDBParquetReference(t *testing.T) {
	ev := loadReference(t)
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

	// One bound parameter per field, cast to the store's column type.
	var cols []string
	var args []any
	for _, f := range data.Fields() {
		expr := "CAST(? AS " + f.Kind.SQLType() + ")"
		if f.Kind == data.KindList {
			expr = `CAST(from_json(?, '["VARCHAR"]') AS VARCHAR[])`
		}
		cols = append(cols, expr+" AS "+data.QuoteIdent(f.Name))
		switch v := ev.values[f.Name].(type) {
		case nil:
			args = append(args, nil)
		case json.Number:
			args = append(args, v.String())
		default:
			args = append(args, v)
		}
	}
	path := filepath.Join(t.TempDir(), "ref.parquet")
	copySQL := "COPY (SELECT " + strings.Join(cols, ", ") + ") TO " + data.QuoteString(path) + " (FORMAT parquet)"
	if _, err := conn.ExecContext(ctx, copySQL, args...); err != nil {
		t.Fatalf("write parquet: %v", err)
	}

	// query reads the Parquet file through DuckDB's Arrow interface and
	// encodes every batch.
	query := func(t *testing.T, f Format, selectList string) []byte {
		t.Helper()
		var buf bytes.Buffer
		err := conn.Raw(func(dc any) error {
			ar, err := duckdb.NewArrowFromConn(dc.(driver.Conn))
			if err != nil {
				return err
			}
			rr, err := ar.QueryContext(ctx, "SELECT "+selectList+" FROM read_parquet("+data.QuoteString(path)+")")
			if err != nil {
				return err
			}
			defer rr.Release()
			return encodeReader(rr, f, &buf)
		})
		if err != nil {
			t.Fatalf("query and encode: %v", err)
		}
		return buf.Bytes()
	}

	t.Run("json equals the reference", func(t *testing.T) {
		var want, got bytes.Buffer
		if err := json.Compact(&want, ev.raw); err != nil {
			t.Fatal(err)
		}
		if err := json.Compact(&got, query(t, FormatJSON, "*")); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("json\n got %s\nwant %s", got.String(), want.String())
		}
	})
	t.Run("csv and xlsx read back as the reference", func(t *testing.T) {
		var header, row []string
		for _, f := range data.Fields() {
			header = append(header, f.Name)
			row = append(row, referenceText(ev.values[f.Name]))
		}
		want := [][]string{header, row}
		if got := readCSV(t, query(t, FormatCSV, "*")); !reflect.DeepEqual(got, want) {
			t.Errorf("csv\n got %q\nwant %q", got, want)
		}
		if _, got := readXLSX(t, query(t, FormatXLSX, "*")); !reflect.DeepEqual(got[DefaultSheetName], want) {
			t.Errorf("xlsx\n got %q\nwant %q", got[DefaultSheetName], want)
		}
	})
	t.Run("date cut to a DuckDB DATE", func(t *testing.T) {
		got := query(t, FormatJSON, `CAST("date" AS DATE) AS "date", "action", "tags"`)
		want := "[\n" + `{"date":"2024-05-10","action":"writeAction","tags":"[\"Billing\", \"Payment reminder\"]"}` + "\n]\n"
		if string(got) != want {
			t.Errorf("json\n got %s\nwant %s", got, want)
		}
	})
}

// encodeReader encodes every batch of rr in format f.
func encodeReader(rr array.RecordReader, f Format, w *bytes.Buffer) error {
	enc, err := NewEncoder(f, w, rr.Schema(), EncoderOptions{CSVFormulaGuard: true})
	if err != nil {
		return err
	}
	for rr.Next() {
		if err := enc.Write(rr.RecordBatch()); err != nil {
			return err
		}
	}
	if err := rr.Err(); err != nil {
		return err
	}
	return enc.Close()
}
