package api

import (
	"errors"
	"net/http"

	"worklog/internal/audit"

	"github.com/labstack/echo/v4"
)

// Context keys through which a handler tells the audit middleware what the
// line needs beyond the request itself.
const (
	auditRowsKey   = "audit.rows"
	auditLevelKey  = "audit.level"
	auditParamsKey = "audit.params"
)

// setAuditRows records the rows returned or changed by the request.
func setAuditRows(c echo.Context, n int64) { c.Set(auditRowsKey, n) }

// setAuditLevel records the privacy level a read ran at.
func setAuditLevel(c echo.Context, level string) { c.Set(auditLevelKey, level) }

// setAuditParams records parameters that are not in the query string (a
// JSON body's fields).
func setAuditParams(c echo.Context, p map[string][]string) { c.Set(auditParamsKey, p) }

// audited appends one line to the audit trail (SPEC §12) for every request
// of the route, refusals included, after the handler and before the answer
// completes: an error answer is written by observe after this returns, and
// a streamed body ends only when the handler chain has returned. It sits
// before authenticate, so requests without a valid token are recorded too
// (with an empty sub). When the line cannot be written the request fails:
// with a 500 if nothing was sent yet, else by breaking the connection, so
// that no answer completes without its line.
func (s *Server) audited(action string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			if s.cfg.Audit == nil {
				return next(c)
			}
			defer func() {
				p := recover()
				e := s.auditEntry(c, action, err, p != nil)
				if aerr := s.cfg.Audit.Append(e); aerr != nil {
					s.log.Error("audit log write failed", "request_id", e.RequestID, "err", aerr)
					if p == nil && !c.Response().Committed {
						err = errors.Join(aerr, err)
						return
					}
					p = http.ErrAbortHandler
				}
				if p != nil {
					panic(p)
				}
			}()
			return next(c)
		}
	}
}

// auditEntry builds the line of a finished request.
func (s *Server) auditEntry(c echo.Context, action string, err error, aborted bool) audit.Entry {
	e := audit.Entry{Action: action, RequestID: c.Response().Header().Get(echo.HeaderXRequestID)}
	if cl := claimsOf(c); cl != nil {
		e.Sub = cl.Subject
	}
	if lv, ok := c.Get(auditLevelKey).(string); ok {
		e.Level = lv
	}
	if n, ok := c.Get(auditRowsKey).(int64); ok {
		e.Rows = n
	}
	params := map[string][]string(c.QueryParams())
	if p, ok := c.Get(auditParamsKey).(map[string][]string); ok {
		params = p
	}
	e.Params = audit.Params(params)
	status := c.Response().Status
	if err != nil {
		ae := toAPIError(err)
		status, e.Error = ae.Status, ae.Code
	}
	e.Status = status
	switch {
	case aborted:
		e.Outcome, e.Error = audit.OutcomeFailed, "aborted"
	default:
		e.Outcome = outcomeOf(status)
	}
	return e
}

// outcomeOf classifies an HTTP status for the audit trail.
func outcomeOf(status int) string {
	switch {
	case status == http.StatusAccepted:
		return audit.OutcomeScheduled
	case status < 300:
		return audit.OutcomeOK
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return audit.OutcomeDenied
	case status == http.StatusRequestEntityTooLarge || status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		return audit.OutcomeRefused
	case status < 500:
		return audit.OutcomeInvalid
	}
	return audit.OutcomeFailed
}
