package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"worklog/export/api/auth"
	"worklog/ingest"
	"worklog/privacy"
)

// tricklingIngest opens a raw connection, sends an ingest request that
// announces a body of 100,000 bytes, sends the start of it, and stops.
func tricklingIngest(t *testing.T, env *testEnv, token string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(env.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: worklog\r\nAuthorization: Bearer %s\r\nContent-Type: application/x-ndjson\r\nContent-Length: 100000\r\n\r\n", IngestPath, token)
	fmt.Fprint(conn, `{"date":"2024-01-01 00:00:00","action":"readAction","userWorklogId":77}`+"\n")
	return conn
}

func bodyFiles(t *testing.T, env *testEnv) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(env.store.DataDir(), "tmp", bodyPrefix+"*"))
	return files
}

// TestStalledBodyHoldsNoLock: an ingest whose client stops sending its body
// held the store's write lock, and every other ingest waited silently. Now
// the body is received before the lock is taken: while the stalled one
// waits for bytes, an HTTP ingest and a CLI-path ingest both commit.
func TestStalledBodyHoldsNoLock(t *testing.T) {
	env := newTestEnv(t, privacy.None, func(c *Config) { c.ReadStallTimeout = time.Hour })
	tok := env.token("u", "", auth.PermIngest)
	conn := tricklingIngest(t, env, tok)
	waitFor(t, "the stalled body to be received", func() bool { return metricValue(t, env, "worklog_ingest_bodies_receiving") == 1 })

	small := []byte(`{"date":"2024-01-01 00:00:00","action":"readAction","userWorklogId":1}`)
	if resp, body := env.post(tok, "", "application/x-ndjson", "", small); resp.StatusCode != 200 {
		t.Fatalf("HTTP ingest beside a stalled one: %d %s", resp.StatusCode, body)
	}
	in := []ingest.Input{{Name: "cli", R: strings.NewReader(`{"date":"2024-01-02 00:00:00","action":"readAction","userWorklogId":2}` + "\n")}}
	if _, err := ingest.Run(context.Background(), env.store, in, ingest.Options{}); err != nil {
		t.Fatalf("CLI-path ingest beside a stalled one: %v", err)
	}
	conn.Close()
	waitFor(t, "the abandoned body to be dropped", func() bool {
		return metricValue(t, env, "worklog_ingest_bodies_receiving") == 0 && len(bodyFiles(t, env)) == 0
	})
	if resp, _ := env.get(env.token("r", ""), "limit=10"); resp.Header.Get("X-Total-Count") != "2" {
		t.Errorf("rows after the two ingests: %s, want 2 (none of the abandoned body)", resp.Header.Get("X-Total-Count"))
	}
}

// TestStalledBodyTimesOut: a body that sends no byte for the read stall
// timeout is answered 408, nothing is committed, its file is removed.
func TestStalledBodyTimesOut(t *testing.T) {
	env := newTestEnv(t, privacy.None, func(c *Config) { c.ReadStallTimeout = 300 * time.Millisecond })
	tok := env.token("u", "", auth.PermIngest)
	conn := tricklingIngest(t, env, tok)
	conn.SetReadDeadline(time.Now().Add(time.Minute)) // hang guard
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to the stalled body: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "request_timeout") || !strings.Contains(string(body), "--read-stall-timeout") {
		t.Errorf("stalled body: %d %s", resp.StatusCode, body)
	}
	if files := bodyFiles(t, env); len(files) != 0 {
		t.Errorf("body files left: %v", files)
	}
	if resp, _ := env.get(env.token("r", ""), "limit=1"); resp.Header.Get("X-Total-Count") != "0" {
		t.Errorf("a stalled ingest committed rows: %s", resp.Header.Get("X-Total-Count"))
	}
}

// TestTooManyIngests: ingests beyond --max-ingests (received or running)
// are answered 429 with Retry-After, so bodies cannot fill <data>/tmp.
func TestTooManyIngests(t *testing.T) {
	env := newTestEnv(t, privacy.None, func(c *Config) { c.MaxIngests = 1; c.ReadStallTimeout = time.Hour })
	tok := env.token("u", "", auth.PermIngest)
	conn := tricklingIngest(t, env, tok)
	waitFor(t, "the stalled body to be received", func() bool { return metricValue(t, env, "worklog_ingest_bodies_receiving") == 1 })
	small := []byte(`{"date":"2024-01-01 00:00:00","action":"readAction","userWorklogId":1}`)
	resp, body := env.post(tok, "", "application/x-ndjson", "", small)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("ingest beyond the limit: %d %s", resp.StatusCode, body)
	}
	conn.Close()
	waitFor(t, "the slot to be freed", func() bool { return metricValue(t, env, "worklog_ingest_bodies_receiving") == 0 })
	waitFor(t, "an ingest to be accepted again", func() bool {
		resp, _ := env.post(tok, "", "application/x-ndjson", "", small)
		return resp.StatusCode == http.StatusOK
	})
}

// TestSweepBodies: bodies left by a killed server are removed at start.
func TestSweepBodies(t *testing.T) {
	b := newBackend(t)
	left := filepath.Join(b.dir, "tmp", bodyPrefix+"123")
	os.MkdirAll(filepath.Dir(left), 0o750)
	os.WriteFile(left, []byte("x"), 0o600)
	b.serve(t, Config{Verifier: mustHMAC(t), PrivacyLevel: privacy.None, PseudonymKey: b.key, Store: b.store})
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("leftover body still there: %v", err)
	}
}

// TestDiskFullIs507: a full disk anywhere below a handler (staging an
// ingest body, the ingest's own files) is answered 507, not 500.
func TestDiskFullIs507(t *testing.T) {
	err := fmt.Errorf("ingest: %w", &os.PathError{Op: "write", Path: "/data/tmp/x", Err: syscall.ENOSPC})
	if ae := toAPIError(err); ae.Status != http.StatusInsufficientStorage || ae.Code != "insufficient_storage" || strings.Contains(ae.Message, "/data") {
		t.Errorf("disk full: %+v", ae)
	}
}
