package data

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

// writePart writes a Parquet file of n rows to path with DuckDB.
func writePart(t *testing.T, path string, n int) {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q := "COPY (SELECT range AS " + QuoteIdent(KeyField) + " FROM range(" + itoa(n) + ")) TO " + QuoteString(path) + " (FORMAT parquet)"
	if _, err := db.Exec(q); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int) string { return fmt.Sprintf("%03d", n) }

// commitParts runs one transaction that replaces the given months and adds
// one part of rows[m] rows per month.
func commitParts(t *testing.T, s *Store, replace []string, rows map[string]int) Snapshot {
	t.Helper()
	txn, err := s.Begin(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Rollback()
	for _, m := range replace {
		txn.Replace(m)
	}
	for m, n := range rows {
		p, err := txn.NewPart(m)
		if err != nil {
			t.Fatal(err)
		}
		writePart(t, p, n)
	}
	snap, err := txn.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// files lists the store's files relative to its directory.
func files(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(s.Dir(), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			r, _ := filepath.Rel(s.Dir(), p)
			out = append(out, filepath.ToSlash(r))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func describe(snap Snapshot) string {
	var parts []string
	for _, f := range snap.Files {
		parts = append(parts, f.Month+":"+itoa(int(f.Rows)))
	}
	return strings.Join(parts, " ")
}

func TestCommitReplaceAndRetire(t *testing.T) {
	tests := []struct {
		name        string
		grace       time.Duration
		wantOnDisk  int // part files after the second commit
		wantRetired int
	}{
		{"default grace keeps replaced files", 0, 3, 1},
		// The entry goes with the next commit; the file is gone at once.
		{"negative grace deletes at once", -1, 2, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.TempDir(), StoreOptions{RetireGrace: tc.grace})
			if err != nil {
				t.Fatal(err)
			}
			first := commitParts(t, s, nil, map[string]int{"2024-01": 5, "2024-02": 7})
			if first.Generation != 1 || describe(first) != "2024-01:005 2024-02:007" {
				t.Fatalf("first commit: gen %d, %s", first.Generation, describe(first))
			}
			second := commitParts(t, s, []string{"2024-01"}, map[string]int{"2024-01": 3})
			if second.Generation != 2 || describe(second) != "2024-01:003 2024-02:007" {
				t.Fatalf("second commit: gen %d, %s", second.Generation, describe(second))
			}
			got, err := s.Snapshot()
			if err != nil || describe(got) != describe(second) {
				t.Fatalf("Snapshot() = %s, %v", describe(got), err)
			}
			parts := 0
			for _, f := range files(t, s) {
				if strings.HasSuffix(f, ".parquet") {
					parts++
				}
				if strings.HasSuffix(f, ".tmp") {
					t.Errorf("temp file left: %s", f)
				}
			}
			if parts != tc.wantOnDisk {
				t.Errorf("%d part files on disk, want %d: %v", parts, tc.wantOnDisk, files(t, s))
			}
			m, _ := s.readManifest()
			if len(m.Retired) != tc.wantRetired {
				t.Errorf("retired = %v, want %d", m.Retired, tc.wantRetired)
			}
			// Every file of the first snapshot is still readable while retired.
			if tc.grace >= 0 {
				for _, f := range first.Files {
					if _, err := os.Stat(f.Path); err != nil {
						t.Errorf("retired file gone: %v", err)
					}
				}
			}
		})
	}
}

func TestRetiredFilesDeletedAfterGrace(t *testing.T) {
	s, err := Open(t.TempDir(), StoreOptions{RetireGrace: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return clock }
	first := commitParts(t, s, nil, map[string]int{"2024-01": 5})
	commitParts(t, s, []string{"2024-01"}, map[string]int{"2024-01": 6})
	sweep := func() {
		t.Helper()
		txn, err := s.Begin(context.Background(), false) // sweeps
		if err != nil {
			t.Fatal(err)
		}
		txn.Rollback()
	}
	clock = clock.Add(time.Minute - time.Second)
	sweep()
	if _, err := os.Stat(first.Files[0].Path); err != nil {
		t.Errorf("retired file gone within its grace: %v", err)
	}
	clock = clock.Add(time.Second)
	sweep()
	if _, err := os.Stat(first.Files[0].Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("retired file still there: %v", err)
	}
}

func TestReplaceWithoutPartsEmptiesMonth(t *testing.T) {
	s, _ := Open(t.TempDir(), StoreOptions{RetireGrace: -1})
	commitParts(t, s, nil, map[string]int{"2024-01": 5, "2024-02": 5})
	snap := commitParts(t, s, []string{"2024-01"}, map[string]int{"2024-03": 0})
	if describe(snap) != "2024-02:005" {
		t.Errorf("snapshot = %s (a zero-row part must be dropped)", describe(snap))
	}
}

func TestLock(t *testing.T) {
	s, _ := Open(t.TempDir(), StoreOptions{})
	txn, err := s.Begin(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Rollback()
	other, _ := Open(filepath.Dir(s.Dir()), StoreOptions{}) // a second opener, as another process would
	if _, err := other.Begin(context.Background(), false); !errors.Is(err, ErrLocked) {
		t.Errorf("Begin without wait = %v, want ErrLocked", err)
	}

	// A waiting Begin whose context ends while the lock is held returns the
	// context's error; it found the lock held at least once.
	busy := 0
	other.lockBusy = func() { busy++ }
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := other.Begin(ctx, true); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Begin with wait = %v, want deadline exceeded", err)
	}
	if busy == 0 {
		t.Error("Begin with wait never found the lock held")
	}

	// A waiting Begin is blocked while the first writer holds the lock and
	// goes on once it has committed: it begins on the committed state.
	blocked := make(chan struct{}, 1)
	other.lockBusy = func() {
		select {
		case blocked <- struct{}{}:
		default:
		}
	}
	type began struct {
		gen uint64
		err error
	}
	done := make(chan began, 1)
	go func() {
		t2, err := other.Begin(context.Background(), true)
		if err != nil {
			done <- began{err: err}
			return
		}
		done <- began{t2.Base().Generation, t2.Rollback()}
	}()
	select {
	case <-blocked:
	case b := <-done:
		t.Fatalf("waiting Begin returned while the lock was held: %+v", b)
	}
	select {
	case b := <-done:
		t.Fatalf("waiting Begin returned while the lock was held: %+v", b)
	default:
	}
	p, err := txn.NewPart("2024-01")
	if err != nil {
		t.Fatal(err)
	}
	writePart(t, p, 3)
	if _, err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	b := <-done
	if b.err != nil {
		t.Errorf("waiting Begin after the commit: %v", b.err)
	}
	if b.gen != 1 {
		t.Errorf("waiting Begin began on generation %d, want 1 (the first writer's commit)", b.gen)
	}
}

func TestClose(t *testing.T) {
	s, _ := Open(t.TempDir(), StoreOptions{})
	txn, err := s.Begin(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Snapshot(); !errors.Is(err, ErrClosed) {
		t.Errorf("Snapshot after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Begin(context.Background(), true); !errors.Is(err, ErrClosed) {
		t.Errorf("Begin after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Acquire(); !errors.Is(err, ErrClosed) {
		t.Errorf("Acquire after Close = %v, want ErrClosed", err)
	}
	// A transaction begun before Close still commits.
	p, _ := txn.NewPart("2024-01")
	writePart(t, p, 2)
	if snap, err := txn.Commit(); err != nil || snap.Rows() != 2 {
		t.Errorf("Commit after Close = %v rows, %v", snap.Rows(), err)
	}
}

func TestRollbackRemovesParts(t *testing.T) {
	s, _ := Open(t.TempDir(), StoreOptions{})
	commitParts(t, s, nil, map[string]int{"2024-01": 5})
	before := files(t, s)
	txn, _ := s.Begin(context.Background(), false)
	p, _ := txn.NewPart("2024-01")
	writePart(t, p, 3)
	txn.Replace("2024-01")
	if err := txn.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := txn.Rollback(); err != nil {
		t.Errorf("second Rollback: %v", err)
	}
	if after := files(t, s); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("files after rollback %v, before %v", after, before)
	}
	if _, err := txn.Commit(); err == nil {
		t.Error("Commit after Rollback succeeded")
	}
}

func TestOpenSweepsCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, StoreOptions{})
	snap := commitParts(t, s, nil, map[string]int{"2024-01": 5})
	leftovers := []string{
		"month=2024-01/part-00000002-000001-aaaaaaaaaaaa.parquet.tmp", // written, not renamed
		"month=2024-01/part-00000002-000002-bbbbbbbbbbbb.parquet",     // renamed, manifest not swapped
		"month=2024-07/part-00000002-000003-cccccccccccc.parquet",     // a month that never committed
	}
	for _, l := range leftovers {
		p := filepath.Join(s.Dir(), filepath.FromSlash(l))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("partial"), 0o644)
	}
	// The crashed writer's intent names the parts it renamed.
	intent := `{"format":1,"generation":2,"files":[` +
		`{"month":"2024-01","path":"month=2024-01/part-00000002-000002-bbbbbbbbbbbb.parquet","rows":1},` +
		`{"month":"2024-07","path":"month=2024-07/part-00000002-000003-cccccccccccc.parquet","rows":1}]}`
	os.WriteFile(filepath.Join(s.Dir(), "_manifest.json.tmp"), []byte(intent), 0o644)
	s2, err := Open(dir, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := files(t, s2)
	rel, _ := filepath.Rel(s.Dir(), snap.Files[0].Path)
	want := []string{"_lock", "_manifest.json", filepath.ToSlash(rel)}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("files = %v, want %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "month=2024-07")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty partition dir kept: %v", err)
	}
}

func TestNewPart(t *testing.T) {
	s, _ := Open(t.TempDir(), StoreOptions{})
	txn, _ := s.Begin(context.Background(), false)
	defer txn.Rollback()
	tests := []struct {
		month string
		ok    bool
	}{
		{"2024-01", true}, {"2024-12", true}, {"2024-13", false}, {"2024-1", false}, {"../x", false}, {"", false},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		p, err := txn.NewPart(tc.month)
		if (err == nil) != tc.ok {
			t.Errorf("NewPart(%q) err = %v, want ok=%v", tc.month, err, tc.ok)
			continue
		}
		if !tc.ok {
			continue
		}
		want := filepath.Join(s.Dir(), "month="+tc.month) + string(filepath.Separator) + "part-00000001-"
		if !strings.HasPrefix(p, want) || !strings.HasSuffix(p, ".parquet.tmp") || seen[p] {
			t.Errorf("NewPart(%q) = %s", tc.month, p)
		}
		seen[p] = true
	}
}

func TestSnapshotOfEmptyStore(t *testing.T) {
	s, _ := Open(t.TempDir(), StoreOptions{})
	snap, err := s.Snapshot()
	if err != nil || snap.Generation != 0 || len(snap.Files) != 0 {
		t.Errorf("Snapshot() = %+v, %v", snap, err)
	}
}
