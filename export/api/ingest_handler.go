package api

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"worklog/export/api/auth"
	"worklog/ingest"

	"github.com/labstack/echo/v4"
)

// IngestPath is the HTTP ingest endpoint.
const IngestPath = APIBase + "/ingest/reporting_worklog"

// ingestContentTypes are the media types the ingest accepts. The format
// itself is detected from the content, as in the CLI; the header only says
// that the client sends one of the formats.
var ingestContentTypes = []string{"application/x-ndjson", "application/json", "text/csv"}

// maxIngestErrors is how many record errors an ingest answer lists.
const maxIngestErrors = 10

// IngestSummary is the JSON answer of an ingest.
type IngestSummary struct {
	// New and Updated count the events committed.
	New     int64 `json:"new"`
	Updated int64 `json:"updated"`
	// Unchanged counts the events the store already held with the same
	// content (nothing to commit for them).
	Unchanged int64 `json:"unchanged"`
	// Rejected counts invalid records (skipped under onError=skip, fatal
	// under fail).
	Rejected int64 `json:"rejected"`
	// UnknownKeys counts distinct keys that are no worklog field (ignored).
	UnknownKeys int64 `json:"unknownKeys"`
	// Errors are the first invalid records (at most 10).
	Errors []IngestError `json:"errors"`
	// Error is set when nothing was committed because records are invalid.
	Error *APIError `json:"error,omitempty"`
}

// IngestError is one invalid record.
type IngestError struct {
	Line    int64  `json:"line"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// handleIngest runs the request body through ingest.Run, the CLI's path:
// same validation, same de-duplication, one atomic commit.
//
// A second ingest while one runs waits for the store's write lock (as long
// as its client waits: the request's context bounds the wait); exports are
// served meanwhile from the last committed snapshot.
func (s *Server) handleIngest(c echo.Context) error {
	if !claimsOf(c).Has(auth.PermIngest) {
		return newAPIError(http.StatusForbidden, "forbidden", "the token lacks permission %s", auth.PermIngest)
	}
	req := c.Request()
	if err := checkIngestHeaders(req.Header); err != nil {
		return err
	}
	onError := ingest.Fail
	if v := c.QueryParam(paramOnError); v != "" {
		var err error
		if onError, err = ingest.ParseOnError(v); err != nil {
			return &APIError{Status: http.StatusBadRequest, Code: "invalid_parameter", Message: "want fail or skip, got " + strconv.Quote(v), Param: paramOnError}
		}
	}
	limit := s.cfg.MaxIngestBytes
	if req.ContentLength > limit {
		return tooLarge(limit)
	}
	body, err := s.receiveBody(c, limit)
	if err != nil {
		return err
	}
	defer body.Close()

	// The first rejected records, typed: their position and cause, nothing
	// else of the record (it may hold rawData and e-mail addresses).
	rejected := []IngestError{}
	opts := ingest.Options{OnError: onError, MaxRecordBytes: s.cfg.MaxRecordBytes, MaxDecompressedBytes: s.cfg.MaxDecompressed,
		OnReject: func(e *ingest.RecordError) {
			if len(rejected) < maxIngestErrors {
				rejected = append(rejected, IngestError{Line: e.Line, Field: e.Field, Message: e.Cause()})
			}
		}}
	sum, err := ingest.Run(req.Context(), s.cfg.Store, []ingest.Input{{Name: "body", R: body}}, opts)
	out := IngestSummary{New: sum.New, Updated: sum.Updated, Unchanged: sum.Unchanged, Rejected: sum.Rejected, UnknownKeys: sum.UnknownKeys, Errors: rejected}
	s.metrics.IngestedEvents.WithLabelValues("rejected").Add(float64(sum.Rejected))
	setAuditRows(c, sum.Changed())
	var ve *ingest.ValidationError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ve):
		out.Rejected = ve.Count
		out.Error = &APIError{Status: http.StatusUnprocessableEntity, Code: "invalid_records", Message: fmt.Sprintf("%d invalid record(s), nothing committed", ve.Count)}
		return c.JSON(http.StatusUnprocessableEntity, out)
	case errors.As(err, &mbe):
		return tooLarge(limit)
	case err != nil && req.Context().Err() != nil:
		// The client went away: nothing was committed, nobody reads the answer.
		return fmt.Errorf("ingest: %w", context.Cause(req.Context()))
	case err != nil && isInputError(err):
		return &APIError{Status: http.StatusBadRequest, Code: "invalid_input", Message: err.Error()}
	case err != nil:
		return fmt.Errorf("ingest: %w", err)
	}
	s.metrics.IngestedEvents.WithLabelValues("new").Add(float64(sum.New))
	s.metrics.IngestedEvents.WithLabelValues("updated").Add(float64(sum.Updated))
	s.metrics.IngestedEvents.WithLabelValues("unchanged").Add(float64(sum.Unchanged))
	msg := "ingest committed"
	if sum.Changed() == 0 {
		msg = "ingest changed nothing, nothing committed"
	}
	s.log.Info(msg, "request_id", c.Response().Header().Get(echo.HeaderXRequestID),
		"new", sum.New, "updated", sum.Updated, "unchanged", sum.Unchanged, "rejected", sum.Rejected, "generation", sum.Snapshot.Generation)
	return c.JSON(http.StatusOK, out)
}

// checkIngestHeaders accepts the three formats and the encodings the
// reader detects (gzip, zstd); anything else is 415.
func checkIngestHeaders(h http.Header) error {
	mt, _, err := mime.ParseMediaType(h.Get(echo.HeaderContentType))
	ok := false
	for _, t := range ingestContentTypes {
		ok = ok || err == nil && mt == t
	}
	if !ok {
		return newAPIError(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"Content-Type must be one of %s", strings.Join(ingestContentTypes, ", "))
	}
	switch enc := strings.ToLower(strings.TrimSpace(h.Get(echo.HeaderContentEncoding))); enc {
	case "", "identity", "gzip", "x-gzip", "zstd":
	default:
		return newAPIError(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"Content-Encoding must be gzip or zstd (or none), got %q", enc)
	}
	return nil
}

func tooLarge(limit int64) *APIError {
	return newAPIError(http.StatusRequestEntityTooLarge, "too_large",
		"the body exceeds %d bytes (--max-ingest-bytes); nothing was committed: split the dump", limit)
}

// isInputError tells a broken dump (a client error) from a server failure.
func isInputError(err error) bool {
	var re *ingest.RecordError
	var ie *ingest.InputError
	return errors.As(err, &re) || errors.As(err, &ie)
}
