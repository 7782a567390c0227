package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"worklog/export"
	"worklog/privacy"

	"github.com/duckdb/duckdb-go/v2"
)

// serveSmallBuffers serves cfg over b with the server side's socket send
// buffer cut to a few KB, so that a client that stops reading blocks the
// server's writes after kilobytes rather than megabytes of kernel buffers.
func (b backend) serveSmallBuffers(t *testing.T, cfg Config) *testEnv {
	t.Helper()
	srv, err := NewServer(cfg, b.engine)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetWriteBuffer(4096)
		}
		return ctx
	}
	hs.Start()
	t.Cleanup(hs.Close)
	return &testEnv{t: t, url: hs.URL, secret: testSecret, store: b.store, engine: b.engine, key: b.key, srv: srv}
}

// stalledClient sends one GET over a raw TCP connection whose receive
// buffer is a few KB, and never reads the answer.
func stalledClient(t *testing.T, env *testEnv, token, q string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(env.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET %s?%s HTTP/1.1\r\nHost: worklog\r\nAuthorization: Bearer %s\r\n\r\n", ExportPath, q, token)
	return conn
}

// TestStalledReaderIsCut: a client that requests an export and never reads
// held the only export slot for as long as it stayed connected. With a
// write stall timeout, its connection is cut once the socket buffers are
// full and no byte moves for the timeout; the slot is free again, the cut is
// counted, and the next export is answered whole.
func TestStalledReaderIsCut(t *testing.T) {
	b := newBackend(t)
	cfg := Config{Verifier: mustHMAC(t), PrivacyLevel: privacy.None, PseudonymKey: b.key, DefaultFormat: export.FormatJSON,
		MaxSyncExports: 1, WriteStallTimeout: 300 * time.Millisecond}
	env := b.serveSmallBuffers(t, cfg)
	addSlowPart(t, env, 4000) // ~4 MB of CSV: far more than the socket buffers hold
	tok := env.token("u1", "")

	conn := stalledClient(t, env, tok, "format=csv")
	waitFor(t, "the stalled export to be cut", func() bool {
		return metricValue(t, env, "worklog_http_stalled_clients_total") == 1 &&
			metricValue(t, env, "worklog_sync_exports_running") == 0
	})
	// The connection is closed: draining it ends (EOF or reset) before the
	// whole body, within a hang guard that no healthy run comes near.
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	n, err := io.Copy(io.Discard, conn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the stalled connection is still open after %d bytes", n)
	}
	// The only slot is free: the next export is answered. A small one
	// (10 rows fit the socket buffers): with a 300 ms stall timeout, a
	// healthy client of a whole 4 MB export is cut too whenever a loaded
	// machine leaves it unscheduled that long.
	resp, body := env.get(tok, "format=csv&filters[0][key]=userWorklogId&filters[0][comparator]=lt&filters[0][value]=1000010")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Total-Count") != "10" {
		t.Fatalf("export after the cut: %d %s", resp.StatusCode, body[:min(len(body), 200)])
	}
	// The whole export, from a server over the same store with the
	// default stall timeout, is more than the cut connection got.
	cfg.WriteStallTimeout = 0
	whole := b.serve(t, cfg)
	if resp, body = whole.get(tok, "format=csv"); resp.StatusCode != http.StatusOK || int64(len(body)) <= n {
		t.Errorf("the cut connection got %d bytes, the whole export is %d (%d)", n, len(body), resp.StatusCode)
	}
}

// TestSlowReaderIsNotCut: a client that reads slowly but keeps reading is
// not a stalled one: every chunk that reaches its socket moves the deadline.
func TestSlowReaderIsNotCut(t *testing.T) {
	b := newBackend(t)
	cfg := Config{Verifier: mustHMAC(t), PrivacyLevel: privacy.None, PseudonymKey: b.key, DefaultFormat: export.FormatJSON,
		WriteStallTimeout: 2 * time.Second}
	env := b.serveSmallBuffers(t, cfg)
	addSlowPart(t, env, 300)
	tok := env.token("u1", "")
	conn := stalledClient(t, env, tok, "format=csv")
	// Read 4 KB at a time, one read per tick: much slower than the server
	// writes, never silent for the timeout.
	r := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var total int
	for {
		n, err := resp.Body.Read(buf)
		total += n
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("slow reader cut after %d bytes: %v", total, err)
		}
		time.Sleep(time.Millisecond)
	}
	if metricValue(t, env, "worklog_http_stalled_clients_total") != 0 || total < 300*1000 {
		t.Errorf("slow reader: %d bytes, stalled counter %v", total, metricValue(t, env, "worklog_http_stalled_clients_total"))
	}
}

// TestPagePool: pages take slots of their own pool; one more waits up to
// the queue wait and is then answered 429 with Retry-After. Exports are not
// pages and still run.
func TestPagePool(t *testing.T) {
	env := newTestEnv(t, privacy.None, func(c *Config) { c.MaxPages = 1; c.PageQueueWait = 50 * time.Millisecond }, readFixture(t))
	release := make(chan struct{})
	held := holdFirstExport(env, func(ctx context.Context) {
		select {
		case <-release:
		case <-ctx.Done():
		}
	})
	tok := env.token("u1", "")
	_, done := startExport(t, env, tok, "limit=5")
	<-held
	if v := metricValue(t, env, "worklog_pages_running"); v != 1 {
		t.Errorf("pages running %v, want 1", v)
	}
	resp, body := env.get(tok, "limit=5")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"too_many_requests"`) {
		t.Errorf("page beyond the pool: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if resp, body := env.get(tok, "format=csv"); resp.StatusCode != http.StatusOK {
		t.Errorf("export while the page pool is full: %d %s", resp.StatusCode, body)
	}
	close(release)
	if status := <-done; status != http.StatusOK {
		t.Errorf("held page answered %d", status)
	}
	if resp, body := env.get(tok, "limit=5"); resp.StatusCode != http.StatusOK {
		t.Errorf("page after the slot was freed: %d %s", resp.StatusCode, body)
	}
}

// TestConnectionLimit: idle connections up to the limit are kept; one more
// is answered 503 with Retry-After (not left hanging), and once an idle
// connection closes, requests are served again.
func TestConnectionLimit(t *testing.T) {
	b := newBackend(t)
	metrics := NewMetrics()
	cfg := Config{Verifier: mustHMAC(t), PrivacyLevel: privacy.None, PseudonymKey: b.key, Metrics: metrics}
	srv, err := NewServer(cfg, b.engine)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(LimitListener(ln, 2, metrics))
	t.Cleanup(func() { hs.Close() })
	env := &testEnv{t: t, url: "http://" + ln.Addr().String(), srv: srv}
	// Metrics are read here straight from the registry: a scrape would
	// need a connection of its own.
	gauge := func() float64 { return testutilValue(t, metrics, "worklog_http_connections") }

	var idle []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	waitFor(t, "two idle connections to be accepted", func() bool { return gauge() == 2 })
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(env.url + HealthzPath)
	if err != nil {
		t.Fatalf("the refused connection got no answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "too_many_connections") {
		t.Errorf("connection beyond the limit: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if v := testutilValue(t, metrics, "worklog_http_connections_refused_total"); v != 1 {
		t.Errorf("refused connections counted %v, want 1", v)
	}
	idle[0].Close()
	waitFor(t, "the closed connection's slot to be freed", func() bool { return gauge() == 1 })
	resp, err = client.Get(env.url + HealthzPath)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("after a slot was freed: %v %v", resp, err)
	}
	resp.Body.Close()
	idle[1].Close()
}

// testutilValue reads one unlabelled sample from the registry.
func testutilValue(t *testing.T, m *Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) == 0 {
			continue
		}
		mt := mf.GetMetric()[0]
		if g := mt.GetGauge(); g != nil {
			return g.GetValue()
		}
		if c := mt.GetCounter(); c != nil {
			return c.GetValue()
		}
	}
	return -1
}

// TestMetricsCardinality: requests with random methods, to known and
// unknown paths, need no token and must not add a series each: unknown
// methods share the label "other", unknown paths the route "unmatched".
func TestMetricsCardinality(t *testing.T) {
	env := newTestEnv(t, privacy.None, nil)
	for i := range 300 {
		path := HealthzPath
		if i%2 == 1 {
			path = fmt.Sprintf("/x%d", i)
		}
		req, _ := http.NewRequest(fmt.Sprintf("M%dX", i), env.url+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	resp, err := http.Get(env.url + MetricsPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	series := 0
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "worklog_http_requests_total{") {
			series++
			if strings.Contains(line, `method="M`) || strings.Contains(line, "/x") {
				t.Errorf("a client-chosen value became a label: %s", line)
			}
		}
	}
	if series > 6 {
		t.Errorf("%d request series after 300 random requests, want a handful", series)
	}
}

// TestMalformedQueryRefused: query strings that net/url would silently
// drop a part of are refused with 400 naming the part.
func TestMalformedQueryRefused(t *testing.T) {
	cases := []struct{ raw, param string }{
		{"limit=10;", "limit"},
		{"limit=10;offset=5", "limit"},
		{"filters[0][key]=name&filters[0][comparator]=equals&filters[0][value]=a%zzb", "filters[0][value]"},
		{"filters[0][key]=name&filters[0][comparator]=equals&filters[0][value]=%", "filters[0][value]"},
		{"filters[0][key]=name&filters[0][comparator]=equals&filters[0][value]=%C3%28", "filters[0][value]"},
		{"filters[0][key]=name&filters[0][comparator]=equals&filters[0][value]=\xff", "filters[0][value]"},
		{"lim%zzit=3", "lim%zzit"},
	}
	for _, tc := range cases {
		ae := checkQuery(tc.raw)
		if ae == nil || ae.Status != http.StatusBadRequest || ae.Param != tc.param || ae.Code != "invalid_query" {
			t.Errorf("%q: %+v, want 400 invalid_query naming %s", tc.raw, ae, tc.param)
		}
	}
	for _, ok := range []string{"", "limit=10", "a=%25&b=x+y&c=%E2%82%AC&&d", "filters[0][value]=caf%C3%A9"} {
		if ae := checkQuery(ok); ae != nil {
			t.Errorf("%q refused: %+v", ok, ae)
		}
	}
	// Over HTTP: before any parsing, with the parameter named.
	env := newTestEnv(t, privacy.None, nil, readFixture(t))
	tok := env.token("u1", "")
	for _, q := range []string{"limit=10;", "filters[0][key]=name&filters[0][comparator]=equals&filters[0][value]=%C3%28"} {
		resp, body := env.get(tok, q)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"invalid_query"`) {
			t.Errorf("%s: %d %s", q, resp.StatusCode, body)
		}
	}
}

// TestDuckDBOutOfMemoryIs503: DuckDB running out of its shared memory
// limit is load, answered 503 with Retry-After, never 500.
func TestDuckDBOutOfMemoryIs503(t *testing.T) {
	err := fmt.Errorf("count rows: %w", &duckdb.Error{Type: duckdb.ErrorTypeOutOfMemory, Msg: "Out of Memory Error: could not allocate"})
	if ae := toAPIError(err); ae.Status != http.StatusServiceUnavailable || ae.RetryAfter <= 0 || ae.Code != "busy" {
		t.Errorf("DuckDB OOM: %+v", ae)
	}
}
