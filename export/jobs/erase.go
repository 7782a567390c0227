package jobs

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// Erased is the state of a job whose file (and outbox message) an erasure
// deleted (SPEC §12): it may have held the erased person's data. Its file
// answers 410.
const Erased Status = "erased"

// ErrErased is returned for the file of a job whose file an erasure
// deleted. It wraps ErrExpired, so that code which answers 410 for an
// expired file answers 410 for an erased one too.
var ErrErased = fmt.Errorf("export file erased by an erasure of personal data: %w", ErrExpired)

// EraseBefore is called after an erasure committed at t. Every finished
// job whose export started before t has its file and its outbox message
// deleted and becomes Erased; a job running now started on the old
// snapshot and is run again from the start once its current run ends
// (queued jobs will read the new snapshot anyway). It returns how many
// jobs were erased. Messages already handed to an SMTP server cannot be
// recalled.
func (j *Runner) EraseBefore(t time.Time) (int, error) {
	j.eraseMu.Lock()
	defer j.eraseMu.Unlock()
	if t.After(j.erasedAt) {
		j.erasedAt = t
	}
	// Shared with the jobs' other processes (a database backend) before
	// the scan: a job finishing from now on sees the erasure.
	if err := j.be.noteErasure(t); err != nil {
		return 0, fmt.Errorf("erase export files: record the erasure: %w", err)
	}
	var victims []string
	err := j.be.each(func(job *Job) {
		if job.Status == Done && job.StartedAt.Before(t) {
			victims = append(victims, job.ID)
		}
	})
	if err != nil {
		return 0, fmt.Errorf("erase export files: %w", err)
	}
	var errs []error
	n := 0
	for _, id := range victims {
		job, err := j.be.get(id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := removeIfExists(j.filePath(job)); err != nil {
			errs = append(errs, fmt.Errorf("erase export file of job %s: %w", id, err))
			continue
		}
		if om, ok := j.mailer.(OutboxMailer); ok {
			if err := removeIfExists(filepath.Join(om.Dir, id+".eml")); err != nil {
				errs = append(errs, fmt.Errorf("erase outbox message of job %s: %w", id, err))
				continue
			}
		}
		now := time.Now().UTC()
		if _, err := j.be.update(id, func(jb *Job) error {
			jb.Status, jb.ErasedAt = Erased, now
			if jb.Delivery == DeliveryPending || jb.Delivery == DeliverySending {
				jb.Delivery = DeliveryFailed
			}
			jb.ErrorCode = CodeErased
			jb.Error = "the file was deleted by an erasure of personal data at " + now.Format(time.RFC3339) + "; request the export again"
			return nil
		}); err != nil {
			errs = append(errs, fmt.Errorf("record erased job %s: %w", id, err))
			continue
		}
		n++
		j.log.Info("export job erased", "job", id)
	}
	return n, errors.Join(errs...)
}

// errStale stops the finish of a job whose run began before an erasure.
var errStale = errors.New("export read a snapshot older than an erasure")

// startedBeforeErasure reports whether job's run began before the last
// erasure, this process's or erasedAt (the backend's, which another process
// may have recorded); the caller holds eraseMu.
func (j *Runner) startedBeforeErasure(job *Job, erasedAt time.Time) bool {
	return job.StartedAt.Before(j.erasedAt) || job.StartedAt.Before(erasedAt)
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// requeueAfterErasure deletes the file a job wrote from a snapshot older
// than an erasure and queues the job again.
func (j *Runner) requeueAfterErasure(job *Job, log *slog.Logger) {
	os.Remove(j.filePath(job))
	if _, err := j.be.update(job.ID, func(jb *Job) error { jb.Status = Queued; return nil }); err != nil {
		j.log.Error("requeue export job after erasure", "job", job.ID, "err", err)
		return
	}
	log.Info("export job ran on a snapshot older than an erasure, queued again")
	j.be.queued()
}
