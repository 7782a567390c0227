package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"worklog/internal/pgstate"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// Migrations are the tables of jobs in the shared database (line "jobs"),
// applied by pgstate.Open after River's own. Never edit a step that has
// landed: append one.
//
// worklog_export_job holds each job's record as JSON, the same document as
// jobs.db holds, with the columns that the queries filter and sort by beside
// it; River's river_job holds only the queue entry (the job id). The
// erasure row is the time of the latest erasure, which a job finishing
// reads under a row lock (see riverBackend.finish).
var Migrations = []pgstate.Migration{
	{Line: "jobs", Version: 1, Name: "export jobs and the latest erasure", SQL: `
CREATE TABLE worklog_export_job (
	id         text        PRIMARY KEY,
	owner      text        NOT NULL,
	status     text        NOT NULL,
	created_at timestamptz NOT NULL,
	record     jsonb       NOT NULL
);
CREATE INDEX worklog_export_job_owner ON worklog_export_job (owner, created_at DESC, id DESC);
CREATE INDEX worklog_export_job_status ON worklog_export_job (status);
COMMENT ON TABLE worklog_export_job IS 'background export jobs (SPEC 5): the record of each job as JSON; River''s river_job queues their ids';
CREATE TABLE worklog_export_erasure (
	id        int         PRIMARY KEY CHECK (id = 1),
	erased_at timestamptz NOT NULL
);
INSERT INTO worklog_export_erasure (id, erased_at) VALUES (1, 'epoch');
COMMENT ON TABLE worklog_export_erasure IS 'when the latest erasure committed: export jobs that started before it run again or lose their file';
`},
}

// riverQueue is the River queue of export jobs.
const riverQueue = "worklog_export"

// Advisory lock of job creation: pgstate's class ("wl"), object 3 (1 is
// migrations, 2 the store's writer lock). Creation counts a user's jobs
// and then inserts one; two replicas doing that at once would both see
// room for one more.
const (
	lockClass      = 0x776c
	createLockKey  = 3
	dbOpTimeout    = 30 * time.Second
	minRescueGrace = 10 * time.Second
)

// RescueGrace is the time a run that passed its time limit is given to
// record its outcome: a tenth of the limit, at least 10 s (the export is
// cancelled at JobTimeout; its delivery may still be under way).
func RescueGrace(jobTimeout time.Duration) time.Duration {
	return max(jobTimeout/10, minRescueGrace)
}

// RescueAfter is how long after a run started a job still marked running
// in River counts as orphaned by a dead replica, so that River's rescuer
// queues it again for another: JobTimeout plus twice RescueGrace. A live
// replica has cancelled such a run at JobTimeout and recorded it well
// before then, so a rescue never runs a job twice at once.
func RescueAfter(jobTimeout time.Duration) time.Duration {
	return jobTimeout + 2*RescueGrace(jobTimeout)
}

// riverArgs are the arguments of a River job: only the id of the record.
// The request itself (query, level, permissions) stays in the record.
type riverArgs struct {
	JobID string `json:"job_id"`
}

// Kind names the job kind in river_job.
func (riverArgs) Kind() string { return "worklog_export" }

// riverWorker runs River's export jobs through the backend.
type riverWorker struct {
	river.WorkerDefaults[riverArgs]
	b *riverBackend
}

// Work runs one River job; see riverBackend.work.
func (w *riverWorker) Work(ctx context.Context, rj *river.Job[riverArgs]) error {
	return w.b.work(ctx, rj.Args.JobID, rj.Attempt)
}

// riverBackend keeps the records in PostgreSQL (worklog_export_job) and
// queues them with River (riverqueue/river over pgx), so that several
// replicas share one queue: a job submitted on one is run by whichever has
// a free worker; a job whose replica died is queued again by River's
// rescuer (RescueAfter) and run by another.
//
// A River job is not finished until the export is done and its message
// delivered or given up: the delivery happens in the same River job, so
// River's rescue covers a crash during delivery too, and a failed send is
// retried by snoozing the River job until the record's NextDeliveryAt.
type riverBackend struct {
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
	now    func() time.Time
	log    *slog.Logger
	// downloadTTL is Config.DownloadTTL, for a job that claim fails.
	downloadTTL time.Duration

	// w is the Runner, set by dispatch before River starts.
	w jobWorker
}

// jobWorker is what a backend's dispatch calls: the Runner.
type jobWorker interface {
	// run exports a claimed job and delivers it, recording each outcome.
	run(ctx context.Context, job *Job)
	// deliver sends the message of a finished job whose delivery is due.
	deliver(ctx context.Context, job *Job)
}

var _ jobBackend = (*riverBackend)(nil)

// newRiverBackend makes the River client (not started) over pool, whose
// schema pgstate.Open has migrated with Migrations.
func newRiverBackend(pool *pgxpool.Pool, cfg Config, now func() time.Time, log *slog.Logger) (*riverBackend, error) {
	workers, jobTimeout := cfg.Workers, cfg.JobTimeout
	b := &riverBackend{pool: pool, now: now, log: log, downloadTTL: cfg.DownloadTTL}
	ws := river.NewWorkers()
	if err := river.AddWorkerSafely(ws, &riverWorker{b: b}); err != nil {
		return nil, fmt.Errorf("jobs: river worker: %w", err)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:  map[string]river.QueueConfig{riverQueue: {MaxWorkers: workers}},
		Workers: ws,
		// River cancels a run at JobTimeout + RescueGrace; Runner.run
		// has cancelled its export at JobTimeout already.
		JobTimeout:           jobTimeout + RescueGrace(jobTimeout),
		RescueStuckJobsAfter: RescueAfter(jobTimeout),
		Logger:               log.With("component", "river"),
		// Finished River jobs are only queue entries; the records stay
		// in worklog_export_job for as long as Retention says.
		CompletedJobRetentionPeriod: 24 * time.Hour,
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: river client: %w", err)
	}
	b.client = client
	return b, nil
}

func (b *riverBackend) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), dbOpTimeout)
}

// tx runs fn in a transaction, committed when fn returns nil.
func (b *riverBackend) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, b.pool, fn)
}

func scanJob(row pgx.Row) (*Job, error) {
	var doc []byte
	if err := row.Scan(&doc); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	var j Job
	if err := json.Unmarshal(doc, &j); err != nil {
		return nil, fmt.Errorf("decode job: %w", err)
	}
	return &j, nil
}

// putRecord writes j's record and the columns derived from it.
func putRecord(ctx context.Context, tx pgx.Tx, j *Job) error {
	doc, err := json.Marshal(j)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO worklog_export_job (id, owner, status, created_at, record) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET status = excluded.status, record = excluded.record`,
		j.ID, j.Owner, string(j.Status), j.CreatedAt, doc)
	return err
}

// create counts the active jobs (the owner's, everyone's) under the
// creation lock, against lim (the caps hold across replicas), records
// the job and inserts its River job, all in one transaction: a job is
// never recorded without its queue entry, nor queued without its record.
func (b *riverBackend) create(j *Job, lim limits) error {
	ctx, cancel := b.opCtx()
	defer cancel()
	return b.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", lockClass, createLockKey); err != nil {
			return fmt.Errorf("lock job creation: %w", err)
		}
		// Both counts come from the status index: the queued and running
		// jobs, of the owner and of everyone.
		var mine, all int
		if err := tx.QueryRow(ctx, "SELECT count(*) FILTER (WHERE owner = $1), count(*) FROM worklog_export_job WHERE status IN ($2, $3)",
			j.Owner, string(Queued), string(Running)).Scan(&mine, &all); err != nil {
			return fmt.Errorf("count jobs: %w", err)
		}
		if lim.perUser > 0 && mine >= lim.perUser {
			return ErrTooManyJobs
		}
		if lim.maxActive > 0 && all >= lim.maxActive {
			return ErrQueueFull
		}
		if err := putRecord(ctx, tx, j); err != nil {
			return fmt.Errorf("record job: %w", err)
		}
		if _, err := b.client.InsertTx(ctx, tx, riverArgs{JobID: j.ID}, &river.InsertOpts{Queue: riverQueue}); err != nil {
			return fmt.Errorf("queue job: %w", err)
		}
		return nil
	})
}

func (b *riverBackend) get(id string) (*Job, error) {
	ctx, cancel := b.opCtx()
	defer cancel()
	return scanJob(b.pool.QueryRow(ctx, "SELECT record FROM worklog_export_job WHERE id = $1", id))
}

func (b *riverBackend) update(id string, fn func(*Job) error) (*Job, error) {
	return b.finish(id, func(j *Job, _ time.Time) error { return fn(j) })
}

// finish reads the erasure row FOR SHARE before the job: noteErasure's
// UPDATE of that row waits for this transaction, and this one for it, so
// an erasure's scan (after noteErasure committed) sees every job that
// finished before, and every job finishing after sees the erasure.
func (b *riverBackend) finish(id string, fn func(*Job, time.Time) error) (*Job, error) {
	ctx, cancel := b.opCtx()
	defer cancel()
	var j *Job
	err := b.tx(ctx, func(tx pgx.Tx) error {
		var erasedAt time.Time
		if err := tx.QueryRow(ctx, "SELECT erased_at FROM worklog_export_erasure WHERE id = 1 FOR SHARE").Scan(&erasedAt); err != nil {
			return fmt.Errorf("read erasure: %w", err)
		}
		var err error
		if j, err = scanJob(tx.QueryRow(ctx, "SELECT record FROM worklog_export_job WHERE id = $1 FOR UPDATE", id)); err != nil {
			return err
		}
		if err := fn(j, erasedAt.UTC()); err != nil {
			return err
		}
		return putRecord(ctx, tx, j)
	})
	if err != nil {
		return nil, err
	}
	return j, nil
}

func (b *riverBackend) noteErasure(t time.Time) error {
	ctx, cancel := b.opCtx()
	defer cancel()
	_, err := b.pool.Exec(ctx, "UPDATE worklog_export_erasure SET erased_at = greatest(erased_at, $1) WHERE id = 1", t)
	return err
}

func (b *riverBackend) list(owner string, limit int) ([]*Job, int, error) {
	ctx, cancel := b.opCtx()
	defer cancel()
	var n int
	if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM worklog_export_job WHERE owner = $1", owner).Scan(&n); err != nil {
		return nil, 0, err
	}
	rows, err := b.pool.Query(ctx, "SELECT record FROM worklog_export_job WHERE owner = $1 ORDER BY created_at DESC, id DESC LIMIT $2", owner, limit)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []*Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, j)
	}
	return out, n, rows.Err()
}

func (b *riverBackend) each(fn func(*Job)) error {
	ctx, cancel := b.opCtx()
	defer cancel()
	rows, err := b.pool.Query(ctx, "SELECT record FROM worklog_export_job ORDER BY id")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return err
		}
		fn(j)
	}
	return rows.Err()
}

func (b *riverBackend) counts() (map[Status]int, error) {
	ctx, cancel := b.opCtx()
	defer cancel()
	rows, err := b.pool.Query(ctx, "SELECT status, count(*) FROM worklog_export_job GROUP BY status")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counts := map[Status]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		counts[Status(s)] = n
	}
	return counts, rows.Err()
}

func (b *riverBackend) remove(id string) error {
	ctx, cancel := b.opCtx()
	defer cancel()
	tag, err := b.pool.Exec(ctx, "DELETE FROM worklog_export_job WHERE id = $1", id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// dispatch starts River's client: its producer fetches jobs of the queue
// (LISTEN/NOTIFY wakes it at once on an insert by any replica), at most
// workers at once. It stops, cancelling running jobs, when ctx ends.
func (b *riverBackend) dispatch(ctx context.Context, _ int, w jobWorker) (func(), error) {
	b.w = w
	if err := b.client.Start(ctx); err != nil {
		return nil, fmt.Errorf("start river: %w", err)
	}
	return func() { <-b.client.Stopped() }, nil
}

// queued: River's insert notifies every replica's producer itself.
func (b *riverBackend) queued() {}

// retriesDeliveries: River does, by snoozing the job (see work).
func (b *riverBackend) retriesDeliveries() bool { return false }

// close: the pool belongs to the caller (pgstate.DB).
func (b *riverBackend) close() error { return nil }

// maxOrphanedRuns bounds the runs of one job that a dying replica cut
// off: an export that kills its server (memory, say) would otherwise
// take down every replica in turn. The next rescue fails it instead.
const maxOrphanedRuns = 3

// claim marks the job running for this run if it is queued, or running
// (a replica that died ran it: River's rescuer queued it again), and
// returns it; claimed is false for a job that has ended (done, failed,
// erased), which this River job must not run again. attempt is River's
// count of this River job's runs, which snoozes (shutdowns, erasures,
// delivery retries) do not raise but rescues do.
func (b *riverBackend) claim(id string, attempt int) (job *Job, claimed bool, err error) {
	job, err = b.update(id, func(j *Job) error {
		if j.Status != Queued && j.Status != Running {
			return errNothingToRun
		}
		now := b.now()
		if j.Status == Running && attempt > maxOrphanedRuns {
			b.log.Error("export job found running again: its replicas died during it too often; it fails", "job", id, "runs", j.Runs)
			j.Status, j.ErrorCode, j.FinishedAt, j.ExpiresAt = Failed, CodeExportFailed, now, now.Add(b.downloadTTL)
			j.Error = fmt.Sprintf("export failed: it was cut off %d times by the server running it stopping (a crash or a lost machine); it is not tried again", attempt-1)
			return nil
		}
		if j.Status == Running {
			b.log.Warn("export job found running: its replica died or gave up; running it again", "job", id, "runs", j.Runs)
		}
		claimJob(j, now)
		return nil
	})
	if err == nil && job.Status == Failed {
		return job, false, nil
	}
	if errors.Is(err, errNothingToRun) {
		job, err = b.get(id)
		return job, false, err
	}
	return job, err == nil, err
}

var errNothingToRun = errors.New("job has ended")

// work is one River run of a job: claim and run it, or deliver a finished
// job's message that is still due, and then tell River what is left:
// nothing (the River job completes), a run again (queued again by a
// shutdown or an erasure: JobSnooze(0), at once, on any replica), or a
// delivery retry (JobSnooze until NextDeliveryAt). An error makes River
// retry with its backoff: only the database failing does that.
func (b *riverBackend) work(ctx context.Context, id string, attempt int) error {
	job, claimed, err := b.claim(id, attempt)
	if errors.Is(err, ErrNotFound) {
		return nil // forgotten meanwhile
	}
	if err != nil {
		return fmt.Errorf("claim export job %s: %w", id, err)
	}
	switch {
	case claimed:
		b.w.run(ctx, job)
	case deliveryDue(job):
		if job.Delivery == DeliverySending {
			b.log.Warn("delivery may have been sent before its replica died; sending again with the same Message-ID", "job", id)
		}
		b.w.deliver(ctx, job)
	default:
		return nil
	}
	job, err = b.get(id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("export job %s: read its outcome: %w", id, err)
	}
	switch {
	case job.Status == Queued:
		return river.JobSnooze(0)
	case job.Status == Running:
		// The run could not record its outcome (the database failed).
		return fmt.Errorf("export job %s: outcome not recorded", id)
	case deliveryDue(job):
		return river.JobSnooze(max(job.NextDeliveryAt.Sub(b.now()), 0))
	}
	return nil
}

// deliveryDue reports whether a finished job's message has not ended yet:
// pending, or sending (a run died between sending and recording it).
func deliveryDue(j *Job) bool {
	return j.Status == Done && (j.Delivery == DeliveryPending || j.Delivery == DeliverySending)
}
