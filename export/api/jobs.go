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

// File is the path of a job's file, for its owner with a bearer token.
func (JobPaths) File(id string) string { return JobsPath + "/" + id + "/file" }

// Download is the path of a signed link to a job's file (SPEC §5): the
// file path with the expiry (Unix seconds) and the signature as query
// parameters, which handleJobFileRoute checks instead of a bearer token.
func (p JobPaths) Download(l jobs.Link) string {
	return p.File(l.ID) + "?" + linkExpiresParam + "=" + strconv.FormatInt(l.Expires, 10) + "&" + linkSigParam + "=" + l.Sig
}

// The query parameters of a signed download link.
const (
	linkExpiresParam = "expires"
	linkSigParam     = "sig"
)

// The jobs list's one parameter and its default.
const (
	paramLimit     = "limit"
	defaultJobList = 100
)

// registerJobRoutes adds the jobs list, job status and download routes.
func (s *Server) registerJobRoutes(e *echo.Echo) {
	e.GET(JobsPath, s.handleJobList, s.authenticate)
	s.takesParams(JobsPath, paramLimit)
	e.GET(JobsPath+"/:id", s.handleJob, s.authenticate)
	e.GET(JobsPath+"/:id/file", s.handleJobFileRoute)
	s.takesParams(JobsPath+"/:id/file", linkExpiresParam, linkSigParam)
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
func (s *Server) scheduleExport(c echo.Context, cl *auth.Claims, pol *privacy.Policy, format export.Format, bom bool, total int64) error {
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
	if !auth.ValidEmail(cl.Email) {
		// Refused now, with a reason, rather than as a job whose delivery
		// fails five times.
		return &APIError{Status: http.StatusBadRequest, Code: "email_invalid",
			Message: "the token's email claim is not a plain e-mail address, so a background export could not be delivered: use a token with a valid email claim, or page with limit and offset"}
	}
	job, err := s.cfg.Jobs.Submit(jobs.Spec{
		Owner:           cl.Subject,
		Email:           cl.Email,
		Permissions:     cl.Permissions,
		Level:           pol.Level(),
		Query:           c.QueryParams(),
		Format:          format,
		CSVFormulaGuard: s.cfg.CSVFormulaGuard,
		CSVBOM:          bom,
		Rows:            total,
	})
	switch {
	case errors.Is(err, jobs.ErrTooManyJobs):
		return &APIError{Status: http.StatusTooManyRequests, Code: "too_many_jobs", RetryAfter: retryAfterTooManyJobs,
			Message: fmt.Sprintf("you already have %d export jobs queued or running; retry when one has finished", s.cfg.Jobs.PerUser())}
	case errors.Is(err, jobs.ErrQueueFull):
		return &APIError{Status: http.StatusTooManyRequests, Code: "jobs_queue_full", RetryAfter: retryAfterTooManyJobs,
			Message: fmt.Sprintf("%d background exports of all users are queued or running, the most this server takes; retry later, or page with limit and offset", s.cfg.Jobs.MaxQueued())}
	case errors.Is(err, jobs.ErrStorageFull):
		ae := &APIError{Status: http.StatusInsufficientStorage, Code: "export_storage_full",
			Message: fmt.Sprintf("insufficient storage: the finished exports kept on this server take %s, its limit; retry when older downloads have expired, or page with limit and offset", jobs.FormatBytes(s.cfg.Jobs.MaxKeptBytes()))}
		// Retry-After: when the janitor deletes the first kept file.
		if next, ok, _ := s.cfg.Jobs.NextExpiry(); ok {
			ae.RetryAfter = max(1, int(time.Until(next).Seconds())+1)
			ae.Message += "; the first download expires at " + next.UTC().Format(time.RFC3339)
		}
		return ae
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
	// Error says why the export or its delivery failed, or that an
	// erasure deleted the file.
	Error *JobError `json:"error"`
	// ExpiresAt is when the download link expires.
	ExpiresAt *time.Time `json:"expiresAt"`
	DeliverTo string     `json:"deliverTo"`
	// Delivery is pending, sending, sent (an SMTP server accepted the
	// message), written (only written to the outbox: DeliveryPath) or
	// failed, once the file is done.
	Delivery    jobs.DeliveryState `json:"delivery,omitempty"`
	DeliveredAt *time.Time         `json:"deliveredAt"`
	// DeliveryPath is the .eml file of a message written to the outbox.
	DeliveryPath *string `json:"deliveryPath"`
}

// JobError is why a job failed, its delivery failed, or its file is gone:
// a code a client can act on (jobs.Code* or a parameter error's code) and
// a message for a person. Neither ever holds SQL or a path.
type JobError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// jobErrorCode is the code of a job's error; jobs stored before codes
// existed carry a message alone.
func jobErrorCode(j *jobs.Job) string {
	switch {
	case j.ErrorCode != "":
		return j.ErrorCode
	case j.Status == jobs.Erased:
		return jobs.CodeErased
	case j.Status == jobs.Failed:
		return jobs.CodeExportFailed
	}
	return jobs.CodeDeliveryFailed
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// viewOf renders a job for its owner. The download URL is a signed link
// (a path, like statusUrl), so it opens in a browser without a token.
func viewOf(r *jobs.Runner, j *jobs.Job, now time.Time) JobView {
	v := JobView{ID: j.ID, Status: j.Status, Format: j.Format, Rows: j.Rows, CreatedAt: j.CreatedAt,
		FinishedAt: timePtr(j.FinishedAt), ExpiresAt: timePtr(j.ExpiresAt), DeliverTo: j.Email,
		Delivery: j.Delivery, DeliveredAt: timePtr(j.DeliveredAt)}
	if j.Status == jobs.Done && !j.Expired && now.Before(j.ExpiresAt) {
		u := JobPaths{}.Download(r.DownloadLink(j))
		v.DownloadURL = &u
	}
	if j.Error != "" {
		v.Error = &JobError{Code: jobErrorCode(j), Message: j.Error}
	}
	if j.DeliveryPath != "" {
		p := j.DeliveryPath
		v.DeliveryPath = &p
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
	return c.JSON(http.StatusOK, viewOf(runner, job, time.Now()))
}

// handleJobList answers GET /api/mind/export/jobs: the caller's own jobs,
// newest first, as job statuses; limit (1..jobs.MaxList, default 100)
// bounds the answer and X-Total-Count says how many there are in all.
func (s *Server) handleJobList(c echo.Context) error {
	// strictQuery has refused any other parameter.
	limit := defaultJobList
	if vals, ok := c.QueryParams()[paramLimit]; ok {
		n, err := strconv.Atoi(vals[0])
		if len(vals) != 1 || err != nil || n < 1 || n > jobs.MaxList {
			return &APIError{Status: http.StatusBadRequest, Code: "invalid_parameter", Param: paramLimit,
				Message: fmt.Sprintf("limit must be one integer from 1 to %d", jobs.MaxList)}
		}
		limit = n
	}
	out := []JobView{}
	if s.cfg.Jobs == nil {
		c.Response().Header().Set("X-Total-Count", "0")
		return c.JSON(http.StatusOK, out)
	}
	list, total, err := s.cfg.Jobs.List(claimsOf(c).Subject, limit)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, j := range list {
		out = append(out, viewOf(s.cfg.Jobs, j, now))
	}
	c.Response().Header().Set("X-Total-Count", strconv.Itoa(total))
	return c.JSON(http.StatusOK, out)
}

// handleJobFileRoute serves a job's file either by a signed link (expires
// and sig present: no token needed, SPEC §5) or to its owner with a bearer
// token.
func (s *Server) handleJobFileRoute(c echo.Context) error {
	q := c.QueryParams()
	if q.Has(linkSigParam) || q.Has(linkExpiresParam) {
		return s.handleSignedJobFile(c)
	}
	return s.authenticate(s.handleJobFile)(c)
}

// handleSignedJobFile checks a signed link: 403 when its job, expiry or
// signature was altered, 410 once it expired.
func (s *Server) handleSignedJobFile(c echo.Context) error {
	runner, err := s.jobsOrNotFound()
	if err != nil {
		return err
	}
	q := c.QueryParams()
	exp, perr := strconv.ParseInt(q.Get(linkExpiresParam), 10, 64)
	if perr != nil || len(q[linkExpiresParam]) != 1 || len(q[linkSigParam]) != 1 {
		return badLink()
	}
	job, path, err := runner.OpenLink(jobs.Link{ID: c.Param("id"), Expires: exp, Sig: q.Get(linkSigParam)})
	switch {
	case errors.Is(err, jobs.ErrBadSignature):
		return badLink()
	case errors.Is(err, jobs.ErrExpired) && job == nil:
		// The link itself expired (the job was not even looked up).
		return newAPIError(http.StatusGone, "gone", "the download link expired at %s; request the export again", time.Unix(exp, 0).UTC().Format(time.RFC3339))
	}
	if job != nil {
		c.Set("sub", job.Owner) // the request log names whose file went out
	}
	if err := s.checkJobFileErr(job, err); err != nil {
		return err
	}
	// A link carries no token: the level in force is the server's, with the
	// permissions the job was made with.
	now, err := privacy.NewPolicy(s.cfg.PrivacyLevel, job.Permissions, s.cfg.PseudonymKey)
	if err != nil {
		return fmt.Errorf("server policy: %w", err)
	}
	if err := s.checkCovers(now, job); err != nil {
		return err
	}
	return serveJobFile(c, job, path)
}

// badLink is the one answer for any altered or malformed signed link.
func badLink() *APIError {
	return newAPIError(http.StatusForbidden, "invalid_link", "the download link is not valid: its job, expiry or signature was altered; use the link exactly as it was sent")
}

func (s *Server) handleJobFile(c echo.Context) error {
	runner, err := s.jobsOrNotFound()
	if err != nil {
		return err
	}
	cl := claimsOf(c)
	job, path, err := runner.FilePath(c.Param("id"), cl.Subject)
	if err := s.checkJobFileErr(job, err); err != nil {
		return err
	}
	now, err := s.policyFor(cl)
	if err != nil {
		return err
	}
	if err := s.checkCovers(now, job); err != nil {
		return err
	}
	return serveJobFile(c, job, path)
}

// checkCovers serves a job's file only at the level in force now (SPEC §6):
// a caller whose token lost permissions or gained a stricter level since
// the job was made, or a server whose level was raised, must not get the
// wider file.
func (s *Server) checkCovers(now *privacy.Policy, job *jobs.Job) error {
	made, err := privacy.NewPolicy(job.Level, job.Permissions, s.cfg.PseudonymKey)
	if err != nil {
		return fmt.Errorf("job policy: %w", err)
	}
	if !now.Covers(made) {
		return newAPIError(http.StatusForbidden, "forbidden",
			"the file was made at privacy level %s with permissions your token no longer carries, or the level in force is now stricter (%s); request the export again",
			job.Level, now.Level())
	}
	return nil
}

// checkJobFileErr maps the errors of FilePath and OpenLink to answers.
func (s *Server) checkJobFileErr(job *jobs.Job, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jobs.ErrNotFound):
		return jobNotFound()
	case errors.Is(err, jobs.ErrErased):
		return newAPIError(http.StatusGone, "erased", "the file was deleted by an erasure of personal data; request the export again")
	case errors.Is(err, jobs.ErrExpired):
		return newAPIError(http.StatusGone, "gone", "the download link expired at %s; request the export again", job.ExpiresAt.UTC().Format(time.RFC3339))
	case errors.Is(err, jobs.ErrNotReady) && job.Status == jobs.Failed:
		return newAPIError(http.StatusConflict, "job_failed", "the export failed (%s), there is no file: %s", jobErrorCode(job), job.Error)
	case errors.Is(err, jobs.ErrNotReady):
		return newAPIError(http.StatusConflict, "not_ready", "the export is %s; the file is ready when its status is done", job.Status)
	}
	return fmt.Errorf("job file: %w", err)
}

// serveJobFile sends a finished job's file.
func serveJobFile(c echo.Context, job *jobs.Job, path string) error {
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
	// A signed link is a capability: keep it and the file out of shared caches.
	h.Set(echo.HeaderCacheControl, "private, no-store")
	h.Set("Referrer-Policy", "no-referrer")
	http.ServeContent(c.Response(), c.Request(), "", job.FinishedAt, f)
	return nil
}
