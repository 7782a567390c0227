package data

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/gofrs/flock"
)

// Reader leases. A reader that scans a snapshot for long (a background
// export, `worklog export`, a streamed response) pins the snapshot's
// generation with Store.Acquire, and no writer deletes a file that the
// generation lists until the lease is released, however long that takes
// and whatever RetireGrace says.
//
// A lease is a file <store>/_readers/<generation>-<pid>-<random>.lease on
// which its holder keeps an exclusive flock, so that writers in any process
// see it. A file whose lock a writer can take has no living holder (a
// crashed reader): the writer removes it. Within one process, readers of
// the same generation share one lease file, counted by reference.
//
// Race: a reader reads the manifest (generation g) and then creates its
// lease. A commit between the two may already have decided to delete
// files of g. So Acquire reads the manifest again after the lease exists:
// if it is still g, every later commit lists the leases after its own
// commit point and sees this one; if not, Acquire retries on the newer
// generation.

const (
	readersDirName = "_readers"
	leaseExt       = ".lease"
)

// lease is one lease of this process, shared by its references: a lease
// file, or with a ReaderRegistry the registry's hold.
type lease struct {
	gen     uint64
	refs    int
	path    string
	lock    *flock.Flock
	release func() error // the registry's, instead of path and lock
}

// leaseRef is one reader's hold on a lease; Release drops it once.
type leaseRef struct {
	s    *Store
	l    *lease
	once sync.Once
}

// Release ends the snapshot's lease when it was taken with Store.Acquire:
// writers may then delete the files that only this generation still lists.
// It is safe on any snapshot, on copies, and more than once.
func (s Snapshot) Release() {
	if s.lease != nil {
		s.lease.once.Do(func() { s.lease.s.unpin(s.lease.l) })
	}
}

// Acquire returns the last committed state, like Snapshot, pinned: until
// its Release no writer removes a file it lists. Every Acquire needs a
// Release.
func (s *Store) Acquire() (Snapshot, error) {
	if s.closed.Load() {
		return Snapshot{}, fmt.Errorf("acquire snapshot: %w", ErrClosed)
	}
	m, err := s.readManifest()
	if err != nil {
		return Snapshot{}, err
	}
	for range 16 {
		l, err := s.pin(m.Generation)
		if err != nil {
			return Snapshot{}, err
		}
		again, err := s.readManifest()
		if err != nil {
			s.unpin(l)
			return Snapshot{}, err
		}
		if again.Generation == m.Generation {
			snap := s.snapshotOf(m)
			snap.lease = &leaseRef{s: s, l: l}
			return snap, nil
		}
		s.unpin(l)
		m = again
	}
	return Snapshot{}, errors.New("acquire snapshot: the store kept changing; try again")
}

// pin takes a reference on this process's lease of generation gen,
// creating the lease file when it has none.
func (s *Store) pin(gen uint64) (*lease, error) {
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	if l := s.leases[gen]; l != nil {
		l.refs++
		return l, nil
	}
	if s.readers != nil {
		release, err := s.readers.Hold(gen)
		if err != nil {
			return nil, fmt.Errorf("lease: %w", err)
		}
		return s.addLease(&lease{gen: gen, refs: 1, release: release}), nil
	}
	dir := filepath.Join(s.dir, readersDirName)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	name := fmt.Sprintf("%020d-%d-%s", gen, os.Getpid(), hex.EncodeToString(rnd[:]))
	// The file is locked under a temporary name and renamed after: a
	// writer never sees a final name without its holder's lock.
	tmp := filepath.Join(dir, "."+name+tmpSuffix)
	final := filepath.Join(dir, name+leaseExt)
	lock := flock.New(tmp, flock.SetFlag(os.O_CREATE|os.O_RDWR), flock.SetPermissions(fileMode))
	ok, err := lock.TryLock()
	if err == nil && !ok {
		err = errors.New("lease file is locked by another holder")
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		lock.Unlock()
		os.Remove(tmp)
		return nil, fmt.Errorf("lease: %w", err)
	}
	return s.addLease(&lease{gen: gen, refs: 1, path: final, lock: lock}), nil
}

// addLease records l as this process's lease of its generation; the caller
// holds leaseMu.
func (s *Store) addLease(l *lease) *lease {
	if s.leases == nil {
		s.leases = map[uint64]*lease{}
	}
	s.leases[l.gen] = l
	return l
}

// unpin drops one reference; the last removes the lease file.
func (s *Store) unpin(l *lease) {
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	l.refs--
	if l.refs > 0 {
		return
	}
	delete(s.leases, l.gen)
	if l.release != nil {
		if err := l.release(); err != nil {
			s.log.Warn("store: cannot release a reader lease; it expires with this process's registration", "generation", l.gen, "err", err)
		}
		return
	}
	if err := os.Remove(l.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("store: cannot remove a released lease; the next writer does", "path", l.path, "err", err)
	}
	l.lock.Unlock()
}

// oldestReader returns the lowest generation that a living reader of any
// process holds, or math.MaxUint64 when none does: in the ReaderRegistry
// when there is one, and in the lease files in any case. Leases whose
// holder is gone are removed on the way.
func (s *Store) oldestReader() uint64 {
	oldest := uint64(math.MaxUint64)
	if s.readers != nil {
		var err error
		if oldest, err = s.readers.Oldest(); err != nil {
			// Unknown readers: delete nothing that any of them may need.
			s.log.Warn("store: cannot list the reader leases of the registry; keeping retired files", "err", err)
			return 0
		}
	}
	dir := filepath.Join(s.dir, readersDirName)
	entries, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			// Unknown readers: delete nothing that any of them may need.
			s.log.Warn("store: cannot list reader leases; keeping retired files", "dir", dir, "err", err)
			return 0
		}
		return oldest
	}
	for _, e := range entries {
		name := e.Name()
		final := strings.HasSuffix(name, leaseExt)
		if !final && !(strings.HasPrefix(name, ".") && strings.HasSuffix(name, tmpSuffix)) {
			continue
		}
		path := filepath.Join(dir, name)
		lock := flock.New(path, flock.SetFlag(os.O_RDWR))
		ok, err := lock.TryLock()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // released meanwhile
			}
			if final {
				return 0 // cannot tell: assume the oldest possible reader
			}
			continue
		}
		if ok {
			// No holder: a crashed reader's lease, or a temporary name
			// whose reader will retry.
			s.removeLogged(path, "lease of a reader that is gone")
			lock.Unlock()
			continue
		}
		if !final {
			// A reader still taking its lease re-reads the manifest
			// afterwards, so it never relies on what this commit
			// removes.
			continue
		}
		gen, err := strconv.ParseUint(strings.SplitN(name, "-", 2)[0], 10, 64)
		if err != nil {
			return 0
		}
		oldest = min(oldest, gen)
	}
	return oldest
}
