// # The store
//
// How the Parquet files of the worklog live on disk.
//
// Layout (SPEC §8):
//
//	<data>/worklog/_manifest.json              the list of live files: the one commit point
//	<data>/worklog/_lock                       the writer lock (flock)
//	<data>/worklog/month=YYYY-MM/part-<generation>-<n>-<random>.parquet
//
// Part files are zstd-compressed Parquet, sorted by date then userWorklogId,
// in row groups of 16,384 rows; a month may hold several parts with disjoint
// date ranges, which the manifest lists in date order. Columns have the
// catalogue's types (lists as Parquet lists, date-times as plain, naive
// TIMESTAMP). Files are Hive partitioned by the month of date, so any
// Parquet engine can read them.
//
// Commits. A writer takes the lock (Store.Begin), writes each new part under
// a temporary name "<name>.parquet.tmp" in its month directory (Txn.NewPart),
// and calls Txn.Commit, which fsyncs every part, renames it to its final name,
// fsyncs the month directories, and then replaces _manifest.json with the
// new manifest through internal/fsutil (temporary file, fsync, rename, fsync
// of the store directory). That last rename is the single commit point: an
// ingest touching many months becomes visible all at once or not at all.
// Part names carry the generation and a random suffix, so a commit never
// overwrites a file that a reader of an older snapshot may be reading.
//
// Readers (the query layer, the server) read the manifest (Store.Snapshot)
// and open only the files it lists; they never take the lock.
//
// Retirement. Files that a commit replaces are not deleted at once: a reader
// that took its snapshot just before the commit may still be scanning them
// (DuckDB opens Parquet files lazily). The manifest records them as retired
// with the commit time; a later writer deletes them once StoreOptions.RetireGrace
// has passed.
//
// Crash recovery. A crash before the manifest rename leaves the old manifest
// in force; whatever the crashed writer left behind (*.tmp files, renamed but
// never listed parts) is swept by the next holder of the lock (Open, Begin).
// A crash after it leaves the new state; retired files are still listed and
// deleted later.
//
// External engines: _manifest.json is the authoritative list of live files.
// A glob such as month=*/*.parquet sees the live files too, but may briefly
// also see retired files (for RetireGrace after a commit) or the orphans of a
// crashed writer (until the next writer sweeps them).
package data

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofrs/flock"
	"github.com/parquet-go/parquet-go"

	"worklog/internal/fsutil"
)

// ErrLocked is returned by Store.Begin without wait when another writer
// holds the store's lock.
var ErrLocked = errors.New("store is locked by another writer")

// ErrClosed is returned by Store.Snapshot and Store.Begin after Store.Close.
var ErrClosed = errors.New("store is closed")

// DefaultRetireGrace is how long replaced files survive a commit when
// StoreOptions.RetireGrace is zero.
const DefaultRetireGrace = 10 * time.Minute

// StoreOptions configures a Store.
type StoreOptions struct {
	// RetireGrace is how long files replaced by a commit stay on disk for
	// readers that are still scanning them. Zero means DefaultRetireGrace
	// (10 minutes); a negative value deletes replaced files right after the
	// commit.
	RetireGrace time.Duration
}

// Names inside the store directory.
const (
	storeDirName   = "worklog"
	manifestName   = "_manifest.json"
	lockName       = "_lock"
	tmpSuffix      = ".tmp"
	partExt        = ".parquet"
	monthDirPrefix = "month="
	manifestFormat = 1
)

// monthPattern is the form of a partition name.
var monthPattern = regexp.MustCompile(`^[0-9]{4}-(0[1-9]|1[0-2])$`)

// ValidMonth reports whether m is a partition name "YYYY-MM".
func ValidMonth(m string) bool { return monthPattern.MatchString(m) }

// Store is the Parquet store under <dataDir>/worklog. It is safe for
// concurrent use; writers serialise on a file lock, so several processes may
// open the same store.
type Store struct {
	dataDir string
	dir     string
	grace   time.Duration
	closed  atomic.Bool

	// now is the clock that dates retirements and decides when their
	// grace has passed; time.Now outside tests.
	now func() time.Time
	// lockBusy, when set, is called each time a waiting Begin finds the
	// lock held, before it waits to try again; tests use it to see that
	// Begin waits.
	lockBusy func()
}

// manifest is the on-disk form of _manifest.json. Paths are relative to the
// store directory, with forward slashes.
type manifest struct {
	Format     int            `json:"format"`
	Generation uint64         `json:"generation"`
	Files      []manifestFile `json:"files"`
	Retired    []retiredFile  `json:"retired,omitempty"`
}

type manifestFile struct {
	Month string `json:"month"`
	Path  string `json:"path"`
	Rows  int64  `json:"rows"`
}

type retiredFile struct {
	Path string    `json:"path"`
	At   time.Time `json:"retiredAt"`
}

// Open opens (creating if needed) the store in <dataDir>/worklog. When no
// writer holds the lock, it sweeps what a crashed writer left behind.
func Open(dataDir string, opts StoreOptions) (*Store, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("resolve data dir: %w", err)
	}
	s := &Store{dataDir: abs, dir: filepath.Join(abs, storeDirName), grace: opts.RetireGrace, now: time.Now}
	if s.grace == 0 {
		s.grace = DefaultRetireGrace
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("create store dir: %w", err)
	}
	lock := flock.New(filepath.Join(s.dir, lockName))
	ok, err := lock.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock store: %w", err)
	}
	if ok {
		defer lock.Unlock()
		m, err := s.readManifest()
		if err != nil {
			return nil, err
		}
		if err := s.sweep(m); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// DataDir is the absolute data directory the store lives in.
func (s *Store) DataDir() string { return s.dataDir }

// Dir is the absolute store directory, <data>/worklog.
func (s *Store) Dir() string { return s.dir }

// Close ends the use of the store: later calls of Snapshot and Begin fail
// with ErrClosed. Transactions begun before go on (they must still be
// committed or rolled back) and snapshots taken before stay readable, since
// the store holds no open file between calls. Close is idempotent and
// returns nil.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

// Snapshot returns the last committed state. It reads the manifest, which is
// small, so it may be called per request.
func (s *Store) Snapshot() (Snapshot, error) {
	if s.closed.Load() {
		return Snapshot{}, fmt.Errorf("snapshot: %w", ErrClosed)
	}
	m, err := s.readManifest()
	if err != nil {
		return Snapshot{}, err
	}
	return s.snapshotOf(m), nil
}

func (s *Store) snapshotOf(m manifest) Snapshot {
	snap := Snapshot{Generation: m.Generation, Files: make([]PartFile, 0, len(m.Files))}
	for _, f := range m.Files {
		snap.Files = append(snap.Files, PartFile{Month: f.Month, Path: s.abs(f.Path), Rows: f.Rows})
	}
	return snap
}

func (s *Store) abs(rel string) string { return filepath.Join(s.dir, filepath.FromSlash(rel)) }

func (s *Store) rel(abs string) (string, error) {
	r, err := filepath.Rel(s.dir, abs)
	if err != nil {
		return "", fmt.Errorf("path outside store: %w", err)
	}
	return filepath.ToSlash(r), nil
}

// monthDir is the one place that names a partition directory.
func (s *Store) monthDir(month string) string {
	return filepath.Join(s.dir, monthDirPrefix+month)
}

func (s *Store) readManifest() (manifest, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, manifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return manifest{Format: manifestFormat}, nil
	}
	if err != nil {
		return manifest{}, fmt.Errorf("read manifest: %w", err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return manifest{}, fmt.Errorf("parse manifest: %w", err)
	}
	if m.Format != manifestFormat {
		return manifest{}, fmt.Errorf("manifest format %d: this worklog reads format %d", m.Format, manifestFormat)
	}
	return m, nil
}

// writeManifest atomically replaces the manifest (fsutil.WriteFile:
// temporary file, fsync, rename, fsync of the store directory).
func (s *Store) writeManifest(m manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	if err := fsutil.WriteFile(filepath.Join(s.dir, manifestName), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("install manifest: %w", err)
	}
	return nil
}

// sweep removes *.tmp files and part files that neither the manifest lists
// nor records as retired: the leftovers of a crashed writer. The caller
// holds the lock. Retired files past their grace are removed too; they stay
// in the manifest's retired list until the next commit drops them.
func (s *Store) sweep(m manifest) error {
	keep := make(map[string]bool, len(m.Files)+len(m.Retired))
	for _, f := range m.Files {
		keep[f.Path] = true
	}
	now := s.now()
	for _, r := range m.Retired {
		if now.Sub(r.At) < s.grace {
			keep[r.Path] = true
		}
	}
	// A manifest's temporary file as worklog named it before fsutil; the
	// loop below removes fsutil's temporary files.
	os.Remove(filepath.Join(s.dir, manifestName+tmpSuffix))
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("list store dir: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if !e.IsDir() && fsutil.IsTemp(e.Name()) {
			if err := os.Remove(filepath.Join(s.dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove leftover %s: %w", e.Name(), err))
			}
			continue
		}
		if !e.IsDir() || !strings.HasPrefix(e.Name(), monthDirPrefix) {
			continue
		}
		dir := filepath.Join(s.dir, e.Name())
		parts, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, fmt.Errorf("list %s: %w", e.Name(), err))
			continue
		}
		removed := 0
		for _, p := range parts {
			name := p.Name()
			if p.IsDir() || !(strings.HasSuffix(name, tmpSuffix) || strings.HasSuffix(name, partExt)) {
				continue
			}
			if keep[e.Name()+"/"+name] {
				continue
			}
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove leftover %s: %w", name, err))
				continue
			}
			removed++
		}
		if removed == len(parts) {
			// An empty partition directory is noise for globbing engines.
			os.Remove(dir)
		}
	}
	return errors.Join(errs...)
}

// Txn is one write transaction: the writer lock plus the parts written so
// far. It is not safe for concurrent use except NewPart, which may be called
// from several goroutines.
type Txn struct {
	s    *Store
	lock *flock.Flock
	base manifest

	mu      sync.Mutex
	seq     int // parts created so far
	parts   []txnPart
	replace map[string]bool
	done    bool
	renamed []string // final paths renamed but not yet committed
}

type txnPart struct {
	month string
	tmp   string
}

// lockRetry is how long a waiting Begin waits before it tries a held lock
// again.
const lockRetry = 50 * time.Millisecond

// Begin starts a write transaction. Only one writer holds a store at a time,
// across processes. With wait false, Begin returns ErrLocked at once when
// another writer holds the lock; with wait true it polls until the lock is
// free or ctx is done. Begin sweeps a crashed writer's leftovers.
func (s *Store) Begin(ctx context.Context, wait bool) (*Txn, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("begin: %w", ErrClosed)
	}
	lock := flock.New(filepath.Join(s.dir, lockName))
	var ok bool
	var err error
	if wait {
		ok, err = s.waitLock(ctx, lock)
	} else {
		ok, err = lock.TryLock()
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("wait for store lock: %w", ctx.Err())
		}
		return nil, fmt.Errorf("lock store: %w", err)
	}
	if !ok {
		return nil, ErrLocked
	}
	m, err := s.readManifest()
	if err == nil {
		err = s.sweep(m)
	}
	if err != nil {
		lock.Unlock()
		return nil, err
	}
	return &Txn{s: s, lock: lock, base: m, replace: map[string]bool{}}, nil
}

// waitLock takes lock, trying again every lockRetry until it is free or ctx
// is done (flock's TryLockContext, with the lockBusy hook).
func (s *Store) waitLock(ctx context.Context, lock *flock.Flock) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	for {
		if ok, err := lock.TryLock(); ok || err != nil {
			return ok, err
		}
		if s.lockBusy != nil {
			s.lockBusy()
		}
		retry := time.NewTimer(lockRetry)
		select {
		case <-ctx.Done():
			retry.Stop()
			return false, ctx.Err()
		case <-retry.C:
		}
	}
}

// Base is the committed state when the transaction began. No other writer
// can change it while the transaction is open.
func (t *Txn) Base() Snapshot { return t.s.snapshotOf(t.base) }

// NewPart returns a fresh temporary path in month's partition directory,
// "<store>/month=YYYY-MM/part-<generation>-<n>-<random>.parquet.tmp", for
// the caller to write one Parquet file into. Commit installs it; Rollback
// removes it. The partition directory is created. n counts the parts of the
// transaction, so a month's parts sort by name in the order they were asked
// for: a writer that splits a month by date ranges asks in date order, and
// the snapshot lists them in that order.
func (t *Txn) NewPart(month string) (string, error) {
	if !ValidMonth(month) {
		return "", fmt.Errorf("new part: invalid month %q", month)
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", fmt.Errorf("new part name: %w", err)
	}
	dir := t.s.monthDir(month)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create partition dir: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return "", errors.New("new part: transaction is finished")
	}
	// The counter keeps a transaction's parts in creation order when sorted
	// by name, which is how Snapshot orders a month's files.
	t.seq++
	name := fmt.Sprintf("part-%08d-%06d-%s%s%s", t.base.Generation+1, t.seq, hex.EncodeToString(rnd[:]), partExt, tmpSuffix)
	p := filepath.Join(dir, name)
	t.parts = append(t.parts, txnPart{month: month, tmp: p})
	return p, nil
}

// Replace makes the commit drop every file month holds in the base state;
// the month then consists of this transaction's new parts only (none: the
// month becomes empty).
func (t *Txn) Replace(month string) {
	t.mu.Lock()
	t.replace[month] = true
	t.mu.Unlock()
}

// Commit installs the new parts and the replacements atomically and releases
// the lock. Parts with zero rows are dropped. On error nothing is committed
// and the transaction is rolled back.
func (t *Txn) Commit() (snap Snapshot, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return Snapshot{}, errors.New("commit: transaction is finished")
	}
	defer func() {
		if err != nil {
			t.rollbackLocked()
		}
	}()
	now := t.s.now().UTC()
	next := manifest{Format: manifestFormat, Generation: t.base.Generation + 1}
	var retired []retiredFile
	for _, f := range t.base.Files {
		if t.replace[f.Month] {
			retired = append(retired, retiredFile{Path: f.Path, At: now})
			continue
		}
		next.Files = append(next.Files, f)
	}
	dirs := map[string]bool{}
	for _, p := range t.parts {
		rows, err := syncAndCount(p.tmp)
		if err != nil {
			return Snapshot{}, fmt.Errorf("commit part %s: %w", filepath.Base(p.tmp), err)
		}
		if rows == 0 {
			os.Remove(p.tmp)
			continue
		}
		final := strings.TrimSuffix(p.tmp, tmpSuffix)
		if err := os.Rename(p.tmp, final); err != nil {
			return Snapshot{}, fmt.Errorf("install part: %w", err)
		}
		t.renamed = append(t.renamed, final)
		rel, err := t.s.rel(final)
		if err != nil {
			return Snapshot{}, err
		}
		next.Files = append(next.Files, manifestFile{Month: p.month, Path: rel, Rows: rows})
		dirs[filepath.Dir(final)] = true
	}
	for d := range dirs {
		if err := fsutil.SyncDir(d); err != nil {
			return Snapshot{}, fmt.Errorf("sync partition dir: %w", err)
		}
	}
	sort.Slice(next.Files, func(i, j int) bool {
		a, b := next.Files[i], next.Files[j]
		if a.Month != b.Month {
			return a.Month < b.Month
		}
		return a.Path < b.Path
	})
	// Keep earlier retirements still within their grace; drop the rest
	// from the list and delete them after the commit point.
	var expired []string
	for _, r := range t.base.Retired {
		if now.Sub(r.At) < t.s.grace {
			next.Retired = append(next.Retired, r)
		} else {
			expired = append(expired, r.Path)
		}
	}
	if t.s.grace < 0 {
		for _, r := range retired {
			expired = append(expired, r.Path)
		}
	} else {
		next.Retired = append(next.Retired, retired...)
	}
	if err := t.s.writeManifest(next); err != nil {
		return Snapshot{}, err
	}
	// Committed: from here on nothing may undo the new state.
	t.renamed = nil
	t.parts = nil
	for _, p := range expired {
		os.Remove(t.s.abs(p))
	}
	t.finishLocked()
	return t.s.snapshotOf(next), nil
}

// Rollback abandons the transaction: it removes the parts written so far and
// releases the lock. It is safe to call after Commit, and more than once.
func (t *Txn) Rollback() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return nil
	}
	return t.rollbackLocked()
}

func (t *Txn) rollbackLocked() error {
	var errs []error
	for _, p := range t.parts {
		if err := os.Remove(p.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove temp part: %w", err))
		}
	}
	for _, p := range t.renamed {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove uncommitted part: %w", err))
		}
	}
	t.parts, t.renamed = nil, nil
	errs = append(errs, t.finishLocked())
	return errors.Join(errs...)
}

func (t *Txn) finishLocked() error {
	t.done = true
	if err := t.lock.Unlock(); err != nil {
		return fmt.Errorf("unlock store: %w", err)
	}
	return nil
}

// syncAndCount fsyncs a finished part file and returns its row count from
// the Parquet footer, which also proves the file is complete.
func syncAndCount(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("open: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("fsync: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat: %w", err)
	}
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return 0, fmt.Errorf("read parquet footer: %w", err)
	}
	return pf.NumRows(), nil
}
