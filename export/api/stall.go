package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// Defaults of the limits against slow and stalled clients (Config fields
// left zero).
const (
	// DefaultWriteStallTimeout is how long a client may accept no bytes of
	// a response before its connection is cut.
	DefaultWriteStallTimeout = 30 * time.Second
	// DefaultMaxPages bounds the pages (requests with limit) served at once.
	DefaultMaxPages = 16
	// DefaultPageQueueWait is how long a page waits for a free slot before
	// it is answered 429.
	DefaultPageQueueWait = 2 * time.Second
)

// stallChunk is the most a response write hands the connection under one
// deadline: a client that reads slowly but steadily (a few KB/s) keeps
// moving the deadline, one that reads nothing is cut.
const stallChunk = 32 << 10

// cutStalled gives every response a progress-based write deadline: each
// chunk of at most stallChunk bytes must reach the client's socket within
// Config.WriteStallTimeout. A client that stops reading makes the next
// write fail; the handler then ends (an export aborts its stream and frees
// its slot and its DuckDB query) and net/http closes the connection.
// Without it, a client that never reads would hold an export slot, its
// query and its buffers for as long as it keeps the connection open.
func (s *Server) cutStalled(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		res := c.Response()
		w := &stallWriter{ResponseWriter: res.Writer, rc: http.NewResponseController(res.Writer),
			timeout: s.cfg.WriteStallTimeout, stalled: func() { s.metrics.StalledClients.Inc() }}
		res.Writer = w
		// The deadline of a previous response on this connection must not
		// cut this one's first write.
		_ = w.rc.SetWriteDeadline(time.Time{})
		// What net/http still buffers when the handler returns goes out
		// under the deadline of the last write, which stays armed.
		return next(c)
	}
}

// stallWriter sets the write deadline before each chunk it writes.
type stallWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	stalled func()
	cut     bool
}

func (w *stallWriter) arm() {
	// An error means the connection supports no deadline (tests with
	// httptest.ResponseRecorder): there is nothing to cut then.
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
}

// Write writes p in chunks, each under a fresh deadline.
func (w *stallWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), stallChunk)]
		w.arm()
		m, err := w.ResponseWriter.Write(chunk)
		n += m
		if err != nil {
			return n, w.note(err)
		}
		p = p[m:]
	}
	return n, nil
}

// FlushError flushes under a fresh deadline (http.ResponseController
// calls it).
func (w *stallWriter) FlushError() error {
	w.arm()
	return w.note(w.rc.Flush())
}

// Flush is http.Flusher for code that asserts it.
func (w *stallWriter) Flush() { _ = w.FlushError() }

// Unwrap lets http.ResponseController reach the connection.
func (w *stallWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// note counts the first timeout of a response as a stalled client.
func (w *stallWriter) note(err error) error {
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && !w.cut {
		w.cut = true
		w.stalled()
	}
	return err
}

// takePage waits up to Config.PageQueueWait for one of Config.MaxPages page
// slots; the caller releases it with the returned func. Beyond the wait
// the page is answered 429 with Retry-After: a flood of pages queues
// briefly and is then refused, instead of running hundreds of DuckDB
// queries (and their buffers) at once.
func (s *Server) takePage(c echo.Context) (func(), error) {
	release := func() {
		<-s.pageSlots
		s.metrics.Pages.Dec()
	}
	select {
	case s.pageSlots <- struct{}{}:
		s.metrics.Pages.Inc()
		return release, nil
	default:
	}
	t := time.NewTimer(s.cfg.PageQueueWait)
	defer t.Stop()
	select {
	case s.pageSlots <- struct{}{}:
		s.metrics.Pages.Inc()
		return release, nil
	case <-t.C:
		return nil, &APIError{Status: http.StatusTooManyRequests, Code: "too_many_requests",
			Message:    fmt.Sprintf("%d pages are being served, the most this server answers at once; retry shortly", cap(s.pageSlots)),
			RetryAfter: 1}
	case <-c.Request().Context().Done():
		return nil, c.Request().Context().Err()
	}
}

// DefaultMaxConnections bounds the connections a server keeps open; well
// under the usual 1,024 file handles of a process, so that idle or slow
// clients can never take the handles the store and DuckDB need.
const DefaultMaxConnections = 512

// refusers bounds the connections being refused at once (each for at most
// refuseTimeout); beyond it a refused connection is closed without a word.
const (
	refusers      = 64
	refuseTimeout = time.Second
)

// LimitListener accepts at most n connections at once. One more is
// answered 503 with Retry-After and closed, rather than left waiting in the
// backlog or taking a file handle for as long as its client likes. m counts
// them (worklog_http_connections, worklog_http_connections_refused_total);
// it may be nil.
func LimitListener(ln net.Listener, n int, m *Metrics) net.Listener {
	if m == nil {
		m = NewMetrics()
	}
	return &limitListener{Listener: ln, slots: make(chan struct{}, n), refusing: make(chan struct{}, refusers), m: m}
}

type limitListener struct {
	net.Listener
	slots, refusing chan struct{}
	m               *Metrics
}

// Accept returns the next connection within the limit, refusing those
// beyond it on the way.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			l.m.Connections.Inc()
			return &limitConn{Conn: c, release: sync.OnceFunc(func() {
				l.m.Connections.Dec()
				<-l.slots
			})}, nil
		default:
		}
		l.m.RefusedConnections.Inc()
		select {
		case l.refusing <- struct{}{}:
			go func() {
				defer func() { <-l.refusing }()
				refuse(c, cap(l.slots))
			}()
		default:
			c.Close()
		}
	}
}

// refuse answers a connection beyond the limit with a 503 and closes it.
// It reads what the client sent first (briefly), since closing a socket
// with unread input resets it and the client would see no answer.
func refuse(c net.Conn, limit int) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(refuseTimeout))
	body := fmt.Sprintf(`{"error":{"code":"too_many_connections","message":"the server has %d connections open, the most it keeps; retry shortly"}}`, limit)
	buf := make([]byte, 4096)
	c.Read(buf)
	fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// limitConn frees its slot when closed.
type limitConn struct {
	net.Conn
	release func()
}

func (c *limitConn) Close() error {
	c.release()
	return c.Conn.Close()
}

// methodLabel is the method as metrics and logs show it: the standard
// methods as they are, anything else (a client may send any token as a
// method) as "other", so that random methods cannot grow /metrics without
// bound.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// checkQuery refuses a query string that does not parse, naming the part:
// net/url drops such pairs silently (and Echo with it), so `limit=10;`
// used to become no limit at all (a 1,000,000-row job), a `%` without two
// hex digits dropped a filter value and changed the result, and invalid
// UTF-8 reached DuckDB and failed there with a 500.
func checkQuery(raw string) *APIError {
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		rawKey, rawValue, _ := strings.Cut(part, "=")
		key, kerr := url.QueryUnescape(rawKey)
		param := key
		if kerr != nil || !utf8.ValidString(key) {
			param = strings.ToValidUTF8(rawKey, "\uFFFD")
		}
		bad := func(msg string) *APIError {
			return &APIError{Status: http.StatusBadRequest, Code: "invalid_query", Message: msg, Param: param}
		}
		switch {
		case strings.Contains(part, ";"):
			return bad("a ';' is not a separator of query parameters (use '&'), nor allowed unescaped in a value (write %3B)")
		case kerr != nil:
			return bad("the parameter name is not valid percent-encoding: a '%' must be followed by two hex digits (write %25 for '%')")
		case !utf8.ValidString(key):
			return bad("the parameter name is not valid UTF-8")
		}
		value, err := url.QueryUnescape(rawValue)
		switch {
		case err != nil:
			return bad("the value is not valid percent-encoding: a '%' must be followed by two hex digits (write %25 for '%')")
		case !utf8.ValidString(value):
			return bad("the value is not valid UTF-8")
		}
	}
	return nil
}

// subHash is what the request log shows of a token's sub: a short keyless
// hash, so that lines of one caller can be followed while a sub that is an
// e-mail address (common with identity providers) never reaches the log.
// The audit trail, which must name the caller, keeps sub itself.
func subHash(sub any) string {
	s, _ := sub.(string)
	if s == "" {
		return ""
	}
	h := sha256.Sum256([]byte("worklog sub " + s))
	return hex.EncodeToString(h[:6])
}
