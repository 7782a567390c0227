package api

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"worklog/data"
	"worklog/privacy"
	"worklog/query"
)

// addSlowPart commits one part of rows generated events to env's store, in
// month 2024-01. Every rawData shares a 1,000-byte prefix, so that ordering
// by rawData compares long strings: a whole export ordered that way keeps
// DuckDB busy long enough to be interrupted.
func addSlowPart(t *testing.T, env *testEnv, rows int) {
	t.Helper()
	txn, err := env.store.Begin(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Rollback()
	path, err := txn.NewPart("2024-01")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var cols []string
	for _, f := range data.Fields() {
		var expr string
		switch f.Name {
		case "date":
			expr = "TIMESTAMP '2024-01-01 00:00:00' + to_seconds(i)"
		case "userWorklogId":
			expr = "i + 1000000"
		case "action":
			expr = "'readAction'"
		case "rawData":
			expr = "repeat('x', 1000) || (i * 7919 % " + fmt.Sprint(rows) + ")::VARCHAR"
		default:
			expr = "NULL"
		}
		cols = append(cols, "CAST("+expr+" AS "+f.Kind.SQLType()+") AS "+data.QuoteIdent(f.Name))
	}
	q := "COPY (SELECT " + strings.Join(cols, ", ") + " FROM range(" + fmt.Sprint(rows) + ") r(i) ORDER BY 1) TO " +
		data.QuoteString(path) + " (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 16384)"
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("write slow part: %v", err)
	}
	if _, err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
}

// slowQuery is a whole export ordered by rawData: one DuckDB statement that
// sorts every row before the first batch.
const slowQuery = "orderByField=rawData&orderByDirection=desc"

// slowRows is the size of the slow part: the sort of slowQuery over it
// takes seconds on a 2-core machine, the cancels below come after 300 ms.
const slowRows = 150000

func TestCancelInterruptsDuckDB(t *testing.T) {
	env := newTestEnv(t, privacy.None, nil)
	addSlowPart(t, env, slowRows)
	plan, err := query.Parse(mustQuery(t, slowQuery), query.Options{})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := env.engine.Snapshot()
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	// The cancel comes from another goroutine once the statement is under
	// way. Should the sort finish first (a machine faster than any seen),
	// the test learns nothing and says so rather than failing.
	go func() { runtime.Gosched(); time.Sleep(300 * time.Millisecond); cancel() }()
	start := time.Now()
	rr, err := env.engine.Records(ctx, snap, plan)
	elapsed := time.Since(start)
	if err == nil {
		rr.Release()
		t.Skipf("the sort finished in %v, before the cancel: nothing to interrupt on this machine", elapsed)
	}
	t.Logf("cancelled after 300ms, Records returned after %v: %v", elapsed, err)
	// DuckDB's own error proves the statement was interrupted inside
	// DuckDB, not merely abandoned by Go.
	if !strings.Contains(err.Error(), "INTERRUPT") || !errors.Is(err, context.Canceled) {
		t.Errorf("error %v: want DuckDB's interrupt and context.Canceled", err)
	}

	// The pooled connection is usable afterwards: the same query completes.
	full := time.Now()
	rr, err = env.engine.Records(context.Background(), snap, plan)
	if err != nil {
		t.Fatalf("Records after the interrupt: %v", err)
	}
	var n int64
	for rr.Next() {
		n += rr.RecordBatch().NumRows()
	}
	rr.Release()
	if rr.Err() != nil || n != slowRows {
		t.Errorf("after the interrupt: %d rows, %v", n, rr.Err())
	}
	t.Logf("the whole query takes %v", time.Since(full))
}

func mustQuery(t *testing.T, q string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// logBuffer is a concurrency-safe log sink for the server's slog logger.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func withLog(buf *logBuffer) func(*Config) {
	return func(c *Config) { c.Logger = slog.New(slog.NewJSONHandler(buf, nil)) }
}

// metricValue scrapes /metrics and returns the value of the sample whose
// line starts with prefix (name and labels), or -1.
func metricValue(t *testing.T, env *testEnv, prefix string) float64 {
	t.Helper()
	resp, err := http.Get(env.url + MetricsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, prefix+" ") {
			var v float64
			fmt.Sscan(strings.TrimPrefix(line, prefix+" "), &v)
			return v
		}
	}
	return -1
}

// waitFor polls cond for up to a minute; the deadline is a hang guard, not
// a speed assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(time.Minute); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// startExport starts a request of the export endpoint in the background and
// returns its cancel function and a channel with its status (0 when the
// request failed on the client side).
func startExport(t *testing.T, env *testEnv, token, q string) (context.CancelFunc, <-chan int) {
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, env.url+ExportPath+"?"+q, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	done := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	return cancel, done
}

// holdFirstExport makes the first synchronous export of env wait in its
// slot, after the count and before the pipeline, until hold returns; it
// returns a channel closed when that export is held. Later requests pass.
func holdFirstExport(env *testEnv, hold func(ctx context.Context)) <-chan struct{} {
	held := make(chan struct{})
	var once sync.Once
	env.srv.beforeExport = func(ctx context.Context) {
		first := false
		once.Do(func() { first = true })
		if first {
			close(held)
			hold(ctx)
		}
	}
	return held
}

func TestClientGoneInterruptsExport(t *testing.T) {
	var logs logBuffer
	env := newTestEnv(t, privacy.None, withLog(&logs), readFixture(t))
	held := holdFirstExport(env, func(ctx context.Context) { <-ctx.Done() })
	tok := env.token("u1", "")
	cancel, done := startExport(t, env, tok, "format=csv")
	<-held
	if v := metricValue(t, env, "worklog_sync_exports_running"); v != 1 {
		t.Fatalf("%v exports running while one is held, want 1", v)
	}
	// The client goes away: net/http cancels the request's context, which
	// is the context the pipeline hands to DuckDB.
	cancel()
	<-done
	waitFor(t, "the export slot to be released", func() bool { return metricValue(t, env, "worklog_sync_exports_running") == 0 })
	waitFor(t, "the cancelled export to be logged", func() bool { return strings.Contains(logs.String(), "context canceled") })
	// The server, and DuckDB, still answer.
	if resp, _ := env.get(tok, "limit=5"); resp.StatusCode != 200 || resp.Header.Get("X-Total-Count") != "33" {
		t.Errorf("after the cancel: %d, X-Total-Count %s", resp.StatusCode, resp.Header.Get("X-Total-Count"))
	}
}

func TestExportTimeout(t *testing.T) {
	var logs logBuffer
	env := newTestEnv(t, privacy.None, func(c *Config) { withLog(&logs)(c); c.ExportTimeout = 300 * time.Millisecond }, readFixture(t))
	// The export is held until its deadline passes, before the first byte:
	// the client gets a 503 timeout error, never a 200 with a cut-off body.
	holdFirstExport(env, func(ctx context.Context) { <-ctx.Done() })
	tok := env.token("u1", "")
	_, done := startExport(t, env, tok, "format=csv")
	if status := <-done; status != http.StatusServiceUnavailable {
		t.Errorf("export past its time limit answered %d, want 503", status)
	}
	if out := logs.String(); !strings.Contains(out, `"status":503`) {
		t.Errorf("timeout not logged:\n%s", out)
	}
	// Pages are quick and still served.
	if resp, body := env.get(tok, "limit=3"); resp.StatusCode != 200 {
		t.Errorf("page after a timeout: %d %s", resp.StatusCode, body)
	}
}

func TestTooManyExports(t *testing.T) {
	env := newTestEnv(t, privacy.None, func(c *Config) { c.MaxSyncExports = 1 }, readFixture(t))
	release := make(chan struct{})
	held := holdFirstExport(env, func(ctx context.Context) {
		select {
		case <-release:
		case <-ctx.Done():
		}
	})
	tok := env.token("u1", "")
	_, done := startExport(t, env, tok, "format=csv")
	<-held
	// A page is not an export: it is answered while the pool is full.
	if resp, body := env.get(tok, "limit=1"); resp.StatusCode != http.StatusOK {
		t.Errorf("page during a full export pool: %d %s", resp.StatusCode, body)
	}
	resp, body := env.get(tok, "format=csv")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second export: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	var e struct{ Error struct{ Code string } }
	if json.Unmarshal(body, &e); e.Error.Code != "too_many_requests" {
		t.Errorf("429 body %s", body)
	}
	// Operational routes are not exports: never refused.
	if r, err := http.Get(env.url + HealthzPath); err != nil || r.StatusCode != 200 {
		t.Errorf("healthz during a full export pool: %v %v", r, err)
	}
	// The held export completes whole once released, and frees its slot.
	close(release)
	if status := <-done; status != http.StatusOK {
		t.Errorf("held export answered %d", status)
	}
	if resp, body := env.get(tok, "format=csv"); resp.StatusCode != http.StatusOK {
		t.Errorf("export after the slot was freed: %d %s", resp.StatusCode, body)
	}
}

func TestQueryStringBound(t *testing.T) {
	env := newTestEnv(t, privacy.None, func(c *Config) { c.MaxQueryBytes = 200; c.MaxFilters = 2; c.MaxValues = 3 }, readFixture(t))
	tok := env.token("u1", "")
	long := "filters[0][key]=name&filters[0][comparator]=equals&filters[0][value]=" + strings.Repeat("a", 200)
	tests := []struct {
		q      string
		status int
		param  string
	}{
		{long, http.StatusRequestURITooLong, ""},
		{"filters[0][key]=duration&filters[0][comparator]=isNull&filters[1][key]=duration&filters[1][comparator]=isNull&filters[2][key]=duration&filters[2][comparator]=isNull", 400, "filters"},
		{"filters[0][key]=action&filters[0][comparator]=in&filters[0][values][]=readAction&filters[0][values][]=readAction&filters[0][values][]=readAction&filters[0][values][]=readAction", 400, "filters[0][values]"},
		{"filters[0][key]=action&filters[0][comparator]=in&filters[0][values][]=readAction", 200, ""},
	}
	for _, tc := range tests {
		resp, body := env.get(tok, tc.q)
		if resp.StatusCode != tc.status {
			t.Errorf("%.60s…: status %d, want %d: %s", tc.q, resp.StatusCode, tc.status, body)
			continue
		}
		if tc.param != "" && !strings.Contains(string(body), `"param":"`+tc.param) {
			t.Errorf("%.60s…: body %s, want param %s", tc.q, body, tc.param)
		}
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	env := newTestEnv(t, privacy.None, nil, readFixture(t))
	for _, p := range []string{HealthzPath, ReadyzPath} {
		resp, err := http.Get(env.url + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
	tok := env.token("u1", "")
	env.get(tok, "limit=5&format=csv")
	env.get(tok, "limit=abc")
	env.get("", "")
	http.Get(env.url + "/no/such/route/jane@example.com")
	checks := map[string]float64{
		`worklog_http_requests_total{method="GET",route="/api/mind/export/reporting_worklog",status="200"}`: 1,
		`worklog_http_requests_total{method="GET",route="/api/mind/export/reporting_worklog",status="400"}`: 1,
		`worklog_http_requests_total{method="GET",route="/api/mind/export/reporting_worklog",status="401"}`: 1,
		`worklog_http_requests_total{method="GET",route="/healthz",status="200"}`:                           1,
		`worklog_http_requests_total{method="GET",route="unmatched",status="404"}`:                          1,
		`worklog_export_rows_total{format="csv",path="sync"}`:                                               5,
		`worklog_export_rows_total{format="xlsx",path="sync"}`:                                              0,
		`worklog_export_jobs{state="queued"}`:                                                               0,
		`worklog_duckdb_query_duration_seconds_count{op="count"}`:                                           1,
		`worklog_http_request_duration_seconds_count{method="GET",route="/readyz"}`:                         1,
	}
	for prefix, want := range checks {
		if got := metricValue(t, env, prefix); got != want {
			t.Errorf("%s = %v, want %v", prefix, got, want)
		}
	}
}

func TestReadyzFailsWithoutDuckDB(t *testing.T) {
	env := newTestEnv(t, privacy.None, nil, readFixture(t))
	env.engine.Close()
	resp, err := http.Get(env.url + ReadyzPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !bytes.Contains(body, []byte(`"code":"not_ready"`)) {
		t.Errorf("readyz with DuckDB closed: %d %s", resp.StatusCode, body)
	}
	if r, err := http.Get(env.url + HealthzPath); err != nil || r.StatusCode != 200 {
		t.Errorf("healthz: %v %v", r, err)
	}
}
