package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"worklog/data"
	"worklog/export"
	"worklog/export/jobs"
	"worklog/privacy"
	"worklog/query"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Operational routes; they need no token (SPEC §7).
const (
	HealthzPath = "/healthz"
	ReadyzPath  = "/readyz"
	MetricsPath = "/metrics"
)

// Defaults of the operational limits (Config fields left zero).
const (
	DefaultMaxSyncExports = 4
	DefaultExportTimeout  = 5 * time.Minute
	DefaultMaxQueryBytes  = 64 << 10
	DefaultMaxIngestBytes = 1 << 30
)

// Defaults of the synchronous limits (SPEC §4): the largest exports without
// limit answered at once rather than as a background job. The flags of
// `worklog serve` and the OpenAPI text read them.
const (
	DefaultSyncLimitXLSX = 1000
	DefaultSyncLimitRows = 300000
)

// Metrics are the server's Prometheus collectors. They live on their own
// registry, not the global one, so two servers in one process (tests) do not
// collide and nothing a library registers globally is exposed by accident.
// The background-jobs code reports through Jobs.
type Metrics struct {
	// Registry is what /metrics exposes.
	Registry *prometheus.Registry
	// Requests counts requests by route template, method and status.
	Requests *prometheus.CounterVec
	// Latency observes request durations by route template and method.
	Latency *prometheus.HistogramVec
	// RowsExported counts the rows of synchronous exports by path
	// (PathSync) and format; the rows of background jobs appear in the same
	// metric with path="job", read from the job runner at scrape time.
	RowsExported *prometheus.CounterVec
	// IngestedEvents counts events of HTTP ingests by result: new, updated,
	// unchanged, rejected.
	IngestedEvents *prometheus.CounterVec
	// Jobs is the number of background jobs by state (jobs.Statuses); the jobs
	// engine sets it, e.g. Jobs.WithLabelValues("queued").Set(n).
	Jobs *prometheus.GaugeVec
	// QueryDuration observes DuckDB query time by operation: count (the
	// X-Total-Count query) and export (the rows, until the last batch).
	QueryDuration *prometheus.HistogramVec
	// SyncExports is the number of synchronous exports running now.
	SyncExports prometheus.Gauge
	// Pages is the number of pages (requests with limit) served now.
	Pages prometheus.Gauge
	// KeptExportBytes is the bytes of finished background exports (and
	// outbox messages) kept on disk, against --max-export-bytes; the job
	// runner counts them at scrape time.
	KeptExportBytes prometheus.Gauge
	// UserShareRefused counts requests refused because their user already
	// had its share of a pool in flight, by pool (exports, queries).
	UserShareRefused *prometheus.CounterVec
	// StalledClients counts responses cut because the client accepted no
	// bytes for Config.WriteStallTimeout.
	StalledClients prometheus.Counter
	// Connections is the number of open connections (LimitListener), and
	// RefusedConnections counts those refused beyond its limit.
	Connections        prometheus.Gauge
	RefusedConnections prometheus.Counter
	// IngestBodies is the number of HTTP ingest bodies being received.
	IngestBodies prometheus.Gauge
	// RetentionRuns counts the retention runs of serve by outcome (ok,
	// failed); RetentionDeleted counts the events they deleted.
	RetentionRuns    *prometheus.CounterVec
	RetentionDeleted prometheus.Counter

	// jobRowsSeen is the runner's row count already added to RowsExported.
	jobRowsMu   sync.Mutex
	jobRowsSeen map[export.Format]int64
}

// The values of the path label of worklog_export_rows_total. A command-line
// export ('worklog export', path cli) runs in a process of its own without
// /metrics; it reports its rows in its own output.
const (
	PathSync = "sync"
	PathJob  = "job"
)

const (
	rowsExportedName = "worklog_export_rows_total"
	rowsExportedHelp = "Rows exported by path (sync: answered in the request; job: background export) and format."
)

// addJobRows brings the path="job" series of worklog_export_rows_total up
// to the runner's own count, at scrape time: the runner counts the rows its
// jobs write, and nothing has to be wired between it and the metrics (the
// runner is opened before the server and knows nothing of Prometheus).
func (m *Metrics) addJobRows(r *jobs.Runner) {
	m.jobRowsMu.Lock()
	defer m.jobRowsMu.Unlock()
	if m.jobRowsSeen == nil {
		m.jobRowsSeen = map[export.Format]int64{}
	}
	for _, f := range export.Formats() {
		n := r.RowsWritten(f)
		if d := n - m.jobRowsSeen[f]; d > 0 {
			m.RowsExported.WithLabelValues(string(f), PathJob).Add(float64(d))
			m.jobRowsSeen[f] = n
		}
	}
}

// NewMetrics creates the collectors on a fresh registry, with Go runtime and
// process collectors beside them.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "worklog_http_requests_total", Help: "HTTP requests by route template, method and status.",
		}, []string{"route", "method", "status"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "worklog_http_request_duration_seconds", Help: "HTTP request duration by route template and method, until the last byte.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"route", "method"}),
		RowsExported: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: rowsExportedName, Help: rowsExportedHelp,
		}, []string{"format", "path"}),
		IngestedEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "worklog_ingest_events_total", Help: "Events of HTTP ingests by result (new, updated, unchanged, rejected).",
		}, []string{"result"}),
		Jobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "worklog_export_jobs", Help: "Background export jobs by state.",
		}, []string{"state"}),
		QueryDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "worklog_duckdb_query_duration_seconds", Help: "DuckDB query time by operation (count, export).",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"op"}),
		SyncExports: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "worklog_sync_exports_running", Help: "Synchronous exports running now.",
		}),
		Pages: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "worklog_pages_running", Help: "Pages (requests with limit) being served now.",
		}),
		KeptExportBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "worklog_export_kept_bytes", Help: "Bytes of finished background exports and outbox messages kept on disk (bounded by --max-export-bytes).",
		}),
		UserShareRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "worklog_user_share_refused_total", Help: "Requests answered 429 because their user already had its share of a pool (exports: --exports-per-user; queries: --queries-per-user) in flight.",
		}, []string{"pool"}),
		StalledClients: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "worklog_http_stalled_clients_total", Help: "Responses cut because the client accepted no bytes for --write-stall-timeout.",
		}),
		IngestBodies: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "worklog_ingest_bodies_receiving", Help: "HTTP ingest bodies being received (before the ingest waits for the store).",
		}),
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "worklog_http_connections", Help: "Open HTTP connections.",
		}),
		RefusedConnections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "worklog_http_connections_refused_total", Help: "Connections refused (503) beyond --max-connections.",
		}),
		RetentionRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "worklog_retention_runs_total", Help: "Retention runs (--retention-days) by outcome (ok, failed).",
		}, []string{"outcome"}),
		RetentionDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "worklog_retention_deleted_events_total", Help: "Events deleted by retention runs.",
		}),
	}
	for _, f := range export.Formats() {
		for _, p := range []string{PathSync, PathJob} {
			m.RowsExported.WithLabelValues(string(f), p) // present at 0 before the first export
		}
	}
	for _, s := range jobs.Statuses() {
		m.Jobs.WithLabelValues(string(s)) // present at 0 before the first job
	}
	for _, p := range []string{poolExports, poolQueries} {
		m.UserShareRefused.WithLabelValues(p)
	}
	m.Registry.MustRegister(m.Requests, m.Latency, m.RowsExported, m.IngestedEvents, m.Jobs, m.QueryDuration, m.SyncExports, m.Pages, m.KeptExportBytes, m.UserShareRefused, m.StalledClients, m.Connections, m.RefusedConnections, m.IngestBodies,
		m.RetentionRuns, m.RetentionDeleted,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// registerOps adds the routes that need no token.
func (s *Server) registerOps(e *echo.Echo) {
	e.GET(HealthzPath, s.handleHealthz)
	e.GET(ReadyzPath, s.handleReadyz)
	metrics := promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{})
	e.GET(MetricsPath, func(c echo.Context) error {
		s.refreshJobGauge()
		metrics.ServeHTTP(c.Response(), c.Request())
		return nil
	})
}

// refreshJobGauge sets the jobs gauge from the job store at scrape time, so
// it is right after restarts and never drifts from the persisted states,
// and adds the rows the jobs wrote since the last scrape.
func (s *Server) refreshJobGauge() {
	if s.cfg.Jobs == nil {
		return
	}
	s.metrics.addJobRows(s.cfg.Jobs)
	counts, err := s.cfg.Jobs.CountByState()
	if err != nil {
		s.log.Error("count jobs for metrics", "err", err)
		return
	}
	for _, st := range jobs.Statuses() {
		s.metrics.Jobs.WithLabelValues(string(st)).Set(float64(counts[st]))
	}
	kept, err := s.cfg.Jobs.KeptBytes()
	if err != nil {
		s.log.Error("count kept exports for metrics", "err", err)
		return
	}
	s.metrics.KeptExportBytes.Set(float64(kept))
}

// handleHealthz answers 200 while the process serves HTTP at all.
func (s *Server) handleHealthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyTimeout bounds the readiness probe's DuckDB round trip.
const readyTimeout = 5 * time.Second

// handleReadyz answers 200 when the store's manifest is readable, DuckDB
// answers a query and the shared database (if any) answers, 503 otherwise. The probe counts the rows of an empty
// snapshot: a real DuckDB statement that reads no file, so it stays cheap
// however large the store is.
func (s *Server) handleReadyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), readyTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		s.log.Warn("not ready", "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "err", err)
		msg := "the store, the query engine or the shared database is not available"
		var de *data.DamagedPartError
		if errors.As(err, &de) {
			msg = de.Error()
		}
		return &APIError{Status: http.StatusServiceUnavailable, Code: "not_ready", Message: msg}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// ready checks the store and DuckDB.
func (s *Server) ready(ctx context.Context) error {
	snap, err := s.engine.Snapshot()
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	// Every listed file's footer must be readable: a damaged part fails
	// every unfiltered request, so the service is not ready.
	if err := data.CheckParts(snap.Files); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	plan, err := query.Parse(nil, query.Options{})
	if err != nil {
		return fmt.Errorf("probe plan: %w", err)
	}
	if _, err := s.engine.Count(ctx, data.Snapshot{}, plan); err != nil {
		return fmt.Errorf("duckdb: %w", err)
	}
	if s.cfg.ReadyCheck != nil {
		if err := s.cfg.ReadyCheck(ctx); err != nil {
			return fmt.Errorf("database: %w", err)
		}
	}
	return nil
}

// observe records the metrics of every request, including the ones whose
// handler aborts a started stream by panicking with http.ErrAbortHandler.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		start := time.Now()
		defer func() {
			route := s.routeOf(c)
			status := strconv.Itoa(c.Response().Status)
			if p := recover(); p != nil {
				status = "aborted"
				defer panic(p)
			}
			method := methodLabel(c.Request().Method)
			s.metrics.Requests.WithLabelValues(route, method, status).Inc()
			s.metrics.Latency.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
		}()
		err = next(c)
		if err != nil {
			// Write the error response here, so that the status is known.
			c.Error(err)
		}
		return nil
	}
}

// limitQuery refuses query strings longer than the configured bound before
// any parsing (414 URI Too Long), and query strings that do not parse
// (400, see checkQuery).
func (s *Server) limitQuery(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if n := len(c.Request().URL.RawQuery); n > s.cfg.MaxQueryBytes {
			return &APIError{Status: http.StatusRequestURITooLong, Code: "query_too_long",
				Message: fmt.Sprintf("the query string has %d bytes; at most %d are accepted", n, s.cfg.MaxQueryBytes)}
		}
		if err := checkQuery(c.Request().URL.RawQuery); err != nil {
			return err
		}
		return next(c)
	}
}

// errTimeout is the cause of a synchronous export's context when
// Config.ExportTimeout passes.
var errTimeout = errors.New("export time limit reached")

// limitExport runs a synchronous export within the limits: at most
// Config.MaxSyncExports at once (429 with Retry-After beyond; pages take a
// slot of their own pool, Config.MaxPages, see takePage), and at most
// Config.ExportTimeout long. The deadline is on the request's context, which
// the query engine hands to DuckDB: when it passes, or when the client goes
// away (net/http cancels the context), DuckDB interrupts the query.
func (s *Server) limitExport(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		// A page (limit present: at most 1,000 rows) is not an export and
		// takes no export slot, so that clients keep paging while exports
		// run; pages have their own, larger pool.
		if c.QueryParams().Has("limit") {
			mine, err := s.takeShare(c, s.userQueries, "pages and analytics queries", 1)
			if err != nil {
				return err
			}
			defer mine()
			release, err := s.takePage(c)
			if err != nil {
				return err
			}
			defer release()
		} else {
			mine, err := s.takeShare(c, s.userExports, "synchronous exports", exportRetryAfter)
			if err != nil {
				return err
			}
			defer mine()
			select {
			case s.exportSlots <- struct{}{}:
			default:
				return &APIError{Status: http.StatusTooManyRequests, Code: "too_many_requests",
					Message:    fmt.Sprintf("%d exports are running, the most this server answers at once; retry shortly", cap(s.exportSlots)),
					RetryAfter: exportRetryAfter}
			}
			s.metrics.SyncExports.Inc()
			defer func() {
				s.metrics.SyncExports.Dec()
				<-s.exportSlots
			}()
		}
		ctx, cancel := context.WithTimeoutCause(c.Request().Context(), s.cfg.ExportTimeout, errTimeout)
		defer cancel()
		c.SetRequest(c.Request().WithContext(ctx))
		err := next(c)
		if err != nil && errors.Is(context.Cause(ctx), errTimeout) && !c.Response().Committed {
			return &APIError{Status: http.StatusServiceUnavailable, Code: "timeout",
				Message: fmt.Sprintf("the export did not finish within %s: narrow the filters or page with limit and offset", s.cfg.ExportTimeout)}
		}
		return err
	}
}

// exportRetryAfter is the Retry-After of a 429, in seconds.
const exportRetryAfter = 5

// withOpsDefaults fills the operational settings left zero.
func withOpsDefaults(cfg Config) Config {
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.MaxSyncExports <= 0 {
		cfg.MaxSyncExports = DefaultMaxSyncExports
	}
	if cfg.ExportTimeout <= 0 {
		cfg.ExportTimeout = DefaultExportTimeout
	}
	if cfg.MaxQueryBytes <= 0 {
		cfg.MaxQueryBytes = DefaultMaxQueryBytes
	}
	if cfg.MaxIngestBytes <= 0 {
		cfg.MaxIngestBytes = DefaultMaxIngestBytes
	}
	if cfg.WriteStallTimeout <= 0 {
		cfg.WriteStallTimeout = DefaultWriteStallTimeout
	}
	if cfg.MaxPages <= 0 {
		cfg.MaxPages = DefaultMaxPages
	}
	if cfg.PageQueueWait <= 0 {
		cfg.PageQueueWait = DefaultPageQueueWait
	}
	if cfg.ReadStallTimeout <= 0 {
		cfg.ReadStallTimeout = DefaultReadStallTimeout
	}
	if cfg.MaxIngests <= 0 {
		cfg.MaxIngests = DefaultMaxIngests
	}
	if cfg.ExportsPerUser <= 0 {
		cfg.ExportsPerUser = DefaultExportsPerUser
	}
	if cfg.QueriesPerUser <= 0 {
		cfg.QueriesPerUser = DefaultQueriesPerUser
	}
	return cfg
}

// planOptions are the query options of a request: the policy's field rules,
// the format to use when the request names none, the server's bounds on
// filters and its cursor key.
func (s *Server) planOptions(pol *privacy.Policy, defaultFormat export.Format) query.Options {
	opts := export.PlanOptions(pol, defaultFormat)
	opts.MaxFilters, opts.MaxValues = s.cfg.MaxFilters, s.cfg.MaxValues
	opts.CursorKey = s.cfg.CursorKey
	return opts
}

// indexRoutes records the registered route templates, the only values the
// route label of the request metrics takes.
func (s *Server) indexRoutes() {
	s.routes = map[string]bool{}
	for _, r := range s.echo.Routes() {
		s.routes[r.Path] = true
	}
}

// Routes lists the registered routes (method and path template), for the
// OpenAPI coverage test and for operators.
func (s *Server) Routes() []*echo.Route { return s.echo.Routes() }

// routeOf is the route template a request matched, or "unmatched": the
// value logs and metrics show instead of the path, which is unbounded and
// may hold personal data.
func (s *Server) routeOf(c echo.Context) string {
	if r := c.Path(); s.routes[r] {
		return r
	}
	return "unmatched"
}
