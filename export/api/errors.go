package api

import (
	"errors"
	"fmt"
	"net/http"

	"worklog/data"
	"worklog/export/api/auth"
	"worklog/ingest"
	"worklog/internal/fsutil"
	"worklog/query"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/labstack/echo/v4"
)

// APIError is the JSON error every endpoint answers with:
// {"error":{"code":"…","message":"…","param":"…"}}.
type APIError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
	// RetryAfter, when positive, is sent as the Retry-After header (seconds).
	RetryAfter int `json:"-"`
}

func (e *APIError) Error() string {
	if e.Param != "" {
		return fmt.Sprintf("%s: %s", e.Param, e.Message)
	}
	return e.Message
}

func newAPIError(status int, code, format string, args ...any) *APIError {
	return &APIError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// toAPIError maps an error to what the client sees. This is the one place
// that turns sentinels and typed errors into HTTP statuses; anything unknown
// becomes a 500 whose message leaks no internals.
func toAPIError(err error) *APIError {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae
	}
	var pe *query.ParamError
	if errors.As(err, &pe) {
		return &APIError{Status: http.StatusBadRequest, Code: pe.Code, Message: pe.Message, Param: pe.Param}
	}
	if errors.Is(err, query.ErrTooManyAgents) {
		return &APIError{Status: http.StatusRequestEntityTooLarge, Code: "too_many_agents",
			Message: fmt.Sprintf("grouping by name would order more than %d agents; filter the events further", query.MaxAgentLabels), Param: "groupBy"}
	}
	var de *data.DamagedPartError
	if errors.As(err, &de) {
		// The store's own fault, named so that an operator can restore
		// the file; the message holds no query and no absolute path.
		return newAPIError(http.StatusInternalServerError, "store_damaged", "%s", de.Error())
	}
	var le *ingest.LimitError
	if errors.As(err, &le) {
		return newAPIError(http.StatusRequestEntityTooLarge, "too_large", "%s; nothing was committed (server setting %s)",
			le.Error(), le.Setting("--max-record-bytes", "--max-decompressed-bytes"))
	}
	var dde *duckdb.Error
	if errors.As(err, &dde) && dde.Type == duckdb.ErrorTypeOutOfMemory {
		// Load, not a fault: DuckDB's memory limit is shared by the
		// queries running at once.
		return &APIError{Status: http.StatusServiceUnavailable, Code: "busy",
			Message: "the server is answering too many queries to take this one now; retry shortly", RetryAfter: exportRetryAfter}
	}
	if fsutil.IsNoSpace(err) {
		// A Go write's ENOSPC, or DuckDB's "No space left on device",
		// which carries no errno.
		return newAPIError(http.StatusInsufficientStorage, "insufficient_storage", "insufficient storage: the server's disk is full; nothing was committed")
	}
	if errors.Is(err, auth.ErrUnauthorized) {
		if auth.ReasonOf(err) == auth.ReasonExpired {
			// Saying so is safe (the client holds the token and its exp)
			// and tells the user what to do.
			return newAPIError(http.StatusUnauthorized, "unauthorized", "token expired: get a new token")
		}
		return newAPIError(http.StatusUnauthorized, "unauthorized", "missing or invalid bearer token")
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg := http.StatusText(he.Code)
		if s, ok := he.Message.(string); ok && he.Code < 500 {
			msg = s
		}
		return &APIError{Status: he.Code, Code: codeForStatus(he.Code), Message: msg}
	}
	return newAPIError(http.StatusInternalServerError, "internal", "internal server error")
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusTooManyRequests:
		return "too_many_requests"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	}
	if status >= 500 {
		return "internal"
	}
	return "bad_request"
}
