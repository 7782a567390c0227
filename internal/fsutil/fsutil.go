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
// Permissions are exact by default: a file gets the perm its caller names,
// whatever the umask, because what worklog keeps under its data directory
// (keys, the store, exports of jobs) must stay as private as it says. A file
// a user asks a command for (worklog export --out, ingest --rejects) is the
// exception: with the CommandOutput option it is created the way a shell's
// redirection or cp creates one, 0666 less the umask.
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
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
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

// createTempUmask opens a new temporary file beside path as open(2)
// creates one: with mode 0666 less the process's umask, which it then
// keeps. (os.CreateTemp always asks for 0600.)
func createTempUmask(path string) (*os.File, error) {
	dir, base := filepath.Dir(path), "."+filepath.Base(path)+"."
	for range 100 {
		name := filepath.Join(dir, base+strconv.FormatUint(rand.Uint64(), 36)+tmpSuffix)
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
	return nil, fmt.Errorf("create a temporary file beside %s: %w", path, fs.ErrExist)
}

// An Option changes how Create, WriteAtomic and WriteFile make their file.
type Option func(*options)

type options struct {
	// umask: the file keeps the mode it was created with (0666 less the
	// umask) instead of getting exactly perm.
	umask bool
}

// CommandOutput creates the file as a command's output is created (a
// shell's redirection, cp, curl -o): with mode 0666 less the process's
// umask, in place of the perm argument. For files that a user asks a
// command for, never for what the server keeps under its data directory.
func CommandOutput() Option { return func(o *options) { o.umask = true } }

// File is a file being written atomically: Create it, Write to it, then
// Commit (install it under its name) or Abort (drop it). Writes are
// buffered. A File is not safe for concurrent use.
type File struct {
	f     *os.File
	w     *bufio.Writer
	path  string
	perm  os.FileMode
	umask bool // keep the creation mode (CommandOutput) rather than perm
	done  bool
	err   error // the first write error; Commit refuses after one
}

var _ io.Writer = (*File)(nil)

// Create starts an atomic write of path with permissions perm (exactly perm:
// the umask does not apply, unless the option CommandOutput says so).
// Nothing appears under path before Commit.
func Create(path string, perm os.FileMode, opts ...Option) (*File, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	create := createTemp
	if o.umask {
		create = createTempUmask
	}
	f, err := create(path)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &File{f: f, w: bufio.NewWriterSize(f, bufferSize), path: path, perm: perm, umask: o.umask}, nil
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
	if err == nil && !a.umask {
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
func WriteAtomic(path string, perm os.FileMode, write func(io.Writer) error, opts ...Option) error {
	f, err := Create(path, perm, opts...)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		return errors.Join(err, f.Abort())
	}
	return f.Commit()
}

// WriteFile replaces path with data atomically, with permissions exactly
// perm (or as the options say): readers see the old content or the new,
// never a part.
func WriteFile(path string, data []byte, perm os.FileMode, opts ...Option) error {
	return WriteAtomic(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}, opts...)
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
