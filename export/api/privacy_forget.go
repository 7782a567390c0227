package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"worklog/export/api/auth"
	"worklog/ingest"

	"github.com/labstack/echo/v4"
)

// ForgetPath is the erasure endpoint (SPEC §12).
const ForgetPath = APIBase + "/privacy/forget"

// maxForgetBody bounds the JSON body of a forget request; it holds two keys.
const maxForgetBody = 4 << 10

// ForgetRequest is the body of POST /api/mind/privacy/forget.
type ForgetRequest struct {
	// UserID is the userId whose identity (anonymize) or events (delete)
	// are erased.
	UserID *int64 `json:"userId"`
	// Mode is anonymize (default) or delete.
	Mode string `json:"mode"`
}

// ForgetSummary is the answer of a forget: {"events":N,"months":M}.
type ForgetSummary struct {
	// Events counts the events anonymized or deleted.
	Events int64 `json:"events"`
	// Months counts the months rewritten.
	Months int `json:"months"`
}

// handleForget erases one user from the store as one transaction, like an
// ingest (ingest.Forget), then has the job runner erase the export files and
// outbox messages made before it. It waits for the store's write lock as
// long as the client waits; nothing is committed if the client goes away
// first.
func (s *Server) handleForget(c echo.Context) error {
	if !claimsOf(c).Has(auth.PermErase) {
		return newAPIError(http.StatusForbidden, "forbidden", "the token lacks permission %s", auth.PermErase)
	}
	req, err := parseForget(c.Request())
	if req.UserID != nil {
		setAuditParams(c, map[string][]string{"userId": {strconv.FormatInt(*req.UserID, 10)}, "mode": {req.Mode}})
	}
	if err != nil {
		return err
	}
	mode, _ := ingest.ParseForgetMode(req.Mode)
	ch, err := ingest.Forget(c.Request().Context(), s.cfg.Store, *req.UserID, mode, ingest.LifecycleOptions{})
	setAuditRows(c, ch.Events)
	// A committed erasure (CommittedAt set, even with an error about its
	// durability) makes older export files stale: erase them regardless.
	if !ch.CommittedAt.IsZero() && ch.Events > 0 && s.cfg.Jobs != nil {
		erased, eerr := s.cfg.Jobs.EraseBefore(ch.CommittedAt)
		if eerr != nil {
			return fmt.Errorf("forget: erase export files: %w", errors.Join(err, eerr))
		}
		s.log.Info("export files erased", "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "jobs", erased)
	}
	if err != nil {
		if c.Request().Context().Err() != nil {
			return fmt.Errorf("forget: %w", context.Cause(c.Request().Context()))
		}
		return fmt.Errorf("forget: %w", err)
	}
	s.log.Info("forget committed", "request_id", c.Response().Header().Get(echo.HeaderXRequestID),
		"mode", string(mode), "events", ch.Events, "months", ch.Months, "generation", ch.Snapshot.Generation)
	return c.JSON(http.StatusOK, ForgetSummary{Events: ch.Events, Months: ch.Months})
}

// parseForget reads and checks the JSON body. The mode is normalised to
// anonymize or delete. Errors name the offending key as param.
func parseForget(r *http.Request) (ForgetRequest, error) {
	var req ForgetRequest
	if mt, _, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType)); err != nil || mt != echo.MIMEApplicationJSON {
		return req, newAPIError(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxForgetBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return ForgetRequest{}, &APIError{Status: http.StatusBadRequest, Code: "invalid_parameter",
				Message: fmt.Sprintf("expected %s, got a JSON %s", map[string]string{"userId": "an integer", "mode": "a string"}[te.Field], te.Value), Param: te.Field}
		}
		return ForgetRequest{}, &APIError{Status: http.StatusBadRequest, Code: "invalid_body",
			Message: "the body must be a JSON object {\"userId\": ID, \"mode\": \"anonymize\"|\"delete\"}: " + err.Error()}
	}
	if dec.More() {
		return ForgetRequest{}, newAPIError(http.StatusBadRequest, "invalid_body", "the body must hold one JSON object")
	}
	if req.UserID == nil {
		return req, &APIError{Status: http.StatusBadRequest, Code: "invalid_parameter", Message: "userId is required", Param: "userId"}
	}
	mode, err := ingest.ParseForgetMode(req.Mode)
	if err != nil {
		return req, &APIError{Status: http.StatusBadRequest, Code: "invalid_parameter", Message: "want anonymize or delete, got " + strconv.Quote(req.Mode), Param: "mode"}
	}
	req.Mode = string(mode)
	return req, nil
}
