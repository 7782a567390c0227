package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/labstack/echo/v4"
)

// Defaults of the HTTP ingest's receiving limits (Config fields left zero).
const (
	// DefaultReadStallTimeout is how long a client may send no byte of a
	// request body before it is answered 408.
	DefaultReadStallTimeout = 30 * time.Second
	// DefaultMaxIngests bounds the HTTP ingests received or waiting for
	// the store at once: with --max-ingest-bytes, the disk their bodies
	// take in <data>/tmp.
	DefaultMaxIngests = 4
)

// bodyPrefix names the received bodies in <data>/tmp.
const bodyPrefix = "http-ingest-body-"

// receiveBody takes an ingest slot (429 beyond Config.MaxIngests) and
// copies the request body, at most limit bytes, to a file in <data>/tmp
// before the ingest waits for the store's write lock: a client that
// trickles its body, or stops sending it, holds a slot and a file, never
// the lock that every other ingest (HTTP and CLI) waits for. A body that
// sends no byte for Config.ReadStallTimeout is answered 408. The returned
// body's Close removes the file and frees the slot.
func (s *Server) receiveBody(c echo.Context, limit int64) (io.ReadCloser, error) {
	select {
	case s.ingestSlots <- struct{}{}:
	default:
		return nil, &APIError{Status: http.StatusTooManyRequests, Code: "too_many_requests",
			Message:    fmt.Sprintf("%d ingests are being received or run, the most this server takes at once; retry shortly", cap(s.ingestSlots)),
			RetryAfter: exportRetryAfter}
	}
	release := func() { <-s.ingestSlots }
	s.metrics.IngestBodies.Inc()
	defer s.metrics.IngestBodies.Dec()

	dir := s.cfg.BodyDir
	if err := os.MkdirAll(dir, 0o750); err != nil {
		release()
		return nil, fmt.Errorf("create temp dir: %w", err)
	}
	f, err := os.CreateTemp(dir, bodyPrefix+"*")
	if err != nil {
		release()
		return nil, fmt.Errorf("create body file: %w", err)
	}
	drop := func() {
		f.Close()
		os.Remove(f.Name())
		release()
	}
	req := c.Request()
	rc := http.NewResponseController(c.Response())
	body := &stallReader{r: http.MaxBytesReader(c.Response(), req.Body, limit), rc: rc, timeout: s.cfg.ReadStallTimeout}
	var dst io.Writer = f
	if s.stageFault != nil {
		dst = faultWriter{w: f, fault: s.stageFault}
	}
	_, err = io.Copy(dst, body)
	if err == nil {
		// Clear the deadline: net/http keeps reading the connection in
		// the background once the body is done (to notice a client that
		// goes away), and a deadline left armed would cancel the request
		// while the ingest runs.
		_ = rc.SetReadDeadline(time.Time{})
	} else {
		// The rest of the body will not be read: close the connection
		// after the answer, rather than let net/http try to drain it.
		c.Response().Header().Set(echo.HeaderConnection, "close")
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		drop()
		return nil, tooLarge(limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		drop()
		return nil, newAPIError(http.StatusRequestTimeout, "request_timeout",
			"no byte of the body arrived for %s (--read-stall-timeout); nothing was committed", s.cfg.ReadStallTimeout)
	case err != nil && req.Context().Err() != nil:
		drop()
		return nil, fmt.Errorf("receive body: %w", req.Context().Err())
	case err != nil:
		drop()
		return nil, fmt.Errorf("receive body: %w", err)
	}
	return &receivedBody{File: f, drop: drop}, nil
}

// faultWriter calls fault before each write to w; an error fails the
// write (tests: a full disk without filling one).
type faultWriter struct {
	w     io.Writer
	fault func(p []byte) error
}

func (f faultWriter) Write(p []byte) (int, error) {
	if err := f.fault(p); err != nil {
		return 0, err
	}
	return f.w.Write(p)
}

// receivedBody is a received ingest body on disk.
type receivedBody struct {
	*os.File
	drop func()
}

// Close removes the file and frees the ingest slot.
func (b *receivedBody) Close() error {
	b.drop()
	return nil
}

// stallReader arms the connection's read deadline before each read: a
// client may send slowly, but not stop.
type stallReader struct {
	r       io.Reader
	rc      *http.ResponseController
	timeout time.Duration
}

func (s *stallReader) Read(p []byte) (int, error) {
	// An error means no deadline is supported (HTTP/2 over a proxy, tests
	// with a recorder): there is nothing to arm then.
	_ = s.rc.SetReadDeadline(time.Now().Add(s.timeout))
	return s.r.Read(p)
}

// sweepBodies removes received bodies that a previous process left behind
// in dir (killed while an ingest waited); called once when the server
// starts.
func sweepBodies(dir string) {
	old, _ := filepath.Glob(filepath.Join(dir, bodyPrefix+"*"))
	for _, p := range old {
		os.Remove(p)
	}
}
