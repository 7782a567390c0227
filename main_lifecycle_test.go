package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"worklog/internal/audit"
)

// userEvent is one valid NDJSON event of user at date, with rawData of pad
// bytes.
func userEvent(id, user int, date time.Time, pad int) string {
	return fmt.Sprintf(`{"date":%q,"action":"writeAction","userWorklogId":%d,"userId":%d,"name":"Agent %d","email":"u%d@example.com","duration":%d,"rawData":%q}`,
		date.Format("2006-01-02 15:04:05"), id, user, user, user, id, strings.Repeat("r", pad))
}

// auditEntries reads the audit trail of a data directory and checks its
// chain.
func auditEntries(t *testing.T, dataDir string) []audit.Entry {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dataDir, audit.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := audit.Verify(bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
	var out []audit.Entry
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var e audit.Entry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func TestPruneAndForgetCommands(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "data")
	now := time.Now().UTC()
	// Dates relative to now: 2 and 20 days old (kept with 30 days of
	// retention), 29 days and 23 hours (kept), 30 days and an hour, 45 and
	// 400 days (deleted).
	ages := []time.Duration{2 * 24 * time.Hour, 20 * 24 * time.Hour, 30*24*time.Hour - time.Hour, 30*24*time.Hour + time.Hour, 45 * 24 * time.Hour, 400 * 24 * time.Hour}
	var dump strings.Builder
	for i, age := range ages {
		for u := 1; u <= 3; u++ {
			dump.WriteString(userEvent(i*10+u, u, now.Add(-age), 10) + "\n")
		}
	}
	in := writeFile(t, dir, "dump.ndjson", dump.String())
	if _, errOut, code := worklog(t, nil, "ingest", "--data", store, in); code != 0 {
		t.Fatal(errOut)
	}

	out, errOut, code := worklog(t, nil, "prune", "--data", store, "--retention-days", "30")
	if code != 0 || strings.TrimSpace(out) != `{"events":9,"months":`+fmt.Sprint(monthsTouched(now, ages[3:]))+`}` {
		t.Fatalf("prune: %d %q %q", code, out, errOut)
	}
	out, _, _ = worklog(t, nil, "prune", "--data", store, "--retention-days", "30")
	if strings.TrimSpace(out) != `{"events":0,"months":0}` {
		t.Errorf("second prune: %q", out)
	}
	for _, args := range [][]string{{"prune", "--data", store}, {"prune", "--data", store, "--retention-days", "-3"}} {
		if _, _, code := worklog(t, nil, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}

	exp := filepath.Join(dir, "all.json")
	if _, errOut, code := worklog(t, nil, "export", "--data", store, "--privacy-level", "none", "--out", exp, "--order-by-field", "userWorklogId", "--order-by-direction", "asc"); code != 0 {
		t.Fatal(errOut)
	}
	var kept []map[string]any
	b, _ := os.ReadFile(exp)
	json.Unmarshal(b, &kept)
	if len(kept) != 9 || kept[0]["userWorklogId"].(float64) != 1 || kept[8]["userWorklogId"].(float64) != 23 {
		t.Fatalf("after prune: %d events: %s", len(kept), b)
	}

	out, errOut, code = worklog(t, nil, "forget", "--data", store, "--user-id", "2", "--mode", "delete")
	if code != 0 || !strings.HasPrefix(strings.TrimSpace(out), `{"events":3,"months":`) {
		t.Fatalf("forget: %d %q %q", code, out, errOut)
	}
	out, _, _ = worklog(t, nil, "forget", "--data", store, "--user-id", "2", "--mode", "delete")
	if strings.TrimSpace(out) != `{"events":0,"months":0}` {
		t.Errorf("second forget: %q", out)
	}
	out, errOut, code = worklog(t, nil, "forget", "--data", store, "--user-id", "3")
	if code != 0 || !strings.HasPrefix(strings.TrimSpace(out), `{"events":3,`) {
		t.Fatalf("forget anonymize: %d %q %q", code, out, errOut)
	}
	for _, args := range [][]string{{"forget", "--data", store}, {"forget", "--data", store, "--user-id", "x"}, {"forget", "--data", store, "--user-id", "3", "--mode", "erase"}} {
		if _, _, code := worklog(t, nil, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}

	es := auditEntries(t, store)
	var got []string
	for _, e := range es {
		if e.Sub != audit.CLISubject {
			t.Errorf("sub %q", e.Sub)
		}
		got = append(got, fmt.Sprintf("%s:%s:%d", e.Action, e.Outcome, e.Rows))
	}
	want := "ingest:ok:18 prune:ok:9 prune:ok:0 cliExport:ok:9 forget:ok:3 forget:ok:0 forget:ok:3"
	if strings.Join(got, " ") != want {
		t.Errorf("audit trail:\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
	if raw, _ := os.ReadFile(filepath.Join(store, audit.FileName)); bytes.Contains(raw, []byte("rrrrrrrrrr")) || bytes.Contains(raw, []byte("@example.com")) {
		t.Error("the audit trail holds row content")
	}
}

// monthsTouched counts the distinct months of the dates now-age.
func monthsTouched(now time.Time, ages []time.Duration) int {
	m := map[string]bool{}
	for _, a := range ages {
		m[now.Add(-a).Format("2006-01")] = true
	}
	return len(m)
}

// TestForgetSurvivesSIGKILL kills `worklog forget` at moments spread over
// its run: the store reads back exactly as before or exactly as after, and
// the same forget then completes.
func TestForgetSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary many times")
	}
	dir := t.TempDir()
	var b strings.Builder
	base0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= 12000; i++ {
		b.WriteString(userEvent(i, 1+i%6, base0.Add(time.Duration(i)*17*time.Minute), 400) + "\n")
	}
	dump := writeFile(t, dir, "a.ndjson", b.String())
	base := filepath.Join(dir, "base")
	if _, errOut, code := worklog(t, nil, "ingest", "--data", base, dump); code != 0 {
		t.Fatalf("ingest: %s", errOut)
	}
	before := storeDigest(t, base)
	full := filepath.Join(dir, "full")
	copyTree(t, base, full)
	start := time.Now()
	if _, errOut, code := worklog(t, nil, "forget", "--data", full, "--user-id", "4"); code != 0 {
		t.Fatalf("forget: %s", errOut)
	}
	took := time.Since(start)
	after := storeDigest(t, full)
	if before == after {
		t.Fatal("the forget changes nothing; the test would prove nothing")
	}
	const runs = 12
	seen := map[string]int{}
	for i := range runs {
		delay := took/10 + took*time.Duration(14*i)/time.Duration(10*(runs-1))
		work := filepath.Join(dir, fmt.Sprintf("run%d", i))
		copyTree(t, base, work)
		cmd := exec.Command(worklogBin(t), "forget", "--data", work, "--user-id", "4")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		switch got := storeDigest(t, work); got {
		case before:
			seen["before"]++
		case after:
			seen["after"]++
		default:
			t.Errorf("killed after %v: store reads %s, want before (%s) or after (%s)", delay, got, before, after)
		}
		if _, errOut, code := worklog(t, nil, "forget", "--data", work, "--user-id", "4"); code != 0 {
			t.Errorf("forget after kill at %v: %s", delay, errOut)
		} else if got := storeDigest(t, work); got != after {
			t.Errorf("forget after kill at %v: store reads %s, want %s", delay, got, after)
		}
		if tmp, _ := filepath.Glob(filepath.Join(work, "worklog", "month=*", "*.tmp")); len(tmp) > 0 {
			t.Errorf("temp files left after recovery: %v", tmp)
		}
	}
	t.Logf("full forget took %v; killed runs read back as %v", took, seen)
}

// serve applies --retention-days at start (logged, counted in /metrics,
// recorded in the trail), and while it runs, `worklog forget` refuses to
// erase behind its back: the server holds the export jobs whose files must
// be erased too.
func TestServeRetentionAndForgetWhileServing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	store := filepath.Join(dir, "data")
	now := time.Now().UTC()
	var dump strings.Builder
	for i := 1; i <= 10; i++ {
		age := time.Duration(i)*24*time.Hour - 12*time.Hour // 0.5..9.5 days old
		dump.WriteString(userEvent(i, 1, now.Add(-age), 10) + "\n")
	}
	in := writeFile(t, dir, "dump.ndjson", dump.String())
	if _, errOut, code := worklog(t, nil, "ingest", "--data", store, in); code != 0 {
		t.Fatal(errOut)
	}
	srv := startServe(t, "--data", store, "--jwt-secret", "0123456789abcdef0123456789abcdef", "--retention-days", "5")
	waitUntil(t, "the retention run at start", func() bool {
		return strings.Contains(srv.logs.String(), `"msg":"retention"`)
	})
	code, metrics := srv.get(t, "", "/metrics")
	if code != 200 || !bytes.Contains(metrics, []byte("worklog_retention_deleted_events_total 5")) ||
		!bytes.Contains(metrics, []byte(`worklog_retention_runs_total{outcome="ok"} 1`)) {
		t.Errorf("metrics: %d\n%s", code, grepMetric(metrics, "worklog_retention"))
	}
	var prunes []audit.Entry
	for _, e := range auditEntries(t, store) {
		if e.Action == audit.ActionPrune {
			prunes = append(prunes, e)
		}
	}
	if len(prunes) != 1 || prunes[0].Sub != "retention" || prunes[0].Rows != 5 || prunes[0].Params["retentionDays"][0] != "5" {
		t.Errorf("audit lines of prune: %+v", prunes)
	}

	_, errOut, code := worklog(t, nil, "forget", "--data", store, "--user-id", "1")
	if code == 0 || !strings.Contains(errOut, "POST /api/mind/privacy/forget") {
		t.Errorf("forget while serving: exit %d, %q", code, errOut)
	}
	if got := storeDigest(t, store); !strings.HasPrefix(got, "5 rows") {
		t.Errorf("store after the refused forget: %s", got)
	}
}

func grepMetric(b []byte, prefix string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
