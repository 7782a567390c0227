package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"worklog/export"
	"worklog/internal/mailtest"
	"worklog/internal/storetest"
	"worklog/privacy"
	"worklog/query"
)

// backend is a real store holding the fixture, its DuckDB engine and the
// pseudonym key: what a job runner sits on.
type backend struct {
	dir    string
	engine *query.Engine
	key    []byte
}

func newBackend(t *testing.T) backend {
	t.Helper()
	b := storetest.New(t, storetest.Fixture(t))
	return backend{dir: b.Dir, engine: b.Engine, key: b.Key}
}

// testPaths are the API paths of jobs as the HTTP layer names them.
type testPaths struct{}

func (testPaths) Status(id string) string { return "/api/mind/export/jobs/" + id }
func (testPaths) File(id string) string   { return "/api/mind/export/jobs/" + id + "/file" }
func (testPaths) Download(l Link) string {
	return fmt.Sprintf("/api/mind/export/jobs/%s/file?expires=%d&sig=%s", l.ID, l.Expires, l.Sig)
}

func (b backend) config(mutate func(*Config)) Config {
	c := Config{DataDir: b.dir, Engine: b.engine, PseudonymKey: b.key, Paths: testPaths{},
		PublicURL: "https://worklog.example.com", RetryBackoff: 20 * time.Millisecond, SweepInterval: 20 * time.Millisecond}
	if mutate != nil {
		mutate(&c)
	}
	return c
}

// submit queues an export of the whole fixture for u1 at level pseudonymized.
func submit(t *testing.T, r *Runner, f export.Format) *Job {
	t.Helper()
	job, err := r.Submit(Spec{Owner: "u1", Email: "ann@example.com", Level: privacy.Pseudonymized,
		Query: url.Values{"format": {string(f)}}, Format: f, CSVFormulaGuard: true, Rows: 33})
	if err != nil {
		t.Fatal(err)
	}
	return job
}

// direct runs the same export without a job, as `worklog export` would.
func (b backend) direct(t *testing.T, f export.Format) []byte {
	t.Helper()
	pol, err := privacy.NewPolicy(privacy.Pseudonymized, nil, b.key)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := query.Parse(url.Values{"format": {string(f)}}, export.PlanOptions(pol, export.FormatJSON))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := b.engine.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := export.Run(context.Background(), export.Request{Engine: b.engine, Snapshot: snap, Plan: plan, Policy: pol, Format: f,
		Options: export.EncoderOptions{CSVFormulaGuard: true}}, &buf, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// waitJob polls the job store (no timing assumption: the deadline only
// bounds a broken run) until done reports true.
func waitJob(t *testing.T, r *Runner, id string, done func(*Job) bool) *Job {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		j, err := r.Get(id, "u1")
		if err != nil {
			t.Fatal(err)
		}
		if done(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s/%s", id, j.Status, j.Delivery)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func delivered(j *Job) bool {
	return j.Status == Done && j.Delivery.Delivered()
}

// A job left running by a crashed process is queued again when the store is
// opened, restarts from the beginning, and the crash's temporary file is
// swept.
func TestJobResumesAfterCrash(t *testing.T) {
	b := newBackend(t)
	r, err := Open(b.config(nil))
	if err != nil {
		t.Fatal(err)
	}
	sb := submit(t, r, export.FormatCSV)
	// A worker claims the job and dies mid-write.
	if job, err := r.store.claim(time.Now()); err != nil || job == nil || job.ID != sb.ID {
		t.Fatalf("claim: %v %v", job, err)
	}
	tmp := filepath.Join(b.dir, "exports", "."+sb.ID+".csv.123.tmp")
	if err := os.WriteFile(tmp, []byte("date,na"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r, err = Open(b.config(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file of the crashed run is still there: %v", err)
	}
	if j, err := r.Get(sb.ID, "u1"); err != nil || j.Status != Queued {
		t.Fatalf("after reopen: %+v %v, want queued", j, err)
	}
	r.Start(context.Background())
	j := waitJob(t, r, sb.ID, func(j *Job) bool { return j.Delivery.Delivered() || j.Status == Failed })
	if j.Status != Done || j.Runs != 2 || j.Rows != 33 || j.DeliveryAttempts != 1 {
		t.Errorf("resumed job %+v", j)
	}
	got, err := os.ReadFile(filepath.Join(b.dir, "exports", sb.ID+".csv"))
	if err != nil {
		t.Fatal(err)
	}
	if want := b.direct(t, export.FormatCSV); !bytes.Equal(got, want) {
		t.Error("the resumed job's file differs from the same export run directly")
	}
}

// A restart that finds a delivery recorded as sending (the process died
// between send and record) sends it again, once, with the same Message-ID;
// one recorded as sent is never sent again.
func TestJobDeliveryAfterCrashWindow(t *testing.T) {
	b := newBackend(t)
	sink := mailtest.NewSink(t, 0)
	mailer, err := NewSMTPMailer("smtp://" + sink.Addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := b.config(func(c *Config) { c.Mailer = mailer })
	r, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.Start(context.Background())
	a := submit(t, r, export.FormatCSV)
	bj := submit(t, r, export.FormatJSON)
	waitJob(t, r, a.ID, delivered)
	waitJob(t, r, bj.ID, delivered)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	store, _, err := openJobStore(filepath.Join(b.dir, jobsDBFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.update(a.ID, func(j *Job) error { j.Delivery = DeliverySending; return nil }); err != nil {
		t.Fatal(err)
	}
	store.close()

	// The janitor's first sweep resends what a crash left sending; any
	// wrong send would happen in a sweep too. After two whole sweeps every
	// send that will ever happen has happened.
	r, err = Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sweeps := make(chan struct{}, 16)
	r.afterSweep = func() {
		select {
		case sweeps <- struct{}{}:
		default:
		}
	}
	r.Start(context.Background())
	<-sweeps
	<-sweeps
	msgs := sink.Received()
	if len(msgs) != 3 {
		t.Fatalf("%d messages, want 3 (two jobs, one resend)", len(msgs))
	}
	if mailtest.Parse(t, msgs[2].Data).Header.Get("Message-Id") != "<"+a.ID+"@worklog>" {
		t.Error("the resent message has another Message-ID")
	}
	if j, _ := r.Get(a.ID, "u1"); j.Delivery != DeliverySent || j.DeliveryAttempts != 2 {
		t.Errorf("after resend: %s, %d attempts", j.Delivery, j.DeliveryAttempts)
	}
}

func TestNewSMTPMailer(t *testing.T) {
	tests := []struct {
		url     string
		wantErr string
	}{
		{"smtp://mail.example.com", ""},
		{"smtp://user:secret@mail.example.com:2525", ""},
		{"smtps://user:secret@mail.example.com", ""},
		{"smtp://mail.example.com:25?tls=mandatory&timeout=5s", ""},
		{"http://mail.example.com", "scheme must be smtp or smtps"},
		{"smtp://user:secret@mail.example.com:99999", "bad port"},
		{"smtp://:25", "no host"},
		{"smtp://mail.example.com?timeout=soon", "bad timeout"},
	}
	for _, tc := range tests {
		_, err := NewSMTPMailer(tc.url)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.url, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want %q", tc.url, err, tc.wantErr)
		case err != nil && strings.Contains(err.Error(), "secret"):
			t.Errorf("%s: error shows the password: %v", tc.url, err)
		}
	}
}

func TestJobMessage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.csv")
	if err := os.WriteFile(path, []byte("date\n2024-05-10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	job := &Job{ID: newJobID(), Format: export.FormatCSV, Rows: 1, Bytes: 16, CreatedAt: time.Date(2024, 5, 10, 8, 0, 0, 0, time.UTC),
		FinishedAt: time.Date(2024, 5, 10, 8, 1, 0, 0, time.UTC), ExpiresAt: time.Date(2024, 5, 17, 8, 1, 0, 0, time.UTC)}
	tests := []struct {
		name        string
		m           jobMessage
		attachments int
		wantErr     bool
	}{
		{"attached", jobMessage{From: "a@example.com", To: "b@example.com", Job: job, Path: path, Attach: true, DownloadURL: "https://x/file"}, 1, false},
		{"link", jobMessage{From: "a@example.com", To: "b@example.com", Job: job, Path: path, DownloadURL: "https://x/file"}, 0, false},
		{"missing file is an error, not a message without it", jobMessage{From: "a@example.com", To: "b@example.com", Job: job, Path: path + ".gone", Attach: true}, 0, true},
		{"bad recipient", jobMessage{From: "a@example.com", To: "not an address", Job: job, Path: path}, 0, true},
	}
	for _, tc := range tests {
		msg, err := tc.m.build()
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: error %v", tc.name, err)
			continue
		}
		if err != nil {
			continue
		}
		var buf bytes.Buffer
		if _, err := msg.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		pm := mailtest.Parse(t, buf.Bytes())
		if len(pm.Attachments) != tc.attachments || !strings.Contains(pm.Text, "https://x/file") || !strings.Contains(pm.Header.Get("Subject"), "1 rows") {
			t.Errorf("%s: %d attachments, subject %q, text:\n%s", tc.name, len(pm.Attachments), pm.Header.Get("Subject"), pm.Text)
		}
		if att := pm.Attachments["reporting_worklog_20240510T080000Z.csv"]; tc.attachments == 1 && string(att) != "date\n2024-05-10\n" {
			t.Errorf("%s: attachment %q (%v)", tc.name, att, fmt.Sprint(len(pm.Attachments)))
		}
	}
}
