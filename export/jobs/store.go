package jobs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"worklog/export"
	"worklog/privacy"

	bolt "go.etcd.io/bbolt"
)

// Status is the state of a background export.
type Status string

// The job states.
const (
	// Queued waits for a worker (also after an interrupted run).
	Queued Status = "queued"
	// Running is being written by a worker.
	Running Status = "running"
	// Done has its file written; delivery is tracked separately.
	Done Status = "done"
	// Failed could not be exported; Error says why.
	Failed Status = "failed"
)

// Statuses lists every job status in lifecycle order; the metrics gauge and
// the OpenAPI document read it. It returns a fresh slice.
func Statuses() []Status { return []Status{Queued, Running, Done, Failed, Erased} }

// DeliveryState tracks the e-mail of a finished job.
type DeliveryState string

// The delivery states. A delivery is recorded as sending before the message
// leaves and as sent after; see Runner for what a crash in between means.
const (
	DeliveryPending DeliveryState = "pending"
	DeliverySending DeliveryState = "sending"
	// DeliverySent: handed to the SMTP server, which accepted it.
	DeliverySent DeliveryState = "sent"
	// DeliveryWritten: written as an .eml file to the outbox (no SMTP
	// server configured); nobody has received it yet. DeliveryPath says
	// where.
	DeliveryWritten DeliveryState = "written"
	DeliveryFailed  DeliveryState = "failed"
)

// Delivered reports whether a delivery has ended, for good or ill.
func (d DeliveryState) Delivered() bool {
	return d == DeliverySent || d == DeliveryWritten || d == DeliveryFailed
}

// DeliveryStates lists every delivery state; OpenAPI reads it. It returns a
// fresh slice.
func DeliveryStates() []DeliveryState {
	return []DeliveryState{DeliveryPending, DeliverySending, DeliverySent, DeliveryWritten, DeliveryFailed}
}

// Job is one background export as persisted in the job store.
type Job struct {
	ID     string `json:"id"`
	Status Status `json:"status"`

	// Owner is the token's sub: only the owner sees the job.
	Owner string `json:"owner"`
	// Email is the token's email claim, where the export is delivered.
	Email string `json:"email"`
	// Permissions and Level are the token's permissions and the effective
	// privacy level at request time.
	Permissions []string      `json:"permissions,omitempty"`
	Level       privacy.Level `json:"level"`
	// Query is the request's query string (url.Values.Encode), with format
	// set to the resolved format so a changed server default cannot alter it.
	Query  string        `json:"query"`
	Format export.Format `json:"format"`
	// CSVFormulaGuard is the server setting at request time.
	CSVFormulaGuard bool `json:"csvFormulaGuard"`
	// CSVBOM is the bom parameter, resolved against the server's setting
	// at request time.
	CSVBOM bool `json:"csvBOM,omitempty"`

	// Rows is the match count at request time, then the rows written.
	Rows       int64     `json:"rows"`
	CreatedAt  time.Time `json:"createdAt"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// ExpiresAt is when the download link expires (FinishedAt + TTL).
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	// Runs counts export runs started (more than one after an interruption).
	Runs int `json:"runs"`
	// ErrorCode and Error are shown to the owner: why the export failed,
	// why its delivery failed (the file stays downloadable then) or that
	// an erasure deleted it. ErrorCode is one of the Code constants (or a
	// query.ParamError's code); Error never holds SQL or a path. Jobs
	// stored before codes existed have Error alone.
	ErrorCode string `json:"errorCode,omitempty"`
	Error     string `json:"error,omitempty"`
	// Bytes is the size of the finished file.
	Bytes int64 `json:"bytes,omitempty"`
	// Expired is set when the janitor has deleted the file.
	Expired bool `json:"expired,omitempty"`
	// ErasedAt is when an erasure deleted the file (status erased).
	ErasedAt time.Time `json:"erasedAt,omitzero"`

	Delivery         DeliveryState `json:"delivery,omitempty"`
	DeliveryAttempts int           `json:"deliveryAttempts,omitempty"`
	NextDeliveryAt   time.Time     `json:"nextDeliveryAt,omitzero"`
	DeliveredAt      time.Time     `json:"deliveredAt,omitzero"`
	// DeliveryPath is the .eml file of a DeliveryWritten message.
	DeliveryPath string `json:"deliveryPath,omitempty"`
	// Attached reports whether the delivered message carried the file.
	Attached bool `json:"attached,omitempty"`
}

// active reports whether the job counts against its owner's limit.
func (j *Job) active() bool { return j.Status == Queued || j.Status == Running }

// Errors of the job store; toAPIError maps them to statuses.
var (
	// ErrNotFound is returned for a missing job and for another user's
	// job alike, so that ids cannot be probed.
	ErrNotFound = errors.New("job not found")
	// ErrTooManyJobs is returned by Submit when the owner already has the
	// maximum number of queued and running jobs.
	ErrTooManyJobs = errors.New("too many export jobs")
	// ErrExpired is returned for the file of a job whose link expired.
	ErrExpired = errors.New("export file expired")
	// ErrNotReady is returned for the file of a job that is not done.
	ErrNotReady = errors.New("export file not ready")
)

var (
	jobsBucket  = []byte("jobs")
	queueBucket = []byte("queue")
)

// jobStore persists jobs in bbolt. Bucket "jobs" maps id → JSON job; bucket
// "queue" maps createdAt (8 bytes, big-endian nanoseconds) + id → id, so the
// oldest queued job is the first key.
type jobStore struct {
	db *bolt.DB
}

// openJobStore opens (creating) the store at path and queues every job found
// running: its worker died with the previous process.
func openJobStore(path string) (*jobStore, []string, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, nil, fmt.Errorf("open job store %s (is another worklog serve using this data directory?): %w", path, err)
	}
	s := &jobStore{db: db}
	var resumed []string
	err = db.Update(func(tx *bolt.Tx) error {
		jb, err := tx.CreateBucketIfNotExists(jobsBucket)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(queueBucket); err != nil {
			return err
		}
		var interrupted []Job
		err = jb.ForEach(func(_, v []byte) error {
			var j Job
			if err := json.Unmarshal(v, &j); err != nil {
				return err
			}
			if j.Status == Running {
				interrupted = append(interrupted, j)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, j := range interrupted {
			j.Status = Queued
			if err := putJob(tx, &j); err != nil {
				return err
			}
			resumed = append(resumed, j.ID)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("recover job store: %w", err)
	}
	return s, resumed, nil
}

func (s *jobStore) close() error { return s.db.Close() }

// newJobID returns 128 random bits in hex: ids are unguessable, so a leaked
// status URL alone reveals nothing (the owner check still applies).
func newJobID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validJobID accepts only what newJobID produces, so an id is safe in a path.
func validJobID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

func queueKey(j *Job) []byte {
	k := make([]byte, 8, 8+len(j.ID))
	binary.BigEndian.PutUint64(k, uint64(j.CreatedAt.UnixNano()))
	return append(k, j.ID...)
}

// putJob writes j and keeps the queue index in step with its status.
func putJob(tx *bolt.Tx, j *Job) error {
	v, err := json.Marshal(j)
	if err != nil {
		return err
	}
	if err := tx.Bucket(jobsBucket).Put([]byte(j.ID), v); err != nil {
		return err
	}
	q := tx.Bucket(queueBucket)
	if j.Status == Queued {
		return q.Put(queueKey(j), []byte(j.ID))
	}
	return q.Delete(queueKey(j))
}

func getJob(tx *bolt.Tx, id string) (*Job, error) {
	v := tx.Bucket(jobsBucket).Get([]byte(id))
	if v == nil {
		return nil, ErrNotFound
	}
	var j Job
	if err := json.Unmarshal(v, &j); err != nil {
		return nil, fmt.Errorf("decode job %s: %w", id, err)
	}
	return &j, nil
}

// create stores a new queued job unless lim refuses it: its owner already
// has lim.perUser active jobs (ErrTooManyJobs), or all users together have
// lim.maxActive (ErrQueueFull). The count and the insert are one
// transaction.
func (s *jobStore) create(j *Job, lim limits) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		mine, all := 0, 0
		err := tx.Bucket(jobsBucket).ForEach(func(_, v []byte) error {
			var o Job
			if err := json.Unmarshal(v, &o); err != nil {
				return err
			}
			if o.active() {
				all++
				if o.Owner == j.Owner {
					mine++
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if lim.perUser > 0 && mine >= lim.perUser {
			return ErrTooManyJobs
		}
		if lim.maxActive > 0 && all >= lim.maxActive {
			return ErrQueueFull
		}
		return putJob(tx, j)
	})
}

// get returns the job with id.
func (s *jobStore) get(id string) (*Job, error) {
	var j *Job
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		j, err = getJob(tx, id)
		return err
	})
	return j, err
}

// update applies fn to the stored job and writes it back in one transaction.
func (s *jobStore) update(id string, fn func(*Job) error) (*Job, error) {
	var j *Job
	err := s.db.Update(func(tx *bolt.Tx) (err error) {
		if j, err = getJob(tx, id); err != nil {
			return err
		}
		if err := fn(j); err != nil {
			return err
		}
		return putJob(tx, j)
	})
	return j, err
}

// claim marks the oldest queued job running and returns it, or nil when
// none is queued.
func (s *jobStore) claim(now time.Time) (*Job, error) {
	var j *Job
	err := s.db.Update(func(tx *bolt.Tx) error {
		k, id := tx.Bucket(queueBucket).Cursor().First()
		if k == nil {
			return nil
		}
		var err error
		if j, err = getJob(tx, string(id)); err != nil {
			if errors.Is(err, ErrNotFound) {
				// A stale index entry: drop it rather than wedge the queue.
				return tx.Bucket(queueBucket).Delete(bytes.Clone(k))
			}
			return err
		}
		claimJob(j, now)
		return putJob(tx, j)
	})
	return j, err
}

// each calls fn for every job, in id order, from a read transaction.
func (s *jobStore) each(fn func(*Job)) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(jobsBucket).ForEach(func(_, v []byte) error {
			var j Job
			if err := json.Unmarshal(v, &j); err != nil {
				return err
			}
			fn(&j)
			return nil
		})
	})
}

// remove deletes a job record.
func (s *jobStore) remove(id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		j, err := getJob(tx, id)
		if err != nil {
			return err
		}
		if err := tx.Bucket(queueBucket).Delete(queueKey(j)); err != nil {
			return err
		}
		return tx.Bucket(jobsBucket).Delete([]byte(id))
	})
}

// list returns owner's jobs, newest first (ties by id), at most limit of
// them, and how many the owner has in all. bbolt has no index by owner:
// it reads every record, which is what a few thousand jobs cost.
func (s *jobStore) list(owner string, limit int) ([]*Job, int, error) {
	var all []*Job
	err := s.each(func(job *Job) {
		if job.Owner == owner {
			all = append(all, job)
		}
	})
	if err != nil {
		return nil, 0, err
	}
	slices.SortFunc(all, func(a, b *Job) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return all[:min(limit, len(all))], len(all), nil
}

// counts counts the jobs by status.
func (s *jobStore) counts() (map[Status]int, error) {
	counts := map[Status]int{}
	err := s.each(func(job *Job) { counts[job.Status]++ })
	return counts, err
}

// finish is update: one process owns jobs.db (its file lock), so the
// Runner's own record of the last erasure is the whole truth and the
// store keeps none (erasedAt is zero).
func (s *jobStore) finish(id string, fn func(*Job, time.Time) error) (*Job, error) {
	return s.update(id, func(j *Job) error { return fn(j, time.Time{}) })
}

// noteErasure keeps nothing: see finish.
func (s *jobStore) noteErasure(time.Time) error { return nil }

// boltBackend is the embedded default backend: the job store in bbolt and a
// pool of workers in this process that claim the oldest queued job.
type boltBackend struct {
	*jobStore
	// wake carries Submit's wake-ups to idle workers; poll is how long an
	// idle worker waits at most, a safety net for a lost wake-up.
	wake chan struct{}
	poll time.Duration
	// now is the Runner's clock, for StartedAt.
	now func() time.Time
	log *slog.Logger
}

var _ jobBackend = (*boltBackend)(nil)

func newBoltBackend(s *jobStore, workers int, poll time.Duration, now func() time.Time, log *slog.Logger) *boltBackend {
	return &boltBackend{jobStore: s, wake: make(chan struct{}, workers), poll: poll, now: now, log: log}
}

// dispatch starts workers goroutines, each claiming and running queued jobs
// until ctx ends.
func (b *boltBackend) dispatch(ctx context.Context, workers int, w jobWorker) (func(), error) {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { b.work(ctx, w.run) })
	}
	return wg.Wait, nil
}

// work claims and runs queued jobs until ctx ends.
func (b *boltBackend) work(ctx context.Context, run func(context.Context, *Job)) {
	for {
		job, err := b.claim(b.now())
		if err != nil {
			b.log.Error("claim export job", "err", err)
		}
		if job == nil {
			select {
			case <-ctx.Done():
				return
			case <-b.wake:
			case <-time.After(b.poll):
				// A safety net: a wake-up lost to a full channel costs at
				// most one interval.
			}
			continue
		}
		run(ctx, job)
		if ctx.Err() != nil {
			return
		}
	}
}

// queued wakes one idle worker.
func (b *boltBackend) queued() {
	select {
	case b.wake <- struct{}{}:
	default: // every worker already has a wake-up pending
	}
}

// retriesDeliveries: the janitor retries due deliveries of jobs.db.
func (b *boltBackend) retriesDeliveries() bool { return true }
