package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"worklog/export/api/auth"
	"worklog/privacy"

	"github.com/klauspost/compress/zstd"
)

// post sends body to the ingest endpoint.
func (e *testEnv) post(token, query, contentType, encoding string, body []byte) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+IngestPath+query, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", contentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, out
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gz(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zst(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decodeSummary(t *testing.T, body []byte) IngestSummary {
	t.Helper()
	var s IngestSummary
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("summary %s: %v", body, err)
	}
	return s
}

func TestIngestOverHTTP(t *testing.T) {
	fixture := []byte(readFixture(t))
	csvDump := readFile(t, "../../ingest/testdata/full.csv")
	jsonDump := readFile(t, "../../ingest/testdata/full.json")
	tests := []struct {
		name, ctype, enc string
		body             []byte
		perms            []string
		status           int
		new, updated     int64
		unchanged        int64
	}{
		{"ndjson", "application/x-ndjson", "", fixture, []string{auth.PermIngest}, 200, 33, 0, 0},
		{"ndjson again is idempotent", "application/x-ndjson", "", fixture, []string{auth.PermIngest}, 200, 0, 0, 33},
		{"gzip by header", "application/x-ndjson", "gzip", gz(t, fixture), []string{auth.PermIngest}, 200, 0, 0, 33},
		{"zstd without header", "application/x-ndjson", "", zst(t, fixture), []string{auth.PermIngest}, 200, 0, 0, 33},
		{"csv", "text/csv; charset=utf-8", "", csvDump, []string{auth.PermIngest}, 200, -1, -1, -1},
		{"json array", "application/json", "zstd", zst(t, jsonDump), []string{auth.PermIngest}, 200, -1, -1, -1},
		{"no permission", "application/x-ndjson", "", fixture, []string{"reporting.viewEmail"}, 403, 0, 0, 0},
		{"unsupported type", "application/pdf", "", fixture, []string{auth.PermIngest}, 415, 0, 0, 0},
		{"unsupported encoding", "application/x-ndjson", "br", fixture, []string{auth.PermIngest}, 415, 0, 0, 0},
		{"truncated array", "application/json", "", []byte(`[{"date":"2024-01-01 00:00:00","action":"readAction","userWorklogId":9}`), []string{auth.PermIngest}, 400, 0, 0, 0},
	}
	env := newTestEnv(t, privacy.None, func(c *Config) { c.Store = nil })
	// Without a store the route does not exist.
	if resp, _ := env.post(env.token("u", "", auth.PermIngest), "", "application/x-ndjson", "", fixture); resp.StatusCode != 405 && resp.StatusCode != 404 {
		t.Errorf("ingest without a store: %d", resp.StatusCode)
	}
	env = newTestEnv(t, privacy.None, nil)
	for _, tc := range tests {
		resp, body := env.post(env.token("u", "", tc.perms...), "", tc.ctype, tc.enc, tc.body)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, resp.StatusCode, tc.status, body)
			continue
		}
		if tc.status != 200 {
			continue
		}
		s := decodeSummary(t, body)
		if tc.new >= 0 && (s.New != tc.new || s.Updated != tc.updated || s.Unchanged != tc.unchanged) {
			t.Errorf("%s: summary %+v, want new %d updated %d unchanged %d", tc.name, s, tc.new, tc.updated, tc.unchanged)
		}
	}
	if resp, _ := env.post("", "", "application/x-ndjson", "", fixture); resp.StatusCode != 401 {
		t.Errorf("ingest without token: %d", resp.StatusCode)
	}
	// The committed rows are served.
	if resp, _ := env.get(env.token("u", ""), "limit=1"); resp.Header.Get("X-Total-Count") == "0" {
		t.Errorf("nothing served after ingest")
	}
}

func TestIngestOnError(t *testing.T) {
	env := newTestEnv(t, privacy.None, nil)
	tok := env.token("u", "", auth.PermIngest)
	good := `{"date":"2024-01-01 00:00:00","action":"readAction","userWorklogId":1}`
	bad := `{"date":"2024-01-01 00:00:00","action":"readAction","userWorklogId":2,"duration":"abc"}`
	dump := []byte(good + "\n" + bad + "\n" + good[:len(good)-2] + `3,"unknown":1}` + "\n")

	resp, body := env.post(tok, "", "application/x-ndjson", "", dump)
	s := decodeSummary(t, body)
	if resp.StatusCode != http.StatusUnprocessableEntity || s.Error == nil || s.Error.Code != "invalid_records" || s.Rejected != 1 || s.New != 0 {
		t.Fatalf("fail: %d %s", resp.StatusCode, body)
	}
	if len(s.Errors) != 1 || s.Errors[0] != (IngestError{Line: 2, Field: "duration", Message: `expected integer, got "abc"`}) {
		t.Errorf("fail errors %+v", s.Errors)
	}
	if resp, _ := env.get(env.token("u", ""), "limit=1"); resp.Header.Get("X-Total-Count") != "0" {
		t.Errorf("a failed ingest committed rows: X-Total-Count %s", resp.Header.Get("X-Total-Count"))
	}

	resp, body = env.post(tok, "?onError=skip", "application/x-ndjson", "", dump)
	s = decodeSummary(t, body)
	if resp.StatusCode != 200 || s.New != 2 || s.Updated != 0 || s.Rejected != 1 || s.UnknownKeys != 1 || s.Error != nil {
		t.Fatalf("skip: %d %s", resp.StatusCode, body)
	}
	if len(s.Errors) != 1 || s.Errors[0] != (IngestError{Line: 2, Field: "duration", Message: `expected integer, got "abc"`}) {
		t.Errorf("skip errors %+v", s.Errors)
	}
	if resp, body := env.post(tok, "?onError=maybe", "application/x-ndjson", "", dump); resp.StatusCode != 400 || !bytes.Contains(body, []byte(`"param":"onError"`)) {
		t.Errorf("onError=maybe: %d %s", resp.StatusCode, body)
	}
}

func TestIngestTooLarge(t *testing.T) {
	env := newTestEnv(t, privacy.None, func(c *Config) { c.MaxIngestBytes = 4096 })
	tok := env.token("u", "", auth.PermIngest)
	var big bytes.Buffer
	for i := 1; big.Len() < 100000; i++ {
		fmt.Fprintf(&big, `{"date":"2024-01-01 00:00:00","action":"readAction","userWorklogId":%d,"rawData":"%s"}`+"\n", i, strings.Repeat("x", 100))
	}
	// With Content-Length: refused before reading.
	resp, body := env.post(tok, "", "application/x-ndjson", "", big.Bytes())
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !bytes.Contains(body, []byte(`"code":"too_large"`)) {
		t.Errorf("declared large body: %d %s", resp.StatusCode, body)
	}
	// Chunked, without Content-Length: cut by MaxBytesReader while reading.
	req, _ := http.NewRequest(http.MethodPost, env.url+IngestPath, io.MultiReader(bytes.NewReader(big.Bytes())))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/x-ndjson")
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if r2.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked large body: %d %s", r2.StatusCode, b2)
	}
	if resp, _ := env.get(env.token("u", ""), "limit=1"); resp.Header.Get("X-Total-Count") != "0" {
		t.Errorf("a refused ingest committed rows: X-Total-Count %s", resp.Header.Get("X-Total-Count"))
	}
	// A small body still goes through.
	small := []byte(`{"date":"2024-01-01 00:00:00","action":"readAction","userWorklogId":1}`)
	if resp, body := env.post(tok, "", "application/x-ndjson", "", small); resp.StatusCode != 200 {
		t.Errorf("small body: %d %s", resp.StatusCode, body)
	}
}

// versionDump writes n events with ids 1..n, all with status v.
func versionDump(n int, v string) []byte {
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, `{"date":"2024-%02d-%02d 10:00:00","action":"readAction","userWorklogId":%d,"status":%q,"rawData":"{\"n\":%d}"}`+"\n", i%12+1, i%28+1, i, v, i)
	}
	return b.Bytes()
}

func TestExportDuringIngestIsConsistent(t *testing.T) {
	const oldRows, newRows = 2000, 30000
	env := newTestEnv(t, privacy.None, nil, string(versionDump(oldRows, "old")))
	reader := env.token("r", "")
	done := make(chan struct{})
	var ingestStatus int
	var ingestBody []byte
	go func() {
		defer close(done)
		resp, body := env.post(env.token("w", "", auth.PermIngest), "", "application/x-ndjson", "gzip", gz(t, versionDump(newRows, "new")))
		ingestStatus, ingestBody = resp.StatusCode, body
	}()
	seen := map[string]int{}
	check := func() {
		resp, body := env.get(reader, "format=csv&orderByField=userWorklogId&orderByDirection=asc")
		if resp.StatusCode != 200 {
			t.Fatalf("export during ingest: %d %s", resp.StatusCode, body)
		}
		lines := strings.Split(strings.TrimSpace(string(body)), "\n")[1:]
		status := map[string]int{}
		for _, l := range lines {
			for _, v := range []string{",old,", ",new,"} {
				if strings.Contains(l, v) {
					status[v]++
				}
			}
		}
		total := resp.Header.Get("X-Total-Count")
		switch {
		case len(lines) == oldRows && status[",old,"] == oldRows && total == fmt.Sprint(oldRows):
			seen["old"]++
		case len(lines) == newRows && status[",new,"] == newRows && total == fmt.Sprint(newRows):
			seen["new"]++
		default:
			t.Fatalf("mixed export: %d rows (X-Total-Count %s), status counts %v", len(lines), total, status)
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
			check()
		}
	}
	check()
	if ingestStatus != 200 {
		t.Fatalf("ingest: %d %s", ingestStatus, ingestBody)
	}
	if s := decodeSummary(t, ingestBody); s.New != newRows-oldRows || s.Updated != oldRows {
		t.Errorf("ingest summary %+v", s)
	}
	t.Logf("exports seen: %v", seen)
	if seen["old"] == 0 || seen["new"] == 0 {
		t.Errorf("the exports did not overlap the ingest: %v", seen)
	}
}

func TestConcurrentIngestsWait(t *testing.T) {
	env := newTestEnv(t, privacy.None, nil)
	tok := env.token("w", "", auth.PermIngest)
	var wg sync.WaitGroup
	statuses := make([]int, 3)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := env.post(tok, "", "application/x-ndjson", "", versionDump(5000, fmt.Sprint("v", i)))
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	for i, st := range statuses {
		if st != 200 {
			t.Errorf("ingest %d: %d", i, st)
		}
	}
	if resp, _ := env.get(env.token("r", ""), "limit=1"); resp.Header.Get("X-Total-Count") != "5000" {
		t.Errorf("after three ingests of the same ids: X-Total-Count %s", resp.Header.Get("X-Total-Count"))
	}
}

// TestLogsHoldNoSecrets runs requests that carry tokens, e-mail addresses and
// rawData (valid and invalid, through every error path) and scans the log.
func TestLogsHoldNoSecrets(t *testing.T) {
	var logs logBuffer
	env := newTestEnv(t, privacy.None, func(c *Config) { withLog(&logs)(c); c.MaxIngestBytes = 1 << 16 }, readFixture(t))
	tok := env.token("u1", "secret.person@example.com", auth.PermIngest)
	const email, raw = "leaky.agent@example.org", "RAWDATA-SECRET-PAYLOAD"
	ev := func(id int, extra string) string {
		return fmt.Sprintf(`{"date":"2024-02-01 10:00:00","action":"readAction","userWorklogId":%d,"email":%q,"rawData":%q%s}`, id, email, raw, extra)
	}
	env.post(tok, "", "application/x-ndjson", "", []byte(ev(100, "")))
	env.post(tok, "", "application/x-ndjson", "", []byte(ev(101, `,"duration":"`+email+`"`)))
	env.post(tok, "?onError=skip", "application/x-ndjson", "", []byte(ev(102, `,"channel":"`+raw+`"`)+"\n"+ev(103, "")))
	env.post(tok, "", "application/json", "", []byte("["+ev(104, "")))
	env.post(tok, "", "application/x-ndjson", "", bytes.Repeat([]byte(ev(105, "")+"\n"), 1000))
	env.post(env.token("nobody", email), "", "application/x-ndjson", "", []byte(ev(106, "")))
	env.post("not-a-token-"+email, "", "application/x-ndjson", "", []byte(ev(107, "")))
	env.get(tok, "filters[0][key]=email&filters[0][comparator]=equals&filters[0][value]="+url.QueryEscape(email))
	env.get(tok, "filters[0][key]=rawData&filters[0][comparator]=contains&filters[0][value]="+raw)
	env.get(tok, "filters[0][key]=duration&filters[0][comparator]=equals&filters[0][value]="+url.QueryEscape(email))
	env.get(tok, "filters[0][key]="+url.QueryEscape(email)+"&filters[0][comparator]=equals&filters[0][value]=1")
	env.get("garbage."+email, "limit=1")
	env.get(tok+"x", "limit=1")
	env.get(tok, "format=csv")
	http.Get(env.url + "/api/mind/" + email + "?token=" + tok)
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, env.url+ExportPath, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Request-Id", email) // not a valid id: replaced, never logged
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}

	out := logs.String()
	if strings.Count(out, `"msg":"request"`) < 15 {
		t.Fatalf("expected a line per request, log:\n%s", out)
	}
	for _, secret := range []string{tok, "secret.person@example.com", email, raw, "jane@example.com", "Jane Doe", "{...}", "@example"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds %q:\n%s", secret, out)
		}
	}
}

// TestIngestBombIsRefused: a 33 KB zstd body that expands to 1 GiB of
// spaces, and a gzip body beyond the decompressed limit, are answered 413
// with a message naming the limit; nothing is committed, and the server
// ingests normally afterwards.
func TestIngestBombIsRefused(t *testing.T) {
	env := newTestEnv(t, privacy.None, func(c *Config) { c.MaxDecompressed = 64 << 20 })
	tok := env.token("u", "", auth.PermIngest)
	bomb := readFile(t, "../../ingest/testdata/bomb-1gib-spaces.zst")
	resp, body := env.post(tok, "", "application/x-ndjson", "zstd", bomb)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !bytes.Contains(body, []byte(`"code":"too_large"`)) ||
		!bytes.Contains(body, []byte("line 1: the record is larger than")) || !bytes.Contains(body, []byte("--max-record-bytes")) {
		t.Errorf("zstd bomb: %d %s", resp.StatusCode, body)
	}
	lines := bytes.Repeat([]byte("\n"), 65<<20)
	resp, body = env.post(tok, "", "application/x-ndjson", "gzip", gz(t, lines))
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !bytes.Contains(body, []byte("--max-decompressed-bytes")) {
		t.Errorf("gzip bomb: %d %s", resp.StatusCode, body)
	}
	if resp, _ := env.get(env.token("u", ""), "limit=1"); resp.Header.Get("X-Total-Count") != "0" {
		t.Errorf("a refused ingest committed rows: X-Total-Count %s", resp.Header.Get("X-Total-Count"))
	}
	small := []byte(`{"date":"2024-01-01 00:00:00","action":"readAction","userWorklogId":1}`)
	if resp, body := env.post(tok, "", "application/x-ndjson", "zstd", zst(t, small)); resp.StatusCode != 200 {
		t.Errorf("small body: %d %s", resp.StatusCode, body)
	}
}
