package iceberg

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	icebergio "github.com/apache/iceberg-go/io"

	"worklog/internal/fsutil"
)

// Modes of what the table writes: like the store's own files, readable by
// the owner and the group only.
const (
	dirMode  os.FileMode = 0o750
	fileMode os.FileMode = 0o640
)

// fileIO is the filesystem iceberg-go reads and writes the table through:
// the local filesystem, with two rules of ours.
//
//   - Every file iceberg-go creates (manifests, manifest lists) is written
//     through internal/fsutil: under a temporary name, fsynced, then renamed,
//     so that a metadata file can never reference one that a crash cut
//     short.
//   - It removes only files in the table's metadata directory. The Parquet
//     files belong to the store, which deletes them itself once neither a
//     reader lease nor a retained snapshot lists them (data.Publisher);
//     when snapshot expiry asks to delete a data file, that is a no-op here.
type fileIO struct {
	icebergio.LocalFS
	metaDir string // absolute
}

var (
	_ icebergio.WriteFileIO = fileIO{}
	_ icebergio.ReadFileIO  = fileIO{}
)

// localPath turns a table location (a file:// URI or a plain absolute path)
// into a path of this machine.
func localPath(name string) (string, error) {
	if !strings.HasPrefix(name, "file:") {
		return filepath.FromSlash(name), nil
	}
	u, err := url.Parse(name)
	if err != nil {
		return "", fmt.Errorf("table file %q: %w", name, err)
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", fmt.Errorf("table file %q: not a local file", name)
	}
	return filepath.FromSlash(u.Path), nil
}

// fileURI is the location of a local absolute path as the table records it.
func fileURI(path string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
}

// Create starts an atomic write of name: nothing appears under the name
// before Close, which fsyncs and installs the file.
func (f fileIO) Create(name string) (icebergio.FileWriter, error) {
	p, err := localPath(name)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(p), dirMode); err != nil {
		return nil, fmt.Errorf("create %s: %w", p, err)
	}
	af, err := fsutil.Create(p, fileMode)
	if err != nil {
		return nil, err
	}
	return &atomicWriter{f: af}, nil
}

// WriteFile writes name atomically.
func (f fileIO) WriteFile(name string, b []byte) error {
	p, err := localPath(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), dirMode); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return fsutil.WriteFile(p, b, fileMode)
}

// Remove removes name when it is in the metadata directory, and does
// nothing otherwise (see fileIO).
func (f fileIO) Remove(name string) error {
	p, err := localPath(name)
	if err != nil {
		return err
	}
	if filepath.Dir(p) != f.metaDir {
		return nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// RemoveAll refuses: nothing of worklog removes a tree through the table,
// and the tree under the table's location is the store.
func (f fileIO) RemoveAll(name string) error {
	return fmt.Errorf("remove %s: the table never removes a directory tree", name)
}

// atomicWriter is an fsutil.File as iceberg-go's FileWriter: Close commits.
type atomicWriter struct {
	f *fsutil.File
}

func (w *atomicWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

// ReadFrom copies r into the file.
func (w *atomicWriter) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{w.f}, r)
}

// Close installs the file under its name. A writer that failed part-way
// still installs what it wrote, but under a fresh name that no committed
// metadata file references: the table never reads it.
func (w *atomicWriter) Close() error { return w.f.Commit() }
