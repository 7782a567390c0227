package jobs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"worklog/data"
	"worklog/internal/fsutil"
	"worklog/query"
)

// Defaults of the global caps (Config fields left zero).
const (
	// DefaultMaxQueued bounds the queued plus running jobs of all users.
	DefaultMaxQueued = 100
	// DefaultMaxKeptBytes bounds the bytes of finished exports (and of
	// outbox messages, which may carry them) kept on disk.
	DefaultMaxKeptBytes = 20 << 30
)

// Errors of the global caps; toAPIError maps them to statuses.
var (
	// ErrQueueFull is returned by Submit when MaxQueued jobs of all users
	// are queued or running (429).
	ErrQueueFull = errors.New("export job queue full")
	// ErrStorageFull is returned by Submit when the finished exports kept
	// on disk take MaxKeptBytes (507), and fails a job whose file would
	// take them past it.
	ErrStorageFull = errors.New("export storage full")
)

// keptCheckEvery is how many bytes a job writes between two recounts of
// the kept files: another job's file finished meanwhile is seen within it,
// so the cap can be passed by at most this much per running job.
const keptCheckEvery = 8 << 20

// MaxQueued is the most queued plus running jobs of all users together.
func (j *Runner) MaxQueued() int { return j.cfg.MaxQueued }

// MaxKeptBytes is the most bytes of finished exports kept on disk.
func (j *Runner) MaxKeptBytes() int64 { return j.cfg.MaxKeptBytes }

// KeptBytes counts the bytes kept on disk for finished jobs: the files in
// <data>/exports and, without SMTP, the messages in <data>/outbox (they
// carry files as attachments). Temporary files of running jobs are not
// counted here; they count through the writers as they grow. The disk is
// the one source of truth, so no counter can drift from it when the
// janitor, an erasure or a crash removes files.
func (j *Runner) KeptBytes() (int64, error) {
	dirs := []string{j.dir}
	if om, ok := j.mailer.(OutboxMailer); ok {
		dirs = append(dirs, om.Dir)
	}
	var n int64
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("count kept exports: %w", err)
		}
		for _, e := range entries {
			if !e.Type().IsRegular() || fsutil.IsTemp(e.Name()) {
				continue
			}
			info, err := e.Info()
			if errors.Is(err, os.ErrNotExist) {
				continue // removed since the listing
			}
			if err != nil {
				return 0, fmt.Errorf("count kept exports: %w", err)
			}
			n += info.Size()
		}
	}
	return n, nil
}

// NextExpiry is when the first kept download expires and the janitor
// deletes its file (false when no finished file is kept): a client refused
// with ErrStorageFull may try again then.
func (j *Runner) NextExpiry() (time.Time, bool, error) {
	var next time.Time
	err := j.be.each(func(job *Job) {
		if job.Status == Done && !job.Expired && (next.IsZero() || job.ExpiresAt.Before(next)) {
			next = job.ExpiresAt
		}
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next expiry: %w", err)
	}
	return next, !next.IsZero(), nil
}

// checkKept refuses a new job while the kept files take MaxKeptBytes.
func (j *Runner) checkKept() error {
	kept, err := j.KeptBytes()
	if err != nil {
		return err
	}
	if kept+j.writing.Load() >= j.cfg.MaxKeptBytes {
		return ErrStorageFull
	}
	return nil
}

// capWriter is the writer of one job's file: it counts what the job writes
// into Runner.writing and fails with ErrStorageFull once the kept files and
// the files being written would pass MaxKeptBytes, so a job cannot fill
// the disk however large its result.
type capWriter struct {
	w       io.Writer
	r       *Runner
	written int64 // by this writer, counted in r.writing
	kept    int64 // KeptBytes at the last recount
	recount int64 // written at which to recount kept
}

func (j *Runner) newCapWriter(w io.Writer) (*capWriter, error) {
	kept, err := j.KeptBytes()
	if err != nil {
		return nil, err
	}
	return &capWriter{w: w, r: j, kept: kept, recount: keptCheckEvery}, nil
}

func (c *capWriter) Write(p []byte) (int, error) {
	if c.written >= c.recount {
		kept, err := c.r.KeptBytes()
		if err != nil {
			return 0, err
		}
		c.kept, c.recount = kept, c.written+keptCheckEvery
	}
	writing := c.r.writing.Add(int64(len(p)))
	c.written += int64(len(p))
	if c.kept+writing > c.r.cfg.MaxKeptBytes {
		return 0, ErrStorageFull
	}
	if c.r.writeFault != nil {
		if err := c.r.writeFault(p); err != nil {
			return 0, err
		}
	}
	return c.w.Write(p)
}

// done takes this writer's bytes out of Runner.writing: they are kept
// files now, or gone.
func (c *capWriter) done() { c.r.writing.Add(-c.written) }

// Failure codes of a job (Job.ErrorCode), as its status shows them.
const (
	// CodeExportFailed: the export failed for a reason the server's log
	// holds (the status says no more: it would leak internals).
	CodeExportFailed = "export_failed"
	// CodeInsufficientStorage: the server's disk filled up.
	CodeInsufficientStorage = "insufficient_storage"
	// CodeStorageFull: the file would pass MaxKeptBytes.
	CodeStorageFull = "export_storage_full"
	// CodeTimeout: the run passed Config.JobTimeout.
	CodeTimeout = "timeout"
	// CodeStoreDamaged: a file of the store could not be read.
	CodeStoreDamaged = "store_damaged"
	// CodeAuditFailed: the audit line could not be written, so the file
	// was not kept.
	CodeAuditFailed = "audit_failed"
	// CodeDeliveryFailed: the e-mail could not be sent (the file stays
	// downloadable).
	CodeDeliveryFailed = "delivery_failed"
	// CodeErased: an erasure deleted the file.
	CodeErased = "erased"
)

// errAudit marks an export whose audit line could not be written.
var errAudit = errors.New("audit trail")

// failure is what a failed job's status says: a code and a message for its
// owner. The message never holds SQL, a path or a driver's text; the log
// line of the failure has the error itself.
func (j *Runner) failure(job *Job, err error) (code, msg string) {
	var pe *query.ParamError
	var de *data.DamagedPartError
	switch {
	case errors.As(err, &pe):
		// The request no longer plans (a field the level now hides).
		return pe.Code, "export failed: " + pe.Error()
	case errors.Is(err, errJobTimeout):
		return CodeTimeout, fmt.Sprintf("export failed: it did not finish within %s (the job time limit); narrow the filters or export fewer columns", j.cfg.JobTimeout)
	case errors.Is(err, ErrStorageFull):
		return CodeStorageFull, fmt.Sprintf("export failed: the finished exports kept on the server would take more than %s, its limit; nothing was kept. Request it again when older downloads have expired, or narrow the filters",
			FormatBytes(j.cfg.MaxKeptBytes))
	case fsutil.IsNoSpace(err):
		return CodeInsufficientStorage, "export failed: insufficient storage: the server's disk is full; nothing was kept. Request the export again later"
	case errors.As(err, &de):
		// Its message names the part relative to the store, for the
		// operator to restore it.
		return CodeStoreDamaged, "export failed: " + de.Error()
	case errors.Is(err, errAudit):
		return CodeAuditFailed, "export failed: it could not be recorded in the audit trail, so its file was not kept"
	}
	return CodeExportFailed, "export failed (job " + job.ID + "); the server's log has the reason"
}

// FormatBytes writes n in the largest binary unit it reaches, as the
// settings are written (20 GiB, 512 MiB).
func FormatBytes(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size {
			return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(n)/float64(u.size)), ".0") + " " + u.name
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
