package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"worklog/export/api"
	"worklog/export/api/auth"
	"worklog/internal/audit"
	"worklog/internal/pgstate"
	"worklog/internal/pgtest"
)

// fetch GETs path from s with a bearer token and a request id (none when
// empty), and returns the status, the headers and the body.
func (s *server) fetch(t *testing.T, tok, path, requestID string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if requestID != "" {
		req.Header.Set("X-Request-Id", requestID)
	}
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
	b := startServe(t, args...)
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

	// 'worklog export' with the setting continues A's cursor too (the
	// replicas' key), and writes its audit line into the shared trail.
	nu, err := url.Parse(next)
	if err != nil {
		t.Fatal(err)
	}
	pageFile := filepath.Join(t.TempDir(), "page2.json")
	if _, stderr, code := worklog(t, nil, "export", "--data", dir, "--database-url", dbURL, "--limit", "50", "--format", "json",
		"--cursor", nu.Query().Get("cursor"), "--out", pageFile); code != 0 {
		t.Fatalf("worklog export --cursor of A's page: exit %d, %s", code, stderr)
	}
	if cliPage, err := os.ReadFile(pageFile); err != nil || !bytes.Equal(cliPage, pa) {
		t.Errorf("page 2 by 'worklog export' (%v):\n%.300s\non A:\n%.300s", err, cliPage, pa)
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

	// A command without the setting would not wait for the replicas'
	// writers: it refuses to write.
	if _, stderr, code := worklog(t, nil, "ingest", "--data", dir, file); code == 0 || !strings.Contains(stderr, "--database-url") {
		t.Errorf("ingest without --database-url on a shared store: exit %d, %s", code, stderr)
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
		case e.Sub == audit.CLISubject && e.Action == audit.ActionCLIExport:
			by["cli export"]++
		case e.RequestID == "a-page-2":
			by["a"]++
		case e.RequestID == "b-page-2":
			by["b"]++
		}
	}
	if by["cli ingest"] != 1 || by["cli export"] != 1 || by["a"] != 1 || by["b"] != 1 {
		t.Errorf("audit trail: %v, want one line each of the CLI ingest, the CLI export, A's and B's page 2", by)
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

// A reader on replica A holds its snapshot while replica B's ingests
// replace every file it reads: A's streamed export is whole and of the old
// state, B keeps the files as long as A's lease lasts (its own grace and
// snapshot retention are 1 ms), and deletes them at its next commit after
// A is done.
func TestReplicaReaderHoldsItsSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dbURL := pgtest.New(t)
	dir := t.TempDir()
	const events, pad = 40000, 400
	// rawData that does not compress, so that the export outgrows every
	// buffer between the server and the client.
	raw := make([]string, events)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range raw {
		b := make([]byte, pad/2)
		for j := range b {
			b[j] = byte(rnd.Uint32())
		}
		raw[i] = hex.EncodeToString(b)
	}
	dump := func(duration int) string {
		var sb strings.Builder
		for i := range events {
			fmt.Fprintf(&sb, `{"date":"2025-%02d-%02d 10:00:00","action":"writeAction","userWorklogId":%d,"duration":%d,"rawData":%q}`+"\n",
				1+i%3, 1+i%28, i+1, duration, raw[i])
		}
		return sb.String()
	}
	file := filepath.Join(t.TempDir(), "v1.ndjson")
	if err := os.WriteFile(file, []byte(dump(1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := worklog(t, nil, "ingest", "--data", dir, "--database-url", dbURL, file); code != 0 {
		t.Fatalf("ingest: %s", stderr)
	}
	secret := "replica-test-secret-0123456789"
	tok, err := auth.MintHS256([]byte(secret), auth.TokenRequest{Subject: "ann", Email: "ann@example.com", TTL: time.Hour,
		Permissions: []string{auth.PermIngest}})
	if err != nil {
		t.Fatal(err)
	}
	common := []string{"--data", dir, "--jwt-secret", secret, "--database-url", dbURL, "--privacy-level", "none", "--sync-limit-rows", "100000"}
	a := startServe(t, common...)
	// B deletes replaced files as soon as nothing holds them: no grace,
	// and Iceberg snapshots expire at once.
	b := startServe(t, append(common, "--retire-grace", "1ms", "--snapshot-retention", "1ms")...)
	ctx := context.Background()
	db, err := pgstate.Open(ctx, dbURL, pgstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	leases := func() int {
		var n int
		if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM worklog_reader_lease").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	manifestFiles := func() []string {
		raw, err := os.ReadFile(filepath.Join(dir, "worklog", "_manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		var m struct{ Files []struct{ Path string } }
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range m.Files {
			out = append(out, filepath.Join(dir, "worklog", filepath.FromSlash(f.Path)))
		}
		return out
	}
	old := manifestFiles()

	// A streams the whole store as CSV (tens of MB); the client reads a
	// little and stops, so A's export waits mid-stream, holding its lease.
	req, _ := http.NewRequest(http.MethodGet, a.url+api.ExportPath+"?format=csv", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept-Encoding", "identity") // not gzip: the body stays large
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("export on A: %d", resp.StatusCode)
	}
	head := make([]byte, 64<<10)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "A's reader lease in the database", func() bool { return leases() > 0 })

	// B replaces every month twice over HTTP.
	for _, duration := range []int{2, 3} {
		req, _ := http.NewRequest(http.MethodPost, b.url+api.IngestPath, strings.NewReader(dump(duration)))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/x-ndjson")
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusOK || !strings.Contains(string(body), fmt.Sprintf(`"updated":%d`, events)) {
			t.Fatalf("ingest on B: %d %s", r.StatusCode, body)
		}
	}
	if leases() == 0 {
		t.Fatal("A's export ended before B's ingests: the test did not hold a reader (make the export larger)")
	}
	for _, f := range old {
		if !exists(t, f) {
			t.Errorf("%s deleted while A's export reads it", f)
		}
	}
	// A's export is whole, and of the state it started on.
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("A's export broke: %v", err)
	}
	rows := strings.Split(strings.TrimSpace(string(head)+string(rest)), "\n")
	if len(rows) != events+1 {
		t.Fatalf("A's export: %d lines, want a header and %d rows", len(rows), events)
	}
	col := slices.Index(strings.Split(rows[0], ","), "duration")
	for _, r := range rows[1:] {
		if f := strings.Split(r, ","); col < 0 || f[col] != "1" {
			t.Fatalf("A's export has a row of another state (duration column %d): %.200s", col, r)
		}
	}
	resp.Body.Close()
	waitUntil(t, "A's lease released", func() bool { return leases() == 0 })
	// B's next commit deletes what only A's snapshot listed.
	req, _ = http.NewRequest(http.MethodPost, b.url+api.IngestPath, strings.NewReader(dump(4)))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/x-ndjson")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	for _, f := range old {
		if exists(t, f) {
			t.Errorf("%s kept after A's export ended", f)
		}
	}
}

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return err == nil
}
