package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"worklog/export/api"
	"worklog/export/api/auth"
	"worklog/internal/audit"
	"worklog/internal/pgstate"
	"worklog/internal/pgtest"
)

// fetch GETs path from s with a bearer token and a request id, and returns
// the status, the headers and the body.
func (s *server) fetch(t *testing.T, tok, path, requestID string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Request-Id", requestID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

// countEvents sums the analytics count over actions: every event of the
// store.
func countEvents(t *testing.T, s *server, tok, requestID string) int64 {
	t.Helper()
	code, _, body := s.fetch(t, tok, api.AnalyticsPath+"?groupBy[]=action&measures[]=count&format=json", requestID)
	var rows []struct{ Count int64 }
	if code != http.StatusOK || json.Unmarshal(body, &rows) != nil {
		t.Fatalf("count: %d %s", code, body)
	}
	var n int64
	for _, r := range rows {
		n += r.Count
	}
	return n
}

var nextLink = regexp.MustCompile(`<([^>]+)>; rel="next"`)

// Two `worklog serve` replicas over one data directory and one PostgreSQL
// (SPEC §13) answer alike, accept each other's cursors, see a CLI ingest
// whole, and write one audit trail.
func TestReplicasShareTheStore(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dbURL := pgtest.New(t)
	dir := t.TempDir()
	if _, stderr, code := worklog(t, nil, "demo", "--data", dir, "--rows", "2000"); code != 0 {
		t.Fatalf("demo: %s", stderr)
	}
	secret := "replica-test-secret-0123456789"
	tok, err := auth.MintHS256([]byte(secret), auth.TokenRequest{Subject: "ann", Email: "ann@example.com", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--data", dir, "--jwt-secret", secret, "--database-url", dbURL}
	// The scratch directory of a replica that died goes at the next start;
	// each replica spills and receives bodies in its own.
	gone := filepath.Join(dir, "tmp", "replica-gone-1-0123456789abcdef", "duckdb")
	if err := os.MkdirAll(gone, 0o750); err != nil {
		t.Fatal(err)
	}
	a := startServe(t, args...)
	if _, err := os.Stat(gone); !os.IsNotExist(err) {
		t.Errorf("a dead replica's scratch directory survived a start: %v", err)
	}
	// B comes with the jobs on River (issue 19's other half): until then a
	// second serve is refused by the bbolt job store, and B is A again.
	b := a
	replicas := map[string]*server{"a": a, "b": b}
	distinct := map[*server]bool{a: true, b: true}
	if mine, _ := filepath.Glob(filepath.Join(dir, "tmp", "replica-*")); len(mine) != len(distinct) {
		t.Errorf("scratch directories %v, want one per replica", mine)
	}

	// Requests alternate between the replicas; each answer equals the
	// other replica's.
	paths := []string{
		api.ExportPath + "?format=json&limit=100",
		api.ExportPath + "?format=csv&limit=100&orderByField=duration&orderByDirection=desc",
		api.AnalyticsPath + "?groupBy[]=channel&groupBy[]=date:month&measures[]=count&measures[]=avg(duration)&format=json",
	}
	for i := range 6 {
		p := paths[i%len(paths)]
		first, second := a, b
		if i%2 == 1 {
			first, second = b, a
		}
		c1, _, b1 := first.fetch(t, tok, p, fmt.Sprintf("req-%d-1", i))
		c2, _, b2 := second.fetch(t, tok, p, fmt.Sprintf("req-%d-2", i))
		if c1 != http.StatusOK || c2 != http.StatusOK || !bytes.Equal(b1, b2) || len(b1) == 0 {
			t.Fatalf("%s: %d (%d bytes) and %d (%d bytes) differ:\n%.300s\n%.300s", p, c1, len(b1), c2, len(b2), b1, b2)
		}
	}

	// A cursor minted by A opens the next page on B, the same page as on A.
	code, h, _ := a.fetch(t, tok, api.ExportPath+"?format=json&limit=50", "a-page-1")
	m := nextLink.FindStringSubmatch(h.Get("Link"))
	if code != http.StatusOK || m == nil {
		t.Fatalf("page 1 on A: %d, Link %q", code, h.Get("Link"))
	}
	next := strings.TrimPrefix(m[1], a.url)
	cb, _, pb := b.fetch(t, tok, next, "b-page-2")
	ca, _, pa := a.fetch(t, tok, next, "a-page-2")
	if cb != http.StatusOK || !bytes.Equal(pa, pb) || !strings.Contains(string(pb), "userWorklogId") {
		t.Fatalf("page 2 of A's cursor on B: %d %.300s\non A: %d %.300s", cb, pb, ca, pa)
	}

	// A CLI ingest while both serve: every answer of either replica is the
	// store before it or after it, never a part; both end with it whole.
	before := countEvents(t, a, tok, "a-count")
	var dump strings.Builder
	const added = 3000
	for i := range added {
		month := 1 + i%3 // three months: three partitions in one commit
		fmt.Fprintf(&dump, `{"date":"2025-%02d-%02d 10:00:00","action":"writeAction","userWorklogId":%d,"userId":%d,"name":"New %d","duration":%d}`+"\n",
			month, 1+i%28, 900000+i, 500+i%7, i%7, i)
	}
	file := filepath.Join(t.TempDir(), "more.ndjson")
	if err := os.WriteFile(file, []byte(dump.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := exec.Command(worklogBin(t), "ingest", "--data", dir, "--database-url", dbURL, file)
	var cliOut bytes.Buffer
	cli.Stdout, cli.Stderr = &cliOut, &cliOut
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	cliDone := make(chan error, 1)
	go func() { cliDone <- cli.Wait() }()
	seen := map[string]int64{}
	for i, finished := 0, false; ; i++ {
		name := []string{"a", "b"}[i%2]
		n := countEvents(t, replicas[name], tok, fmt.Sprintf("%s-poll-%d", name, i))
		if n != before && n != before+added {
			t.Fatalf("replica %s counted %d events: neither %d before the ingest nor %d after", name, n, before, before+added)
		}
		seen[name] = n
		if finished && seen["a"] == before+added && seen["b"] == before+added {
			break
		}
		if !finished {
			select {
			case err := <-cliDone:
				if err != nil {
					t.Fatalf("CLI ingest: %v\n%s", err, cliOut.String())
				}
				finished = true
			default:
			}
		} else if i > 1000 {
			t.Fatalf("after the ingest: %v, want %d on both", seen, before+added)
		}
	}

	// One audit trail in the database, chained, with lines of both
	// replicas and of the CLI.
	ctx := context.Background()
	db, err := pgstate.Open(ctx, dbURL, pgstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var trail bytes.Buffer
	if _, err := db.Audit().WriteTo(ctx, &trail); err != nil {
		t.Fatal(err)
	}
	if _, _, err := audit.Verify(bytes.NewReader(trail.Bytes())); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	by := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(trail.String()), "\n") {
		var e audit.Entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		switch {
		case e.Sub == audit.CLISubject && e.Action == audit.ActionIngest:
			by["cli ingest"]++
		case e.RequestID == "a-page-2":
			by["a"]++
		case e.RequestID == "b-page-2":
			by["b"]++
		}
	}
	if by["cli ingest"] != 1 || by["a"] != 1 || by["b"] != 1 {
		t.Errorf("audit trail: %v, want one line each of the CLI ingest, A's and B's page 2", by)
	}
	if _, err := os.Stat(filepath.Join(dir, audit.FileName+".lock")); err == nil {
		// demo wrote the file trail before the replicas; they must not.
		raw, _ := os.ReadFile(filepath.Join(dir, audit.FileName))
		if strings.Contains(string(raw), "a-page-2") {
			t.Error("a replica wrote to the file trail")
		}
	}
}

// --database-url: listed with its variable, its value (a password) never
// shown by --help; a database that does not answer, or an --audit-log
// beside it, stops a command with a message naming the setting.
func TestDatabaseURLSetting(t *testing.T) {
	bin := worklogBin(t)
	secretURL := "postgres://u:s3cretpw@127.0.0.1:1/db?connect_timeout=2"
	for _, cmdName := range []string{"serve", "ingest", "prune", "forget"} {
		cmd := exec.Command(bin, cmdName, "--help")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "WORKLOG_DATABASE_URL=" + secretURL}
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), "-database-url") || !strings.Contains(string(out), "(env WORKLOG_DATABASE_URL)") {
			t.Errorf("%s --help does not list --database-url:\n%s", cmdName, out)
		}
		if strings.Contains(string(out), "s3cretpw") {
			t.Errorf("%s --help shows the database password", cmdName)
		}
	}
	dir := t.TempDir()
	for _, args := range [][]string{
		{"ingest", "--data", dir, "--database-url", secretURL, "-"},
		{"prune", "--data", dir, "--retention-days", "30"},
		{"serve", "--data", dir, "--jwt-secret", "0123456789abcdef0123456789abcdef"},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "WORKLOG_DATABASE_URL=" + secretURL}
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--database-url") || strings.Contains(string(out), "s3cretpw") {
			t.Errorf("%v with a database that does not answer: %v\n%s", args[0], err, out)
		}
	}
	url := pgtest.New(t)
	out, stderr, code := worklog(t, nil, "prune", "--data", dir, "--retention-days", "30", "--database-url", url, "--audit-log", filepath.Join(dir, "x.log"))
	if code == 0 || !strings.Contains(stderr, "--audit-log") {
		t.Errorf("--audit-log beside --database-url: %d %s %s", code, out, stderr)
	}
}
