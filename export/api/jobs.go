package api

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"worklog/export"
	"worklog/export/api/auth"
	"worklog/export/jobs"
	"worklog/privacy"

	"github.com/labstack/echo/v4"
)

// retryAfterTooManyJobs is the Retry-After of a 429 for too many jobs: about
// the time a typical job takes, so a retry has a fair chance.
const retryAfterTooManyJobs = 60

// JobsPath is the collection of background export jobs.
const JobsPath = APIBase + "/export/jobs"

// JobPaths are the routes of one job; they implement jobs.Paths, so the
// links in e-mails name the routes registered here.
type JobPaths struct{}

var _ jobs.Paths = JobPaths{}

// Status is the path of a job's status.
func (JobPaths) Status(id string) string { return JobsPath + "/" + id }

// File is the path of a job's file.
func (JobPaths) File(id string) string { return JobsPath + "/" + id + "/file" }

// registerJobRoutes adds the job status and download routes.
func (s *Server) registerJobRoutes(e *echo.Echo) {
	e.GET(JobsPath+"/:id", s.handleJob, s.authenticate)
	e.GET(JobsPath+"/:id/file", s.handleJobFile, s.authenticate)
}

// scheduledBody is the 202 answer of SPEC §4, keys in the documented order.
type scheduledBody struct {
	Status    string        `json:"status"`
	JobID     string        `json:"jobId"`
	Rows      int64         `json:"rows"`
	Format    export.Format `json:"format"`
	DeliverTo string        `json:"deliverTo"`
	StatusURL string        `json:"statusUrl"`
}

// scheduleExport answers an export above the synchronous limit: it queues a
// job and answers 202. Without an e-mail claim there is nowhere to deliver
// the file, so the request is refused with 400 before a job exists (a job
// nobody hears of would only fill the user's quota).
func (s *Server) scheduleExport(c echo.Context, cl *auth.Claims, pol *privacy.Policy, format export.Format, total int64) error {
	if s.cfg.Jobs == nil {
		// A server built without a job runner refuses rather than sending a
		// partial export that looks whole.
		return &APIError{Status: http.StatusServiceUnavailable, Code: "export_too_large",
			Message: fmt.Sprintf("%d rows match; exports of more than %d rows as %s are delivered as background jobs, which this server does not run: narrow the filters or page with limit and offset", total, s.syncLimit(format), format)}
	}
	if cl.Email == "" {
		return &APIError{Status: http.StatusBadRequest, Code: "email_required",
			Message: fmt.Sprintf("%d rows match; exports of more than %d rows as %s are delivered by e-mail, and the token has no email claim: narrow the filters, page with limit and offset, or use a token with an email claim", total, s.syncLimit(format), format)}
	}
	job, err := s.cfg.Jobs.Submit(jobs.Spec{
		Owner:           cl.Subject,
		Email:           cl.Email,
		Permissions:     cl.Permissions,
		Level:           pol.Level(),
		Query:           c.QueryParams(),
		Format:          format,
		CSVFormulaGuard: s.cfg.CSVFormulaGuard,
		Rows:            total,
	})
	if errors.Is(err, jobs.ErrTooManyJobs) {
		return &APIError{Status: http.StatusTooManyRequests, Code: "too_many_jobs", RetryAfter: retryAfterTooManyJobs,
			Message: fmt.Sprintf("you already have %d export jobs queued or running; retry when one has finished", s.cfg.Jobs.PerUser())}
	}
	if err != nil {
		return fmt.Errorf("schedule export: %w", err)
	}
	h := c.Response().Header()
	h.Set("X-Total-Count", strconv.FormatInt(total, 10))
	h.Set(echo.HeaderLocation, JobPaths{}.Status(job.ID))
	return c.JSON(http.StatusAccepted, scheduledBody{
		Status: "scheduled", JobID: job.ID, Rows: total, Format: format,
		DeliverTo: job.Email, StatusURL: JobPaths{}.Status(job.ID),
	})
}

// JobView is the JSON of GET /api/mind/export/jobs/{id}. Every key is always
// present; the ones that do not apply yet are null.
type JobView struct {
	ID     string        `json:"id"`
	Status jobs.Status   `json:"status"`
	Format export.Format `json:"format"`
	// Rows is the match count until the job is done, then the rows written.
	Rows       int64      `json:"rows"`
	CreatedAt  time.Time  `json:"createdAt"`
	FinishedAt *time.Time `json:"finishedAt"`
	// DownloadURL is the file's path while it can be downloaded.
	DownloadURL *string `json:"downloadUrl"`
	// Error says why the export or its delivery failed.
	Error *string `json:"error"`
	// ExpiresAt is when the download link expires.
	ExpiresAt *time.Time `json:"expiresAt"`
	DeliverTo string     `json:"deliverTo"`
	// Delivery is pending, sending, sent or failed once the file is done.
	Delivery    jobs.DeliveryState `json:"delivery,omitempty"`
	DeliveredAt *time.Time         `json:"deliveredAt"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// viewOf renders a job for its owner.
func viewOf(j *jobs.Job, now time.Time) JobView {
	v := JobView{ID: j.ID, Status: j.Status, Format: j.Format, Rows: j.Rows, CreatedAt: j.CreatedAt,
		FinishedAt: timePtr(j.FinishedAt), ExpiresAt: timePtr(j.ExpiresAt), DeliverTo: j.Email,
		Delivery: j.Delivery, DeliveredAt: timePtr(j.DeliveredAt)}
	if j.Status == jobs.Done && !j.Expired && now.Before(j.ExpiresAt) {
		u := JobPaths{}.File(j.ID)
		v.DownloadURL = &u
	}
	if j.Error != "" {
		e := j.Error
		v.Error = &e
	}
	return v
}

func (s *Server) jobsOrNotFound() (*jobs.Runner, error) {
	if s.cfg.Jobs == nil {
		return nil, jobNotFound()
	}
	return s.cfg.Jobs, nil
}

// jobNotFound is the one answer for a missing job and another user's job.
func jobNotFound() *APIError {
	return newAPIError(http.StatusNotFound, "not_found", "no such export job")
}

func (s *Server) handleJob(c echo.Context) error {
	runner, err := s.jobsOrNotFound()
	if err != nil {
		return err
	}
	job, err := runner.Get(c.Param("id"), claimsOf(c).Subject)
	if errors.Is(err, jobs.ErrNotFound) {
		return jobNotFound()
	}
	if err != nil {
		return fmt.Errorf("get job: %w", err)
	}
	return c.JSON(http.StatusOK, viewOf(job, time.Now()))
}

func (s *Server) handleJobFile(c echo.Context) error {
	runner, err := s.jobsOrNotFound()
	if err != nil {
		return err
	}
	job, path, err := runner.FilePath(c.Param("id"), claimsOf(c).Subject)
	switch {
	case errors.Is(err, jobs.ErrNotFound):
		return jobNotFound()
	case errors.Is(err, jobs.ErrErased):
		return newAPIError(http.StatusGone, "erased", "the file was deleted by an erasure of personal data; request the export again")
	case errors.Is(err, jobs.ErrExpired):
		return newAPIError(http.StatusGone, "gone", "the download link expired at %s; request the export again", job.ExpiresAt.UTC().Format(time.RFC3339))
	case errors.Is(err, jobs.ErrNotReady) && job.Status == jobs.Failed:
		return newAPIError(http.StatusConflict, "job_failed", "the export failed, there is no file: %s", job.Error)
	case errors.Is(err, jobs.ErrNotReady):
		return newAPIError(http.StatusConflict, "not_ready", "the export is %s; the file is ready when its status is done", job.Status)
	case err != nil:
		return fmt.Errorf("job file: %w", err)
	}
	// The file is served at the level in force now: a caller whose token
	// lost permissions or gained a stricter level since the job was made
	// (or a server whose level was raised) must not get the wider file.
	now, err := s.policyFor(claimsOf(c))
	if err != nil {
		return err
	}
	made, err := privacy.NewPolicy(job.Level, job.Permissions, s.cfg.PseudonymKey)
	if err != nil {
		return fmt.Errorf("job policy: %w", err)
	}
	if !now.Covers(made) {
		return newAPIError(http.StatusForbidden, "forbidden",
			"the file was made at privacy level %s with permissions your token no longer carries, or the level in force is now stricter (%s); request the export again",
			job.Level, now.Level())
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		// The janitor deleted it between the check and the open.
		return newAPIError(http.StatusGone, "gone", "the download link expired; request the export again")
	}
	if err != nil {
		return fmt.Errorf("open job file: %w", err)
	}
	defer f.Close()
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, job.Format.ContentType())
	h.Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s"`, jobs.FileName(job)))
	h.Set("X-Total-Count", strconv.FormatInt(job.Rows, 10))
	http.ServeContent(c.Response(), c.Request(), "", job.FinishedAt, f)
	return nil
}
