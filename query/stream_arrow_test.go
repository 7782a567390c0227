package query

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/duckdb/duckdb-go/v2"
)

// streamConn opens an in-memory DuckDB and one connection of it.
func streamConn(t *testing.T) *sql.Conn {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestStreamQueryAvailable checks that streamQuery finds duckdb-go's
// connection handle: with another duckdb-go version whose connection
// differs, chunked reads would silently fall back to materialized
// results, which cost more CPU time.
func TestStreamQueryAvailable(t *testing.T) {
	conn := streamConn(t)
	err := conn.Raw(func(dc any) error {
		c, ok := dc.(*duckdb.Conn)
		if !ok {
			t.Fatalf("driver connection %T, want *duckdb.Conn", dc)
		}
		if _, ok := rawConnection(c); !ok {
			t.Error("no connection handle in duckdb.Conn: streamQuery falls back to materialized results")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// rowsOf renders every value of a reader's batches.
func rowsOf(t *testing.T, rr array.RecordReader) []string {
	t.Helper()
	var out []string
	for rr.Next() {
		rec := rr.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			var cells []string
			for _, col := range rec.Columns() {
				cells = append(cells, col.ValueStr(i))
			}
			out = append(out, strings.Join(cells, "|"))
		}
	}
	if err := rr.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestStreamQueryMatchesArrowQuery reads the same statement, with
// arguments of each bound type and more rows than one DuckDB chunk, both
// streamed and through duckdb-go's materialized Arrow reader: same schema,
// same rows. The connection then runs the next statement.
func TestStreamQueryMatchesArrowQuery(t *testing.T) {
	conn := streamConn(t)
	ctx := context.Background()
	st := statement{
		sql: "SELECT i, CAST(? AS VARCHAR) || i AS s, i * CAST(? AS DOUBLE) AS d, CAST(? AS TIMESTAMP) + to_seconds(i) AS ts, " +
			"CASE WHEN i % 3 = 0 THEN NULL ELSE [CAST(i AS VARCHAR), 'x'] END AS l FROM range(CAST(? AS BIGINT)) t(i)",
		args: []any{"row ", 0.5, "2024-05-10 08:00:00", int64(5000)},
	}
	for round := 0; round < 2; round++ {
		want, err := arrowQuery(ctx, conn, st)
		if err != nil {
			t.Fatal(err)
		}
		wantRows := rowsOf(t, want)
		wantSchema := want.Schema()
		want.Release()
		got, err := streamQuery(ctx, conn, st)
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := got.(*stream); !ok {
			t.Errorf("streamQuery returned a %T, not a streamed result", got)
		} else if _, ok := s.src.(*streamSource); !ok {
			t.Errorf("streamQuery returned a stream of %T, not of a streamed result", s.src)
		}
		if !got.Schema().Equal(wantSchema) {
			t.Errorf("schema %s, want %s", got.Schema(), wantSchema)
		}
		gotRows := rowsOf(t, got)
		got.Release()
		if len(gotRows) != 5000 || strings.Join(gotRows, "\n") != strings.Join(wantRows, "\n") {
			t.Errorf("round %d: %d rows streamed, %d materialized, or they differ", round, len(gotRows), len(wantRows))
		}
	}
}

// TestStreamQueryErrors checks that errors reach the caller: a statement
// DuckDB cannot prepare, an argument of a type sqlBuilder never binds, an
// error raised while the result is produced (after its first chunks), and
// a context canceled part-way; the connection runs the next statement
// after each.
func TestStreamQueryErrors(t *testing.T) {
	conn := streamConn(t)
	ctx := context.Background()
	if _, err := streamQuery(ctx, conn, statement{sql: "SELEC 1"}); err == nil {
		t.Error("no error for a statement with a syntax error")
	}
	if _, err := streamQuery(ctx, conn, statement{sql: "SELECT ?", args: []any{true}}); err == nil {
		t.Error("no error for an argument of an unbound type")
	}

	late := statement{sql: "SELECT CASE WHEN i < 2000000 THEN i ELSE CAST('x' || i AS INTEGER) END FROM range(4000000) t(i)"}
	rr, err := streamQuery(ctx, conn, late)
	if err != nil {
		t.Fatalf("the error came before the first batch: %v", err)
	}
	batches := 0
	for rr.Next() {
		batches++
	}
	if rr.Err() == nil || batches == 0 {
		t.Errorf("%d batches, then error %v; want batches, then a conversion error", batches, rr.Err())
	}
	rr.Release()

	cctx, cancel := context.WithCancel(ctx)
	rr, err = streamQuery(cctx, conn, statement{sql: "SELECT i FROM range(1000000) t(i)"})
	if err != nil {
		t.Fatal(err)
	}
	if !rr.Next() {
		t.Fatalf("no first batch: %v", rr.Err())
	}
	cancel()
	for rr.Next() {
	}
	if !errors.Is(rr.Err(), context.Canceled) {
		t.Errorf("error %v after the context was canceled, want context.Canceled", rr.Err())
	}
	rr.Release()

	// The connection is usable afterwards.
	rr, err = streamQuery(ctx, conn, statement{sql: "SELECT 42 AS answer"})
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	if got := rowsOf(t, rr); len(got) != 1 || got[0] != "42" {
		t.Errorf("next statement read %q, want [42]", got)
	}
}
