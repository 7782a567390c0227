package jobs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"worklog/export"
	"worklog/internal/mailtest"
	"worklog/internal/pgstate"
	"worklog/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// openDB opens a fresh private database migrated with the jobs' tables.
func openDB(t *testing.T) *pgstate.DB {
	t.Helper()
	db, err := pgstate.Open(context.Background(), pgtest.New(t), pgstate.Options{Migrations: Migrations})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// openRiver opens a runner on db over b's data directory.
func openRiver(t *testing.T, b backend, db *pgstate.DB, mutate func(*Config)) *Runner {
	t.Helper()
	r, err := Open(b.config(func(c *Config) {
		c.DB = db
		if mutate != nil {
			mutate(c)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// With a database, a job is recorded in PostgreSQL, run through River and
// delivered once; its record reads the same from another runner (replica)
// on the same database, which never had it in a jobs.db.
func TestRiverJobRunsAndDelivers(t *testing.T) {
	b := newBackend(t)
	db := openDB(t)
	r := openRiver(t, b, db, nil)
	r.Start(t.Context())
	job := submit(t, r, export.FormatCSV)
	done := waitJob(t, r, job.ID, delivered)
	if done.Status != Done || done.Delivery != DeliveryWritten || done.Runs != 1 || done.DeliveryAttempts != 1 {
		t.Fatalf("job %+v", done)
	}
	for _, name := range []string{jobsDBFile, LinkKeyFile} {
		if _, err := os.Stat(filepath.Join(b.dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists with a database: %v", name, err)
		}
	}
	// Temporary files another live replica is writing survive a replica's
	// start.
	var writing []string
	for _, d := range []string{exportsDir, outboxDir} {
		p := filepath.Join(b.dir, d, ".0123456789abcdef0123456789abcdef.csv.42.tmp")
		if err := os.WriteFile(p, []byte("in progress"), 0o600); err != nil {
			t.Fatal(err)
		}
		writing = append(writing, p)
	}
	other := openRiver(t, b, db, nil)
	for _, p := range writing {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("a starting replica removed another's temporary file: %v", err)
		}
	}
	seen, err := other.Get(job.ID, "u1")
	if err != nil || seen.Status != Done || !seen.FinishedAt.Equal(done.FinishedAt) || seen.DeliveryPath != done.DeliveryPath {
		t.Errorf("from the other replica: %+v %v", seen, err)
	}
	if _, err := other.Get(job.ID, "someone else"); !errors.Is(err, ErrNotFound) {
		t.Errorf("another owner: %v", err)
	}
	if _, path, err := other.FilePath(job.ID, "u1"); err != nil || path != r.filePath(done) {
		t.Errorf("file from the other replica: %q %v", path, err)
	}
	if _, _, err := other.OpenLink(r.DownloadLink(done)); err != nil {
		t.Errorf("the link signed by one replica, checked by the other: %v", err)
	}
	list, n, err := other.List("u1", 10)
	if err != nil || n != 1 || len(list) != 1 || list[0].ID != job.ID {
		t.Errorf("list: %d %v %v", n, list, err)
	}
	counts, err := other.CountByState()
	if err != nil || counts[Done] != 1 || len(counts) != 1 {
		t.Errorf("counts: %v %v", counts, err)
	}
	emls, _ := filepath.Glob(filepath.Join(b.dir, outboxDir, "*.eml"))
	if len(emls) != 1 {
		t.Errorf("%d messages in the outbox, want 1", len(emls))
	}
}

// The per-user limit and the global cap on queued jobs are counted in the
// database: two replicas share them.
func TestRiverLimitsShared(t *testing.T) {
	b := newBackend(t)
	db := openDB(t)
	a := openRiver(t, b, db, func(c *Config) { c.PerUser, c.MaxQueued = 2, 4 })
	bb := openRiver(t, b, db, func(c *Config) { c.PerUser, c.MaxQueued = 2, 4 })
	submit(t, a, export.FormatCSV)
	submit(t, bb, export.FormatCSV)
	_, err := a.Submit(Spec{Owner: "u1", Email: "ann@example.com", Level: "pseudonymized", Format: export.FormatCSV})
	if !errors.Is(err, ErrTooManyJobs) {
		t.Fatalf("third job: %v, want ErrTooManyJobs", err)
	}
	for range 2 {
		if _, err := bb.Submit(Spec{Owner: "u2", Email: "bob@example.com", Level: "pseudonymized", Format: export.FormatCSV}); err != nil {
			t.Errorf("another user: %v", err)
		}
	}
	if _, err := a.Submit(Spec{Owner: "u3", Email: "cy@example.com", Level: "pseudonymized", Format: export.FormatCSV}); !errors.Is(err, ErrQueueFull) {
		t.Errorf("fifth job of all: %v, want ErrQueueFull", err)
	}
}

// A job held by one runner's worker is run by the other runner's worker:
// the queue is shared. Then the erasure recorded by the second runner
// reaches the first: the held job, which started before it, runs again
// instead of finishing with a file of the old snapshot.
func TestRiverQueueSharedAndErasureReachesOtherReplica(t *testing.T) {
	b := newBackend(t)
	db := openDB(t)
	held := make(chan *Job, 1)
	release := make(chan struct{})
	a := openRiver(t, b, db, func(c *Config) {
		c.Workers = 1
		c.BeforeRun = func(ctx context.Context, job *Job) {
			if job.Runs == 1 {
				held <- job
				<-release
			}
		}
	})
	a.Start(t.Context())
	first := submit(t, a, export.FormatCSV)
	if got := <-held; got.ID != first.ID {
		t.Fatalf("held %s, want %s", got.ID, first.ID)
	}
	other := openRiver(t, b, db, nil)
	other.Start(t.Context())
	second := submit(t, a, export.FormatJSON)
	waitJob(t, a, second.ID, delivered) // a's only worker is held: other ran it

	// An erasure through the other replica, after the first job started.
	if n, err := other.EraseBefore(time.Now().UTC()); err != nil || n != 1 {
		t.Fatalf("erase: %d %v (want the second job erased)", n, err)
	}
	if j, _ := a.Get(second.ID, "u1"); j.Status != Erased {
		t.Errorf("second job after the erasure: %s", j.Status)
	}
	close(release)
	j := waitJob(t, a, first.ID, delivered)
	if j.Runs != 2 {
		t.Errorf("first job finished after %d runs, want 2 (run again after the erasure)", j.Runs)
	}
}

// Delivery is recorded in the database: a River job run again for a job
// whose message was sent (a duplicate after a rescue) sends nothing; one
// found sending (its replica died between the send and the record) is sent
// again, once, with the same Message-ID — at least once, never lost.
func TestRiverDeliveryOnce(t *testing.T) {
	b := newBackend(t)
	db := openDB(t)
	sink := mailtest.NewSink(t, 0)
	mailer, err := NewSMTPMailer("smtp://" + sink.Addr)
	if err != nil {
		t.Fatal(err)
	}
	r := openRiver(t, b, db, func(c *Config) { c.Mailer = mailer })
	r.Start(t.Context())
	job := submit(t, r, export.FormatCSV)
	waitJob(t, r, job.ID, delivered)
	rb := r.be.(*riverBackend)
	if err := rb.work(t.Context(), job.ID, 1); err != nil {
		t.Fatal(err)
	}
	if n := len(sink.Received()); n != 1 {
		t.Fatalf("%d messages after a duplicate run, want 1", n)
	}
	if _, err := r.be.update(job.ID, func(j *Job) error { j.Delivery = DeliverySending; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := rb.work(t.Context(), job.ID, 1); err != nil {
		t.Fatal(err)
	}
	if err := rb.work(t.Context(), job.ID, 1); err != nil {
		t.Fatal(err)
	}
	msgs := sink.Received()
	if len(msgs) != 2 || mailtest.Parse(t, msgs[1].Data).Header.Get("Message-Id") != "<"+job.ID+"@worklog>" {
		t.Fatalf("%d messages, want 2 (one resend with the same Message-ID)", len(msgs))
	}
	if j, _ := r.Get(job.ID, "u1"); j.Delivery != DeliverySent || j.DeliveryAttempts != 2 || j.Runs != 1 {
		t.Errorf("after the resend: %s, %d attempts, %d runs", j.Delivery, j.DeliveryAttempts, j.Runs)
	}
}

// A replica shutting down hands its running job back to the queue at once
// (River's snooze), and another replica runs it.
func TestRiverShutdownHandsJobOver(t *testing.T) {
	b := newBackend(t)
	db := openDB(t)
	held := make(chan struct{}, 1)
	a := openRiver(t, b, db, func(c *Config) {
		c.BeforeRun = func(ctx context.Context, _ *Job) {
			held <- struct{}{}
			<-ctx.Done()
		}
	})
	a.Start(t.Context())
	job := submit(t, a, export.FormatCSV)
	<-held
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if j, _ := a.be.get(job.ID); j.Status != Queued {
		t.Fatalf("after the shutdown: %s, want queued", j.Status)
	}
	other := openRiver(t, b, db, nil)
	other.Start(t.Context())
	if j := waitJob(t, other, job.ID, delivered); j.Runs != 2 {
		t.Errorf("finished after %d runs, want 2", j.Runs)
	}
}

// A job whose runs were cut off by dying replicas again and again fails
// at the next rescue instead of taking down one more replica.
func TestRiverJobOrphanedTooOftenFails(t *testing.T) {
	b := newBackend(t)
	db := openDB(t)
	r := openRiver(t, b, db, nil)
	job := submit(t, r, export.FormatCSV)
	rb := r.be.(*riverBackend)
	for attempt := 1; attempt <= maxOrphanedRuns; attempt++ {
		// A run starts and its replica dies: the record stays running.
		if _, claimed, err := rb.claim(job.ID, attempt); err != nil || !claimed {
			t.Fatalf("attempt %d: claimed %v, %v", attempt, claimed, err)
		}
	}
	if err := rb.work(t.Context(), job.ID, maxOrphanedRuns+1); err != nil {
		t.Fatal(err)
	}
	got, _ := r.Get(job.ID, "u1")
	if got.Status != Failed || got.ErrorCode != CodeExportFailed || got.Runs != maxOrphanedRuns || !strings.Contains(got.Error, "cut off 3 times") {
		t.Errorf("after too many orphaned runs: %s %s %d %q", got.Status, got.ErrorCode, got.Runs, got.Error)
	}
}

// A job's run removes what an earlier run of the same job left (a dead
// replica's temporary file), and nothing else.
func TestRiverRunRemovesItsOwnLeftovers(t *testing.T) {
	b := newBackend(t)
	db := openDB(t)
	r := openRiver(t, b, db, nil)
	job := submit(t, r, export.FormatCSV)
	own := filepath.Join(r.dir, "."+filepath.Base(r.filePath(job))+".7.tmp")
	others := filepath.Join(r.dir, ".0123456789abcdef0123456789abcdef.csv.7.tmp")
	for _, p := range []string{own, others} {
		if err := os.WriteFile(p, []byte("left"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r.Start(t.Context())
	waitJob(t, r, job.ID, delivered)
	if _, err := os.Stat(own); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the job's own leftover is still there: %v", err)
	}
	if _, err := os.Stat(others); err != nil {
		t.Errorf("another job's temporary file was removed: %v", err)
	}
}
