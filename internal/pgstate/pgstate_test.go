package pgstate

import (
	"context"
	"strings"
	"sync"
	"testing"

	"worklog/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func count(t *testing.T, db *DB, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// Replicas starting together migrate once; a later start applies nothing;
// another package's line is applied after ours and only once.
func TestOpenMigratesOnceAndIdempotently(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t)
	extra := []Migration{
		{Line: "test", Version: 1, Name: "a table", SQL: "CREATE TABLE test_a (i int)"},
		{Line: "test", Version: 2, Name: "a row", SQL: "INSERT INTO test_a VALUES (1)"},
	}
	var wg sync.WaitGroup
	dbs := make([]*DB, 4)
	for i := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := Open(ctx, url, Options{Migrations: extra})
			if err != nil {
				t.Error(err)
				return
			}
			dbs[i] = db
		}()
	}
	wg.Wait()
	for _, db := range dbs {
		if db != nil {
			defer db.Close()
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	db := dbs[0]
	if n := count(t, db, "SELECT count(*) FROM test_a"); n != 1 {
		t.Errorf("step 2 ran %d times, want 1", n)
	}
	if n := count(t, db, "SELECT count(*) FROM worklog_migration WHERE line = 'worklog'"); n != len(migrations) {
		t.Errorf("worklog line: %d steps recorded, want %d", n, len(migrations))
	}
	// River's tables exist: its migrator ran.
	if n := count(t, db, "SELECT count(*) FROM river_job"); n != 0 {
		t.Errorf("river_job holds %d rows", n)
	}
	// A third step is applied by the next start; the others are not rerun.
	more := append(extra, Migration{Line: "test", Version: 3, Name: "another row", SQL: "INSERT INTO test_a VALUES (3)"})
	if err := db.Migrate(ctx, more...); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, "SELECT count(*) FROM test_a"); n != 2 {
		t.Errorf("after step 3: %d rows, want 2", n)
	}
}

// A failing step leaves nothing of itself, the steps before it stay, and the
// next start resumes at the failed step; bad lists are refused before they
// reach the database.
func TestMigrateFailsWhole(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, pgtest.New(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bad := []Migration{
		{Line: "test", Version: 1, Name: "ok", SQL: "CREATE TABLE test_b (i int)"},
		{Line: "test", Version: 2, Name: "broken", SQL: "CREATE TABLE test_c (i int); CREATE TABLE test_b (i int)"},
	}
	if err := db.Migrate(ctx, bad...); err == nil || !strings.Contains(err.Error(), "migrate test 2 (broken)") {
		t.Fatalf("broken step: %v", err)
	}
	if n := count(t, db, "SELECT count(*) FROM pg_tables WHERE tablename IN ('test_b', 'test_c')"); n != 1 {
		t.Errorf("%d tables after step 2 failed, want step 1's only", n)
	}
	bad[1].SQL = "CREATE TABLE test_c (i int)"
	if err := db.Migrate(ctx, bad...); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, "SELECT count(*) FROM worklog_migration WHERE line = 'test'"); n != 2 {
		t.Errorf("%d steps recorded after the fix, want 2", n)
	}
	for _, tc := range []struct {
		name string
		migs []Migration
		want string
	}{
		{"gap", []Migration{{Line: "x", Version: 2, SQL: "SELECT 1"}}, "expected version 1"},
		{"empty", []Migration{{Line: "x", Version: 1}}, "empty line or SQL"},
		{"repeat", []Migration{{Line: "x", Version: 1, SQL: "SELECT 1"}, {Line: "x", Version: 1, SQL: "SELECT 1"}}, "expected version 2"},
	} {
		if err := db.Migrate(ctx, tc.migs...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// A bad URL is a clear error that does not echo a password.
func TestOpenBadURL(t *testing.T) {
	ctx := context.Background()
	for _, url := range []string{"mysql://x", "postgres://u:s3cretpw@127.0.0.1:1/db?connect_timeout=2"} {
		_, err := Open(ctx, url, Options{})
		if err == nil {
			t.Errorf("%s: opened", url)
			continue
		}
		if strings.Contains(err.Error(), "s3cretpw") {
			t.Errorf("%s: error shows the password: %v", url, err)
		}
	}
}
