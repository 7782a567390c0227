// Package fsutil owns durable file writes: every file of worklog that must
// never be seen half-written (the store's manifest, the pseudonym key, the
// demo secret, rejects files, exports, mails) is written through it.
//
// The discipline is the same for every write: the content goes to a
// temporary file beside the target, which is flushed, fsynced and closed;
// the temporary file is then renamed over the target (or, for WriteNew,
// hard-linked to it) and the directory is fsynced, so that the new name
// survives a crash. On any error the temporary file is removed and the
// target keeps its old content.
//
// Temporary files are named ".<target>.<random>.tmp": hidden, and ending in
// ".tmp", so that no glob for the live files (*.parquet, *.json, the
// target's own name) ever matches one. IsTemp recognises them, for sweeping
// the leftovers of a crash.
//
// It imports only the standard library, and nothing of worklog.
package fsutil

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// tmpSuffix ends every temporary name.
const tmpSuffix = ".tmp"

// bufferSize is the write buffer of a File.
const bufferSize = 64 << 10

// IsTemp reports whether name (a base name) has the form of this package's
// temporary files: a leading dot and the suffix ".tmp". A file of that form
// that no writer holds is the leftover of a crash and may be removed.
func IsTemp(name string) bool {
	return len(name) > len("."+tmpSuffix) && strings.HasPrefix(name, ".") && strings.HasSuffix(name, tmpSuffix)
}

// createTemp opens a new temporary file beside path. os.CreateTemp opens it
// with mode 0600, so that a secret written into it is never readable by
// others, not even for a moment.
func createTemp(path string) (*os.File, error) {
	return os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*"+tmpSuffix)
}

// File is a file being written atomically: Create it, Write to it, then
// Commit (install it under its name) or Abort (drop it). Writes are
// buffered. A File is not safe for concurrent use.
type File struct {
	f    *os.File
	w    *bufio.Writer
	path string
	perm os.FileMode
	done bool
	err  error // the first write error; Commit refuses after one
}

var _ io.Writer = (*File)(nil)

// Create starts an atomic write of path with permissions perm (exactly perm:
// the umask does not apply). Nothing appears under path before Commit.
func Create(path string, perm os.FileMode) (*File, error) {
	f, err := createTemp(path)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &File{f: f, w: bufio.NewWriterSize(f, bufferSize), path: path, perm: perm}, nil
}

// Write appends p to the file.
func (a *File) Write(p []byte) (int, error) {
	if a.done {
		return 0, fmt.Errorf("write %s: %w", a.path, fs.ErrClosed)
	}
	n, err := a.w.Write(p)
	if err != nil && a.err == nil {
		a.err = err
	}
	return n, err
}

// Path is the name the file gets on Commit.
func (a *File) Path() string { return a.path }

// Commit flushes and fsyncs the file, renames it over its target and fsyncs
// the directory. On error the temporary file is removed; an error from the
// final directory sync alone leaves the new file in place (it may not
// survive a crash). Commit after Commit or Abort is an error.
func (a *File) Commit() error {
	if a.done {
		return fmt.Errorf("commit %s: %w", a.path, fs.ErrClosed)
	}
	a.done = true
	tmp := a.f.Name()
	err := a.err
	if err == nil {
		err = a.w.Flush()
	}
	if err == nil {
		err = a.f.Chmod(a.perm)
	}
	if err == nil {
		err = a.f.Sync()
	}
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, a.path)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("write %s: %w", a.path, err), removeTemp(tmp))
	}
	if err := SyncDir(filepath.Dir(a.path)); err != nil {
		return fmt.Errorf("write %s: %w", a.path, err)
	}
	return nil
}

// Abort drops the file: the temporary file is closed and removed, the
// target is untouched. It does nothing after Commit or an earlier Abort, so
// it may be deferred right after Create.
func (a *File) Abort() error {
	if a.done {
		return nil
	}
	a.done = true
	err := a.f.Close()
	if errors.Is(err, fs.ErrClosed) {
		err = nil
	}
	return errors.Join(err, removeTemp(a.f.Name()))
}

// removeTemp removes a temporary file; one already gone is no error.
func removeTemp(tmp string) error {
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove temporary file: %w", err)
	}
	return nil
}

// WriteAtomic replaces path with what write writes (buffered), atomically:
// when write returns an error, or any step of the commit fails, path keeps
// its old content (or stays absent) and no temporary file is left.
func WriteAtomic(path string, perm os.FileMode, write func(io.Writer) error) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		return errors.Join(err, f.Abort())
	}
	return f.Commit()
}

// WriteFile replaces path with data atomically, with permissions exactly
// perm: readers see the old content or the new, never a part.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return WriteAtomic(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteNew creates path with data, atomically, unless something exists at
// path: then it returns an error for which errors.Is(err, fs.ErrExist)
// holds and leaves path as it is. Of several concurrent callers (threads or
// processes) exactly one succeeds. The file gets exactly perm.
//
// The data is written to a temporary file, fsynced and hard-linked to path
// (a link, unlike a rename, never replaces a file), then the directory is
// fsynced. The temporary name is removed in every case.
func WriteNew(path string, data []byte, perm os.FileMode) (err error) {
	f, err := createTemp(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		// After the link the file lives under its own name.
		err = errors.Join(err, removeTemp(tmp))
	}()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return nil
}
