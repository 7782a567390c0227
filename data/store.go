// # The store
//
// How the Parquet files of the worklog live on disk.
//
// Layout (SPEC §8):
//
//	<data>/worklog/_manifest.json              the list of live files: the one commit point
//	<data>/worklog/_lock                       the writer lock (flock; see StoreOptions.Locker)
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
// and calls Txn.Commit, which runs these steps in order:
//
//  1. fsync every part and read its row count from its footer;
//  2. write the new manifest as _manifest.json.tmp and fsync it: the
//     writer's intent, naming every part it is about to install;
//  3. rename every part to its final name and fsync the month directories;
//  4. rename _manifest.json.tmp over _manifest.json: the single commit
//     point, so an ingest touching many months becomes visible all at once
//     or not at all;
//  5. fsync the store directory, and publish the new state
//     (StoreOptions.Publisher: the Iceberg table) while still holding the
//     lock;
//  6. remove the files that the commit made obsolete, except those a
//     published state still retains.
//
// An error before step 4 rolls back (the new parts and the temporary
// manifest are removed; the old state stays). After step 4 nothing that the
// new manifest lists is ever removed: when step 5 fails, Commit reports
// ErrCommitDurabilityUnknown (the new state is in force, but a power loss
// may bring back the old one, whose files are therefore kept too). Part
// names carry the generation and a random suffix, so a commit never
// overwrites a file that a reader of an older snapshot may be reading.
//
// Readers (the query layer, the server) read the manifest (Store.Snapshot)
// and open only the files it lists; they never take the lock.
//
// Retirement. Files that a commit replaces are not deleted at once: a reader
// of an older snapshot may still be scanning them (DuckDB opens Parquet
// files lazily, and a chunked export reopens them for every chunk). The
// manifest records them as retired, with the commit time and generation. A
// writer (a later commit, or the sweep) deletes one when no reader holds a
// lease on a generation that lists it (Store.Acquire, lease.go) and
// StoreOptions.RetireGrace has passed: the grace covers readers that took a
// plain Snapshot, the leases cover readers of any duration, in any process.
// A crashed reader's lease holds nothing.
//
// Crash recovery. The sweep (Open, Begin, under the lock) removes only what
// a crashed writer can have left: part files under their temporary names,
// and, when _manifest.json.tmp survives (a crash between steps 2 and 4),
// the parts that this intent names beyond the committed manifest, then the
// intent itself. It never removes a part file because the manifest does not
// list it. A crash after step 4 leaves the new state; retired files are
// still listed and deleted later.
//
// A missing manifest is never taken for an empty store when part files
// exist: Open and Snapshot refuse with a *ManifestMissingError, and nothing
// is swept or written until an operator restores the manifest. Every path
// the manifest lists must be a part file of a month directory of the store.
//
// External engines: _manifest.json is the authoritative list of live files;
// engines read it as the Iceberg table that StoreOptions.Publisher
// (publish.go, package data/iceberg) derives from every commit, under the
// lock, and from Open when it is behind. A glob such as month=*/*.parquet
// may also see retired files (kept for RetireGrace, for readers' leases and
// while a published state retains them) or the parts of a crashed writer
// (until the next writer sweeps them).
package data

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parquet-go/parquet-go"
)

// ErrLocked is returned by Store.Begin without wait when another writer
// holds the store's lock.
var ErrLocked = errors.New("store is locked by another writer")

// ErrClosed is returned by Store.Snapshot, Store.Acquire and Store.Begin
// after Store.Close.
var ErrClosed = errors.New("store is closed")

// ErrCommitDurabilityUnknown is returned (wrapped) by Txn.Commit when the
// new manifest is in force but the store directory could not be fsynced
// afterwards: readers see the new state, yet a power loss before the
// directory reaches the disk may bring back the old one. Both states' files
// are kept; nothing is lost either way. An ingest that gets it may be
// re-run: ingests are idempotent.
var ErrCommitDurabilityUnknown = errors.New("commit durability unknown")

// ErrManifestMissing is what a *ManifestMissingError matches with errors.Is.
var ErrManifestMissing = errors.New("store has part files but no manifest")

// ManifestMissingError refuses a store whose part files exist without the
// manifest that lists them: taking it for an empty store would hide its
// data and let the next writer replace it.
type ManifestMissingError struct {
	// Dir is the store directory, <data>/worklog.
	Dir string
	// Parts counts the part files found in its month directories.
	Parts int
}

func (e *ManifestMissingError) Error() string {
	return fmt.Sprintf("store %s holds %d part files but no %s (the list of live files); nothing was changed: "+
		"restore %s from a backup, or move the month=* directories out of %s to start an empty store",
		e.Dir, e.Parts, manifestName, filepath.Join(e.Dir, manifestName), e.Dir)
}

// Unwrap makes errors.Is(err, ErrManifestMissing) hold.
func (e *ManifestMissingError) Unwrap() error { return ErrManifestMissing }

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
	// Logger receives what cleanup could not do (a file that could not be
	// removed). Nil means slog.Default().
	Logger *slog.Logger
	// Locker is the writer lock (shared.go); nil means the file lock
	// <store>/_lock, which serves the processes of one host.
	Locker Locker
	// Readers registers this process's reader leases where every writer
	// sees them (shared.go); nil means lease files in <store>/_readers only.
	Readers ReaderRegistry
	// Publisher, when set, publishes every committed state (after each
	// commit, and from Open when it is behind) and keeps the files its
	// retained states list (publish.go).
	Publisher Publisher
}

// Names and modes inside the store directory.
const (
	storeDirName   = "worklog"
	manifestName   = "_manifest.json"
	lockName       = "_lock"
	tmpSuffix      = ".tmp"
	partExt        = ".parquet"
	monthDirPrefix = "month="
	manifestFormat = 1

	// dirMode and fileMode keep agents' data from other local users.
	dirMode  os.FileMode = 0o750
	fileMode os.FileMode = 0o640
)

// monthPattern is the form of a partition name.
var monthPattern = regexp.MustCompile(`^[0-9]{4}-(0[1-9]|1[0-2])$`)

// partTmpPattern is the form of the temporary names NewPart hands out: the
// only files in a month directory that the sweep removes by their name.
var partTmpPattern = regexp.MustCompile(`^part-[0-9]{8}-[0-9]{6}-[0-9a-f]{12}\.parquet\.tmp$`)

// manifestPathPattern is the form of every path a manifest may list: a
// part file directly inside a month directory of the store, so that a
// manifest can never make the store open or remove any other file.
var manifestPathPattern = regexp.MustCompile(`^month=([0-9]{4}-(?:0[1-9]|1[0-2]))/[A-Za-z0-9_-][A-Za-z0-9._-]*\.parquet$`)

// ValidMonth reports whether m is a partition name "YYYY-MM".
func ValidMonth(m string) bool { return monthPattern.MatchString(m) }

// Store is the Parquet store under <dataDir>/worklog. It is safe for
// concurrent use; writers serialise on a file lock, so several processes may
// open the same store.
type Store struct {
	dataDir string
	dir     string
	grace   time.Duration
	log     *slog.Logger
	ops     fileOps
	locker  Locker
	readers ReaderRegistry // nil: lease files only

	cleanupFailures atomic.Int64
	publishFailures atomic.Int64
	closed          atomic.Bool
	publisher       Publisher

	// now is the clock that dates retirements and decides when their
	// grace has passed; time.Now outside tests.
	now func() time.Time
	// lockBusy, when set, is called each time a waiting Begin finds the
	// lock held, before it waits to try again; tests use it to see that
	// Begin waits.
	lockBusy func()

	leaseMu sync.Mutex
	leases  map[uint64]*lease // this process's reader leases by generation
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
	// Gen is the generation of the commit that replaced the file: the
	// first that does not list it. Readers of older generations may still
	// read it.
	Gen uint64 `json:"generation,omitempty"`
}

// removable reports whether retired file r may be deleted at now: its grace
// has passed and no reader holds a generation that lists it (oldest is the
// lowest generation a reader holds). manifestGen stands in for r.Gen when
// a manifest did not record it.
func (r retiredFile) removable(now time.Time, grace time.Duration, oldest, manifestGen uint64) bool {
	gen := r.Gen
	if gen == 0 {
		gen = manifestGen
	}
	return now.Sub(r.At) >= max(grace, 0) && oldest >= gen
}

// validate checks every path of m: the store opens and removes only files
// the manifest names, so a path must never leave the store.
func (m manifest) validate() error {
	for _, f := range m.Files {
		sub := manifestPathPattern.FindStringSubmatch(f.Path)
		if sub == nil || sub[1] != f.Month {
			return fmt.Errorf("manifest lists %q (month %q): not a part file of that month's directory", f.Path, f.Month)
		}
	}
	for _, r := range m.Retired {
		if !manifestPathPattern.MatchString(r.Path) {
			return fmt.Errorf("manifest retires %q: not a part file of a month directory", r.Path)
		}
	}
	return nil
}

// Open opens (creating if needed) the store in <dataDir>/worklog. When no
// writer holds the lock, it sweeps what a crashed writer left behind. A store
// whose part files exist without a manifest is refused with a
// *ManifestMissingError and left untouched.
func Open(dataDir string, opts StoreOptions) (*Store, error) {
	return openWith(dataDir, opts, osOps{})
}

// openWith is Open with the filesystem steps as a parameter, for tests.
func openWith(dataDir string, opts StoreOptions, ops fileOps) (*Store, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("resolve data dir: %w", err)
	}
	s := &Store{dataDir: abs, dir: filepath.Join(abs, storeDirName), grace: opts.RetireGrace, log: opts.Logger, ops: ops, now: time.Now,
		locker: opts.Locker, readers: opts.Readers, publisher: opts.Publisher}
	if s.locker == nil {
		s.locker = defaultLocker(s.dir)
	}
	if s.grace == 0 {
		s.grace = DefaultRetireGrace
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if err := os.MkdirAll(filepath.Join(s.dir, readersDirName), dirMode); err != nil {
		return nil, fmt.Errorf("create store dir: %w", err)
	}
	if opts.Locker != nil {
		if err := markShared(s.dir); err != nil {
			return nil, err
		}
	}
	// A store that must be refused (no manifest, a bad one) is refused
	// whether or not a writer holds the lock.
	if _, err := s.readManifest(); err != nil {
		return nil, err
	}
	lock, ok, err := s.locker.TryLock(context.Background())
	if errors.Is(err, ErrSharedStore) {
		// A reader without the shared lock: it may read, and the sweep
		// is left to the writers.
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lock store: %w", err)
	}
	if ok {
		defer lock.Unlock()
		// Read again under the lock: a writer may have committed since.
		m, err := s.readManifest()
		if err != nil {
			return nil, err
		}
		s.sweep(m)
		// A crash between a commit and its publish left the
		// publication behind: catch up.
		s.publish(s.snapshotOf(m))
	}
	return s, nil
}

// DataDir is the absolute data directory the store lives in.
func (s *Store) DataDir() string { return s.dataDir }

// Dir is the absolute store directory, <data>/worklog.
func (s *Store) Dir() string { return s.dir }

// Close ends the use of the store: later calls of Snapshot, Acquire and
// Begin fail with ErrClosed. Transactions begun before go on (they must
// still be committed or rolled back), and snapshots taken or acquired
// before stay readable until their Release. Close is idempotent and returns
// nil.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

// CleanupFailures counts the files that the sweep or a commit's cleanup
// could not remove (each one is logged); they are retried by the next sweep
// and never stop a commit or a reader.
func (s *Store) CleanupFailures() int64 { return s.cleanupFailures.Load() }

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

func (s *Store) manifestPath() string { return filepath.Join(s.dir, manifestName) }

// intentPath is where Commit writes the next manifest before installing it.
func (s *Store) intentPath() string { return s.manifestPath() + tmpSuffix }

// readManifest reads the committed manifest. Without one, the store is
// empty only if no month directory holds a part file.
func (s *Store) readManifest() (manifest, error) {
	b, err := os.ReadFile(s.manifestPath())
	if errors.Is(err, fs.ErrNotExist) {
		n, err := s.countParts()
		if err != nil {
			return manifest{}, err
		}
		if n > 0 {
			return manifest{}, &ManifestMissingError{Dir: s.dir, Parts: n}
		}
		return manifest{Format: manifestFormat}, nil
	}
	if err != nil {
		return manifest{}, fmt.Errorf("read manifest: %w", err)
	}
	m, err := parseManifest(b)
	if err != nil {
		return manifest{}, fmt.Errorf("manifest %s: %w", s.manifestPath(), err)
	}
	return m, nil
}

func parseManifest(b []byte) (manifest, error) {
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return manifest{}, fmt.Errorf("parse: %w", err)
	}
	if m.Format != manifestFormat {
		return manifest{}, fmt.Errorf("format %d: this worklog reads format %d", m.Format, manifestFormat)
	}
	return m, m.validate()
}

// countParts counts the part files (*.parquet) in the month directories.
func (s *Store) countParts() (int, error) {
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("list store dir: %w", err)
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), monthDirPrefix) {
			continue
		}
		parts, err := os.ReadDir(filepath.Join(s.dir, e.Name()))
		if err != nil {
			return 0, fmt.Errorf("list %s: %w", e.Name(), err)
		}
		for _, p := range parts {
			if !p.IsDir() && strings.HasSuffix(p.Name(), partExt) {
				n++
			}
		}
	}
	return n, nil
}

// removeLogged removes path; a failure is logged and counted, never
// returned: cleanup must not stop a commit or a reader. A file already gone
// is no failure.
func (s *Store) removeLogged(path, why string) bool {
	err := s.ops.remove(path)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return true
	}
	s.cleanupFailures.Add(1)
	s.log.Warn("store cleanup: cannot remove file; the next writer retries", "path", path, "reason", why, "err", err)
	return false
}

// sweep removes what a crashed writer can have left, and retired files past
// their grace. The caller holds the lock and has read m, the committed
// manifest. It removes parts by name only when they carry NewPart's
// temporary names, or when the crashed writer's own intent
// (_manifest.json.tmp) names them beyond m; never a part merely because m
// does not list it. Failures are logged and counted, and the sweep carries
// on.
func (s *Store) sweep(m manifest) {
	live := make(map[string]bool, len(m.Files)+len(m.Retired))
	for _, f := range m.Files {
		live[f.Path] = true
	}
	if b, err := os.ReadFile(s.intentPath()); err == nil {
		// The intent is written in full and fsynced before any part is
		// renamed; one that does not parse was cut short before that.
		if next, err := parseManifest(b); err == nil && next.Generation == m.Generation+1 {
			prefix := fmt.Sprintf("part-%08d-", next.Generation)
			for _, f := range next.Files {
				if !live[f.Path] && strings.HasPrefix(filepath.Base(f.Path), prefix) {
					s.removeLogged(s.abs(f.Path), "part of a commit that did not complete")
				}
			}
		}
		s.removeLogged(s.intentPath(), "manifest of a commit that did not complete")
	}
	now := s.now()
	oldest := uint64(0)
	if len(m.Retired) > 0 {
		// The manifest that retired them must be durable before they go:
		// a commit whose directory fsync failed could otherwise come back
		// as the old state, without its files.
		if err := s.ops.syncDir(s.dir); err != nil {
			s.cleanupFailures.Add(1)
			s.log.Warn("store cleanup: cannot sync the store directory; keeping retired files", "dir", s.dir, "err", err)
		} else {
			oldest = s.oldestReader()
		}
	}
	var removable []string
	for _, r := range m.Retired {
		if r.removable(now, s.grace, oldest, m.Generation) && !live[r.Path] {
			removable = append(removable, r.Path)
		}
	}
	for _, p := range s.unreferenced(removable) {
		s.removeLogged(s.abs(p), "retired")
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		s.cleanupFailures.Add(1)
		s.log.Warn("store cleanup: cannot list the store directory", "dir", s.dir, "err", err)
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), monthDirPrefix) {
			continue
		}
		dir := filepath.Join(s.dir, e.Name())
		parts, err := os.ReadDir(dir)
		if err != nil {
			s.cleanupFailures.Add(1)
			s.log.Warn("store cleanup: cannot list a partition", "dir", dir, "err", err)
			continue
		}
		left := 0
		for _, p := range parts {
			if !p.IsDir() && partTmpPattern.MatchString(p.Name()) && s.removeLogged(filepath.Join(dir, p.Name()), "temporary part of a crashed writer") {
				continue
			}
			left++
		}
		if left == 0 {
			// An empty partition directory is noise for globbing engines.
			os.Remove(dir)
		}
	}
}

// Txn is one write transaction: the writer lock plus the parts written so
// far. It is not safe for concurrent use except NewPart, which may be called
// from several goroutines.
type Txn struct {
	s    *Store
	lock HeldLock
	base manifest

	mu      sync.Mutex
	seq     int // parts created so far
	parts   []txnPart
	replace map[string]bool
	done    bool
	intent  bool     // _manifest.json.tmp written, not yet installed
	renamed []string // final paths renamed but not yet committed
}

type txnPart struct {
	month string
	tmp   string
}

// Begin starts a write transaction. Only one writer holds a store at a time,
// across processes. With wait false, Begin returns ErrLocked at once when
// another writer holds the lock; with wait true it polls until the lock is
// free or ctx is done. Begin sweeps a crashed writer's leftovers.
func (s *Store) Begin(ctx context.Context, wait bool) (*Txn, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("begin: %w", ErrClosed)
	}
	var lock HeldLock
	var ok bool
	var err error
	if wait {
		lock, ok, err = s.waitLock(ctx)
	} else {
		lock, ok, err = s.locker.TryLock(ctx)
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
	if err != nil {
		lock.Unlock()
		return nil, err
	}
	s.sweep(m)
	return &Txn{s: s, lock: lock, base: m, replace: map[string]bool{}}, nil
}

// lockRetry is how long a waiting Begin waits before it tries a held lock
// again.
const lockRetry = 50 * time.Millisecond

// waitLock takes the writer lock, trying again every lockRetry until it is
// free or ctx is done (with the lockBusy hook).
func (s *Store) waitLock(ctx context.Context) (HeldLock, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	for {
		if lock, ok, err := s.locker.TryLock(ctx); ok || err != nil {
			return lock, ok, err
		}
		if s.lockBusy != nil {
			s.lockBusy()
		}
		retry := time.NewTimer(lockRetry)
		select {
		case <-ctx.Done():
			retry.Stop()
			return nil, false, ctx.Err()
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
	if err := os.MkdirAll(dir, dirMode); err != nil {
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

// newPart is a part ready to install: its final path (relative to the
// store) and row count.
type newPart struct {
	month string
	path  string
	rows  int64
}

// planCommit decides, without touching the disk, the manifest that a
// commit installs and the files it removes once that manifest is durable:
// the base's files of replaced months give way to the new parts and are
// retired (with the new generation); earlier retired files that are
// removable (grace passed, no reader at oldest or above holding them) are
// dropped from the list and removed. With a negative grace the files this
// commit replaces are returned as replaced: the caller removes them after
// the commit point unless a reader took a lease on the base generation
// meanwhile; their retired entries go with the next commit.
func planCommit(base manifest, replace map[string]bool, parts []newPart, now time.Time, grace time.Duration, oldest uint64) (next manifest, obsolete, replaced []string) {
	next = manifest{Format: manifestFormat, Generation: base.Generation + 1}
	var retired []retiredFile
	for _, f := range base.Files {
		if replace[f.Month] {
			retired = append(retired, retiredFile{Path: f.Path, At: now, Gen: next.Generation})
			replaced = append(replaced, f.Path)
			continue
		}
		next.Files = append(next.Files, f)
	}
	for _, p := range parts {
		next.Files = append(next.Files, manifestFile{Month: p.month, Path: p.path, Rows: p.rows})
	}
	sort.Slice(next.Files, func(i, j int) bool {
		a, b := next.Files[i], next.Files[j]
		if a.Month != b.Month {
			return a.Month < b.Month
		}
		return a.Path < b.Path
	})
	for _, r := range base.Retired {
		if r.removable(now, grace, oldest, base.Generation) {
			obsolete = append(obsolete, r.Path)
		} else {
			next.Retired = append(next.Retired, r)
		}
	}
	next.Retired = append(next.Retired, retired...)
	if grace >= 0 {
		replaced = nil
	}
	return next, obsolete, replaced
}

// Commit installs the new parts and the replacements atomically and releases
// the lock. Parts with zero rows are dropped. An error before the commit
// point rolls the transaction back and leaves the old state. An error
// wrapping ErrCommitDurabilityUnknown comes with the new snapshot: the
// commit is in force, though a power loss may still undo it. The steps are
// listed in the package documentation.
func (t *Txn) Commit() (snap Snapshot, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return Snapshot{}, errors.New("commit: transaction is finished")
	}
	committed := false
	defer func() {
		if !committed {
			err = errors.Join(err, t.rollbackLocked())
		}
	}()
	s := t.s
	// 1. Every part durable and complete.
	var ready []newPart
	dirs := map[string]bool{}
	for i, p := range t.parts {
		rows, err := s.syncAndCount(p.tmp)
		if err != nil {
			return Snapshot{}, fmt.Errorf("commit part %s: %w", filepath.Base(p.tmp), err)
		}
		if rows == 0 {
			s.removeLogged(p.tmp, "empty part")
			t.parts[i].tmp = ""
			continue
		}
		rel, err := s.rel(strings.TrimSuffix(p.tmp, tmpSuffix))
		if err != nil {
			return Snapshot{}, err
		}
		ready = append(ready, newPart{month: p.month, path: rel, rows: rows})
		dirs[filepath.Dir(p.tmp)] = true
	}
	// Readers holding generations older than the base took their leases
	// before the base was committed, so this listing sees all of them.
	oldest := uint64(math.MaxUint64)
	if len(t.base.Retired) > 0 {
		oldest = s.oldestReader()
	}
	next, obsolete, replaced := planCommit(t.base, t.replace, ready, s.now().UTC(), s.grace, oldest)
	next, obsolete, replaced = s.keepReferenced(t.base, next, obsolete, replaced)
	b, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return Snapshot{}, fmt.Errorf("encode manifest: %w", err)
	}
	// 2. The intent: what the sweep removes should the writer die before 4.
	t.intent = true
	if err := s.ops.writeFile(s.intentPath(), append(b, '\n'), fileMode); err != nil {
		return Snapshot{}, fmt.Errorf("write manifest: %w", err)
	}
	// 3. The parts under their final names.
	for i, p := range t.parts {
		if p.tmp == "" {
			continue
		}
		final := strings.TrimSuffix(p.tmp, tmpSuffix)
		if err := s.ops.rename(p.tmp, final); err != nil {
			return Snapshot{}, fmt.Errorf("install part %s: %w", filepath.Base(final), err)
		}
		t.renamed = append(t.renamed, final)
		t.parts[i].tmp = ""
	}
	for d := range dirs {
		if err := s.ops.syncDir(d); err != nil {
			return Snapshot{}, fmt.Errorf("sync partition dir %s: %w", filepath.Base(d), err)
		}
	}
	// 4. The commit point, only while the lock is surely still ours.
	if err := t.lock.Check(); err != nil {
		return Snapshot{}, fmt.Errorf("commit: writer lock: %w", err)
	}
	if err := s.ops.rename(s.intentPath(), s.manifestPath()); err != nil {
		return Snapshot{}, fmt.Errorf("install manifest: %w", err)
	}
	// From here on nothing the new manifest lists may be removed.
	committed = true
	t.intent = false
	t.renamed, t.parts = nil, nil
	snap = s.snapshotOf(next)
	// 5. Durability of the commit point. Without it the old manifest may
	// come back after a power loss, so the old files stay too.
	syncErr := s.ops.syncDir(s.dir)
	// 5b. The publication of the new state, still under the lock.
	s.publish(snap)
	unlockErr := t.finishLocked()
	if syncErr != nil {
		return snap, errors.Join(fmt.Errorf("%w: the new state is in force but may not survive a power loss: sync store dir: %w",
			ErrCommitDurabilityUnknown, syncErr), unlockErr)
	}
	// 6. Cleanup of what no state can list any more. Readers of the base
	// generation may have taken leases until step 4: list them again.
	for _, p := range obsolete {
		s.removeLogged(s.abs(p), "retired")
	}
	if len(replaced) > 0 && s.oldestReader() > t.base.Generation {
		for _, p := range replaced {
			s.removeLogged(s.abs(p), "replaced")
		}
	}
	return snap, unlockErr
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

// rollbackLocked removes what the transaction wrote: its temporary parts,
// the parts it renamed, and its intent last, so that a crash in the middle
// leaves the intent to guide the next sweep. A removal that fails is
// logged and counted and left to that sweep.
func (t *Txn) rollbackLocked() error {
	s := t.s
	for _, p := range t.parts {
		if p.tmp != "" {
			s.removeLogged(p.tmp, "temporary part of an abandoned commit")
		}
	}
	for _, p := range t.renamed {
		s.removeLogged(p, "part of an abandoned commit")
	}
	if t.intent {
		s.removeLogged(s.intentPath(), "manifest of an abandoned commit")
	}
	t.parts, t.renamed, t.intent = nil, nil, false
	return t.finishLocked()
}

func (t *Txn) finishLocked() error {
	t.done = true
	if err := t.lock.Unlock(); err != nil {
		return fmt.Errorf("unlock store: %w", err)
	}
	return nil
}

// syncAndCount fsyncs a finished part file, makes it readable by its owner
// and group only, and returns its row count from the Parquet footer, which
// also proves the file is complete.
func (s *Store) syncAndCount(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("open: %w", err)
	}
	defer f.Close()
	if err := f.Chmod(fileMode); err != nil {
		return 0, fmt.Errorf("chmod: %w", err)
	}
	if err := s.ops.syncFile(f); err != nil {
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
