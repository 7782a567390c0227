package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

// Two databases of one server are separate and writable.
func TestNewGivesSeparateDatabases(t *testing.T) {
	ctx := context.Background()
	urls := []string{New(t), New(t)}
	if urls[0] == urls[1] {
		t.Fatalf("same database twice: %s", urls[0])
	}
	for i, url := range urls {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "CREATE TABLE t (i int)"); err != nil {
			t.Fatalf("database %d: %v", i, err)
		}
		if _, err := c.Exec(ctx, "INSERT INTO t VALUES ($1)", i); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
			t.Fatalf("database %d holds %d rows (%v), want its own 1", i, n, err)
		}
	}
}
