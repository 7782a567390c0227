package data

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"worklog/internal/fsutil"

	"github.com/gofrs/flock"
)

// What several processes of one store share: the writer lock and the
// reader leases. By default both live in the store directory (a file lock,
// lease files), which serves every process of one host. Replicas on several
// hosts over a shared filesystem put them in a database instead
// (internal/pgstate) through StoreOptions.Locker and StoreOptions.Readers;
// the store itself does not know where they live.

// Locker is the single-writer lock of a store: Begin holds it for a whole
// transaction, and Open for the sweep. Every process that writes a store
// must use the same Locker.
type Locker interface {
	// TryLock takes the lock when no other writer holds it. ok is false,
	// without an error, when another writer does.
	TryLock(ctx context.Context) (l HeldLock, ok bool, err error)
}

// HeldLock is a writer lock that this process holds.
type HeldLock interface {
	// Check returns an error when the lock may have been lost since it
	// was taken (the database session holding it ended): Commit calls it
	// just before its commit point and rolls back on an error, since
	// another writer may hold the lock by then.
	Check() error
	// Unlock releases the lock.
	Unlock() error
}

// ReaderRegistry records the store generations that this process's
// readers hold (Store.Acquire) where the writers of every process see
// them. The store counts references per generation itself: Hold is called
// once per generation and process, and its release when the last reader of
// that generation is done. Lease files in the store directory are always
// honoured as well, so a process without the registry (`worklog export`
// on the same host) still protects its readers.
type ReaderRegistry interface {
	// Hold records that a reader of this process holds gen until release
	// is called.
	Hold(gen uint64) (release func() error, err error)
	// Oldest returns the lowest generation that a living process holds,
	// or math.MaxUint64 when none holds any. On an error the writer keeps
	// every retired file.
	Oldest() (uint64, error)
}

// sharedMarkerName is a file in the store directory that says its writers
// use another Locker than the file lock (a database's). The file lock
// refuses to serve a writer then: it would not be serialised with the
// others, and two commits on one base lose one of them.
const sharedMarkerName = "_lock.shared"

// ErrSharedStore is returned by Begin without StoreOptions.Locker on a
// store whose writers use one.
var ErrSharedStore = errors.New("this store's writers take a lock shared through a database (--database-url); give this command the same setting")

// markShared creates the marker of a store opened with a Locker.
func markShared(dir string) error {
	path := filepath.Join(dir, sharedMarkerName)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	text := "The writers of this store (ingest, prune, forget) take a lock in a database (--database-url).\n" +
		"Commands without that setting refuse to write. Remove this file only when no process uses the database any more.\n"
	if err := fsutil.WriteFile(path, []byte(text), fileMode); err != nil {
		return fmt.Errorf("mark the store as shared: %w", err)
	}
	return nil
}

// fileLocker is the default Locker: an exclusive flock on <store>/_lock.
type fileLocker struct{ path string }

func (f fileLocker) TryLock(context.Context) (HeldLock, bool, error) {
	if _, err := os.Stat(filepath.Join(filepath.Dir(f.path), sharedMarkerName)); err == nil {
		return nil, false, ErrSharedStore
	}
	l := flock.New(f.path)
	ok, err := l.TryLock()
	if err != nil || !ok {
		return nil, false, err
	}
	return heldFile{l}, true, nil
}

// heldFile is a held flock; a flock is never lost while its file
// descriptor is open.
type heldFile struct{ l *flock.Flock }

func (heldFile) Check() error    { return nil }
func (h heldFile) Unlock() error { return h.l.Unlock() }

// defaultLocker is the file lock of the store directory dir.
func defaultLocker(dir string) Locker { return fileLocker{path: filepath.Join(dir, lockName)} }
