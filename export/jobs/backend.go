package jobs

import (
	"context"
	"time"
)

// jobBackend is where the records of jobs live and which process runs a queued
// job. The Runner holds what a job is and does (plan, export, audit line,
// delivery, expiry, erasure); a backend holds only records and dispatch:
//
//   - boltBackend, the embedded default: <data>/jobs.db (bbolt) and a pool of
//     workers in this process, woken by Submit;
//   - a database backend (SPEC §13): the records in PostgreSQL, the queue
//     River's, shared by every replica, so that a job queued on one is run by
//     whichever has a free worker and a job whose replica died is run again.
//
// Every method that reads and then writes a record does both in one
// transaction of the backend, so two workers (of one process or of two)
// never both act on the same state.
type jobBackend interface {
	// create records j (queued) and enqueues it in one transaction, unless
	// lim refuses it (ErrTooManyJobs, ErrQueueFull); then nothing is
	// recorded.
	create(j *Job, lim limits) error
	// get returns the job with id, or ErrNotFound.
	get(id string) (*Job, error)
	// update applies fn to the stored job and writes it back in one
	// transaction; an error from fn writes nothing and is returned.
	update(id string, fn func(*Job) error) (*Job, error)
	// finish is update with the time of the latest erasure the backend
	// knows, read in the same transaction and ordered against noteErasure:
	// an erasure either sees the job finished (and erases its file) or the
	// job sees the erasure (and runs again). See EraseBefore.
	finish(id string, fn func(j *Job, erasedAt time.Time) error) (*Job, error)
	// noteErasure records that an erasure committed at t, for finish.
	noteErasure(t time.Time) error
	// list returns owner's jobs newest first (ties by id, descending), at
	// most limit of them, and how many the owner has in all.
	list(owner string, limit int) ([]*Job, int, error)
	// each calls fn for every job.
	each(fn func(*Job)) error
	// counts counts the jobs by status.
	counts() (map[Status]int, error)
	// remove deletes a job record.
	remove(id string) error
	// dispatch runs queued jobs, at most workers at once, until ctx ends:
	// it marks a job running (claim), then calls w.run, which records the
	// outcome. A job that run leaves queued (interrupted by a shutdown,
	// or stale after an erasure) is dispatched again. The returned wait
	// blocks until every running job has returned.
	dispatch(ctx context.Context, workers int, w jobWorker) (wait func(), err error)
	// queued tells the dispatcher that a job was queued, to start it
	// without waiting for a poll.
	queued()
	// retriesDeliveries reports whether the janitor retries due deliveries
	// (the embedded default) or the queue does (a database backend, where a
	// job is not finished until its message is).
	retriesDeliveries() bool
	// close releases the backend; dispatch has ended before.
	close() error
}

// limits are the caps that create enforces in its transaction.
type limits struct {
	// perUser bounds one owner's queued plus running jobs (0: no bound).
	perUser int
	// maxActive bounds the queued plus running jobs of all owners
	// together (ErrQueueFull; 0: no bound).
	maxActive int
}

// claimJob marks a job running for a worker: the start of one run.
func claimJob(j *Job, now time.Time) {
	j.Status = Running
	j.StartedAt = now
	j.Runs++
}
