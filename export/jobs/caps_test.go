package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"worklog/data"
	"worklog/export"
	"worklog/internal/audit"
	"worklog/privacy"
	"worklog/query"

	"github.com/wneessen/go-mail"
)

func specOf(owner string) Spec {
	return Spec{Owner: owner, Email: "ann@example.com", Level: privacy.Pseudonymized, Format: export.FormatCSV, CSVFormulaGuard: true, Rows: 33}
}

func failed(j *Job) bool { return j.Status == Failed }

// leftovers lists the files in dir (nil when it does not exist).
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// The queued plus running jobs of all users together are bounded: one more
// is refused with ErrQueueFull whoever asks, and accepted again once a job
// has left the queue.
func TestQueueCap(t *testing.T) {
	b := newBackend(t)
	r, err := Open(b.config(func(c *Config) { c.MaxQueued, c.PerUser = 3, 10 }))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Not started yet: the jobs stay queued.
	var first *Job
	for range 3 {
		job, err := r.Submit(specOf("u1"))
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = job
		}
	}
	for _, u := range []string{"u1", "u2"} {
		if _, err := r.Submit(specOf(u)); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("%s's job beyond the cap: %v, want ErrQueueFull", u, err)
		}
	}
	r.Start(context.Background())
	waitJob(t, r, first.ID, delivered)
	if _, err := r.Submit(specOf("u2")); err != nil {
		t.Errorf("a job once the queue has room: %v", err)
	}
}

// The bytes kept for finished jobs are bounded: a job whose file would
// pass the cap fails with a reason and leaves no file; while kept files
// (exports and outbox messages) take the cap, Submit refuses.
func TestKeptBytesCap(t *testing.T) {
	b := newBackend(t)
	const limit = 1 << 10 // the fixture's CSV is larger
	r, err := Open(b.config(func(c *Config) { c.MaxKeptBytes = limit }))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Start(context.Background())
	job := waitJob(t, r, submit(t, r, export.FormatCSV).ID, failed)
	if job.ErrorCode != CodeStorageFull || !strings.Contains(job.Error, "1 KiB") {
		t.Errorf("failed job: %s %q", job.ErrorCode, job.Error)
	}
	if names := leftovers(t, filepath.Join(b.dir, exportsDir)); len(names) != 0 {
		t.Errorf("files left in exports/: %v", names)
	}
	if n := r.writing.Load(); n != 0 {
		t.Errorf("%d bytes still counted as being written", n)
	}

	for _, dir := range []string{exportsDir, outboxDir} {
		kept := filepath.Join(b.dir, dir, "0123456789abcdef0123456789abcdef.kept")
		if err := os.MkdirAll(filepath.Dir(kept), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(kept, make([]byte, limit), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Submit(specOf("u2")); !errors.Is(err, ErrStorageFull) {
			t.Errorf("%s holding the cap: Submit %v, want ErrStorageFull", dir, err)
		}
		os.Remove(kept)
	}
	if n, err := r.KeptBytes(); err != nil || n != 0 {
		t.Errorf("KeptBytes %d %v", n, err)
	}
}

// A disk that fills up while a job writes its file fails the job with
// insufficient_storage, naming no path, and leaves no temporary file.
func TestJobDiskFull(t *testing.T) {
	b := newBackend(t)
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	al, err := audit.Open(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(b.config(func(c *Config) { c.Audit = al }))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	exports := filepath.Join(b.dir, exportsDir)
	r.writeFault = func([]byte) error {
		// What os.File.Write returns on a full disk.
		return &os.PathError{Op: "write", Path: filepath.Join(exports, ".x.csv.123.tmp"), Err: syscall.ENOSPC}
	}
	r.Start(context.Background())
	job := waitJob(t, r, submit(t, r, export.FormatCSV).ID, failed)
	if job.ErrorCode != CodeInsufficientStorage || !strings.Contains(job.Error, "insufficient storage") || strings.Contains(job.Error, b.dir) {
		t.Errorf("failed job: %s %q", job.ErrorCode, job.Error)
	}
	if names := leftovers(t, exports); len(names) != 0 {
		t.Errorf("files left in exports/: %v", names)
	}
	// The audit trail records the failure by the same code.
	trail, err := os.ReadFile(auditPath)
	if err != nil || !strings.Contains(string(trail), `"outcome":"failed"`) || !strings.Contains(string(trail), `"error":"insufficient_storage"`) {
		t.Errorf("audit trail: %s %v", trail, err)
	}
}

// A failure's code and message: what its owner may be told, never SQL,
// a path or a driver's text.
func TestFailureReason(t *testing.T) {
	r := &Runner{cfg: Config{MaxKeptBytes: 20 << 30, JobTimeout: time.Hour}}
	job := &Job{ID: "0123456789abcdef0123456789abcdef"}
	sql := `Binder Error: SELECT "secret" FROM read_parquet('/srv/worklog/data/worklog/month=2024-05/part-1.parquet')`
	tests := []struct {
		name, code, has string
		err             error
	}{
		{"param", query.CodeFieldNotAvailable, "filters[0][key]", fmt.Errorf("plan: %w", &query.ParamError{Param: "filters[0][key]", Code: query.CodeFieldNotAvailable, Message: "email is not available"})},
		{"time limit", CodeTimeout, "did not finish within 1h0m0s", fmt.Errorf("export: %w", errJobTimeout)},
		{"kept cap", CodeStorageFull, "20 GiB", fmt.Errorf("encode: %w", ErrStorageFull)},
		{"go enospc", CodeInsufficientStorage, "insufficient storage", fmt.Errorf("write: %w", &os.PathError{Op: "write", Path: "/srv/x", Err: syscall.ENOSPC})},
		{"duckdb enospc", CodeInsufficientStorage, "insufficient storage", errors.New(`IO Error: Could not write file "/srv/worklog/tmp/x": No space left on device`)},
		{"damaged", CodeStoreDamaged, "month=2024-05/part-1.parquet", &data.DamagedPartError{Path: "month=2024-05/part-1.parquet", Reason: "not a Parquet file", Err: errors.New(sql)}},
		{"audit", CodeAuditFailed, "audit trail", fmt.Errorf("%w: %w", errAudit, errors.New("write /srv/worklog/data/audit.log: read-only file system"))},
		{"other", CodeExportFailed, job.ID, errors.New(sql)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := r.failure(job, tc.err)
			if code != tc.code || !strings.Contains(msg, tc.has) {
				t.Errorf("failure = %s %q, want %s containing %q", code, msg, tc.code, tc.has)
			}
			if strings.Contains(msg, "/srv") || strings.Contains(msg, "SELECT") {
				t.Errorf("message leaks internals: %q", msg)
			}
		})
	}
}

// fullOutbox is an outbox on a full disk: every message fails as its
// write would, with ENOSPC.
type fullOutbox struct{ dir string }

func (m fullOutbox) Send(_ context.Context, id string, _ *mail.Msg) (Receipt, error) {
	return Receipt{}, fmt.Errorf("write outbox message: %w", &os.PathError{Op: "write", Path: filepath.Join(m.dir, "."+id+".eml.1.tmp"), Err: syscall.ENOSPC})
}

// A delivery that meets a full disk says so in the job's status
// (insufficient_storage, no path); the file stays downloadable.
func TestDeliveryDiskFull(t *testing.T) {
	b := newBackend(t)
	outbox := filepath.Join(b.dir, outboxDir)
	r, err := Open(b.config(func(c *Config) { c.Mailer, c.DeliveryAttempts = fullOutbox{dir: outbox}, 2 }))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Start(context.Background())
	job := waitJob(t, r, submit(t, r, export.FormatCSV).ID, delivered)
	if job.Delivery != DeliveryFailed || job.ErrorCode != CodeInsufficientStorage || !strings.Contains(job.Error, "insufficient storage") || strings.Contains(job.Error, b.dir) {
		t.Errorf("delivery on a full disk: %s %s %q", job.Delivery, job.ErrorCode, job.Error)
	}
	if _, _, err := r.FilePath(job.ID, "u1"); err != nil {
		t.Errorf("the file after the failed delivery: %v", err)
	}
}
