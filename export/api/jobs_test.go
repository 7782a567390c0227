package api

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"worklog/export"
	"worklog/export/jobs"
	"worklog/internal/mailtest"
	"worklog/privacy"

	"github.com/xuri/excelize/v2"
)

var jobIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// jobEnv is a real server with a real job runner over the fixture store.
type jobEnv struct {
	*testEnv
	dir  string
	jobs *jobs.Runner
	cfg  Config
}

// newJobEnv ingests the fixture, opens a job runner in the store's data
// directory (configured by mutate) and serves it with small synchronous
// limits: 5 rows for every format. start runs the workers.
func newJobEnv(t *testing.T, level privacy.Level, start bool, mutate func(*jobs.Config)) *jobEnv {
	t.Helper()
	b := newBackend(t, readFixture(t))
	jc := jobs.Config{DataDir: b.dir, Engine: b.engine, PseudonymKey: b.key, Paths: JobPaths{}, PublicURL: "https://worklog.example.com",
		RetryBackoff: 20 * time.Millisecond, SweepInterval: 20 * time.Millisecond}
	if mutate != nil {
		mutate(&jc)
	}
	runner, err := jobs.Open(jc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { runner.Close() }) // registered after engine.Close: runs before it
	if start {
		runner.Start(context.Background())
	}
	cfg := Config{Verifier: mustHMAC(t), PrivacyLevel: level, PseudonymKey: b.key, DefaultFormat: export.FormatJSON, CSVFormulaGuard: true,
		SyncLimitRows: 5, SyncLimitXLSX: 5, Jobs: runner}
	return &jobEnv{testEnv: b.serve(t, cfg), dir: b.dir, jobs: runner, cfg: cfg}
}

// syncExport runs q synchronously on a second server over the same engine
// with the limits raised, the way a user would get it without a job.
func (e *jobEnv) syncExport(tok, q string) []byte {
	e.t.Helper()
	cfg := e.cfg
	cfg.SyncLimitRows, cfg.SyncLimitXLSX, cfg.Jobs = 1<<40, 1<<40, nil
	srv, err := NewServer(cfg, e.engine)
	if err != nil {
		e.t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	other := *e.testEnv
	other.url = hs.URL
	resp, body := other.get(tok, q)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("sync export %s: %d %s", q, resp.StatusCode, body)
	}
	return body
}

// getPath requests an API path with a token.
func (e *jobEnv) getPath(tok, path string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.url+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, body
}

// schedule requests q, expects 202 and returns the decoded body.
func (e *jobEnv) schedule(tok, q string) scheduledBody {
	e.t.Helper()
	resp, body := e.get(tok, q)
	if resp.StatusCode != http.StatusAccepted {
		e.t.Fatalf("%s: status %d, want 202: %s", q, resp.StatusCode, body)
	}
	var sb scheduledBody
	if err := json.Unmarshal(body, &sb); err != nil {
		e.t.Fatalf("202 body %s: %v", body, err)
	}
	return sb
}

// wait polls the job's status until done reports true.
func (e *jobEnv) wait(tok, id string, done func(JobView) bool) JobView {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, body := e.getPath(tok, JobPaths{}.Status(id))
		if resp.StatusCode != http.StatusOK {
			e.t.Fatalf("job status: %d %s", resp.StatusCode, body)
		}
		var v JobView
		if err := json.Unmarshal(body, &v); err != nil {
			e.t.Fatal(err)
		}
		if done(v) {
			return v
		}
		if v.Status == jobs.Failed || time.Now().After(deadline) {
			e.t.Fatalf("job %s: %s", id, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func delivered(v JobView) bool {
	return v.Status == jobs.Done && v.Delivery.Delivered()
}

// The heart of SPEC §5: a request above the limit is answered 202, the job
// runs, the SMTP server receives one message to the token's address with
// the export attached, and the attachment, the download and a synchronous
// export with the limits raised are the same bytes.
func TestJobDeliveredBySMTP(t *testing.T) {
	sink := mailtest.NewSink(t, 0)
	mailer, err := jobs.NewSMTPMailer("smtp://" + sink.Addr)
	if err != nil {
		t.Fatal(err)
	}
	env := newJobEnv(t, privacy.Pseudonymized, true, func(c *jobs.Config) { c.Mailer = mailer; c.MailFrom = "exports@example.com" })
	tok := env.token("u1", "ann@example.com")
	tests := []struct {
		name, q string
		rows    int64
	}{
		{"whole store", "format=csv", 33},
		{"filtered and ordered", "format=csv&orderByField=duration&orderByDirection=asc&filters[0][key]=action&filters[0][comparator]=notIn&filters[0][values][]=closeAction&filters[1][key]=date&filters[1][comparator]=gte&filters[1][value]=2024-01-01", 0},
		{"json", "format=json&orderByField=userWorklogId&orderByDirection=asc", 33},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env.t = t
			want := env.syncExport(tok, tc.q)
			sb := env.schedule(tok, tc.q)
			if sb.Status != "scheduled" || sb.DeliverTo != "ann@example.com" || sb.StatusURL != "/api/mind/export/jobs/"+sb.JobID || !jobIDPattern.MatchString(sb.JobID) {
				t.Errorf("202 body %+v", sb)
			}
			if tc.rows > 0 && sb.Rows != tc.rows {
				t.Errorf("202 rows = %d, want %d", sb.Rows, tc.rows)
			}
			if string(sb.Format) != strings.TrimPrefix(strings.Split(tc.q, "&")[0], "format=") {
				t.Errorf("202 format = %q", sb.Format)
			}
			v := env.wait(tok, sb.JobID, delivered)
			if v.Delivery != jobs.DeliverySent || v.Error != nil || v.DownloadURL == nil || v.FinishedAt == nil || v.Rows != sb.Rows {
				t.Fatalf("finished job %+v", v)
			}
			// The signed link reads in the raw JSON as it is (no "\u0026"),
			// so shell tools can take it out.
			if _, raw := env.getPath(tok, JobPaths{}.Status(sb.JobID)); !bytes.Contains(raw, []byte(`"downloadUrl":"`+*v.DownloadURL+`"`)) || !strings.Contains(*v.DownloadURL, "&") {
				t.Errorf("status body does not carry the link %s verbatim: %s", *v.DownloadURL, raw)
			}
			msgs := sink.Received()
			if len(msgs) != i+1 {
				t.Fatalf("SMTP server has %d messages, want %d", len(msgs), i+1)
			}
			got := msgs[i]
			if len(got.To) != 1 || got.To[0] != "ann@example.com" || got.From != "exports@example.com" {
				t.Errorf("envelope from %q to %v", got.From, got.To)
			}
			pm := mailtest.Parse(t, got.Data)
			if pm.Header.Get("Message-Id") != "<"+sb.JobID+"@worklog>" {
				t.Errorf("Message-ID %q", pm.Header.Get("Message-Id"))
			}
			if len(pm.Attachments) != 1 {
				t.Fatalf("attachments %v, want one", pm.Attachments)
			}
			for name, att := range pm.Attachments {
				if !strings.HasPrefix(name, "reporting_worklog_") || !strings.HasSuffix(name, "."+string(sb.Format)) {
					t.Errorf("attachment name %q", name)
				}
				if !bytes.Equal(att, want) {
					t.Errorf("attachment (%d bytes) differs from the synchronous export (%d bytes)", len(att), len(want))
				}
			}
			resp, file := env.getPath(tok, *v.DownloadURL)
			if resp.StatusCode != http.StatusOK || !bytes.Equal(file, want) {
				t.Errorf("download: %d, %d bytes, equal %v", resp.StatusCode, len(file), bytes.Equal(file, want))
			}
			if ct := resp.Header.Get("Content-Type"); ct != sb.Format.ContentType() {
				t.Errorf("download Content-Type %q", ct)
			}
			if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="reporting_worklog_`) {
				t.Errorf("download Content-Disposition %q", cd)
			}
			if sb.Format == export.FormatCSV {
				recs, err := csv.NewReader(bytes.NewReader(file)).ReadAll()
				if err != nil || int64(len(recs)-1) != v.Rows {
					t.Errorf("csv: %d records, want %d (%v)", len(recs)-1, v.Rows, err)
				}
				// Pseudonymized: the hidden columns are absent from the job too.
				if strings.Contains(strings.Join(recs[0], ","), "email") || strings.Contains(string(file), "jane@example.com") {
					t.Error("the job's CSV shows e-mail addresses the privacy level hides")
				}
			}
		})
	}
}

// Without SMTP the message is an .eml file in <data>/outbox; an XLSX job
// larger than one sheet continues on further sheets.
func TestJobOutboxAndXLSXSheets(t *testing.T) {
	env := newJobEnv(t, privacy.None, true, func(c *jobs.Config) { c.MaxSheetRows = 10 })
	tok := env.token("u1", "ann@example.com")
	sb := env.schedule(tok, "format=xlsx&orderByField=userWorklogId&orderByDirection=asc")
	v := env.wait(tok, sb.JobID, delivered)
	// Written to the outbox is not sent, and the status says which file.
	if v.Delivery != jobs.DeliveryWritten || v.DeliveryPath == nil || *v.DeliveryPath != filepath.Join(env.dir, "outbox", sb.JobID+".eml") || v.Rows != 33 {
		t.Fatalf("job %+v", v)
	}
	ents, err := os.ReadDir(filepath.Join(env.dir, "outbox"))
	if err != nil || len(ents) != 1 || ents[0].Name() != sb.JobID+".eml" {
		t.Fatalf("outbox %v %v, want %s.eml", ents, err, sb.JobID)
	}
	raw, err := os.ReadFile(filepath.Join(env.dir, "outbox", ents[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	pm := mailtest.Parse(t, raw)
	if pm.Header.Get("To") != "<ann@example.com>" && pm.Header.Get("To") != "ann@example.com" {
		t.Errorf("To %q", pm.Header.Get("To"))
	}
	if len(pm.Attachments) != 1 {
		t.Fatalf("attachments: %d", len(pm.Attachments))
	}
	_, file := env.getPath(tok, *v.DownloadURL)
	for name, att := range pm.Attachments {
		if !bytes.Equal(att, file) {
			t.Error("attachment differs from the download")
		}
		if pm.Types[name] != export.FormatXLSX.ContentType() {
			t.Errorf("attachment type %q", pm.Types[name])
		}
	}
	f, err := excelize.OpenReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	wantSheets := []string{"reporting_worklog", "reporting_worklog_2", "reporting_worklog_3", "reporting_worklog_4"}
	if got := f.GetSheetList(); strings.Join(got, ",") != strings.Join(wantSheets, ",") {
		t.Fatalf("sheets %v, want %v", got, wantSheets)
	}
	var ids []string
	for i, sh := range wantSheets {
		rows, err := f.GetRows(sh)
		if err != nil {
			t.Fatal(err)
		}
		want := 10
		if i == 3 {
			want = 3
		}
		if len(rows) != want+1 || rows[0][0] != "date" {
			t.Errorf("sheet %s: %d rows (header %v), want %d data rows", sh, len(rows), rows[0][:1], want)
		}
		for _, r := range rows[1:] {
			ids = append(ids, r[len(r)-2])
		}
	}
	if ids[0] != "1" || len(ids) != 33 {
		t.Errorf("userWorklogIds across sheets start %v, %d in all", ids[:1], len(ids))
	}
	// The jobs gauge of /metrics counts the persisted job states.
	_, metrics := env.getPath("", MetricsPath)
	if !bytes.Contains(metrics, []byte(`worklog_export_jobs{state="done"} 1`)) || !bytes.Contains(metrics, []byte(`worklog_export_jobs{state="queued"} 0`)) {
		t.Errorf("jobs gauge wrong:\n%s", grepLines(metrics, "worklog_export_jobs"))
	}
	// The job's rows are counted, by path and format, beside the
	// synchronous ones.
	for _, want := range []string{`worklog_export_rows_total{format="xlsx",path="job"} 33`, `worklog_export_rows_total{format="xlsx",path="sync"} 0`, `worklog_export_rows_total{format="csv",path="job"} 0`} {
		if !bytes.Contains(metrics, []byte(want+"\n")) {
			t.Errorf("no %s in:\n%s", want, grepLines(metrics, "worklog_export_rows_total"))
		}
	}
}

// Only the owner sees a job: another user gets the very answer of a job
// that does not exist.
func TestJobOwnerOnly(t *testing.T) {
	env := newJobEnv(t, privacy.Pseudonymized, true, nil)
	owner, other := env.token("u1", "ann@example.com"), env.token("u2", "bob@example.com")
	sb := env.schedule(owner, "format=csv")
	env.wait(owner, sb.JobID, delivered)
	_, missing := env.getPath(other, JobPaths{}.Status("0123456789abcdef0123456789abcdef"))
	for _, path := range []string{JobPaths{}.Status(sb.JobID), JobPaths{}.File(sb.JobID)} {
		resp, body := env.getPath(other, path)
		if resp.StatusCode != http.StatusNotFound || !bytes.Equal(body, missing) {
			t.Errorf("%s as another user: %d %s, want 404 %s", path, resp.StatusCode, body, missing)
		}
		if resp, _ := env.getPath(owner, path); resp.StatusCode != http.StatusOK {
			t.Errorf("%s as owner: %d", path, resp.StatusCode)
		}
	}
	for _, bad := range []string{"nope", "../../etc/passwd", strings.Repeat("g", 32)} {
		if resp, _ := env.getPath(owner, JobPaths{}.Status(bad)); resp.StatusCode != http.StatusNotFound {
			t.Errorf("id %q: %d", bad, resp.StatusCode)
		}
	}
	resp, _ := env.getPath("", JobPaths{}.Status(sb.JobID))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: %d", resp.StatusCode)
	}
}

// Each user has at most PerUser queued or running jobs; the next request is
// answered 429 with Retry-After. A token without an e-mail claim cannot
// receive a job: 400.
func TestJobLimitsAndRefusals(t *testing.T) {
	env := newJobEnv(t, privacy.Pseudonymized, false, func(c *jobs.Config) { c.PerUser = 1 }) // no workers: jobs stay queued
	ann := env.token("u1", "ann@example.com")
	env.schedule(ann, "format=csv")
	resp, body := env.get(ann, "format=json")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !bytes.Contains(body, []byte(`"code":"too_many_jobs"`)) {
		t.Errorf("second job: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	env.schedule(env.token("u2", "bob@example.com"), "format=csv") // another user's quota
	resp, body = env.get(env.token("u3", ""), "format=csv")
	if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte(`"code":"email_required"`)) {
		t.Errorf("no email claim: %d %s", resp.StatusCode, body)
	}
	// A page is never a job, however many rows match.
	if resp, _ := env.get(ann, "format=csv&limit=1000"); resp.StatusCode != http.StatusOK {
		t.Errorf("page: %d", resp.StatusCode)
	}
	// The file of a queued job is not ready.
	sb := env.schedule(env.token("u4", "cy@example.com"), "format=csv")
	resp, body = env.getPath(env.token("u4", "cy@example.com"), JobPaths{}.File(sb.JobID))
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("file of a queued job: %d %s", resp.StatusCode, body)
	}
}

// A failed delivery is retried with backoff and recorded; after the last
// attempt the job stays done and downloadable, with the error shown.
func TestJobDeliveryRetries(t *testing.T) {
	tests := []struct {
		name     string
		failRcpt int
		attempts int
		want     jobs.DeliveryState
		messages int
	}{
		{"succeeds on the third attempt", 2, 5, jobs.DeliverySent, 1},
		{"gives up after two attempts", 5, 2, jobs.DeliveryFailed, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := mailtest.NewSink(t, tc.failRcpt)
			mailer, err := jobs.NewSMTPMailer("smtp://" + sink.Addr)
			if err != nil {
				t.Fatal(err)
			}
			env := newJobEnv(t, privacy.Pseudonymized, true, func(c *jobs.Config) { c.Mailer = mailer; c.DeliveryAttempts = tc.attempts })
			tok := env.token("u1", "ann@example.com")
			sb := env.schedule(tok, "format=csv")
			v := env.wait(tok, sb.JobID, delivered)
			if v.Delivery != tc.want || len(sink.Received()) != tc.messages {
				t.Errorf("delivery %q with %d messages, want %q with %d", v.Delivery, len(sink.Received()), tc.want, tc.messages)
			}
			j, _ := env.jobs.Get(sb.JobID, "u1")
			if wantAttempts := min(tc.failRcpt+1, tc.attempts); j.DeliveryAttempts != wantAttempts {
				t.Errorf("%d attempts, want %d", j.DeliveryAttempts, wantAttempts)
			}
			if (tc.want == jobs.DeliveryFailed) != (v.Error != nil) {
				t.Errorf("error %v", v.Error)
			}
			if v.Error != nil && (v.Error.Code != jobs.CodeDeliveryFailed || !strings.Contains(v.Error.Message, "failed after 2 attempts")) {
				t.Errorf("error %+v, want code %s", *v.Error, jobs.CodeDeliveryFailed)
			}
			if resp, _ := env.getPath(tok, JobPaths{}.File(sb.JobID)); resp.StatusCode != http.StatusOK {
				t.Errorf("download after delivery %s: %d", tc.want, resp.StatusCode)
			}
		})
	}
}

// grepLines returns the lines of b that contain s.
func grepLines(b []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
