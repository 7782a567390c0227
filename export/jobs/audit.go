package jobs

import (
	"errors"
	"net/url"

	"worklog/internal/audit"
	"worklog/query"
)

// audit appends the trail's line for one export run of job.
func (j *Runner) audit(job *Job, rows int64, err error) error {
	if j.cfg.Audit == nil {
		return nil
	}
	params, _ := url.ParseQuery(job.Query)
	e := audit.Entry{Sub: job.Owner, Action: audit.ActionJobExport, Level: string(job.Level),
		Params: audit.Params(params), Rows: rows, Outcome: audit.OutcomeOK, Job: job.ID}
	if err != nil {
		// The failure's code, as the job's status shows it
		// (insufficient_storage, export_storage_full, timeout, ...).
		code, _ := j.failure(job, err)
		e.Outcome, e.Error = audit.OutcomeFailed, code
		var pe *query.ParamError
		if errors.As(err, &pe) {
			e.Outcome, e.Error = audit.OutcomeInvalid, pe.Code
		}
	}
	if err := j.cfg.Audit.Append(e); err != nil {
		j.log.Error("audit log write failed", "job", job.ID, "err", err)
		return err
	}
	return nil
}
