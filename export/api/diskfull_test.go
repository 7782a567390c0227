package api

import (
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"worklog/export/api/auth"
	"worklog/export/jobs"
	"worklog/internal/fsutil"
	"worklog/privacy"
)

// TestDuckDBDiskFullIs507: DuckDB reports a full disk as an IO error with
// strerror's text and no errno; it is answered 507 like Go's own ENOSPC,
// not 500. The error is real: DuckDB writes to /dev/full, which fails
// every write with ENOSPC.
func TestDuckDBDiskFullIs507(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full:", err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.Exec(`COPY (SELECT range AS x FROM range(100000)) TO '/dev/full' (FORMAT csv)`)
	if err == nil {
		t.Fatal("DuckDB wrote to /dev/full")
	}
	err = fmt.Errorf("ingest: merge: %w", err)
	if !fsutil.IsNoSpace(err) {
		t.Errorf("DuckDB's error is not recognised as a full disk: %v", err)
	}
	ae := toAPIError(err)
	if ae.Status != http.StatusInsufficientStorage || ae.Code != "insufficient_storage" || strings.Contains(ae.Message, "/dev") {
		t.Errorf("DuckDB disk full: %+v (from %v)", ae, err)
	}
}

// TestJobCapsAnswered: the global caps of background jobs answer with a
// status and a reason: 429 jobs_queue_full (with Retry-After) when all
// users' jobs fill the queue, 507 export_storage_full while kept files
// take --max-export-bytes; and a job that failed says why in its status,
// as {"code","message"}.
func TestJobCapsAnswered(t *testing.T) {
	t.Run("queue full", func(t *testing.T) {
		env := newJobEnv(t, privacy.Pseudonymized, false, func(c *jobs.Config) { c.MaxQueued = 1 })
		env.schedule(env.token("u1", "ann@example.com"), "format=csv")
		resp, body := env.get(env.token("u2", "bob@example.com"), "format=csv")
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"code":"jobs_queue_full"`) {
			t.Errorf("a second user's job beyond the queue: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("kept bytes full", func(t *testing.T) {
		env := newJobEnv(t, privacy.Pseudonymized, false, func(c *jobs.Config) { c.MaxKeptBytes = 1 << 10 })
		kept := filepath.Join(env.dir, "exports", "0123456789abcdef0123456789abcdef.csv")
		if err := os.WriteFile(kept, make([]byte, 1<<10), 0o600); err != nil {
			t.Fatal(err)
		}
		resp, body := env.get(env.token("u1", "ann@example.com"), "format=csv")
		if resp.StatusCode != http.StatusInsufficientStorage || !strings.Contains(string(body), `"code":"export_storage_full"`) || !strings.Contains(string(body), "1 KiB") {
			t.Errorf("a job while kept files fill the cap: %d %s", resp.StatusCode, body)
		}
		if n, err := env.jobs.CountByState(); err != nil || n[jobs.Queued] != 0 {
			t.Errorf("jobs created: %v %v", n, err)
		}
	})
	t.Run("retry when the first download expires", func(t *testing.T) {
		// The cap is the size of one job's file: after that job, its file
		// and its outbox message take it.
		probe := newJobEnv(t, privacy.Pseudonymized, true, nil)
		tok := probe.token("u1", "ann@example.com")
		sb := probe.schedule(tok, "format=csv")
		probe.wait(tok, sb.JobID, delivered)
		done, err := probe.jobs.Get(sb.JobID, "u1")
		if err != nil || done.Bytes == 0 {
			t.Fatalf("probe job: %+v %v", done, err)
		}

		env := newJobEnv(t, privacy.Pseudonymized, true, func(c *jobs.Config) { c.MaxKeptBytes = done.Bytes })
		sb = env.schedule(tok, "format=csv")
		v := env.wait(tok, sb.JobID, delivered)
		if kept := metricValue(t, env.testEnv, "worklog_export_kept_bytes"); int64(kept) <= done.Bytes {
			t.Errorf("worklog_export_kept_bytes %v, want more than the file's %d (its outbox message too)", kept, done.Bytes)
		}
		resp, body := env.get(env.token("u2", "bob@example.com"), "format=csv")
		wait := time.Until(*v.ExpiresAt).Seconds()
		ra, _ := strconv.ParseFloat(resp.Header.Get("Retry-After"), 64)
		if resp.StatusCode != http.StatusInsufficientStorage || !strings.Contains(string(body), "export_storage_full") || ra < wait-60 || ra > wait+60 {
			t.Errorf("a job while the kept files fill the cap: %d Retry-After %q (want about %.0f) %s", resp.StatusCode, resp.Header.Get("Retry-After"), wait, body)
		}
	})
	t.Run("failed job says why", func(t *testing.T) {
		env := newJobEnv(t, privacy.Pseudonymized, true, func(c *jobs.Config) { c.MaxKeptBytes = 1 << 10 })
		tok := env.token("u1", "ann@example.com")
		sb := env.schedule(tok, "format=csv")
		v := env.wait(tok, sb.JobID, func(v JobView) bool { return v.Status == jobs.Failed })
		if v.Error == nil || v.Error.Code != jobs.CodeStorageFull || !strings.Contains(v.Error.Message, "1 KiB") || strings.Contains(v.Error.Message, env.dir) {
			t.Errorf("failed job's error: %+v", v.Error)
		}
		_, raw := env.getPath(tok, JobPaths{}.Status(sb.JobID))
		if !strings.Contains(string(raw), `"error":{"code":"export_storage_full","message":"`) {
			t.Errorf("status JSON: %s", raw)
		}
		resp, body := env.getPath(tok, JobPaths{}.File(sb.JobID))
		if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "export_storage_full") {
			t.Errorf("file of the failed job: %d %s", resp.StatusCode, body)
		}
	})
}

// TestIngestDiskFullIs507: an HTTP ingest whose body meets a full disk is
// answered 507 insufficient_storage naming no path; nothing is committed,
// no body file is left, its slot is freed.
func TestIngestDiskFullIs507(t *testing.T) {
	env := newTestEnv(t, privacy.None, nil)
	var full atomic.Bool
	full.Store(true)
	env.srv.stageFault = func([]byte) error {
		if !full.Load() {
			return nil
		}
		return &os.PathError{Op: "write", Path: filepath.Join(env.store.DataDir(), "tmp", bodyPrefix+"1"), Err: syscall.ENOSPC}
	}
	tok := env.token("u", "", auth.PermIngest)
	dump := []byte(readFixture(t))
	resp, body := env.post(tok, "", "application/x-ndjson", "", dump)
	if resp.StatusCode != http.StatusInsufficientStorage || !strings.Contains(string(body), `"code":"insufficient_storage"`) || strings.Contains(string(body), env.store.DataDir()) {
		t.Errorf("ingest on a full disk: %d %s", resp.StatusCode, body)
	}
	if files := bodyFiles(t, env); len(files) != 0 {
		t.Errorf("body files left: %v", files)
	}
	if resp, _ := env.get(env.token("r", ""), "limit=1"); resp.Header.Get("X-Total-Count") != "0" {
		t.Errorf("rows committed: %s", resp.Header.Get("X-Total-Count"))
	}
	full.Store(false)
	if resp, body := env.post(tok, "", "application/x-ndjson", "", dump); resp.StatusCode != http.StatusOK {
		t.Errorf("ingest once there is room: %d %s", resp.StatusCode, body)
	}
}
