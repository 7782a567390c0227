package data

import (
	"errors"
	"os"

	"worklog/internal/fsutil"
)

// fileOps are the filesystem steps of a commit, of the sweep and of the
// removal of replaced files. The store calls them and nothing else for
// those steps, so that a test can fail any one of them (or every step from
// one on, as a crash would) and check that the store opens and reads back
// as before or after the commit. Production uses osOps.
type fileOps interface {
	// syncFile fsyncs an open part file before it is renamed.
	syncFile(f *os.File) error
	// writeFile creates path with b and perm and fsyncs it.
	writeFile(path string, b []byte, perm os.FileMode) error
	// rename renames a part or the manifest.
	rename(oldpath, newpath string) error
	// syncDir fsyncs a directory, making the renames in it durable.
	syncDir(dir string) error
	// remove deletes one file.
	remove(path string) error
}

// osOps is fileOps on the real filesystem.
type osOps struct{}

var _ fileOps = osOps{}

func (osOps) syncFile(f *os.File) error { return f.Sync() }

func (osOps) writeFile(path string, b []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

func (osOps) rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

func (osOps) syncDir(dir string) error { return fsutil.SyncDir(dir) }

func (osOps) remove(path string) error { return os.Remove(path) }
