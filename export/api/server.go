// Package api is the HTTP API of worklog (SPEC §4, §5, §7, §8, §11): the
// Echo server, bearer-token authentication, the handlers for exports, jobs
// and ingest, the OpenAPI document, health and Prometheus metrics, and the
// web page (web.go, assets in web/).
//
// It is the only package that imports Echo. It turns requests into query
// plans, runs them through export's pipeline, hands large exports to jobs,
// and maps typed errors to statuses in one place (errors.go). Nothing below
// it (export, jobs, query, privacy, ingest, data) knows about HTTP.
package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"worklog/data"
	"worklog/export"
	"worklog/export/api/auth"
	"worklog/export/jobs"
	"worklog/internal/audit"
	"worklog/privacy"
	"worklog/query"

	"github.com/labstack/echo/v4"
)

// APIBase is the path prefix of the API.
const APIBase = "/api/mind"

// ExportPath is the export endpoint.
const ExportPath = APIBase + "/export/reporting_worklog"

// Config is everything the server needs; main.go builds it from flags.
type Config struct {
	// Verifier checks bearer tokens.
	Verifier *auth.Verifier
	// TempDir is where encoders spool (export.EncoderOptions.TempDir):
	// main passes its export.Spool under the data directory.
	TempDir string
	// PrivacyLevel is the server's reportingPrivacyLevel; tokens can only raise it.
	PrivacyLevel privacy.Level
	// PseudonymKey keys the name pseudonyms.
	PseudonymKey []byte
	// DefaultFormat is used when a request names none.
	DefaultFormat export.Format
	// SyncLimitXLSX and SyncLimitRows are the largest exports (no limit
	// parameter) answered synchronously, for XLSX and for every other
	// format (0: DefaultSyncLimitXLSX, DefaultSyncLimitRows).
	SyncLimitXLSX, SyncLimitRows int64
	// CursorKey seals the page cursors (X-Next-Cursor); main keeps it in the
	// data directory (export.LoadOrCreateCursorKey) so that cursors outlive
	// a restart. Nil: a random key for this process only.
	CursorKey []byte
	// CSVFormulaGuard prefixes CSV strings that a spreadsheet would run as a formula.
	CSVFormulaGuard bool
	// CSVBOM is the default of the bom parameter: start a CSV with a UTF-8
	// byte-order mark (for Excel on Windows). Off by default: RFC 4180.
	CSVBOM bool
	// Logger receives one line per request; nil discards.
	Logger *slog.Logger
	// Jobs runs the exports above the synchronous limits in the background;
	// it belongs to the caller. Nil refuses them with 503.
	Jobs *jobs.Runner

	// Store receives HTTP ingests and erasures; nil leaves the ingest and
	// forget routes unregistered.
	Store *data.Store
	// Audit receives one line per export, ingest and forget (SPEC §12);
	// nil keeps no trail.
	Audit *audit.Log
	// BodyDir is where received HTTP ingest bodies wait for the writer
	// lock; empty means <data>/tmp. The server removes every body in it at
	// start (a killed process's), so replicas that share a data directory
	// each pass their own.
	BodyDir string
	// ReadyCheck, when set, is one more condition of /readyz: main passes
	// the shared database's ping (--database-url), without which a replica
	// cannot write its audit lines or take the writer lock.
	ReadyCheck func(context.Context) error
	// Metrics are exposed on /metrics; nil creates a fresh set.
	Metrics *Metrics
	// MaxSyncExports bounds the synchronous exports running at once; one
	// more is answered 429 with Retry-After (0: DefaultMaxSyncExports).
	MaxSyncExports int
	// ExportTimeout bounds a synchronous export; past it the DuckDB query
	// is interrupted (0: DefaultExportTimeout).
	ExportTimeout time.Duration
	// MaxQueryBytes bounds the query string of every request; longer ones
	// are answered 414 (0: DefaultMaxQueryBytes).
	MaxQueryBytes int
	// MaxFilters and MaxValues bound the filters of a request and the
	// values[] of one filter (0: the query package's defaults).
	MaxFilters, MaxValues int
	// MaxIngestBytes bounds an ingest request body as sent (compressed);
	// larger bodies are answered 413 and nothing is committed
	// (0: DefaultMaxIngestBytes).
	MaxIngestBytes int64
	// MinGroupAgents, when > 1, leaves analytics groups of fewer distinct
	// agents out at the pseudonymizing levels and refuses grouping by agent
	// there (SPEC §10, --min-group-agents).
	MinGroupAgents int
	// MaxAnalytics bounds the analytics queries running at once; one more is
	// answered 429 with Retry-After (0: DefaultMaxAnalytics).
	MaxAnalytics int
	// DemoToken is handed to the web page on loopback (UIConfigPath); main
	// sets it only for 'serve --demo' listening on a loopback address.
	DemoToken string
	// MaxRecordBytes and MaxDecompressed bound one record of an ingest and
	// what a compressed ingest body expands to; beyond either the ingest
	// is answered 413 and nothing is committed (0: ingest's defaults).
	MaxRecordBytes, MaxDecompressed int64
	// WriteStallTimeout cuts a client that accepts no bytes of a response
	// for that long (0: DefaultWriteStallTimeout).
	WriteStallTimeout time.Duration
	// MaxPages bounds the pages (requests with limit) served at once; a
	// page waits up to PageQueueWait for a slot, then is answered 429
	// (0: DefaultMaxPages, DefaultPageQueueWait).
	MaxPages      int
	PageQueueWait time.Duration
	// ReadStallTimeout answers 408 to an ingest whose body sends no byte
	// for that long; MaxIngests bounds the HTTP ingests received or run at
	// once, 429 beyond (0: DefaultReadStallTimeout, DefaultMaxIngests).
	ReadStallTimeout time.Duration
	MaxIngests       int
	// ExportsPerUser bounds the synchronous exports one user (token sub)
	// runs at once, and QueriesPerUser the pages and analytics queries one
	// user has running or waiting at once; beyond either that user is
	// answered 429 while the others are still served (0:
	// DefaultExportsPerUser, DefaultQueriesPerUser).
	ExportsPerUser, QueriesPerUser int
}

// Server is the HTTP API.
type Server struct {
	cfg    Config
	engine *query.Engine
	echo   *echo.Echo
	log    *slog.Logger

	metrics     *Metrics
	exportSlots chan struct{} // one element per running synchronous export
	pageSlots   chan struct{} // one element per page being served
	ingestSlots chan struct{} // one element per HTTP ingest received or run
	// userExports and userQueries are each user's share of the export
	// pool and of the page and analytics pools (fair.go).
	userExports, userQueries *userShare
	routes                   map[string]bool
	// routeParams holds the query parameters of each route template (params.go).
	routeParams map[string][]string
	// analyticsSlots has one element per running analytics query.
	analyticsSlots chan struct{}

	// beforeExport, when set (tests, right after NewServer), runs in a
	// synchronous export after its slot is taken and the rows are counted,
	// just before the pipeline starts: a test holds an export there to
	// observe a full pool, a deadline or a client that went away, instead
	// of relying on a query being slow.
	beforeExport func(ctx context.Context)
	// stageFault, when set (tests, right after NewServer), is called
	// before each write of a received ingest body to <data>/tmp; an error
	// fails the write as a full disk would.
	stageFault func(p []byte) error
}

// NewServer builds the API over engine.
func NewServer(cfg Config, engine *query.Engine) (*Server, error) {
	if cfg.Verifier == nil {
		return nil, errors.New("server: a JWT secret or public key is required")
	}
	if _, err := privacy.NewPolicy(cfg.PrivacyLevel, nil, cfg.PseudonymKey); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if cfg.DefaultFormat == "" {
		cfg.DefaultFormat = "json"
	}
	if cfg.SyncLimitXLSX <= 0 {
		cfg.SyncLimitXLSX = DefaultSyncLimitXLSX
	}
	if cfg.SyncLimitRows <= 0 {
		cfg.SyncLimitRows = DefaultSyncLimitRows
	}
	if len(cfg.CursorKey) == 0 {
		cfg.CursorKey = make([]byte, 32)
		if _, err := rand.Read(cfg.CursorKey); err != nil {
			return nil, fmt.Errorf("server: cursor key: %w", err)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg = withOpsDefaults(cfg)
	s := &Server{cfg: cfg, engine: engine, log: log, metrics: cfg.Metrics, exportSlots: make(chan struct{}, cfg.MaxSyncExports),
		pageSlots: make(chan struct{}, cfg.MaxPages), ingestSlots: make(chan struct{}, cfg.MaxIngests),
		userExports: newUserShare(poolExports, cfg.ExportsPerUser), userQueries: newUserShare(poolQueries, cfg.QueriesPerUser)}
	if cfg.BodyDir == "" && cfg.Store != nil {
		cfg.BodyDir = filepath.Join(cfg.Store.DataDir(), "tmp")
	}
	s.cfg.BodyDir = cfg.BodyDir
	if cfg.BodyDir != "" {
		sweepBodies(cfg.BodyDir)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.JSONSerializer = plainJSON{}
	e.HTTPErrorHandler = s.handleError
	e.Use(s.cutStalled, s.requestLog, s.observe, s.limitQuery, s.strictQuery)
	e.GET(ExportPath, s.handleExport, s.audited(audit.ActionExport), s.authenticate, s.limitExport)
	s.takesParams(ExportPath, parsedByHandler...)
	s.registerJobRoutes(e)
	s.registerAnalytics(e)
	s.registerOps(e)
	if cfg.Store != nil {
		e.POST(IngestPath, s.handleIngest, s.audited(audit.ActionIngest), s.authenticate)
		s.takesParams(IngestPath, paramOnError)
		e.POST(ForgetPath, s.handleForget, s.audited(audit.ActionForget), s.authenticate)
	}
	e.GET(OpenAPIPath, s.handleOpenAPI)
	e.GET(CatalogPath, s.handleCatalog, s.authenticate)
	s.registerWeb(e)
	s.echo = e
	s.indexRoutes()
	return s, nil
}

// Handler is the server's http.Handler.
func (s *Server) Handler() http.Handler { return s.echo }

type ctxKey int

const claimsKey ctxKey = iota

// authenticate checks the bearer token and stores its claims in the context.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if len(c.Request().Header.Values(echo.HeaderAuthorization)) > 1 {
			// Two credentials: a proxy and the server could each read a
			// different one.
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="worklog", error="invalid_request"`)
			return newAPIError(http.StatusUnauthorized, "unauthorized", "more than one Authorization header")
		}
		tok, ok := auth.BearerToken(c.Request().Header.Get(echo.HeaderAuthorization))
		if !ok {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="worklog"`)
			c.Set(logAuthReason, auth.ReasonMissingToken)
			return newAPIError(http.StatusUnauthorized, "unauthorized", "missing bearer token")
		}
		claims, err := s.cfg.Verifier.Verify(tok)
		if err != nil {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="worklog", error="invalid_token"`)
			return err
		}
		c.Set("sub", claims.Subject)
		ctx := context.WithValue(c.Request().Context(), claimsKey, claims)
		c.SetRequest(c.Request().WithContext(ctx))
		return next(c)
	}
}

func claimsOf(c echo.Context) *auth.Claims {
	cl, _ := c.Request().Context().Value(claimsKey).(*auth.Claims)
	return cl
}

// policyFor returns the privacy policy of a request: the server's level,
// raised (never lowered) by the token's claim, and the token's permissions.
func (s *Server) policyFor(cl *auth.Claims) (*privacy.Policy, error) {
	level, err := privacy.Stricter(s.cfg.PrivacyLevel, cl.PrivacyLevel)
	if err != nil {
		return nil, &APIError{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "token claim reportingPrivacyLevel: " + err.Error()}
	}
	return privacy.NewPolicy(level, cl.Permissions, s.cfg.PseudonymKey)
}

// csvBOM is the bom parameter of plan, else the server's setting.
func (s *Server) csvBOM(plan *query.Plan) bool {
	if plan.BOM != nil {
		return *plan.BOM
	}
	return s.cfg.CSVBOM
}

// syncLimit is the largest export of format f answered synchronously.
func (s *Server) syncLimit(f export.Format) int64 {
	if f == "xlsx" {
		return s.cfg.SyncLimitXLSX
	}
	return s.cfg.SyncLimitRows
}

func (s *Server) handleExport(c echo.Context) error {
	ctx := c.Request().Context()
	cl := claimsOf(c)
	pol, err := s.policyFor(cl)
	if err != nil {
		return err
	}
	setAuditLevel(c, string(pol.Level()))
	params := c.QueryParams()
	defaultFormat := s.defaultFormatFor(c)
	plan, err := query.Parse(params, s.planOptions(pol, defaultFormat))
	if err != nil {
		return err
	}
	format, err := formatParam(plan.Format)
	if err != nil {
		return err
	}
	// Pinned: the stream may outlast any grace a commit gives replaced files.
	snap, err := s.engine.Acquire()
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer snap.Release()
	countStart := time.Now()
	total, err := s.engine.Count(ctx, snap, plan)
	s.metrics.QueryDuration.WithLabelValues("count").Observe(time.Since(countStart).Seconds())
	if err != nil {
		return fmt.Errorf("count: %w", err)
	}
	if plan.Limit == 0 && total > s.syncLimit(format) {
		setAuditRows(c, total)
		return s.scheduleExport(c, cl, pol, format, s.csvBOM(plan), total)
	}
	req := export.Request{Engine: s.engine, Snapshot: snap, Plan: plan, Policy: pol, Format: format,
		Options: export.EncoderOptions{CSVFormulaGuard: s.cfg.CSVFormulaGuard, CSVBOM: s.csvBOM(plan), TempDir: s.cfg.TempDir}}
	if s.beforeExport != nil {
		s.beforeExport(ctx)
	}
	if plan.Limit > 0 {
		return s.writePage(c, req, total)
	}

	h := c.Response().Header()
	setExportHeaders(h, format, total)
	w, gz := bodyWriter(c)
	// No explicit WriteHeader: the status goes out with the first byte, so
	// a query that fails before any row (DuckDB error, timeout) still gets a
	// proper JSON error instead of a 200 with a broken body.
	rc := http.NewResponseController(c.Response())
	cw := &countingWriter{w: w}
	w = cw
	flush := func() error {
		if cw.n == 0 {
			return nil // nothing encoded yet (XLSX, Parquet write later): keep the status open
		}
		if gz != nil {
			if err := gz.Flush(); err != nil {
				return err
			}
		}
		return rc.Flush()
	}
	runStart := time.Now()
	rows, err := export.Run(ctx, req, w, flush)
	s.metrics.QueryDuration.WithLabelValues("export").Observe(time.Since(runStart).Seconds())
	s.metrics.RowsExported.WithLabelValues(string(format), PathSync).Add(float64(rows))
	setAuditRows(c, rows)
	if err != nil && !c.Response().Committed {
		for _, k := range []string{echo.HeaderContentType, echo.HeaderContentDisposition, echo.HeaderContentEncoding, "X-Total-Count"} {
			h.Del(k)
		}
		return err
	}
	if err != nil {
		// The status is sent: the only honest signal left is to break the
		// connection, so the client cannot take a cut-off body for a whole one.
		s.log.Error("export aborted mid-stream", "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "err", err)
		panic(http.ErrAbortHandler)
	}
	if gz != nil {
		if err := gz.Close(); err != nil {
			panic(http.ErrAbortHandler)
		}
	}
	return nil
}

// setExportHeaders sets the headers every 200 of the export carries.
func setExportHeaders(h http.Header, format export.Format, total int64) {
	h.Set(echo.HeaderContentType, format.ContentType())
	h.Set("X-Total-Count", strconv.FormatInt(total, 10))
	if format.Attachment() {
		h.Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="reporting_worklog_%s.%s"`, time.Now().UTC().Format("20060102T150405Z"), format.Extension()))
	}
	h.Add(echo.HeaderVary, echo.HeaderAcceptEncoding)
}

// writePage answers a page (limit present). A page is at most
// query.MaxLimit rows, so it is encoded into memory first: its headers
// X-Next-Cursor and Link name the page's last row, which is known only once
// the page is read, and headers go before the body.
func (s *Server) writePage(c echo.Context, req export.Request, total int64) error {
	var (
		body      bytes.Buffer
		next      string
		cursorErr error
	)
	req.Next = func(last query.Position) {
		next, cursorErr = query.EncodeCursor(s.cfg.CursorKey, req.Plan, last)
	}
	runStart := time.Now()
	rows, err := export.Run(c.Request().Context(), req, &body, nil)
	s.metrics.QueryDuration.WithLabelValues("export").Observe(time.Since(runStart).Seconds())
	setAuditRows(c, rows)
	if err == nil {
		err = cursorErr
	}
	if err != nil {
		return err
	}
	s.metrics.RowsExported.WithLabelValues(string(req.Format), PathSync).Add(float64(rows))
	h := c.Response().Header()
	setExportHeaders(h, req.Format, total)
	if next != "" {
		h.Set("X-Next-Cursor", next)
		h.Set("Link", fmt.Sprintf(`<%s>; rel="next"`, nextPageURL(c.QueryParams(), next)))
	}
	if acceptsGzip(c.Request().Header.Get(echo.HeaderAcceptEncoding)) {
		h.Set(echo.HeaderContentEncoding, "gzip")
		c.Response().WriteHeader(http.StatusOK)
		gz, _ := gzip.NewWriterLevel(c.Response(), gzip.BestSpeed)
		if _, err := body.WriteTo(gz); err != nil {
			panic(http.ErrAbortHandler)
		}
		if err := gz.Close(); err != nil {
			panic(http.ErrAbortHandler)
		}
		return nil
	}
	h.Set(echo.HeaderContentLength, strconv.Itoa(body.Len()))
	c.Response().WriteHeader(http.StatusOK)
	if _, err := body.WriteTo(c.Response()); err != nil {
		panic(http.ErrAbortHandler)
	}
	return nil
}

// nextPageURL is the Link target of the next page: the request's own
// parameters with the cursor in place of any offset or earlier cursor.
func nextPageURL(params url.Values, cursor string) string {
	q := url.Values{}
	for k, vs := range params {
		if k != "offset" && k != "cursor" {
			q[k] = vs
		}
	}
	q.Set("cursor", cursor)
	return ExportPath + "?" + q.Encode()
}

// negotiateFormat returns the format of the first media type an Accept
// header names that is one of the export's (SPEC §4: a request without
// format whose Accept names one gets it). Ranges such as */* name no format;
// a type refused with q=0 is skipped.
func negotiateFormat(accept string) (export.Format, bool) {
	for _, part := range strings.Split(accept, ",") {
		mt, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if refusedByQ(params) {
			continue
		}
		if f, ok := export.FormatOfMediaType(mt); ok {
			return f, true
		}
	}
	return "", false
}

// refusedByQ reports whether media-range parameters carry q=0.
func refusedByQ(params string) bool {
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(k), "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return err == nil && q == 0
		}
	}
	return false
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// defaultFormatFor is the format of a request without a format parameter:
// the first export format its Accept header names, else the server's
// default (SPEC §4). Exports and analytics choose alike.
func (s *Server) defaultFormatFor(c echo.Context) export.Format {
	c.Response().Header().Add(echo.HeaderVary, "Accept")
	if !c.QueryParams().Has("format") {
		if f, ok := negotiateFormat(c.Request().Header.Get(echo.HeaderAccept)); ok {
			return f
		}
	}
	return s.cfg.DefaultFormat
}

// bodyWriter is where a streamed body goes: gzip (and its Content-Encoding
// header) when the client accepts it, the response otherwise. The caller
// closes gz, when not nil, after the last byte.
func bodyWriter(c echo.Context) (w io.Writer, gz *gzip.Writer) {
	if !acceptsGzip(c.Request().Header.Get(echo.HeaderAcceptEncoding)) {
		return c.Response(), nil
	}
	c.Response().Header().Set(echo.HeaderContentEncoding, "gzip")
	gz, _ = gzip.NewWriterLevel(c.Response(), gzip.BestSpeed)
	return gz, gz
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		params = strings.ReplaceAll(params, " ", "")
		return params != "q=0" && params != "q=0.0" && params != "q=0.00" && params != "q=0.000"
	}
	return false
}

// handleError writes every error as the JSON error body.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	ae := toAPIError(err)
	// The request log line carries what went wrong (never the token): the
	// error code and parameter, and why a token was refused.
	c.Set(logErrorCode, ae.Code)
	if ae.Param != "" {
		c.Set(logErrorParam, ae.Param)
	}
	if r := auth.ReasonOf(err); r != "" {
		c.Set(logAuthReason, r)
	}
	if ae.Status >= 500 {
		s.log.Error("request failed", "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "err", err)
	}
	if ae.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(ae.RetryAfter))
	}
	_ = c.JSON(ae.Status, map[string]*APIError{"error": ae})
}

// requestLog assigns a request id (X-Request-Id echoed or generated) and logs
// one line per request. It logs the route template, never the path as sent
// nor the query string: filter values, and the path of a request that
// matches no route, may hold names or e-mail addresses.
func (s *Server) requestLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !validRequestID(id) {
			id = newRequestID()
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		// Logged in a defer: an export that breaks off mid-stream panics
		// with http.ErrAbortHandler, and still gets its line.
		defer func() {
			p := recover()
			attrs := []any{
				"request_id", id,
				"method", methodLabel(c.Request().Method),
				"route", s.routeOf(c),
				"status", c.Response().Status,
				"bytes", c.Response().Size,
				"duration_ms", time.Since(start).Milliseconds(),
				"sub", subHash(c.Get("sub")),
			}
			for _, k := range []string{logErrorCode, logErrorParam, logAuthReason} {
				if v, ok := c.Get(k).(string); ok {
					attrs = append(attrs, k, v)
				}
			}
			if p != nil {
				attrs = append(attrs, "aborted", true)
			}
			s.log.Info("request", attrs...)
			if p != nil {
				panic(p)
			}
		}()
		// observe, the next middleware, writes every error response itself
		// (it must know the status), so no error reaches here.
		return next(c)
	}
}

// Keys of the echo context that requestLog adds to the request's line.
const (
	logErrorCode  = "error_code"
	logErrorParam = "error_param"
	logAuthReason = "auth_reason"
)

// validRequestID accepts client request ids that are short and printable,
// so a hostile header cannot forge log lines.
func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// plainJSON is Echo's JSON serializer without HTML escaping: answers carry
// URLs (a job's downloadUrl with its signed query), and "\u0026" in place of
// "&" makes them awkward to take out of the JSON with shell tools. Nothing
// we answer is embedded in HTML.
type plainJSON struct{ echo.DefaultJSONSerializer }

// Serialize writes i as JSON, '&', '<' and '>' unescaped.
func (plainJSON) Serialize(c echo.Context, i interface{}, indent string) error {
	enc := json.NewEncoder(c.Response())
	enc.SetEscapeHTML(false)
	if indent != "" {
		enc.SetIndent("", indent)
	}
	return enc.Encode(i)
}

// formatParam parses a plan's format; an unknown one is a 400 naming the
// format parameter.
func formatParam(name string) (export.Format, error) {
	f, err := export.ParseFormat(name)
	if err != nil {
		return "", &APIError{Status: http.StatusBadRequest, Code: "invalid_parameter", Message: err.Error(), Param: "format"}
	}
	return f, nil
}
