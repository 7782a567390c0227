package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
	"worklog/export/api"
)

func TestServeHelpListsSettings(t *testing.T) {
	bin := worklogBin(t) // main_ingest_test.go: built once per run
	cmd := exec.Command(bin, "serve", "--help")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no WORKLOG_* from the environment
	out, _ := cmd.CombinedOutput()
	help := string(out)
	tests := []struct{ flag, env, def string }{
		{"data", "WORKLOG_DATA", "./data"},
		{"addr", "WORKLOG_ADDR", "127.0.0.1:8080"},
		{"jwt-secret", "WORKLOG_JWT_SECRET", ""},
		{"jwt-public-key", "WORKLOG_JWT_PUBLIC_KEY", ""},
		{"privacy-level", "WORKLOG_PRIVACY_LEVEL", "pseudonymized"},
		{"pseudonym-key", "WORKLOG_PSEUDONYM_KEY", ""},
		{"default-format", "WORKLOG_DEFAULT_FORMAT", "json"},
		{"smtp-url", "WORKLOG_SMTP_URL", ""},
		{"mail-from", "WORKLOG_MAIL_FROM", "worklog@localhost"},
		{"public-url", "WORKLOG_PUBLIC_URL", ""},
		{"max-sync-exports", "WORKLOG_MAX_SYNC_EXPORTS", "4"},
		{"export-timeout", "WORKLOG_EXPORT_TIMEOUT", "5m0s"},
		{"max-query-bytes", "WORKLOG_MAX_QUERY_BYTES", "64KiB"},
		{"max-filters", "WORKLOG_MAX_FILTERS", "50"},
		{"max-values", "WORKLOG_MAX_VALUES", "1000"},
		{"max-ingest-bytes", "WORKLOG_MAX_INGEST_BYTES", "1GiB"},
		{"shutdown-timeout", "WORKLOG_SHUTDOWN_TIMEOUT", "30s"},
		{"retention-days", "WORKLOG_RETENTION_DAYS", "0"},
		{"audit-log", "WORKLOG_AUDIT_LOG", ""},
		{"retire-grace", "WORKLOG_RETIRE_GRACE", "10m0s"},
		{"max-queued-jobs", "WORKLOG_MAX_QUEUED_JOBS", "100"},
		{"max-export-bytes", "WORKLOG_MAX_EXPORT_BYTES", "20GiB"},
		{"exports-per-user", "WORKLOG_EXPORTS_PER_USER", "2"},
		{"queries-per-user", "WORKLOG_QUERIES_PER_USER", "4"},
		{"memory-hand-back", "WORKLOG_MEMORY_HAND_BACK", defaultHandBackAbove},
	}
	for _, tc := range tests {
		// flag's usage: "  -name string\n    \tusage (env X) (default "d")"
		re := regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(tc.flag) + ` \w+\n\s+[^\n]*\(env ` + tc.env + `\)([^\n]*)`)
		m := re.FindStringSubmatch(help)
		if m == nil {
			t.Errorf("--%s with env %s not listed", tc.flag, tc.env)
			continue
		}
		if tc.def != "" && !strings.Contains(m[1], fmt.Sprintf("(default %q)", tc.def)) {
			t.Errorf("--%s: %q, want default %q", tc.flag, m[0], tc.def)
		}
	}
	// Secrets from the environment are used but never shown.
	cmd = exec.Command(bin, "serve", "--help")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "WORKLOG_JWT_SECRET=s3cret-jwt-value-0123", "WORKLOG_PSEUDONYM_KEY=s3cret-pseudonym-key",
		"WORKLOG_SMTP_URL=smtp://u:s3cret-mail-pass@mail.example.com:587"}
	out, _ = cmd.CombinedOutput()
	if strings.Contains(string(out), "s3cret") {
		t.Errorf("serve --help shows a secret from the environment:\n%s", out)
	}
	cmd = exec.Command(bin, "token", "--help")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "WORKLOG_JWT_SECRET=s3cret-jwt-value-0123"}
	out, _ = cmd.CombinedOutput()
	if strings.Contains(string(out), "s3cret") {
		t.Errorf("token --help shows the secret from the environment:\n%s", out)
	}
	// The environment sets the default; the flag line shows it.
	cmd = exec.Command(bin, "serve", "--help")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "WORKLOG_MAX_SYNC_EXPORTS=9"}
	out, _ = cmd.CombinedOutput()
	if !strings.Contains(string(out), `(env WORKLOG_MAX_SYNC_EXPORTS) (default "9")`) {
		t.Errorf("WORKLOG_MAX_SYNC_EXPORTS=9 not reflected:\n%s", out)
	}
	// A bad limit stops the server before it listens.
	cmd = exec.Command(bin, "serve", "--data", t.TempDir(), "--jwt-secret", "0123456789abcdef0123456789abcdef", "--max-sync-exports", "0", "--export-timeout", "soon")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--max-sync-exports") || !strings.Contains(string(out), "--export-timeout") {
		t.Errorf("bad limits: %v\n%s", err, out)
	}
	cmd = exec.Command(bin, "serve", "--data", t.TempDir(), "--jwt-secret", "0123456789abcdef0123456789abcdef", "--memory-hand-back", "sometimes")
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--memory-hand-back") {
		t.Errorf("bad --memory-hand-back: %v\n%s", err, out)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestSIGTERMLetsExportFinish starts the real binary, begins a long export,
// sends SIGTERM, and checks that the export completes whole, that new
// connections are refused meanwhile, and that the process exits cleanly.
func TestSIGTERMLetsExportFinish(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := worklogBin(t) // main_ingest_test.go: built once per run
	dir := t.TempDir()
	const secret = "0123456789abcdef0123456789abcdef"
	if out, err := exec.Command(bin, "demo", "--data", dir, "--rows", "60000").CombinedOutput(); err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	tokOut, err := exec.Command(bin, "token", "--jwt-secret", secret, "--sub", "u1", "--email", "u1@example.com").Output()
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(tokOut))
	addr := freeAddr(t)
	srv := exec.Command(bin, "serve", "--data", dir, "--addr", addr, "--jwt-secret", secret,
		"--privacy-level", "none", "--shutdown-timeout", "2m")
	stderr, _ := srv.StderrPipe()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill() })
	var logs bytes.Buffer
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
		}
	}()
	base := "http://" + addr
	waitUntil(t, "the server to listen", func() bool {
		r, err := http.Get(base + api.ReadyzPath)
		if err == nil {
			r.Body.Close()
		}
		return err == nil && r.StatusCode == 200
	})

	// A whole CSV export of 60,000 events at level none (rawData included:
	// tens of megabytes). The client reads its first byte and then stops
	// reading until after SIGTERM: a body far larger than the socket
	// buffers cannot be finished by the server meanwhile, so the export is
	// certainly still running when the signal arrives, however fast the
	// machine.
	type result struct {
		status int
		total  string
		lines  int
		err    error
	}
	started := make(chan error, 1)
	resume := make(chan struct{})
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, base+api.ExportPath+"?format=csv", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
		if err != nil {
			started <- err
			return
		}
		defer resp.Body.Close()
		first := make([]byte, 1)
		if _, err := io.ReadFull(resp.Body, first); err != nil {
			started <- err
			return
		}
		started <- nil
		<-resume
		rest, err := io.ReadAll(resp.Body)
		body := append(first, rest...)
		done <- result{status: resp.StatusCode, total: resp.Header.Get("X-Total-Count"), lines: bytes.Count(body, []byte("\n")), err: err}
	}()
	if err := <-started; err != nil {
		t.Fatalf("start the export: %v", err)
	}
	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The listener closes on SIGTERM: new connections are refused while
	// the running export goes on.
	probe := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	waitUntil(t, "new connections to be refused after SIGTERM", func() bool {
		r, err := probe.Get(base + api.HealthzPath)
		if err == nil {
			r.Body.Close()
		}
		return err != nil
	})
	close(resume)
	res := <-done
	if res.err != nil || res.status != 200 {
		t.Fatalf("export during shutdown: %d %v", res.status, res.err)
	}
	if res.total != "60000" || res.lines != 60001 {
		t.Errorf("export during shutdown: X-Total-Count %s, %d lines, want 60000 rows and a header", res.total, res.lines)
	}
	waitErr := srv.Wait()
	<-logDone
	if waitErr != nil {
		t.Errorf("exit: %v\n%s", waitErr, logs.String())
	}
	if !strings.Contains(logs.String(), "shut down cleanly") {
		t.Errorf("no clean shutdown logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), tok) {
		t.Error("the token is in the log")
	}
}

// waitUntil polls cond for up to two minutes (a hang guard, not a speed
// assertion).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitUntilWithin(t, 2*time.Minute, cond, func() string { return what })
}

// waitUntilWithin polls cond until it holds or d has passed; describe says
// what was awaited (and what was seen) when it never held.
func waitUntilWithin(t *testing.T, d time.Duration, cond func() bool, describe func() string) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", describe())
}

// TestServeDemoPageToken checks that 'serve --demo' hands the page its demo
// token on a loopback address, and not when it listens on every interface.
func TestServeDemoPageToken(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := worklogBin(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		listen string
		want   bool
	}{{"127.0.0.1", true}, {"0.0.0.0", false}} {
		port := freeAddr(t)[len("127.0.0.1:"):]
		srv := exec.Command(bin, "serve", "--demo", "--demo-rows", "200", "--data", dir, "--addr", tc.listen+":"+port)
		var out bytes.Buffer
		srv.Stdout = &out
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		base := "http://127.0.0.1:" + port
		waitUntil(t, "the server to listen", func() bool {
			r, err := http.Get(base + api.ReadyzPath)
			if err == nil {
				r.Body.Close()
			}
			return err == nil && r.StatusCode == 200
		})
		r, err := http.Get(base + api.UIConfigPath)
		if err != nil {
			t.Fatal(err)
		}
		var cfg api.UIConfig
		err = json.NewDecoder(r.Body).Decode(&cfg)
		r.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.DemoToken != ""; got != tc.want {
			t.Errorf("listening on %s: page token given %t, want %t", tc.listen, got, tc.want)
		}
		if tc.want {
			req, _ := http.NewRequest(http.MethodGet, base+api.CatalogPath, nil)
			req.Header.Set("Authorization", "Bearer "+cfg.DemoToken)
			r, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			if r.StatusCode != http.StatusOK {
				t.Errorf("the page's demo token is refused: %d", r.StatusCode)
			}
		}
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
		banner := "in a browser and paste the token"
		if tc.want {
			banner = "in a browser (the token is filled in)"
		}
		if !strings.Contains(out.String(), banner) {
			t.Errorf("the demo banner does not point to the page:\n%s", out.String())
		}
	}
}
