// Package jobs runs the exports too large to answer synchronously as
// background jobs (SPEC §5): a job store in bbolt, a bounded worker pool, a
// janitor for retries and expiry, and delivery by e-mail (SMTP with go-mail,
// or .eml files in an outbox).
//
// It imports export for the pipeline and must not import net/http, Echo or
// the HTTP API: the API routes are given to it as Paths, for the links in
// e-mails.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"worklog/export"
	"worklog/internal/audit"
	"worklog/internal/fsutil"
	"worklog/internal/pgstate"
	"worklog/privacy"
	"worklog/query"
)

// Defaults of Config.
const (
	DefaultWorkers          = 2
	DefaultPerUser          = 2
	DefaultAttachLimit      = 10 << 20
	DefaultDownloadTTL      = 7 * 24 * time.Hour
	DefaultMailFrom         = "worklog@localhost"
	DefaultDeliveryAttempts = 5
	DefaultRetryBackoff     = time.Minute
	DefaultSweepInterval    = time.Minute
	DefaultRetention        = 30 * 24 * time.Hour
	DefaultJobTimeout       = time.Hour
)

// errJobTimeout is the cause of a run's context past Config.JobTimeout.
var errJobTimeout = errors.New("export job time limit reached")

// Paths under the data directory.
const (
	jobsDBFile = "jobs.db"
	exportsDir = "exports"
	outboxDir  = "outbox"
)

// Config configures the background export runner.
type Config struct {
	// DataDir holds jobs.db, exports/ and (without Mailer) outbox/.
	DataDir string
	// TempDir is where encoders spool (export.EncoderOptions.TempDir);
	// main passes its export.Spool under the data directory.
	TempDir string
	// Engine runs the exports; it belongs to the caller.
	Engine *query.Engine
	// PseudonymKey keys the name pseudonyms, as for synchronous exports. It
	// is never stored with a job.
	PseudonymKey []byte
	// Mailer delivers finished jobs; nil writes .eml files to <DataDir>/outbox.
	Mailer Mailer
	// MailFrom is the sender address (default worklog@localhost).
	MailFrom string
	// PublicURL is the server's external base URL, for download links in
	// e-mails, e.g. https://worklog.example.com.
	PublicURL string
	// Paths maps a job id to the API paths of its status and its file, as
	// the HTTP layer routes them; the e-mail's links are PublicURL + path.
	// Required.
	Paths Paths
	// Workers bounds the exports running at once (default 2).
	Workers int
	// PerUser bounds one user's queued plus running jobs (default 2).
	PerUser int
	// MaxQueued bounds the queued plus running jobs of all users together
	// (default 100): Submit returns ErrQueueFull beyond it.
	MaxQueued int
	// MaxKeptBytes bounds the bytes of finished exports kept on disk
	// (default 20 GiB; see KeptBytes): Submit returns ErrStorageFull while
	// they take it, and a job whose file would pass it fails.
	MaxKeptBytes int64
	// AttachLimit is the largest message that carries the file, counted as
	// sent (base64 and all); a larger one carries the download link instead
	// (default 10 MiB).
	AttachLimit int64
	// DownloadTTL is how long a finished file stays downloadable (default
	// 7 days); then the janitor deletes it and the link answers 410.
	DownloadTTL time.Duration
	// Retention is how long a job record is kept after its link expired, so
	// the link answers 410 rather than 404 (default 30 days).
	Retention time.Duration
	// DeliveryAttempts bounds the sends of one message (default 5).
	DeliveryAttempts int
	// RetryBackoff is the wait after the first failed send; it doubles with
	// each further failure (default 1 minute).
	RetryBackoff time.Duration
	// JobTimeout bounds one run of an export (default 1 hour): past it the
	// export is cancelled and the job fails. With a database backend it also
	// decides when a job still marked running counts as orphaned by a dead
	// replica.
	JobTimeout time.Duration
	// SweepInterval is how often the janitor retries due deliveries and
	// deletes expired files (default 1 minute).
	SweepInterval time.Duration
	// MaxSheetRows overrides the XLSX rows per sheet (tests); 0 is Excel's limit.
	MaxSheetRows int
	// Logger receives job events; nil discards.
	Logger *slog.Logger
	// Audit receives one line per finished or failed export (SPEC §12),
	// written before the file is offered; nil keeps no trail.
	Audit *audit.Log
	// Now is the clock (tests move it past an expiry); nil is time.Now.
	Now func() time.Time
	// DB, when set, keeps the jobs in PostgreSQL and queues them with River
	// (SPEC §13), shared by every replica on the same data directory and
	// database; its schema holds Migrations. Nil keeps them in
	// <DataDir>/jobs.db, run by this process alone.
	DB *pgstate.DB
	// BeforeRun, when set, is called as a run starts, before the export,
	// with the runner's own context (ended by Close, not by the job's time
	// limit). Tests hold a worker with it, to have a replica busy or to
	// kill it mid-job; nil otherwise.
	BeforeRun func(ctx context.Context, job *Job)
}

// Paths names the API paths of a job. The HTTP layer owns the routes; the
// runner needs them only to write links into e-mails.
type Paths interface {
	// Status is the path of the job's status, e.g. /api/mind/export/jobs/<id>.
	Status(id string) string
	// File is the path of the job's file, for its owner with a bearer token.
	File(id string) string
	// Download is the path of a signed link to the job's file: it opens in
	// a browser without a token until the link expires.
	Download(l Link) string
}

// Runner persists background exports (SPEC §5) and runs them with a bounded
// worker pool.
//
// A request above the synchronous limit becomes a Job: the request's query
// parameters, the privacy level, permissions, sub and e-mail captured at
// request time. Nothing derived from them is stored: the worker re-plans with
// query.Parse and privacy.NewPolicy when it runs, with the pseudonym key from
// the server's configuration, so the key never reaches the job store and a
// job runs exactly the plan and privacy transform of a synchronous export.
//
// Store: where jobs are kept and who runs them is a jobBackend. The embedded
// default keeps them in bbolt (go.etcd.io/bbolt) at <data>/jobs.db. bbolt
// is pure Go, embedded, and commits every update transaction with fsync, so a
// status change is durable when the call returns; its single-writer
// transactions make "count the user's active jobs, then add one" atomic
// without a lock of our own. It also takes an exclusive file lock, so two
// servers cannot run the same jobs. DuckDB was the other candidate, but the
// engine's DuckDB is in-memory and read-only towards the store, and a second,
// persistent DuckDB file for a handful of small records is a heavier tool.
//
// Lifecycle: queued → running → done | failed. A running job interrupted by
// a shutdown goes back to queued; one interrupted by a crash is found running
// when the store is opened and is queued again. Either way it restarts from
// the beginning: WriteFile writes to a temporary name and renames, so no
// half-written export is ever visible, and leftover temporary files are
// removed at open.
//
// Delivery is at least once, and in practice exactly once: the attempt is
// recorded (state sending, attempt counted, fsynced) before the message
// leaves, and the success (state sent) after. A restart finds a job in
// sending only if the process died between those two commits; the message
// may or may not have left, and it is sent again with the same Message-ID,
// because a duplicate is recognisable and a lost export is not. The window
// is the SMTP round trip of the final "." plus one bbolt commit; for the
// outbox the second write replaces the first .eml, so there is no
// duplicate at all. Counting attempts before sending bounds the resends
// even if the process crashes on every attempt. The export itself never
// runs again once a job is done: delivery retries send the file on disk.
type Runner struct {
	cfg Config
	// be keeps the records and dispatches queued jobs (see jobBackend).
	be jobBackend
	// store is the bbolt job store when be is the embedded default
	// (tests reach into it); nil on another backend.
	store  *jobStore
	mailer Mailer
	log    *slog.Logger
	dir    string // <data>/exports
	links  linkSigner

	// rows counts the rows of finished exports by format, for metrics;
	// the map is filled at Open and only its counters change.
	rows map[export.Format]*atomic.Int64

	// delivering holds the jobs whose message is being sent in this
	// process, so the janitor never sends one a worker is sending.
	deliveringMu sync.Mutex
	delivering   map[string]bool

	// writing counts the bytes of the files being written by running
	// jobs, against MaxKeptBytes (caps.go).
	writing atomic.Int64
	// writeFault, when set (tests, before Start), is called before every
	// write of a job's file; an error fails the write as a full disk
	// would (syscall.ENOSPC), without filling one.
	writeFault func(p []byte) error

	// afterSweep, when set (tests, before Start), runs after every sweep
	// of the janitor: a test waits for sweeps instead of sleeping.
	afterSweep func()

	// eraseMu orders EraseBefore against a worker finishing a job: a job
	// that started before erasedAt is run again instead of finished.
	eraseMu  sync.Mutex
	erasedAt time.Time

	mu      sync.Mutex
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	workers func()          // waits for dispatch's workers
	life    context.Context // Start's context, ended by Close
	started bool
	closed  bool
}

// Open opens the job store at <DataDir>/jobs.db, queues the jobs a
// crash left running and removes temporary files a crash left behind.
// Call Start to run jobs and Close to stop.
func Open(cfg Config) (*Runner, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("jobs: a data directory is required")
	}
	if cfg.Engine == nil {
		return nil, errors.New("jobs: an engine is required")
	}
	if cfg.Paths == nil {
		return nil, errors.New("jobs: the API paths of jobs are required")
	}
	if _, err := privacy.NewPolicy(privacy.Pseudonymized, nil, cfg.PseudonymKey); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	setDefault(&cfg.Workers, DefaultWorkers)
	setDefault(&cfg.PerUser, DefaultPerUser)
	setDefault(&cfg.MaxQueued, DefaultMaxQueued)
	setDefault(&cfg.MaxKeptBytes, DefaultMaxKeptBytes)
	setDefault(&cfg.AttachLimit, DefaultAttachLimit)
	setDefault(&cfg.DownloadTTL, DefaultDownloadTTL)
	setDefault(&cfg.Retention, DefaultRetention)
	setDefault(&cfg.DeliveryAttempts, DefaultDeliveryAttempts)
	setDefault(&cfg.RetryBackoff, DefaultRetryBackoff)
	setDefault(&cfg.SweepInterval, DefaultSweepInterval)
	setDefault(&cfg.JobTimeout, DefaultJobTimeout)
	if cfg.MailFrom == "" {
		cfg.MailFrom = DefaultMailFrom
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	dir := filepath.Join(cfg.DataDir, exportsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	// Alone, this process wrote every temporary file there: those left are
	// a crash's. With replicas on a database, another live replica may be
	// writing one right now; each job clears its own leftovers instead
	// when it runs (runOne, OutboxMailer.write).
	alone := cfg.DB == nil
	if alone {
		if err := removeTempFiles(dir, ""); err != nil {
			return nil, fmt.Errorf("jobs: %w", err)
		}
	}
	mailer := cfg.Mailer
	if mailer == nil {
		od := filepath.Join(cfg.DataDir, outboxDir)
		if alone {
			if err := removeTempFiles(od, ""); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("jobs: %w", err)
			}
		}
		mailer = OutboxMailer{Dir: od}
	}
	var linkKey []byte
	var err error
	if cfg.DB != nil {
		// Shared by the replicas, so that each accepts the links of the
		// others; seeded from the key file of a store that ran alone.
		ctx, cancel := context.WithTimeout(context.Background(), dbOpTimeout)
		linkKey, err = cfg.DB.Key(ctx, pgstate.LinkKey, filepath.Join(cfg.DataDir, LinkKeyFile))
		cancel()
	} else {
		linkKey, err = loadOrCreateLinkKey(cfg.DataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	rows := map[export.Format]*atomic.Int64{}
	for _, f := range export.Formats() {
		rows[f] = new(atomic.Int64)
	}
	r := &Runner{cfg: cfg, mailer: mailer, log: log, dir: dir, links: linkSigner{key: linkKey}, rows: rows,
		delivering: map[string]bool{}}
	if cfg.DB != nil {
		// A job a dead replica left running is River's to rescue: it may
		// be running on a live replica, so nothing is queued again here.
		if r.be, err = newRiverBackend(cfg.DB.Pool, cfg, r.now, log); err != nil {
			return nil, err
		}
		if _, err := os.Stat(filepath.Join(cfg.DataDir, jobsDBFile)); err == nil {
			log.Warn("jobs: " + jobsDBFile + " is not read with a database: the jobs recorded there before are neither run nor listed")
		}
		return r, nil
	}
	store, resumed, err := openJobStore(filepath.Join(cfg.DataDir, jobsDBFile))
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	for _, id := range resumed {
		log.Info("export job interrupted, queued again", "job", id)
	}
	r.store = store
	r.be = newBoltBackend(store, cfg.Workers, cfg.SweepInterval, r.now, log)
	return r, nil
}

// now is the runner's clock, in UTC.
func (j *Runner) now() time.Time {
	if j.cfg.Now != nil {
		return j.cfg.Now().UTC()
	}
	return time.Now().UTC()
}

func setDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// removeTempFiles deletes the *.tmp files an interrupted write left in dir:
// all of them, or with a non-empty target only those of writes to that
// file name (fsutil names a temporary file "."+name+".<random>.tmp").
// Targets are job file names (hex ids and a format), free of glob syntax.
func removeTempFiles(dir, target string) error {
	pattern := ".*.tmp"
	if target != "" {
		pattern = "." + target + ".*.tmp"
	}
	tmps, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); err != nil {
		return err
	}
	for _, t := range tmps {
		if err := os.Remove(t); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Start runs the workers and the janitor until ctx ends or Close is called.
func (j *Runner) Start(ctx context.Context) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.started || j.closed {
		return
	}
	j.started = true
	ctx, j.cancel = context.WithCancel(ctx)
	j.life = ctx
	wait, err := j.be.dispatch(ctx, j.cfg.Workers, j)
	if err != nil {
		// Jobs stay queued for the next start; the janitor still runs.
		j.log.Error("start export job workers", "err", err)
		wait = func() {}
	}
	j.workers = wait
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		j.janitor(ctx)
	}()
}

// Close stops the workers (a running export is cancelled and queued again,
// to restart from the beginning next time), waits for them and closes the
// job store.
func (j *Runner) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	if j.cancel != nil {
		j.cancel()
	}
	j.mu.Unlock()
	if j.workers != nil {
		j.workers()
	}
	j.wg.Wait()
	return j.be.close()
}

// Spec is what a request hands to Submit: the request as it was asked,
// and who asked, captured at request time.
type Spec struct {
	Owner, Email    string
	Permissions     []string
	Level           privacy.Level
	Query           url.Values
	Format          export.Format
	CSVFormulaGuard bool
	// CSVBOM is the bom parameter, or the server's setting when absent.
	CSVBOM bool
	// Rows is the match count at request time.
	Rows int64
}

// Submit persists a queued job and wakes a worker. It returns
// ErrTooManyJobs when the owner already has PerUser queued or running jobs,
// ErrQueueFull when all users together have MaxQueued, and ErrStorageFull
// while the finished exports kept on disk take MaxKeptBytes.
func (j *Runner) Submit(spec Spec) (*Job, error) {
	if spec.Email == "" {
		return nil, errors.New("submit job: no e-mail address to deliver to")
	}
	if err := j.checkKept(); err != nil {
		return nil, err
	}
	q := url.Values{}
	for k, v := range spec.Query {
		q[k] = append([]string(nil), v...)
	}
	q.Set("format", string(spec.Format))
	job := &Job{
		ID:              newJobID(),
		Status:          Queued,
		Owner:           spec.Owner,
		Email:           spec.Email,
		Permissions:     spec.Permissions,
		Level:           spec.Level,
		Query:           q.Encode(),
		Format:          spec.Format,
		CSVFormulaGuard: spec.CSVFormulaGuard,
		CSVBOM:          spec.CSVBOM,
		Rows:            spec.Rows,
		CreatedAt:       j.now(),
	}
	if err := j.be.create(job, limits{perUser: j.cfg.PerUser, maxActive: j.cfg.MaxQueued}); err != nil {
		return nil, err
	}
	j.be.queued()
	return job, nil
}

// Get returns the job id if owner owns it; ErrNotFound otherwise.
func (j *Runner) Get(id, owner string) (*Job, error) {
	if !validJobID(id) {
		return nil, ErrNotFound
	}
	job, err := j.be.get(id)
	if err != nil {
		return nil, err
	}
	if job.Owner != owner {
		return nil, ErrNotFound
	}
	return job, nil
}

// MaxList is the most jobs List returns.
const MaxList = 1000

// List returns owner's jobs, newest first (ties by id), at most limit of
// them (1..MaxList), and how many the owner has in all.
func (j *Runner) List(owner string, limit int) ([]*Job, int, error) {
	limit = min(max(limit, 1), MaxList)
	jobs, n, err := j.be.list(owner, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("list jobs: %w", err)
	}
	return jobs, n, nil
}

// RowsWritten is the number of rows the jobs of this process have written
// as format f, for worklog_export_rows_total{path="job"}.
func (j *Runner) RowsWritten(f export.Format) int64 {
	if c := j.rows[f]; c != nil {
		return c.Load()
	}
	return 0
}

// CountByState counts the jobs by status, for the jobs gauge of /metrics.
func (j *Runner) CountByState() (map[Status]int, error) {
	return j.be.counts()
}

// FilePath returns the path of the finished file of job id for owner:
// ErrNotFound, ErrNotReady (not done), ErrExpired (link expired) or
// ErrErased (deleted by an erasure).
func (j *Runner) FilePath(id, owner string) (*Job, string, error) {
	job, err := j.Get(id, owner)
	if err != nil {
		return nil, "", err
	}
	if job.Status == Erased {
		return job, "", ErrErased
	}
	if job.Status != Done {
		return job, "", ErrNotReady
	}
	if job.Expired || !j.now().Before(job.ExpiresAt) {
		return job, "", ErrExpired
	}
	return job, j.filePath(job), nil
}

func (j *Runner) filePath(job *Job) string {
	return filepath.Join(j.dir, job.ID+"."+job.Format.Extension())
}

// run exports one claimed job and delivers it.
func (j *Runner) run(ctx context.Context, job *Job) {
	log := j.log.With("job", job.ID, "format", string(job.Format))
	start := time.Now()
	if j.cfg.BeforeRun != nil {
		life := j.life
		if life == nil {
			life = ctx
		}
		j.cfg.BeforeRun(life, job)
	}
	ectx, cancel := context.WithTimeoutCause(ctx, j.cfg.JobTimeout, errJobTimeout)
	rows, err := j.export(ectx, job)
	cancel()
	if ctx.Err() != nil {
		// Shutdown: leave the job resumable. The temporary file is gone
		// (WriteFile removes it on error).
		if _, uerr := j.be.update(job.ID, func(jb *Job) error { jb.Status = Queued; return nil }); uerr != nil {
			log.Error("requeue interrupted export job", "err", uerr)
		}
		log.Info("export job interrupted by shutdown, queued again")
		return
	}
	if err != nil && errors.Is(context.Cause(ectx), errJobTimeout) {
		err = fmt.Errorf("%w (%s)", errJobTimeout, j.cfg.JobTimeout)
	}
	if aerr := j.audit(job, rows, err); aerr != nil && err == nil {
		// No file is offered without its audit line.
		os.Remove(j.filePath(job))
		err = fmt.Errorf("%w: %w", errAudit, aerr)
	}
	now := j.now()
	if err != nil {
		code, msg := j.failure(job, err)
		log.Error("export job failed", "code", code, "err", err)
		if _, uerr := j.be.update(job.ID, func(jb *Job) error {
			jb.Status, jb.ErrorCode, jb.Error, jb.FinishedAt, jb.ExpiresAt = Failed, code, msg, now, now.Add(j.cfg.DownloadTTL)
			return nil
		}); uerr != nil {
			log.Error("record failed export job", "err", uerr)
		}
		return
	}
	var size int64
	if st, serr := os.Stat(j.filePath(job)); serr == nil {
		size = st.Size()
	}
	j.eraseMu.Lock()
	finished, err := j.be.finish(job.ID, func(jb *Job, erasedAt time.Time) error {
		if j.startedBeforeErasure(jb, erasedAt) {
			return errStale
		}
		jb.Status, jb.Rows, jb.Bytes, jb.FinishedAt, jb.ExpiresAt = Done, rows, size, now, now.Add(j.cfg.DownloadTTL)
		jb.Delivery, jb.NextDeliveryAt, jb.ErrorCode, jb.Error = DeliveryPending, now, "", ""
		return nil
	})
	j.eraseMu.Unlock()
	if errors.Is(err, errStale) {
		// An erasure committed while this job read the old snapshot: its
		// file may hold erased data. Run it again on the new snapshot.
		j.requeueAfterErasure(job, log)
		return
	}
	if err != nil {
		log.Error("record finished export job", "err", err)
		return
	}
	job = finished
	if c := j.rows[job.Format]; c != nil {
		c.Add(rows)
	}
	el := time.Since(start)
	log.Info("export job done", "rows", rows, "bytes", size, "duration_ms", el.Milliseconds(),
		"rows_per_s", int64(float64(rows)/max(el.Seconds(), 1e-9)))
	j.deliver(ctx, job)
}

// export re-plans the job as its request would be planned now, with the
// captured level and permissions, and writes the file atomically.
func (j *Runner) export(ctx context.Context, job *Job) (int64, error) {
	pol, err := privacy.NewPolicy(job.Level, job.Permissions, j.cfg.PseudonymKey)
	if err != nil {
		return 0, fmt.Errorf("policy: %w", err)
	}
	values, err := url.ParseQuery(job.Query)
	if err != nil {
		return 0, fmt.Errorf("job query: %w", err)
	}
	plan, err := query.Parse(values, export.PlanOptions(pol, job.Format))
	if err != nil {
		return 0, err
	}
	// Pinned: a job has no time limit, and ingests may commit meanwhile.
	snap, err := j.cfg.Engine.Acquire()
	if err != nil {
		return 0, fmt.Errorf("snapshot: %w", err)
	}
	defer snap.Release()
	req := export.Request{Engine: j.cfg.Engine, Snapshot: snap, Plan: plan, Policy: pol, Format: job.Format,
		Options: export.EncoderOptions{CSVFormulaGuard: job.CSVFormulaGuard, CSVBOM: job.CSVBOM, MaxSheetRows: j.cfg.MaxSheetRows, TempDir: j.cfg.TempDir}}
	// As export.WriteFile, through a writer that counts the file against
	// MaxKeptBytes. 0600: an export can hold personal data.
	var rows int64
	// A run before this one (on a replica that died) may have left its
	// temporary file; this run owns the job now.
	if err := removeTempFiles(j.dir, filepath.Base(j.filePath(job))); err != nil {
		return 0, fmt.Errorf("remove an earlier run's temporary file: %w", err)
	}
	err = fsutil.WriteAtomic(j.filePath(job), 0o600, func(w io.Writer) error {
		cw, err := j.newCapWriter(w)
		if err != nil {
			return err
		}
		defer cw.done()
		rows, err = export.Run(ctx, req, cw, nil)
		return err
	})
	return rows, err
}

// errNothingToDeliver stops a delivery whose message was sent meanwhile.
var errNothingToDeliver = errors.New("nothing to deliver")

// deliver sends the job's message once, recording the attempt before and
// the outcome after (see Runner).
func (j *Runner) deliver(ctx context.Context, job *Job) {
	log := j.log.With("job", job.ID)
	j.deliveringMu.Lock()
	busy := j.delivering[job.ID]
	j.delivering[job.ID] = true
	j.deliveringMu.Unlock()
	if busy {
		return
	}
	defer func() {
		j.deliveringMu.Lock()
		delete(j.delivering, job.ID)
		j.deliveringMu.Unlock()
	}()
	job, err := j.be.update(job.ID, func(jb *Job) error {
		if jb.Status != Done || jb.Delivery != DeliveryPending && jb.Delivery != DeliverySending {
			return errNothingToDeliver
		}
		jb.Delivery = DeliverySending
		jb.DeliveryAttempts++
		return nil
	})
	if errors.Is(err, errNothingToDeliver) {
		return
	}
	if err != nil {
		log.Error("record delivery attempt", "err", err)
		return
	}
	path := j.filePath(job)
	link := j.DownloadLink(job)
	msg, err := jobMessage{
		From:        j.cfg.MailFrom,
		To:          job.Email,
		Job:         job,
		Path:        path,
		DownloadURL: j.cfg.PublicURL + j.cfg.Paths.Download(link),
		LinkExpires: link.ExpiresAt(),
		StatusURL:   j.cfg.PublicURL + j.cfg.Paths.Status(job.ID),
	}.buildWithin(j.cfg.AttachLimit)
	var receipt Receipt
	if err == nil {
		receipt, err = j.mailer.Send(ctx, job.ID, msg)
	}
	attached := err == nil && len(msg.GetAttachments()) > 0
	now := j.now()
	// A full disk (the outbox, or a message spooled to disk) is said as
	// such; an SMTP server's own words stay in the log.
	code, why := CodeDeliveryFailed, ""
	if fsutil.IsNoSpace(err) {
		code, why = CodeInsufficientStorage, ": insufficient storage, the server's disk is full"
	}
	_, uerr := j.be.update(job.ID, func(jb *Job) error {
		switch {
		case jb.Status == Erased:
			// An erasure deleted the file while it was being sent; its
			// record says so, and nothing is retried.
		case err == nil:
			jb.Delivery, jb.DeliveredAt, jb.ErrorCode, jb.Error, jb.Attached = DeliverySent, now, "", "", attached
			if receipt.Written != "" {
				jb.Delivery, jb.DeliveryPath = DeliveryWritten, receipt.Written
			}
		case ctx.Err() != nil:
			// Shutdown interrupted the send: try again after the restart,
			// without spending an attempt.
			jb.Delivery, jb.NextDeliveryAt = DeliveryPending, now
			jb.DeliveryAttempts--
		case jb.DeliveryAttempts >= j.cfg.DeliveryAttempts:
			jb.Delivery, jb.ErrorCode = DeliveryFailed, code
			jb.Error = fmt.Sprintf("delivery to %s failed after %d attempts%s; the file can still be downloaded", jb.Email, jb.DeliveryAttempts, why)
		default:
			wait := j.cfg.RetryBackoff << (jb.DeliveryAttempts - 1)
			jb.Delivery, jb.NextDeliveryAt, jb.ErrorCode = DeliveryPending, now.Add(wait), code
			jb.Error = fmt.Sprintf("delivery to %s failed (attempt %d of %d%s), retrying at %s", jb.Email, jb.DeliveryAttempts, j.cfg.DeliveryAttempts, why, jb.NextDeliveryAt.Format(time.RFC3339))
		}
		return nil
	})
	if uerr != nil {
		log.Error("record delivery", "err", uerr)
	}
	if err != nil {
		log.Warn("export delivery failed", "attempt", job.DeliveryAttempts, "err", err)
		return
	}
	if receipt.Written != "" {
		log.Info("export message written to the outbox (no SMTP server configured)", "attempt", job.DeliveryAttempts, "attached", attached, "path", receipt.Written)
		return
	}
	log.Info("export delivered", "attempt", job.DeliveryAttempts, "attached", attached)
}

// janitor sweeps at once (deliveries a restart left pending) and then every
// SweepInterval until ctx ends.
func (j *Runner) janitor(ctx context.Context) {
	t := time.NewTicker(j.cfg.SweepInterval)
	defer t.Stop()
	first := true
	for {
		j.sweep(ctx)
		if first {
			// Said once, so that an operator (and a test of a restart)
			// knows when deliveries a restart left pending were retried.
			j.log.Info("export jobs: startup sweep done")
			first = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweep retries due deliveries, deletes expired files and forgets jobs whose
// links expired longer than Retention ago.
func (j *Runner) sweep(ctx context.Context) {
	if j.afterSweep != nil {
		defer j.afterSweep()
	}
	now := j.now()
	var due, expire, forget []*Job
	err := j.be.each(func(job *Job) {
		switch {
		case !job.ExpiresAt.IsZero() && now.After(job.ExpiresAt.Add(j.cfg.Retention)):
			forget = append(forget, job)
		case job.Status == Done && !job.Expired && !now.Before(job.ExpiresAt):
			expire = append(expire, job)
		case job.Status == Done && (job.Delivery == DeliveryPending || job.Delivery == DeliverySending) && !now.Before(job.NextDeliveryAt) && j.be.retriesDeliveries():
			// sending here means a crash between send and record.
			due = append(due, job)
		}
	})
	if err != nil {
		j.log.Error("sweep export jobs", "err", err)
		return
	}
	for _, job := range due {
		if ctx.Err() != nil {
			return
		}
		if job.Delivery == DeliverySending {
			j.log.Warn("delivery may have been sent before a crash; sending again with the same Message-ID", "job", job.ID)
		}
		j.deliver(ctx, job)
	}
	for _, job := range expire {
		// The outbox message may carry the file as an attachment: it
		// expires with the download (removed first, so that a file gone
		// means its message is gone too).
		if om, ok := j.mailer.(OutboxMailer); ok {
			if err := removeIfExists(filepath.Join(om.Dir, job.ID+".eml")); err != nil {
				j.log.Error("delete expired outbox message", "job", job.ID, "err", err)
			}
		}
		if err := os.Remove(j.filePath(job)); err != nil && !errors.Is(err, os.ErrNotExist) {
			j.log.Error("delete expired export", "job", job.ID, "err", err)
			continue
		}
		if _, err := j.be.update(job.ID, func(jb *Job) error { jb.Expired = true; return nil }); err != nil {
			j.log.Error("record expired export", "job", job.ID, "err", err)
		}
	}
	for _, job := range forget {
		os.Remove(j.filePath(job))
		if err := j.be.remove(job.ID); err != nil && !errors.Is(err, ErrNotFound) {
			j.log.Error("forget export job", "job", job.ID, "err", err)
		}
	}
}

// PerUser is the most queued plus running jobs one user may have.
func (j *Runner) PerUser() int { return j.cfg.PerUser }
