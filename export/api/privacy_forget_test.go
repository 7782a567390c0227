package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"worklog/export"
	"worklog/export/api/auth"
	"worklog/export/jobs"
	"worklog/internal/audit"
	"worklog/privacy"
)

// postJSON sends a JSON body to path.
func (e *testEnv) postJSON(token, path, body string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
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

// forgetEnv is a server at level none over the fixture store with a job
// runner (outbox delivery) and an audit trail in the data directory.
type forgetEnv struct {
	*testEnv
	dir   string
	jobs  *jobs.Runner
	audit string
}

func newForgetEnv(t *testing.T, start bool) *forgetEnv {
	t.Helper()
	b := newBackend(t, readFixture(t))
	logPath := filepath.Join(b.dir, audit.FileName)
	al, err := audit.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	runner, err := jobs.Open(jobs.Config{DataDir: b.dir, Engine: b.engine, PseudonymKey: b.key, Paths: JobPaths{},
		PublicURL: "https://worklog.example.com", SweepInterval: 20 * time.Millisecond, Audit: al})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { runner.Close() })
	if start {
		runner.Start(context.Background())
	}
	cfg := Config{Verifier: mustHMAC(t), PrivacyLevel: privacy.None, PseudonymKey: b.key, DefaultFormat: export.FormatJSON,
		CSVFormulaGuard: true, SyncLimitRows: 20, SyncLimitXLSX: 20, Jobs: runner, Store: b.store, Audit: al}
	return &forgetEnv{testEnv: b.serve(t, cfg), dir: b.dir, jobs: runner, audit: logPath}
}

// exportByID exports every event as JSON (page by page, 100 at a time is
// enough for the fixture) and returns each object's raw bytes by
// userWorklogId.
func (e *forgetEnv) exportByID(tok string) map[float64]string {
	e.t.Helper()
	resp, body := e.get(tok, "limit=1000&orderByField=userWorklogId&orderByDirection=asc")
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("export: %d %s", resp.StatusCode, body)
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		e.t.Fatal(err)
	}
	out := map[float64]string{}
	for _, r := range raws {
		var ev struct {
			ID float64 `json:"userWorklogId"`
		}
		if err := json.Unmarshal(r, &ev); err != nil {
			e.t.Fatal(err)
		}
		out[ev.ID] = string(r)
	}
	return out
}

func TestForgetOverHTTP(t *testing.T) {
	for _, mode := range []string{"anonymize", "delete"} {
		t.Run(mode, func(t *testing.T) {
			env := newForgetEnv(t, false)
			reader := env.token("reader", "r@example.com")
			eraser := env.token("dpo", "dpo@example.com", auth.PermErase)
			before := env.exportByID(reader)

			resp, body := env.postJSON(reader, ForgetPath, `{"userId":9,"mode":"`+mode+`"}`)
			if resp.StatusCode != http.StatusForbidden || !bytes.Contains(body, []byte(`"code":"forbidden"`)) {
				t.Fatalf("without permission: %d %s", resp.StatusCode, body)
			}
			if got := env.exportByID(reader); len(got) != len(before) {
				t.Fatal("a refused forget changed the store")
			}

			resp, body = env.postJSON(eraser, ForgetPath, `{"userId":9,"mode":"`+mode+`"}`)
			if resp.StatusCode != http.StatusOK || string(bytes.TrimSpace(body)) != `{"events":25,"months":3}` {
				t.Fatalf("forget: %d %s", resp.StatusCode, body)
			}
			after := env.exportByID(reader)
			changed := 0
			for id, old := range before {
				got, ok := after[id]
				if !strings.Contains(old, `"userId":9,`) {
					if got != old {
						t.Errorf("event %v changed:\n%s\nwas\n%s", id, got, old)
					}
					continue
				}
				changed++
				if mode == "delete" {
					if ok {
						t.Errorf("event %v still there", id)
					}
					continue
				}
				var ev map[string]any
				if err := json.Unmarshal([]byte(got), &ev); err != nil {
					t.Fatal(err)
				}
				for _, k := range []string{"name", "email", "userId", "rawData"} {
					if ev[k] != nil {
						t.Errorf("event %v: %s = %v, want null", id, k, ev[k])
					}
				}
				if ev["duration"] == nil || ev["date"] == nil {
					t.Errorf("event %v lost its statistics: %s", id, got)
				}
			}
			if changed != 25 {
				t.Errorf("%d events of the user, want 25", changed)
			}

			resp, body = env.postJSON(eraser, ForgetPath, `{"userId":9,"mode":"`+mode+`"}`)
			if resp.StatusCode != http.StatusOK || string(bytes.TrimSpace(body)) != `{"events":0,"months":0}` {
				t.Errorf("second forget: %d %s", resp.StatusCode, body)
			}
		})
	}
}

func TestForgetBadRequests(t *testing.T) {
	env := newForgetEnv(t, false)
	eraser := env.token("dpo", "dpo@example.com", auth.PermErase)
	for _, tc := range []struct{ body, param string }{
		{`{"mode":"anonymize"}`, "userId"},
		{`{"userId":"9"}`, "userId"},
		{`{"userId":9.5}`, "userId"},
		{`{"userId":9,"mode":"erase"}`, "mode"},
		{`{"userId":9,"extra":1}`, ""},
		{`not json`, ""},
	} {
		resp, body := env.postJSON(eraser, ForgetPath, tc.body)
		var e struct {
			Error APIError `json:"error"`
		}
		json.Unmarshal(body, &e)
		if resp.StatusCode != http.StatusBadRequest || e.Error.Param != tc.param {
			t.Errorf("%s: %d %s, want 400 naming %q", tc.body, resp.StatusCode, body, tc.param)
		}
	}
	resp, _ := env.postJSON("", ForgetPath, `{"userId":9}`)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: %d", resp.StatusCode)
	}
}

// A finished export file and its outbox message may hold the erased
// person's data: after the erasure the file answers 410 and the message is
// gone; the job's status says erased.
func TestForgetErasesFinishedJobFiles(t *testing.T) {
	env := newForgetEnv(t, true)
	owner := env.token("u1", "ann@example.com")
	eraser := env.token("dpo", "dpo@example.com", auth.PermErase)
	resp, body := env.get(owner, "format=csv")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("export: %d %s", resp.StatusCode, body)
	}
	var sb scheduledBody
	json.Unmarshal(body, &sb)
	je := &jobEnv{testEnv: env.testEnv}
	v := je.wait(owner, sb.JobID, delivered)
	raw, _ := os.ReadFile(env.audit)
	if !bytes.Contains(raw, []byte(`"sub":"u1","action":"jobExport","level":"none","params":{"format":["csv"]},"rows":33,"outcome":"ok"`)) ||
		!bytes.Contains(raw, []byte(`"job":"`+sb.JobID+`"`)) {
		t.Errorf("no audit line for the job export:\n%s", raw)
	}
	eml := filepath.Join(env.dir, "outbox", sb.JobID+".eml")
	if _, err := os.Stat(eml); err != nil {
		t.Fatalf("outbox message: %v", err)
	}
	if r, _ := je.getPath(owner, *v.DownloadURL); r.StatusCode != http.StatusOK {
		t.Fatalf("download before erasure: %d", r.StatusCode)
	}

	if r, b := env.postJSON(eraser, ForgetPath, `{"userId":9}`); r.StatusCode != http.StatusOK {
		t.Fatalf("forget: %d %s", r.StatusCode, b)
	}
	r, b := je.getPath(owner, JobPaths{}.File(sb.JobID))
	if r.StatusCode != http.StatusGone || !bytes.Contains(b, []byte(`"code":"erased"`)) {
		t.Errorf("download after erasure: %d %s", r.StatusCode, b)
	}
	if _, err := os.Stat(eml); !os.IsNotExist(err) {
		t.Errorf("outbox message still there: %v", err)
	}
	if files, _ := filepath.Glob(filepath.Join(env.dir, "exports", sb.JobID+".*")); len(files) > 0 {
		t.Errorf("export file still there: %v", files)
	}
	_, b = je.getPath(owner, JobPaths{}.Status(sb.JobID))
	var after JobView
	json.Unmarshal(b, &after)
	if after.Status != jobs.Erased || after.DownloadURL != nil || after.Error == nil {
		t.Errorf("status after erasure: %s", b)
	}
}

// Every export, analytics query, ingest and forget leaves one line, refusals included; no
// line holds a token or a row's content.
func TestAuditTrail(t *testing.T) {
	env := newForgetEnv(t, false)
	reader := env.token("reader", "r@example.com")
	ingester := env.token("loader", "l@example.com", auth.PermIngest)
	eraser := env.token("dpo", "dpo@example.com", auth.PermErase)

	const secretRaw = "RAW-CONTENT-d41d8cd9"
	const secretName = "Zelda Quuxington"
	dump := `{"date":"2024-07-01 10:00:00","action":"readAction","userWorklogId":9001,"userId":77,"name":"` + secretName + `","rawData":"` + secretRaw + `"}` + "\n"
	if r, b := env.post(ingester, "", "application/x-ndjson", "", []byte(dump)); r.StatusCode != http.StatusOK {
		t.Fatalf("ingest: %d %s", r.StatusCode, b)
	}
	bad := `{"date":"2024-07-01 10:00:00","action":"readAction","userWorklogId":9002,"name":"` + secretName + `","duration":"` + secretRaw + `"}` + "\n"
	if r, _ := env.post(ingester, "", "application/x-ndjson", "", []byte(bad)); r.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("bad ingest: %d", r.StatusCode)
	}
	if r, _ := env.get(reader, "limit=10&filters[0][key]=userId&filters[0][comparator]=equals&filters[0][value]=77"); r.StatusCode != http.StatusOK {
		t.Fatalf("export: %d", r.StatusCode)
	}
	if r, _ := env.get(reader, "format=csv"); r.StatusCode != http.StatusAccepted {
		t.Fatalf("scheduled export: %d", r.StatusCode)
	}
	if r, _ := env.get(reader, "orderByField=nope"); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad export: %d", r.StatusCode)
	}
	if r, b := (&jobEnv{testEnv: env.testEnv}).getPath(reader, AnalyticsPath+"?groupBy[]=channel&measures[]=count"); r.StatusCode != http.StatusOK {
		t.Fatalf("analytics: %d %s", r.StatusCode, b)
	}
	if r, _ := env.postJSON(reader, ForgetPath, `{"userId":77}`); r.StatusCode != http.StatusForbidden {
		t.Fatalf("forget without permission: %d", r.StatusCode)
	}
	if r, _ := env.postJSON(eraser, ForgetPath, `{"userId":77,"mode":"delete"}`); r.StatusCode != http.StatusOK {
		t.Fatalf("forget: %d", r.StatusCode)
	}

	raw, err := os.ReadFile(env.audit)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{reader, ingester, eraser, secretRaw, secretName, "Bearer"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the audit trail holds %q", secret)
		}
	}
	if _, n, err := audit.Verify(bytes.NewReader(raw)); err != nil || n != 8 {
		t.Errorf("verify: %d lines, %v", n, err)
	}
	type want struct {
		sub, action, outcome string
		status               int
		rows                 int64
		param, value         string
	}
	wants := []want{
		{"loader", audit.ActionIngest, audit.OutcomeOK, 200, 1, "", ""},
		{"loader", audit.ActionIngest, audit.OutcomeInvalid, 422, 0, "", ""},
		{"reader", audit.ActionExport, audit.OutcomeOK, 200, 1, "filters[0][value]", "77"},
		{"reader", audit.ActionExport, audit.OutcomeScheduled, 202, 34, "format", "csv"},
		{"reader", audit.ActionExport, audit.OutcomeInvalid, 400, 0, "orderByField", "nope"},
		{"reader", audit.ActionAnalytics, audit.OutcomeOK, 200, -1, "groupBy[]", "channel"},
		{"reader", audit.ActionForget, audit.OutcomeDenied, 403, 0, "", ""},
		{"dpo", audit.ActionForget, audit.OutcomeOK, 200, 1, "mode", "delete"},
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	for i, w := range wants {
		var e audit.Entry
		if err := json.Unmarshal([]byte(lines[i]), &e); err != nil {
			t.Fatal(err)
		}
		if w.rows < 0 { // a count of groups that depends on the fixture
			w.rows = e.Rows
		}
		if e.Sub != w.sub || e.Action != w.action || e.Outcome != w.outcome || e.Status != w.status || e.Rows != w.rows ||
			e.RequestID == "" || e.Time.IsZero() || w.param != "" && (len(e.Params[w.param]) != 1 || e.Params[w.param][0] != w.value) {
			t.Errorf("line %d: %s\nwant %+v", i+1, lines[i], w)
		}
		if (w.action == audit.ActionExport || w.action == audit.ActionAnalytics) && e.Level != string(privacy.None) {
			t.Errorf("line %d: level %q", i+1, e.Level)
		}
	}
}
