package pgstate

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"worklog/data"
	"worklog/ingest"
	"worklog/internal/audit"
	"worklog/internal/pgtest"
	"worklog/internal/storetest"
)

// replica is what one worklog process holds: its own pool on the shared
// database, its writer lock, its reader registry and its store over the
// shared data directory.
type replica struct {
	db      *DB
	lock    *WriterLock
	readers *Readers
	store   *data.Store
}

func newReplica(t *testing.T, url, dataDir string) *replica {
	t.Helper()
	ctx := context.Background()
	db, err := Open(ctx, url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	readers, err := db.Readers(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { readers.Close() })
	lock := db.WriterLock()
	// A negative grace deletes replaced files right after a commit unless
	// a reader lease holds them: only the leases keep them.
	store, err := data.Open(dataDir, data.StoreOptions{RetireGrace: -1, Locker: lock, Readers: readers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return &replica{db: db, lock: lock, readers: readers, store: store}
}

func ingestFixture(t *testing.T, r *replica) ingest.Summary {
	t.Helper()
	sum, err := ingest.Run(context.Background(), r.store, []ingest.Input{{Name: "fixture", R: strings.NewReader(storetest.Fixture(t))}}, ingest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// An ingest on replica A and a forget on replica B serialise on the
// database's writer lock: B waits while A holds it, then sees A's commit.
func TestIngestAndForgetOfTwoReplicasSerialise(t *testing.T) {
	url, dir := pgtest.New(t), t.TempDir()
	a, b := newReplica(t, url, dir), newReplica(t, url, dir)
	held, release := make(chan struct{}), make(chan struct{})
	a.lock.hold = func() { close(held); <-release }
	waiting := make(chan struct{})
	var once sync.Once
	b.lock.busy = func() { once.Do(func() { close(waiting) }) }

	ingested := make(chan error, 1)
	go func() {
		_, err := ingest.Run(context.Background(), a.store, []ingest.Input{{Name: "fixture", R: strings.NewReader(storetest.Fixture(t))}}, ingest.Options{})
		ingested <- err
	}()
	<-held // A holds the lock, its ingest not yet committed
	forgot := make(chan error, 1)
	var ch ingest.Change
	go func() {
		var err error
		ch, err = ingest.Forget(context.Background(), b.store, 9, ingest.Delete, ingest.LifecycleOptions{})
		forgot <- err
	}()
	<-waiting // B found the lock held
	select {
	case err := <-forgot:
		t.Fatalf("B's forget finished while A held the lock: %v", err)
	default:
	}
	close(release)
	if err := <-ingested; err != nil {
		t.Fatal(err)
	}
	if err := <-forgot; err != nil {
		t.Fatal(err)
	}
	// The forget ran on A's commit: it found user 9's 25 events.
	if ch.Events != 25 {
		t.Errorf("forget removed %d events, want the 25 that A's ingest added", ch.Events)
	}
	snap, err := a.store.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if snap.Generation != 2 {
		t.Errorf("generation %d, want 2 (ingest, then forget)", snap.Generation)
	}
}

// A writer whose database session ended lost the lock (PostgreSQL released
// it): its commit is refused and the store keeps its state.
func TestCommitRefusedWhenTheLockWasLost(t *testing.T) {
	url, dir := pgtest.New(t), t.TempDir()
	a, b := newReplica(t, url, dir), newReplica(t, url, dir)
	ctx := context.Background()
	a.lock.hold = func() {
		// End A's session from B, as a restart of the database would.
		var n int
		if err := b.db.Pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
			WHERE locktype = 'advisory' AND classid = $1 AND objid = $2`, lockClass, writerLockKey).Scan(&n); err != nil || n != 1 {
			t.Errorf("terminate the lock's session: %d %v", n, err)
		}
	}
	_, err := ingest.Run(ctx, a.store, []ingest.Input{{Name: "fixture", R: strings.NewReader(storetest.Fixture(t))}}, ingest.Options{})
	if err == nil || !strings.Contains(err.Error(), "writer lock") {
		t.Fatalf("ingest after the lock was lost: %v, want a writer lock error", err)
	}
	snap, err := b.store.Snapshot()
	if err != nil || snap.Generation != 0 || len(snap.Files) != 0 {
		t.Fatalf("store after the refused commit: generation %d, %d files, %v", snap.Generation, len(snap.Files), err)
	}
	// The lock is free for the next writer.
	a.lock.hold = nil
	ingestFixture(t, b)
}

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// A reader on replica A keeps its snapshot's files while replica B's
// commits retire them; once A releases it, or A dies (its registration
// expires), B's next commit deletes them.
func TestReaderLeasesAcrossReplicas(t *testing.T) {
	url, dir := pgtest.New(t), t.TempDir()
	a, b := newReplica(t, url, dir), newReplica(t, url, dir)
	ctx := context.Background()
	ingestFixture(t, b)
	snap, err := a.store.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range snap.Files {
		files = append(files, f.Path)
	}
	if len(files) == 0 {
		t.Fatal("no files")
	}
	// B rewrites every month twice: the snapshot's files are retired.
	for _, user := range []int64{9, 1} {
		if ch, err := ingest.Forget(ctx, b.store, user, ingest.Anonymize, ingest.LifecycleOptions{}); err != nil || ch.Events == 0 {
			t.Fatalf("forget %d: %+v %v", user, ch, err)
		}
	}
	ingestFixture(t, b) // user 9 again, every month rewritten
	for _, f := range files {
		if !exists(t, f) {
			t.Errorf("%s deleted while A's reader holds generation %d", f, snap.Generation)
		}
	}
	snap.Release()
	if _, err := ingest.Forget(ctx, b.store, 9, ingest.Delete, ingest.LifecycleOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if exists(t, f) {
			t.Errorf("%s kept after A released its snapshot", f)
		}
	}

	// A takes a lease and dies: its heartbeat stops and its registration
	// expires (moved into the past here rather than waited for).
	snap2, err := a.store.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	defer snap2.Release()
	var held []string
	for _, f := range snap2.Files {
		held = append(held, f.Path)
	}
	if _, err := ingest.Forget(ctx, b.store, 1, ingest.Delete, ingest.LifecycleOptions{}); err != nil {
		t.Fatal(err)
	}
	kept := 0
	for _, f := range held {
		if exists(t, f) {
			kept++
		}
	}
	if kept != len(held) {
		t.Fatalf("%d of %d files of A's live lease kept", kept, len(held))
	}
	a.readers.stopHeartbeat()
	if _, err := b.db.Pool.Exec(ctx, "UPDATE worklog_replica SET expires_at = now() - interval '1 second' WHERE id = $1", a.readers.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := ingest.Forget(ctx, b.store, 2, ingest.Delete, ingest.LifecycleOptions{}); err != nil {
		t.Fatal(err)
	}
	gone := 0
	for _, f := range held {
		if !exists(t, f) {
			gone++
		}
	}
	if gone == 0 {
		t.Errorf("a dead replica's lease still holds its files")
	}
	var n int
	if err := b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM worklog_reader_lease WHERE replica_id = $1", a.readers.ID()).Scan(&n); err != nil || n != 0 {
		t.Errorf("dead replica's leases: %d %v", n, err)
	}
	// A comes back (it was only paused): its heartbeat registers it again
	// with the generation its reader still holds.
	if err := a.readers.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM worklog_reader_lease WHERE replica_id = $1 AND generation = $2", a.readers.ID(), int64(snap2.Generation)).Scan(&n); err != nil || n != 1 {
		t.Errorf("lease after A registered again: %d %v", n, err)
	}
}

// Appends from two replicas, concurrent, form one chain in the database.
func TestAuditTrailOfTwoReplicasIsOneChain(t *testing.T) {
	url := pgtest.New(t)
	ctx := context.Background()
	var logs []*audit.Log
	for range 2 {
		db, err := Open(ctx, url, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		logs = append(logs, audit.NewShared(db.Audit()))
	}
	var wg sync.WaitGroup
	for i, l := range logs {
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := l.Append(audit.Entry{Sub: []string{"replica-a", "replica-b"}[i], Action: audit.ActionExport, Outcome: audit.OutcomeOK}); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	db, err := Open(ctx, url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var buf bytes.Buffer
	if _, err := db.Audit().WriteTo(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	first, lines, err := audit.Verify(bytes.NewReader(buf.Bytes()))
	if err != nil || lines != 40 || first != "" {
		t.Fatalf("verify: first %q, %d lines, %v", first, lines, err)
	}
	for _, sub := range []string{"replica-a", "replica-b"} {
		if n := strings.Count(buf.String(), `"sub":"`+sub+`"`); n != 20 {
			t.Errorf("%s: %d lines, want 20", sub, n)
		}
	}
}

// Replicas agree on one key; a key file of a store that ran alone before
// becomes the shared key, so its cursors and links stay valid.
func TestKeysAreShared(t *testing.T) {
	url := pgtest.New(t)
	ctx := context.Background()
	seed := filepath.Join(t.TempDir(), "cursor.key")
	if err := os.WriteFile(seed, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := make([][]byte, 6)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := Open(ctx, url, Options{})
			if err != nil {
				t.Error(err)
				return
			}
			defer db.Close()
			keys[i], err = db.Key(ctx, CursorKey, seed)
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i, k := range keys {
		if string(k) != strings.Repeat("ab", 32) {
			t.Errorf("replica %d: key %q, want the seed file's", i, k)
		}
	}
	db, err := Open(ctx, url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	link, err := db.Key(ctx, LinkKey, filepath.Join(t.TempDir(), "none.key"))
	if err != nil || len(link) != 64 || bytes.Equal(link, keys[0]) {
		t.Errorf("new link key: %q %v", link, err)
	}
	again, err := db.Key(ctx, LinkKey, "")
	if err != nil || !bytes.Equal(again, link) {
		t.Errorf("link key again: %q %v", again, err)
	}
}

// A store whose writers lock through the database refuses a writer with the
// file lock (it would not wait for them), while its readers still read.
func TestSharedStoreRefusesAFileLockWriter(t *testing.T) {
	url, dir := pgtest.New(t), t.TempDir()
	ingestFixture(t, newReplica(t, url, dir))
	plain, err := data.Open(dir, data.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if snap, err := plain.Acquire(); err != nil || len(snap.Files) == 0 {
		t.Fatalf("read without the database: %v", err)
	} else {
		snap.Release()
	}
	_, err = ingest.Run(context.Background(), plain, []ingest.Input{{Name: "fixture", R: strings.NewReader(storetest.Fixture(t))}}, ingest.Options{})
	if !errors.Is(err, data.ErrSharedStore) || !strings.Contains(err.Error(), "--database-url") {
		t.Fatalf("ingest without the database: %v", err)
	}
}
