package data

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// faultOps fails one step of a commit. With crash set, every filesystem step
// from that one on fails and does nothing, as if the process had died
// there: the rollback cannot clean up, and the next Open must.
type faultOps struct {
	inner fileOps
	store string // the store directory, to tell its fsync from a month's
	step  string // the step to fail
	crash bool
	dead  bool
	hits  int // how often the step was failed
}

var errInjected = errors.New("injected fault")

// quiet drops the warnings of cleanup that the faults make fail.
var quiet = slog.New(slog.DiscardHandler)

func (f *faultOps) check(step string) error {
	if f.dead {
		return fmt.Errorf("%s after crash: %w", step, errInjected)
	}
	if step != f.step {
		return nil
	}
	f.hits++
	if f.crash {
		f.dead = true
	}
	return fmt.Errorf("%s: %w", step, errInjected)
}

func (f *faultOps) syncFile(file *os.File) error {
	if err := f.check("part fsync"); err != nil {
		return err
	}
	return f.inner.syncFile(file)
}

func (f *faultOps) writeFile(path string, b []byte, perm os.FileMode) error {
	wasDead := f.dead
	if err := f.check("manifest write"); err != nil {
		// A write that fails may leave a part of the file behind.
		if !wasDead {
			os.WriteFile(path, b[:len(b)/2], perm)
		}
		return err
	}
	return f.inner.writeFile(path, b, perm)
}

func (f *faultOps) rename(oldpath, newpath string) error {
	step := "part rename"
	if filepath.Base(newpath) == manifestName {
		step = "manifest rename"
	}
	if err := f.check(step); err != nil {
		return err
	}
	return f.inner.rename(oldpath, newpath)
}

func (f *faultOps) syncDir(dir string) error {
	step := "partition dir fsync"
	if dir == f.store {
		step = "store dir fsync"
	}
	if err := f.check(step); err != nil {
		return err
	}
	return f.inner.syncDir(dir)
}

func (f *faultOps) remove(path string) error {
	if err := f.check("remove"); err != nil {
		return err
	}
	return f.inner.remove(path)
}

// readBack opens the store afresh, as the next process would, and returns
// its months and rows as DuckDB reads them from the listed files.
func readBack(t *testing.T, dataDir string) string {
	t.Helper()
	s, err := Open(dataDir, StoreOptions{RetireGrace: -1, Logger: quiet})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatalf("snapshot after reopen: %v", err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var parts []string
	for _, m := range snap.Months() {
		var paths []string
		for _, f := range snap.FilesIn(func(x string) bool { return x == m }) {
			paths = append(paths, QuoteString(f.Path))
		}
		var n int
		if err := db.QueryRow("SELECT count(*) FROM read_parquet([" + strings.Join(paths, ", ") + "])").Scan(&n); err != nil {
			t.Fatalf("read month %s: %v", m, err)
		}
		parts = append(parts, m+":"+itoa(n))
	}
	return strings.Join(parts, " ")
}

func TestCommitFailureInjection(t *testing.T) {
	const before, after = "2024-01:005 2024-02:007", "2024-01:003 2024-02:007 2024-03:004"
	steps := []struct {
		step      string
		committed bool // the fault comes after the commit point
	}{
		{"part write", false}, // the writer's file is cut short: no footer
		{"part fsync", false},
		{"manifest write", false},
		{"part rename", false},
		{"partition dir fsync", false},
		{"manifest rename", false},
		{"store dir fsync", true},
		{"remove", true},
	}
	for _, tc := range steps {
		for _, crash := range []bool{false, true} {
			name := tc.step + "/error"
			if crash {
				name = tc.step + "/crash"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				s, err := Open(dir, StoreOptions{RetireGrace: -1})
				if err != nil {
					t.Fatal(err)
				}
				commitParts(t, s, nil, map[string]int{"2024-01": 5, "2024-02": 7})
				oldFiles := files(t, s)
				fault := &faultOps{inner: osOps{}, store: s.Dir(), step: tc.step, crash: crash}
				s.ops, s.log = fault, quiet

				txn, err := s.Begin(context.Background(), false)
				if err != nil {
					t.Fatal(err)
				}
				txn.Replace("2024-01")
				for _, m := range []string{"2024-01", "2024-03"} {
					p, err := txn.NewPart(m)
					if err != nil {
						t.Fatal(err)
					}
					writePart(t, p, map[string]int{"2024-01": 3, "2024-03": 4}[m])
					if tc.step == "part write" && m == "2024-03" {
						b, _ := os.ReadFile(p)
						os.WriteFile(p, b[:len(b)/2], 0o644)
						fault.hits++
					}
				}
				snap, err := txn.Commit()
				if fault.hits == 0 {
					t.Fatalf("step %q never ran", tc.step)
				}
				switch {
				case tc.step == "remove":
					// Cleanup after the commit point fails quietly.
					if err != nil || s.CleanupFailures() == 0 {
						t.Errorf("Commit = %v, cleanup failures %d; want success and a counted failure", err, s.CleanupFailures())
					}
				case tc.step == "store dir fsync":
					if !errors.Is(err, ErrCommitDurabilityUnknown) || describe(snap) != "2024-01:003 2024-02:007 2024-03:004" {
						t.Errorf("Commit = %s, %v; want the new snapshot and ErrCommitDurabilityUnknown", describe(snap), err)
					}
				case err == nil || (tc.step != "part write" && !errors.Is(err, errInjected)):
					t.Errorf("Commit = %v, want the injected fault", err)
				}
				if err := txn.Rollback(); err != nil {
					t.Errorf("Rollback after Commit: %v", err)
				}
				if tc.step == "store dir fsync" {
					for _, f := range oldFiles {
						if _, err := os.Stat(filepath.Join(s.Dir(), filepath.FromSlash(f))); err != nil {
							t.Errorf("a file of the old state was removed while the commit may not be durable: %v", err)
						}
					}
				}

				want := before
				if tc.committed {
					want = after
				}
				if got := readBack(t, dir); got != want {
					t.Errorf("store reads back %q, want %q", got, want)
				}
				// The reopen swept: no temporary file is left, and every
				// part on disk is listed, except the replaced one when
				// the commit's durability is unknown (both states keep
				// their files then) or its removal failed.
				s2, _ := Open(dir, StoreOptions{RetireGrace: -1})
				listed := map[string]bool{}
				cur, _ := s2.Snapshot()
				for _, f := range cur.Files {
					r, _ := s2.rel(f.Path)
					listed[r] = true
				}
				for _, f := range files(t, s2) {
					switch {
					case strings.HasSuffix(f, tmpSuffix):
						t.Errorf("temporary file left: %s", f)
					case strings.HasSuffix(f, partExt) && !listed[f]:
						if !(tc.committed && contains(oldFiles, f)) {
							t.Errorf("unlisted part left: %s", f)
						}
					}
				}
			})
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestMissingManifestDeletesNothing(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, StoreOptions{RetireGrace: -1})
	if err != nil {
		t.Fatal(err)
	}
	commitParts(t, s, nil, map[string]int{"2024-01": 5, "2024-02": 7})
	// An unlisted part that looks live, and a crashed writer's temp part.
	os.WriteFile(filepath.Join(s.Dir(), "month=2024-02", "part-00000009-000001-aaaaaaaaaaaa.parquet"), []byte("x"), 0o644)
	want := files(t, s)
	// The manifest is moved away (an operator's mistake, a bad restore).
	if err := os.Rename(filepath.Join(s.Dir(), manifestName), filepath.Join(dir, "moved.json")); err != nil {
		t.Fatal(err)
	}
	want = append(want[:0:0], files(t, s)...)

	check := func(what string, err error) {
		t.Helper()
		var me *ManifestMissingError
		if !errors.As(err, &me) || !errors.Is(err, ErrManifestMissing) {
			t.Fatalf("%s = %v, want a ManifestMissingError", what, err)
		}
		if me.Parts != 3 || !strings.Contains(err.Error(), s.Dir()) || !strings.Contains(err.Error(), "restore") {
			t.Errorf("%s: message %q should name the directory, the parts and what to do", what, err)
		}
	}
	_, err = Open(dir, StoreOptions{RetireGrace: -1})
	check("Open", err)
	_, err = s.Snapshot()
	check("Snapshot", err)
	_, err = s.Begin(context.Background(), false)
	check("Begin", err)
	if got := files(t, s); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("files changed:\n got %v\nwant %v", got, want)
	}

	// An empty store needs no manifest.
	empty, err := Open(t.TempDir(), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if snap, err := empty.Snapshot(); err != nil || len(snap.Files) != 0 {
		t.Errorf("empty store: %+v, %v", snap, err)
	}
}

func TestManifestPathsStayInsideStore(t *testing.T) {
	tests := []struct {
		name, files, retired string
	}{
		{"parent escape", `[{"month":"2024-01","path":"../../etc/passwd","rows":1}]`, ``},
		{"escape via month dir", `[{"month":"2024-01","path":"month=2024-01/../../../etc/x.parquet","rows":1}]`, ``},
		{"absolute", `[{"month":"2024-01","path":"/etc/passwd.parquet","rows":1}]`, ``},
		{"nested", `[{"month":"2024-01","path":"month=2024-01/a/b.parquet","rows":1}]`, ``},
		{"other month", `[{"month":"2024-01","path":"month=2024-02/p.parquet","rows":1}]`, ``},
		{"not parquet", `[{"month":"2024-01","path":"month=2024-01/_lock","rows":1}]`, ``},
		{"backslash", `[{"month":"2024-01","path":"month=2024-01\\..\\..\\x.parquet","rows":1}]`, ``},
		{"retired escape", `[]`, `[{"path":"../pseudonym.key","retiredAt":"2020-01-01T00:00:00Z"}]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			store := filepath.Join(dir, storeDirName)
			os.MkdirAll(store, 0o750)
			victim := filepath.Join(dir, "pseudonym.key")
			os.WriteFile(victim, []byte("secret"), 0o600)
			m := `{"format":1,"generation":3,"files":` + tc.files
			if tc.retired != "" {
				m += `,"retired":` + tc.retired
			}
			os.WriteFile(filepath.Join(store, manifestName), []byte(m+"}"), 0o640)
			_, err := Open(dir, StoreOptions{RetireGrace: time.Nanosecond})
			if err == nil || !strings.Contains(err.Error(), "manifest") {
				t.Errorf("Open = %v, want a manifest error naming the path", err)
			}
			if _, err := os.Stat(victim); err != nil {
				t.Errorf("file outside the store removed: %v", err)
			}
		})
	}
}

func TestSweepRemovesOnlyTempNames(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, StoreOptions{})
	snap := commitParts(t, s, nil, map[string]int{"2024-01": 5})
	keep := []string{
		"month=2024-01/part-00000007-000001-bbbbbbbbbbbb.parquet", // unlisted but live-looking
		"month=2024-01/notes.tmp",                                 // not a name of ours
		"month=2024-01/.part-00000002.parquet.x.tmp",              // nor this
		"month=2024-07/data.parquet",                              // an unlisted month
	}
	gone := []string{
		"month=2024-01/part-00000002-000001-aaaaaaaaaaaa.parquet.tmp",
		"month=2024-05/part-00000002-000003-cccccccccccc.parquet.tmp",
	}
	for _, l := range append(append([]string{}, keep...), gone...) {
		p := filepath.Join(s.Dir(), filepath.FromSlash(l))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("partial"), 0o644)
	}
	if _, err := Open(dir, StoreOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, l := range keep {
		if _, err := os.Stat(filepath.Join(s.Dir(), filepath.FromSlash(l))); err != nil {
			t.Errorf("sweep removed %s: %v", l, err)
		}
	}
	for _, l := range gone {
		if _, err := os.Stat(filepath.Join(s.Dir(), filepath.FromSlash(l))); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("sweep left %s: %v", l, err)
		}
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "month=2024-05")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("emptied partition dir kept: %v", err)
	}
	if _, err := os.Stat(snap.Files[0].Path); err != nil {
		t.Errorf("live part removed: %v", err)
	}
}

// A sweep that cannot remove a file logs and counts it, and the store
// opens and commits all the same.
func TestSweepFailureDoesNotBlock(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, StoreOptions{})
	commitParts(t, s, nil, map[string]int{"2024-01": 5})
	os.WriteFile(filepath.Join(s.Dir(), "month=2024-01", "part-00000002-000001-aaaaaaaaaaaa.parquet.tmp"), []byte("x"), 0o644)
	s2, err := openWith(dir, StoreOptions{Logger: quiet}, &faultOps{inner: osOps{}, step: "remove"})
	if err != nil {
		t.Fatalf("Open with a failing removal: %v", err)
	}
	if s2.CleanupFailures() != 1 {
		t.Errorf("cleanup failures = %d, want 1", s2.CleanupFailures())
	}
	commitParts(t, s2, nil, map[string]int{"2024-02": 2})
}

func TestStoreFileModes(t *testing.T) {
	s, _ := Open(t.TempDir(), StoreOptions{})
	snap := commitParts(t, s, nil, map[string]int{"2024-01": 5})
	for path, want := range map[string]os.FileMode{
		s.Dir():                              dirMode,
		filepath.Dir(snap.Files[0].Path):     dirMode,
		snap.Files[0].Path:                   fileMode,
		filepath.Join(s.Dir(), manifestName): fileMode,
	} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&^want != 0 {
			t.Errorf("%s: mode %v, want at most %v", path, st.Mode().Perm(), want)
		}
	}
}
