package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"worklog/export"
	"worklog/internal/audit"
	"worklog/privacy"
	"worklog/query"

	"github.com/labstack/echo/v4"
)

// AnalyticsPath is the analytics endpoint (SPEC §10).
const AnalyticsPath = APIBase + "/analytics/reporting_worklog"

// DefaultMaxAnalytics bounds the analytics queries running at once when
// Config.MaxAnalytics is zero.
const DefaultMaxAnalytics = 32

// registerAnalytics adds the analytics route.
func (s *Server) registerAnalytics(e *echo.Echo) {
	max := s.cfg.MaxAnalytics
	if max <= 0 {
		max = DefaultMaxAnalytics
	}
	s.analyticsSlots = make(chan struct{}, max)
	e.GET(AnalyticsPath, s.handleAnalytics, s.audited(audit.ActionAnalytics), s.authenticate, s.limitAnalytics)
	s.takesParams(AnalyticsPath, parsedByHandler...) // query.ParseAggregate is strict
}

// limitAnalytics runs an analytics query within the limits: at most
// Config.MaxAnalytics at once (429 with Retry-After beyond) and at most
// Config.ExportTimeout long (503), the deadline handed to DuckDB through
// the request's context.
func (s *Server) limitAnalytics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		mine, err := s.takeShare(c, s.userQueries, "pages and analytics queries", exportRetryAfter)
		if err != nil {
			return err
		}
		defer mine()
		select {
		case s.analyticsSlots <- struct{}{}:
		default:
			return &APIError{Status: http.StatusTooManyRequests, Code: "too_many_requests",
				Message:    fmt.Sprintf("%d analytics queries are running, the most this server answers at once; retry shortly", cap(s.analyticsSlots)),
				RetryAfter: exportRetryAfter}
		}
		defer func() { <-s.analyticsSlots }()
		ctx, cancel := context.WithTimeoutCause(c.Request().Context(), s.cfg.ExportTimeout, errTimeout)
		defer cancel()
		c.SetRequest(c.Request().WithContext(ctx))
		err = next(c)
		if err != nil && errors.Is(context.Cause(ctx), errTimeout) && !c.Response().Committed {
			return &APIError{Status: http.StatusServiceUnavailable, Code: "timeout",
				Message: fmt.Sprintf("the analytics query did not finish within %s: narrow the filters or group more coarsely", s.cfg.ExportTimeout)}
		}
		return err
	}
}

// aggregateOptions are the query options of an analytics request.
func (s *Server) aggregateOptions(pol *privacy.Policy, defaultFormat export.Format) query.AggregateOptions {
	opts := export.AggregateOptions(pol, defaultFormat, s.cfg.MinGroupAgents)
	opts.MaxFilters, opts.MaxValues = s.cfg.MaxFilters, s.cfg.MaxValues
	return opts
}

// handleAnalytics answers GET /api/mind/analytics/reporting_worklog: one
// page of groups, counted before the first byte (X-Total-Count,
// X-Suppressed-Groups), in the request's format.
func (s *Server) handleAnalytics(c echo.Context) error {
	ctx := c.Request().Context()
	pol, err := s.policyFor(claimsOf(c))
	if err != nil {
		return err
	}
	setAuditLevel(c, string(pol.Level()))
	params := c.QueryParams()
	defaultFormat := s.defaultFormatFor(c) // as for an export
	plan, err := query.ParseAggregate(params, s.aggregateOptions(pol, defaultFormat))
	if err != nil {
		return err
	}
	format, err := formatParam(plan.Format)
	if err != nil {
		return err
	}
	snap, err := s.engine.Acquire()
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer snap.Release()
	req := export.AggregateRequest{Engine: s.engine, Snapshot: snap, Plan: plan, Policy: pol, Format: format,
		Options: export.EncoderOptions{CSVFormulaGuard: s.cfg.CSVFormulaGuard, CSVBOM: s.cfg.CSVBOM}}
	start := time.Now()
	res, err := export.QueryAggregate(ctx, req)
	s.metrics.QueryDuration.WithLabelValues("analytics").Observe(time.Since(start).Seconds())
	if err != nil {
		return err
	}

	h := c.Response().Header()
	h.Set(echo.HeaderContentType, format.ContentType())
	h.Set("X-Total-Count", strconv.FormatInt(res.Total, 10))
	if plan.MinGroupAgents > 1 {
		h.Set("X-Suppressed-Groups", strconv.FormatInt(res.Suppressed, 10))
	}
	if format != export.FormatJSON {
		h.Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="reporting_worklog_analytics_%s.%s"`,
			time.Now().UTC().Format("20060102T150405Z"), format.Extension()))
	}
	h.Add(echo.HeaderVary, echo.HeaderAcceptEncoding)
	w, gz := bodyWriter(c)
	// The groups are in memory already; the status goes out with the first
	// byte, so an encoder error before it still answers a JSON error.
	rows, err := export.EncodeAggregate(ctx, req, res, w, nil)
	setAuditRows(c, rows)
	if err != nil && !c.Response().Committed {
		for _, k := range []string{echo.HeaderContentType, echo.HeaderContentDisposition, echo.HeaderContentEncoding, "X-Total-Count", "X-Suppressed-Groups"} {
			h.Del(k)
		}
		return err
	}
	if err == nil && gz != nil {
		err = gz.Close()
	}
	if err != nil {
		s.log.Error("analytics aborted mid-stream", "request_id", h.Get(echo.HeaderXRequestID), "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}
