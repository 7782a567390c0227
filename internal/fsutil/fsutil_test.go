package fsutil

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// names lists the entries of dir.
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// noTemps fails when dir holds a temporary file.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	for _, n := range names(t, dir) {
		if IsTemp(n) {
			t.Errorf("temporary file left: %s", n)
		}
	}
}

// failingWriter writes n bytes, then fails.
type failingWriter struct{ n int }

var errWriter = errors.New("writer failed")

func (f failingWriter) write(w io.Writer) error {
	if _, err := w.Write([]byte(strings.Repeat("x", f.n))); err != nil {
		return err
	}
	return errWriter
}

func TestWriteAtomic(t *testing.T) {
	tests := []struct {
		name    string
		old     string // content before; "" for no file
		write   func(io.Writer) error
		want    string // content after
		wantErr error
	}{
		{"new file", "", func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }, "new", nil},
		{"replaces", "old content", func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }, "new", nil},
		{"empty", "old", func(io.Writer) error { return nil }, "", nil},
		{"larger than the buffer", "", func(w io.Writer) error {
			_, err := io.WriteString(w, strings.Repeat("y", 3*bufferSize+7))
			return err
		}, strings.Repeat("y", 3*bufferSize+7), nil},
		{"failing writer keeps the old file", "old", failingWriter{10}.write, "old", errWriter},
		{"failing writer after a flush keeps the old file", "old", failingWriter{2 * bufferSize}.write, "old", errWriter},
		{"failing writer leaves no file", "", failingWriter{10}.write, "", errWriter},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out.parquet")
			if tc.old != "" {
				if err := os.WriteFile(path, []byte(tc.old), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := WriteAtomic(path, 0o640, tc.write)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			noTemps(t, dir)
			got, rerr := os.ReadFile(path)
			switch {
			case tc.old == "" && err != nil:
				if !errors.Is(rerr, fs.ErrNotExist) {
					t.Errorf("target exists after a failed write: %v", rerr)
				}
			case rerr != nil:
				t.Fatal(rerr)
			case string(got) != tc.want:
				t.Errorf("content %.20q (%d bytes), want %.20q (%d bytes)", got, len(got), tc.want, len(tc.want))
			}
			if err == nil && runtime.GOOS != "windows" {
				if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
					t.Errorf("mode %v, want 0640", fi.Mode().Perm())
				}
			}
		})
	}
}

func TestTempNameMatchesNoLiveGlob(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "part-1.parquet")
	var during []string
	err := WriteAtomic(path, 0o644, func(w io.Writer) error {
		during = names(t, dir)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(during) != 1 {
		t.Fatalf("files while writing: %v, want one temporary file", during)
	}
	tmp := during[0]
	if !IsTemp(tmp) {
		t.Errorf("IsTemp(%q) = false", tmp)
	}
	for _, glob := range []string{"*.parquet", "*.json", "part-*", "part-1.parquet", "*.parquet.tmp"} {
		if ok, _ := filepath.Match(glob, tmp); ok {
			t.Errorf("glob %s matches temporary file %s", glob, tmp)
		}
	}
	if got := names(t, dir); !slices.Equal(got, []string{"part-1.parquet"}) {
		t.Errorf("files after commit: %v", got)
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "_manifest.json")
	for _, content := range []string{"one", "two, longer", ""} {
		if err := WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); string(got) != content {
			t.Errorf("content %q, want %q", got, content)
		}
	}
	noTemps(t, dir)
	if err := WriteFile(filepath.Join(dir, "missing", "x"), []byte("x"), 0o644); err == nil {
		t.Error("WriteFile into a missing directory succeeded")
	}
	noTemps(t, dir)
}

func TestFileCommitAbort(t *testing.T) {
	tests := []struct {
		name       string
		steps      func(f *File) error
		wantTarget bool
		wantErr    bool
	}{
		{"commit", func(f *File) error { return f.Commit() }, true, false},
		{"abort", func(f *File) error { return f.Abort() }, false, false},
		{"abort after commit does nothing", func(f *File) error {
			return errors.Join(f.Commit(), f.Abort())
		}, true, false},
		{"abort twice", func(f *File) error { return errors.Join(f.Abort(), f.Abort()) }, false, false},
		{"commit after abort fails", func(f *File) error { f.Abort(); return f.Commit() }, false, true},
		{"commit twice fails", func(f *File) error { f.Commit(); return f.Commit() }, true, true},
		{"write after commit fails", func(f *File) error {
			f.Commit()
			_, err := f.Write([]byte("more"))
			return err
		}, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "rejects.ndjson")
			f, err := Create(path, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte("line\n")); err != nil {
				t.Fatal(err)
			}
			if f.Path() != path {
				t.Errorf("Path() = %s, want %s", f.Path(), path)
			}
			if err := tc.steps(f); (err != nil) != tc.wantErr {
				t.Errorf("err = %v, want error %v", err, tc.wantErr)
			}
			noTemps(t, dir)
			got, err := os.ReadFile(path)
			if tc.wantTarget && (err != nil || string(got) != "line\n") {
				t.Errorf("target = %q, %v; want the written line", got, err)
			}
			if !tc.wantTarget && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("target exists: %v", err)
			}
		})
	}
}

func TestCreateInMissingDir(t *testing.T) {
	if _, err := Create(filepath.Join(t.TempDir(), "no", "such"), 0o644); err == nil {
		t.Error("Create in a missing directory succeeded")
	}
}

func TestWriteNew(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pseudonym.key")
	if err := WriteNew(path, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := WriteNew(path, []byte("second"), 0o600)
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("second WriteNew = %v, want fs.ErrExist", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "first" {
		t.Errorf("content %q, want the first", got)
	}
	if fi, _ := os.Stat(path); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	noTemps(t, dir)
}

func TestWriteNewConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = WriteNew(path, []byte{byte('a' + i)}, 0o600) })
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Errorf("writers %d and %d both won", won, i)
		case err == nil:
			won = i
		case !errors.Is(err, fs.ErrExist):
			t.Errorf("writer %d: %v", i, err)
		}
	}
	if got, _ := os.ReadFile(path); won < 0 || string(got) != string(rune('a'+won)) {
		t.Errorf("content %q, winner %d", got, won)
	}
	noTemps(t, dir)
}

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Errorf("SyncDir: %v", err)
	}
	if runtime.GOOS != "windows" {
		if err := SyncDir(filepath.Join(t.TempDir(), "missing")); err == nil {
			t.Error("SyncDir of a missing directory succeeded")
		}
	}
}

func TestIsTemp(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{".out.parquet.123.tmp", true},
		{"._manifest.json.9.tmp", true},
		{".tmp", false},
		{"out.parquet.tmp", false},
		{"out.parquet", false},
		{".hidden", false},
		{"_manifest.json", false},
	}
	for _, tc := range tests {
		if got := IsTemp(tc.name); got != tc.want {
			t.Errorf("IsTemp(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}
