package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"worklog/export/api"
	"worklog/export/api/auth"
	"worklog/export/jobs"
	"worklog/internal/pgtest"
)

// Two `worklog serve` replicas, A and B, over one data directory and one
// PostgreSQL (SPEC §13): an export queued on A while A's only worker is
// busy runs on B; its status reads the same from either replica; A is
// SIGKILLed in the middle of its job, and B finishes that job (River's
// rescuer queues it again): one SMTP message per job, no more. A forget
// from the command line then erases both jobs' files through the database.
func TestReplicasShareExportJobs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dbURL := pgtest.New(t)
	dir := t.TempDir()
	if _, stderr, code := worklog(t, nil, "demo", "--data", dir, "--rows", "2000"); code != 0 {
		t.Fatalf("demo: %s", stderr)
	}
	box, smtpAddr := startMailbox(t)
	secret := "replica-test-secret-0123456789"
	tok, err := auth.MintHS256([]byte(secret), auth.TokenRequest{Subject: "ann", Email: "ann@example.com", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--data", dir, "--jwt-secret", secret, "--database-url", dbURL,
		"--smtp-url", "smtp://" + smtpAddr, "--public-url", "https://worklog.example.com",
		// Every CSV export above 10 rows is a background job; one worker;
		// a short time limit, so River's rescuer takes A's job within a
		// minute (jobs.RescueAfter(10s) = 30s after it started).
		"--sync-limit-rows", "10", "--job-workers", "1", "--job-timeout", "10s"}

	// A holds every job it starts (the test hook) until it dies.
	held := t.TempDir()
	t.Setenv(holdJobsEnv, held)
	a := startServe(t, args...)
	os.Unsetenv(holdJobsEnv)
	submitJob := func(s *server, query string) string {
		t.Helper()
		code, body := s.get(t, tok, api.ExportPath+"?"+query)
		var sb struct{ JobID string }
		if code != http.StatusAccepted || json.Unmarshal(body, &sb) != nil || sb.JobID == "" {
			t.Fatalf("export request: %d %s", code, body)
		}
		return sb.JobID
	}
	first := submitJob(a, "format=csv")
	waitUntil(t, "A holds the first job", func() bool {
		_, err := os.Stat(filepath.Join(held, first+".held"))
		return err == nil
	})

	t.Logf("%s A holds the first job", time.Now().Format("15:04:05.000"))
	// B starts after A is busy, so that the first job is A's.
	b := startServe(t, args...)
	second := submitJob(a, "format=json")
	var v api.JobView
	waitUntil(t, "the second job delivered", func() bool {
		v = b.job(t, tok, second)
		return v.Delivery == jobs.DeliverySent || v.Status == jobs.Failed
	})
	if v.Status != jobs.Done {
		t.Fatalf("second job: %+v\n%s", v, b.logs.String())
	}
	if !strings.Contains(b.logs.String(), `"msg":"export job done","job":"`+second) || strings.Contains(a.logs.String(), `"msg":"export job done"`) {
		t.Errorf("the second job did not run on B:\nA:\n%s\nB:\n%s", a.logs.String(), b.logs.String())
	}
	// The same status, list and file from either replica.
	for _, path := range []string{api.JobPaths{}.Status(second), api.JobPaths{}.Status(first), api.JobsPath} {
		ca, ba := a.get(t, tok, path)
		cb, bb := b.get(t, tok, path)
		if ca != http.StatusOK || ca != cb || !bytes.Equal(ba, bb) {
			t.Errorf("%s: A %d %s, B %d %s", path, ca, ba, cb, bb)
		}
	}
	ca, fa := a.get(t, tok, api.JobPaths{}.File(second))
	cb, fb := b.get(t, tok, api.JobPaths{}.File(second))
	if ca != http.StatusOK || cb != http.StatusOK || !bytes.Equal(fa, fb) || len(fa) == 0 {
		t.Errorf("file from A %d (%d bytes), from B %d (%d bytes)", ca, len(fa), cb, len(fb))
	}

	t.Logf("%s second job done on B", time.Now().Format("15:04:05.000"))
	// A dies holding the first job.
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.cmd.Wait()
	// B takes A's job over only once River rescues it: three minutes, as
	// this wait always allowed, not waitUntil's two.
	waitUntilWithin(t, 3*time.Minute, func() bool {
		v = b.job(t, tok, first)
		return v.Delivery == jobs.DeliverySent || v.Status == jobs.Failed
	}, func() string { return fmt.Sprintf("B to finish A's job: %+v\n%s", v, b.logs.String()) })
	t.Logf("%s first job finished by B", time.Now().Format("15:04:05.000"))
	if v.Status != jobs.Done || v.Rows != 2000 {
		t.Fatalf("first job after A died: %+v", v)
	}
	msgs := box.received()
	ids := map[string]int{}
	for _, m := range msgs {
		ids[messageID(t, m.data)]++
	}
	want := map[string]int{"<" + first + "@worklog>": 1, "<" + second + "@worklog>": 1}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("messages by Message-ID %v, want one per job %v", ids, want)
	}

	// An erasure from the command line, while B serves, reaches the jobs
	// in the database: both files were made before it and answer 410.
	_, stderr, code := worklog(t, nil, "forget", "--data", dir, "--database-url", dbURL, "--user-id", "101")
	if code != 0 || !strings.Contains(stderr, "deleted the files of 2 finished export job(s)") {
		t.Fatalf("forget: exit %d\n%s", code, stderr)
	}
	for _, id := range []string{first, second} {
		if v := b.job(t, tok, id); v.Status != jobs.Erased {
			t.Errorf("job %s after the erasure: %s", id, v.Status)
		}
		if code, body := b.get(t, tok, api.JobPaths{}.File(id)); code != http.StatusGone {
			t.Errorf("file of job %s after the erasure: %d %s", id, code, body)
		}
	}
}

// messageID is the Message-Id header of a raw message.
func messageID(t *testing.T, raw []byte) string {
	t.Helper()
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	for _, line := range strings.Split(string(head), "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Message-Id") {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no Message-Id in\n%s", head)
	return ""
}
