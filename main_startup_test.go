package main

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startServeOut starts 'worklog serve' and returns, once it serves, what it
// printed to stdout and logged to stderr up to then.
func startServeOut(t *testing.T, args ...string) (stdout, logs string) {
	t.Helper()
	cmd := exec.Command(worklogBin(t), append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	out, errs := &lockedBuffer{}, &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, errs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	deadline := time.Now().Add(120 * time.Second)
	for !strings.Contains(errs.String(), `"msg":"serving"`) {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", errs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return out.String(), errs.String()
}

// serve says at start what the store holds; serve --demo over a store that
// has events says the demo data was not added instead of claiming a demo.
func TestServeSaysWhatIsThere(t *testing.T) {
	dir := t.TempDir()
	stdout, logs := startServeOut(t, "--data", dir, "--jwt-secret", "0123456789abcdef0123")
	if !strings.Contains(stdout, "is empty") || !strings.Contains(logs, `"msg":"store is empty"`) {
		t.Errorf("empty store not reported:\n%s\n%s", stdout, logs)
	}
	dump := event(1, 5, 3, 10, 0) + "\n" + event(2, 6, 17, 20, 0) + "\n"
	if _, stderr, code := worklog(t, nil, "ingest", "--data", dir, writeFile(t, t.TempDir(), "d.ndjson", dump)); code != 0 {
		t.Fatalf("ingest: %s", stderr)
	}
	stdout, logs = startServeOut(t, "--data", dir, "--jwt-secret", "0123456789abcdef0123")
	if want := "holds 2 events from 2024-05-03 to 2024-06-17"; !strings.Contains(stdout, want) {
		t.Errorf("stdout lacks %q:\n%s", want, stdout)
	}
	if !strings.Contains(logs, `"events":2,"first_date":"2024-05-03","last_date":"2024-06-17"`) {
		t.Errorf("log lacks the store line:\n%s", logs)
	}
	stdout, logs = startServeOut(t, "--data", dir, "--demo")
	if !strings.Contains(stdout, "already holds 2 events: the demo data was not added") || !strings.Contains(logs, "demo data not added") {
		t.Errorf("serve --demo over a store with data:\n%s\n%s", stdout, logs)
	}
	if strings.Contains(logs, "generating demo events") {
		t.Error("demo events generated into a store that had data")
	}
}
