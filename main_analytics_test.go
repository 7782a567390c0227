package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAnalyticsCommand runs 'worklog analytics' over the query fixture: the
// SPEC §10 example by flags and by --query, a CSV file, suppression and a
// refused parameter named.
func TestAnalyticsCommand(t *testing.T) {
	dir := t.TempDir()
	if _, stderr, code := worklog(t, nil, "ingest", "--data", dir, "query/testdata/events.ndjson", "query/testdata/analytics_extra.ndjson"); code != 0 {
		t.Fatalf("ingest: %s", stderr)
	}
	want := `[{"date:week":"2024-05-06","channel":"chat","count":2,"avg(duration)":202.5},` +
		`{"date:week":"2024-05-06","channel":"email","count":2,"avg(duration)":104},` +
		`{"date:week":"2024-05-06","channel":"phone","count":1,"avg(duration)":300},` +
		`{"date:week":"2024-05-06","channel":"walkIn","count":1,"avg(duration)":1},` +
		`{"date:week":"2024-05-06","channel":null,"count":1,"avg(duration)":null}]`
	stdout, stderr, code := worklog(t, nil, "analytics", "--data", dir, "--group-by", "date:week", "--group-by", "channel",
		"--measure", "count", "--measure", "avg(duration)", "--filter", "date:between:2024-05-01..2024-05-31")
	if code != 0 || strings.ReplaceAll(stdout, "\n", "") != want || !strings.Contains(stderr, "5 of 5 groups") {
		t.Errorf("flags: exit %d\n%s\nstderr %s\nwant %s", code, stdout, stderr, want)
	}
	stdout, _, code = worklog(t, nil, "analytics", "--data", dir, "--query",
		"groupBy[]=date:week&groupBy[]=channel&measures[]=count&measures[]=avg(duration)&filters[0][key]=date&filters[0][comparator]=between&filters[0][from]=2024-05-01&filters[0][to]=2024-05-31")
	if code != 0 || strings.ReplaceAll(stdout, "\n", "") != want {
		t.Errorf("--query: exit %d\n%s", code, stdout)
	}

	out := filepath.Join(t.TempDir(), "teams.csv")
	_, stderr, code = worklog(t, nil, "analytics", "--data", dir, "--min-group-agents", "3", "--group-by", "teams",
		"--measure", "agents", "--order-by-field", "agents", "--order-by-direction", "desc", "--out", out)
	b, err := os.ReadFile(out)
	if code != 0 || err != nil || !strings.HasPrefix(string(b), "teams,agents\n") || !strings.Contains(stderr, "suppressed (fewer than 3 agents)") {
		t.Errorf("csv file: exit %d, %v, %q, stderr %s", code, err, b, stderr)
	}

	_, stderr, code = worklog(t, nil, "analytics", "--data", dir, "--min-group-agents", "3", "--group-by", "name", "--measure", "count")
	if code == 0 || !strings.Contains(stderr, "groupBy[0]") {
		t.Errorf("name with --min-group-agents: exit %d, %s; want a refusal naming groupBy[0]", code, stderr)
	}
	_, stderr, code = worklog(t, nil, "analytics", "--data", dir, "--measure", "avg(topic)")
	if code == 0 || !strings.Contains(stderr, "measures[0]") {
		t.Errorf("avg(topic): exit %d, %s; want a refusal naming measures[0]", code, stderr)
	}
}
