package export

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"worklog/privacy"

	"github.com/emersion/go-smtp"
	"github.com/xuri/excelize/v2"
)

// jobEnv is a real server with a real job runner over the fixture store.
type jobEnv struct {
	*testEnv
	dir  string
	jobs *Jobs
	cfg  Config
}

// newJobEnv ingests the fixture, opens a job runner in the store's data
// directory (configured by mutate) and serves it with small synchronous
// limits: 5 rows for every format. start runs the workers.
func newJobEnv(t *testing.T, level privacy.Level, start bool, mutate func(*JobsConfig)) *jobEnv {
	t.Helper()
	b := newBackend(t, readFixture(t))
	jc := JobsConfig{DataDir: b.dir, Engine: b.engine, PseudonymKey: b.key, PublicURL: "https://worklog.example.com",
		RetryBackoff: 20 * time.Millisecond, SweepInterval: 20 * time.Millisecond}
	if mutate != nil {
		mutate(&jc)
	}
	jobs, err := OpenJobs(jc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { jobs.Close() }) // registered after engine.Close: runs before it
	if start {
		jobs.Start(context.Background())
	}
	cfg := Config{Verifier: mustHMAC(t), PrivacyLevel: level, PseudonymKey: b.key, DefaultFormat: FormatJSON, CSVFormulaGuard: true,
		SyncLimitRows: 5, SyncLimitXLSX: 5, Jobs: jobs}
	return &jobEnv{testEnv: b.serve(t, cfg), dir: b.dir, jobs: jobs, cfg: cfg}
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
		resp, body := e.getPath(tok, StatusPath(id))
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
		if v.Status == JobFailed || time.Now().After(deadline) {
			e.t.Fatalf("job %s: %s", id, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func delivered(v JobView) bool {
	return v.Status == JobDone && (v.Delivery == DeliverySent || v.Delivery == DeliveryFailed)
}

// smtpSink is an in-process SMTP server that keeps what it receives.
// failRcpt makes the first n RCPT commands fail with a temporary error.
type smtpSink struct {
	addr     string
	mu       sync.Mutex
	msgs     []smtpMsg
	failRcpt int
}

type smtpMsg struct {
	From string
	To   []string
	Data []byte
}

func newSMTPSink(t *testing.T, failRcpt int) *smtpSink {
	t.Helper()
	sink := &smtpSink{failRcpt: failRcpt}
	s := smtp.NewServer(sink)
	s.Domain = "localhost"
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink.addr = ln.Addr().String()
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return sink
}

func (s *smtpSink) received() []smtpMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]smtpMsg(nil), s.msgs...)
}

// NewSession implements smtp.Backend.
func (s *smtpSink) NewSession(*smtp.Conn) (smtp.Session, error) { return &smtpSession{sink: s}, nil }

type smtpSession struct {
	sink *smtpSink
	msg  smtpMsg
}

func (ss *smtpSession) Reset()        { ss.msg = smtpMsg{} }
func (ss *smtpSession) Logout() error { return nil }
func (ss *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.msg.From = from
	return nil
}
func (ss *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.sink.mu.Lock()
	defer ss.sink.mu.Unlock()
	if ss.sink.failRcpt > 0 {
		ss.sink.failRcpt--
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	ss.msg.To = append(ss.msg.To, to)
	return nil
}
func (ss *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.msg.Data = b
	ss.sink.mu.Lock()
	ss.sink.msgs = append(ss.sink.msgs, ss.msg)
	ss.sink.mu.Unlock()
	return nil
}

// parsedMail is a received message as a mail program shows it.
type parsedMail struct {
	Header      netmail.Header
	Text        string
	Attachments map[string][]byte
	Types       map[string]string
}

func parseMail(t *testing.T, raw []byte) parsedMail {
	t.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse mail: %v", err)
	}
	pm := parsedMail{Header: m.Header, Attachments: map[string][]byte{}, Types: map[string]string{}}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("mail content type: %v", err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		var body io.Reader = m.Body
		switch strings.ToLower(m.Header.Get("Content-Transfer-Encoding")) {
		case "quoted-printable":
			body = quotedprintable.NewReader(body)
		case "base64":
			body = base64.NewDecoder(base64.StdEncoding, body)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatalf("mail body: %v", err)
		}
		pm.Text = string(b)
		return pm
	}
	var walk func(r io.Reader, boundary string)
	walk = func(r io.Reader, boundary string) {
		mr := multipart.NewReader(r, boundary)
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				t.Fatalf("mail part: %v", err)
			}
			pt, pp, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
			if strings.HasPrefix(pt, "multipart/") {
				walk(p, pp["boundary"])
				continue
			}
			var body io.Reader = p
			if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "base64") {
				body = base64.NewDecoder(base64.StdEncoding, p)
			}
			b, err := io.ReadAll(body)
			if err != nil {
				t.Fatalf("mail part body: %v", err)
			}
			if name := p.FileName(); name != "" {
				pm.Attachments[name] = b
				pm.Types[name] = pt
			} else if pt == "text/plain" {
				pm.Text += string(b)
			}
		}
	}
	walk(m.Body, params["boundary"])
	return pm
}

// The heart of SPEC §5: a request above the limit is answered 202, the job
// runs, the SMTP server receives one message to the token's address with
// the export attached, and the attachment, the download and a synchronous
// export with the limits raised are the same bytes.
func TestJobDeliveredBySMTP(t *testing.T) {
	sink := newSMTPSink(t, 0)
	mailer, err := NewSMTPMailer("smtp://" + sink.addr)
	if err != nil {
		t.Fatal(err)
	}
	env := newJobEnv(t, privacy.Pseudonymized, true, func(c *JobsConfig) { c.Mailer = mailer; c.MailFrom = "exports@example.com" })
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
			if sb.Status != "scheduled" || sb.DeliverTo != "ann@example.com" || sb.StatusURL != "/api/mind/export/jobs/"+sb.JobID || !validJobID(sb.JobID) {
				t.Errorf("202 body %+v", sb)
			}
			if tc.rows > 0 && sb.Rows != tc.rows {
				t.Errorf("202 rows = %d, want %d", sb.Rows, tc.rows)
			}
			if string(sb.Format) != strings.TrimPrefix(strings.Split(tc.q, "&")[0], "format=") {
				t.Errorf("202 format = %q", sb.Format)
			}
			v := env.wait(tok, sb.JobID, delivered)
			if v.Delivery != DeliverySent || v.Error != nil || v.DownloadURL == nil || v.FinishedAt == nil || v.Rows != sb.Rows {
				t.Fatalf("finished job %+v", v)
			}
			msgs := sink.received()
			if len(msgs) != i+1 {
				t.Fatalf("SMTP server has %d messages, want %d", len(msgs), i+1)
			}
			got := msgs[i]
			if len(got.To) != 1 || got.To[0] != "ann@example.com" || got.From != "exports@example.com" {
				t.Errorf("envelope from %q to %v", got.From, got.To)
			}
			pm := parseMail(t, got.Data)
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
			if sb.Format == FormatCSV {
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
	env := newJobEnv(t, privacy.None, true, func(c *JobsConfig) { c.MaxSheetRows = 10 })
	tok := env.token("u1", "ann@example.com")
	sb := env.schedule(tok, "format=xlsx&orderByField=userWorklogId&orderByDirection=asc")
	v := env.wait(tok, sb.JobID, delivered)
	if v.Delivery != DeliverySent || v.Rows != 33 {
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
	pm := parseMail(t, raw)
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
		if pm.Types[name] != FormatXLSX.ContentType() {
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
}

// A file above the attach limit is sent as a link under the public URL.
func TestJobLinkInsteadOfAttachment(t *testing.T) {
	env := newJobEnv(t, privacy.Pseudonymized, true, func(c *JobsConfig) { c.AttachLimit = 100 })
	tok := env.token("u1", "ann@example.com")
	sb := env.schedule(tok, "format=csv")
	v := env.wait(tok, sb.JobID, delivered)
	raw, err := os.ReadFile(filepath.Join(env.dir, "outbox", sb.JobID+".eml"))
	if err != nil {
		t.Fatal(err)
	}
	pm := parseMail(t, raw)
	if len(pm.Attachments) != 0 {
		t.Errorf("%d attachments, want a link only", len(pm.Attachments))
	}
	link := "https://worklog.example.com/api/mind/export/jobs/" + sb.JobID + "/file"
	if !strings.Contains(pm.Text, link) {
		t.Errorf("body lacks %s:\n%s", link, pm.Text)
	}
	if resp, _ := env.getPath(tok, *v.DownloadURL); resp.StatusCode != http.StatusOK {
		t.Errorf("download: %d", resp.StatusCode)
	}
}

// Only the owner sees a job: another user gets the very answer of a job
// that does not exist.
func TestJobOwnerOnly(t *testing.T) {
	env := newJobEnv(t, privacy.Pseudonymized, true, nil)
	owner, other := env.token("u1", "ann@example.com"), env.token("u2", "bob@example.com")
	sb := env.schedule(owner, "format=csv")
	env.wait(owner, sb.JobID, delivered)
	_, missing := env.getPath(other, StatusPath(newJobID()))
	for _, path := range []string{StatusPath(sb.JobID), FilePathURL(sb.JobID)} {
		resp, body := env.getPath(other, path)
		if resp.StatusCode != http.StatusNotFound || !bytes.Equal(body, missing) {
			t.Errorf("%s as another user: %d %s, want 404 %s", path, resp.StatusCode, body, missing)
		}
		if resp, _ := env.getPath(owner, path); resp.StatusCode != http.StatusOK {
			t.Errorf("%s as owner: %d", path, resp.StatusCode)
		}
	}
	for _, bad := range []string{"nope", "../../etc/passwd", strings.Repeat("g", 32)} {
		if resp, _ := env.getPath(owner, StatusPath(bad)); resp.StatusCode != http.StatusNotFound {
			t.Errorf("id %q: %d", bad, resp.StatusCode)
		}
	}
	resp, _ := env.getPath("", StatusPath(sb.JobID))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: %d", resp.StatusCode)
	}
}

// After the download TTL the link answers 410 and the janitor deletes the file.
func TestJobLinkExpires(t *testing.T) {
	env := newJobEnv(t, privacy.Pseudonymized, true, func(c *JobsConfig) { c.DownloadTTL = 300 * time.Millisecond })
	tok := env.token("u1", "ann@example.com")
	sb := env.schedule(tok, "format=csv")
	v := env.wait(tok, sb.JobID, delivered)
	time.Sleep(time.Until(*v.ExpiresAt) + 100*time.Millisecond)
	resp, body := env.getPath(tok, FilePathURL(sb.JobID))
	if resp.StatusCode != http.StatusGone || !bytes.Contains(body, []byte(`"code":"gone"`)) {
		t.Errorf("expired link: %d %s, want 410", resp.StatusCode, body)
	}
	v = env.wait(tok, sb.JobID, func(v JobView) bool { return v.DownloadURL == nil })
	file := filepath.Join(env.dir, "exports", sb.JobID+".csv")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the janitor left the expired file")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v.Status != JobDone {
		t.Errorf("status after expiry %q", v.Status)
	}
}

// Each user has at most PerUser queued or running jobs; the next request is
// answered 429 with Retry-After. A token without an e-mail claim cannot
// receive a job: 400.
func TestJobLimitsAndRefusals(t *testing.T) {
	env := newJobEnv(t, privacy.Pseudonymized, false, func(c *JobsConfig) { c.PerUser = 1 }) // no workers: jobs stay queued
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
	resp, body = env.getPath(env.token("u4", "cy@example.com"), FilePathURL(sb.JobID))
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("file of a queued job: %d %s", resp.StatusCode, body)
	}
}

// A job left running by a crashed process is queued again when the store is
// opened, restarts from the beginning, and the crash's temporary file is
// swept.
func TestJobResumesAfterCrash(t *testing.T) {
	env := newJobEnv(t, privacy.Pseudonymized, false, nil)
	tok := env.token("u1", "ann@example.com")
	sb := env.schedule(tok, "format=csv")
	// A worker claims the job and dies mid-write.
	if job, err := env.jobs.store.claim(time.Now()); err != nil || job == nil || job.ID != sb.JobID {
		t.Fatalf("claim: %v %v", job, err)
	}
	tmp := filepath.Join(env.dir, "exports", "."+sb.JobID+".csv.123.tmp")
	if err := os.WriteFile(tmp, []byte("date,na"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := env.jobs.Close(); err != nil {
		t.Fatal(err)
	}
	jobs, err := OpenJobs(JobsConfig{DataDir: env.dir, Engine: env.engine, PseudonymKey: env.key})
	if err != nil {
		t.Fatal(err)
	}
	defer jobs.Close()
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file of the crashed run is still there: %v", err)
	}
	if j, err := jobs.Get(sb.JobID, "u1"); err != nil || j.Status != JobQueued {
		t.Fatalf("after reopen: %+v %v, want queued", j, err)
	}
	jobs.Start(context.Background())
	deadline := time.Now().Add(30 * time.Second)
	var j *Job
	for {
		if j, err = jobs.Get(sb.JobID, "u1"); err != nil {
			t.Fatal(err)
		}
		if j.Delivery == DeliverySent || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if j.Status != JobDone || j.Runs != 2 || j.Rows != 33 || j.DeliveryAttempts != 1 {
		t.Errorf("resumed job %+v", j)
	}
	got, err := os.ReadFile(filepath.Join(env.dir, "exports", sb.JobID+".csv"))
	if err != nil {
		t.Fatal(err)
	}
	if want := env.syncExport(tok, "format=csv"); !bytes.Equal(got, want) {
		t.Error("the resumed job's file differs from the synchronous export")
	}
}

// A failed delivery is retried with backoff and recorded; after the last
// attempt the job stays done and downloadable, with the error shown.
func TestJobDeliveryRetries(t *testing.T) {
	tests := []struct {
		name     string
		failRcpt int
		attempts int
		want     DeliveryState
		messages int
	}{
		{"succeeds on the third attempt", 2, 5, DeliverySent, 1},
		{"gives up after two attempts", 5, 2, DeliveryFailed, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := newSMTPSink(t, tc.failRcpt)
			mailer, err := NewSMTPMailer("smtp://" + sink.addr)
			if err != nil {
				t.Fatal(err)
			}
			env := newJobEnv(t, privacy.Pseudonymized, true, func(c *JobsConfig) { c.Mailer = mailer; c.DeliveryAttempts = tc.attempts })
			tok := env.token("u1", "ann@example.com")
			sb := env.schedule(tok, "format=csv")
			v := env.wait(tok, sb.JobID, delivered)
			if v.Delivery != tc.want || len(sink.received()) != tc.messages {
				t.Errorf("delivery %q with %d messages, want %q with %d", v.Delivery, len(sink.received()), tc.want, tc.messages)
			}
			j, _ := env.jobs.Get(sb.JobID, "u1")
			if wantAttempts := min(tc.failRcpt+1, tc.attempts); j.DeliveryAttempts != wantAttempts {
				t.Errorf("%d attempts, want %d", j.DeliveryAttempts, wantAttempts)
			}
			if (tc.want == DeliveryFailed) != (v.Error != nil) {
				t.Errorf("error %v", v.Error)
			}
			if resp, _ := env.getPath(tok, FilePathURL(sb.JobID)); resp.StatusCode != http.StatusOK {
				t.Errorf("download after delivery %s: %d", tc.want, resp.StatusCode)
			}
		})
	}
}

// A restart that finds a delivery recorded as sending (the process died
// between send and record) sends it again, once, with the same Message-ID;
// one recorded as sent is never sent again.
func TestJobDeliveryAfterCrashWindow(t *testing.T) {
	sink := newSMTPSink(t, 0)
	mailer, err := NewSMTPMailer("smtp://" + sink.addr)
	if err != nil {
		t.Fatal(err)
	}
	env := newJobEnv(t, privacy.Pseudonymized, true, func(c *JobsConfig) { c.Mailer = mailer })
	tok := env.token("u1", "ann@example.com")
	a := env.schedule(tok, "format=csv")
	b := env.schedule(tok, "format=json")
	env.wait(tok, a.JobID, delivered)
	env.wait(tok, b.JobID, delivered)
	if err := env.jobs.Close(); err != nil {
		t.Fatal(err)
	}
	store, _, err := openJobStore(filepath.Join(env.dir, jobsDBFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.update(a.JobID, func(j *Job) error { j.Delivery = DeliverySending; return nil }); err != nil {
		t.Fatal(err)
	}
	store.close()
	jobs, err := OpenJobs(JobsConfig{DataDir: env.dir, Engine: env.engine, PseudonymKey: env.key, Mailer: mailer, SweepInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer jobs.Close()
	jobs.Start(context.Background())
	deadline := time.Now().Add(10 * time.Second)
	for len(sink.received()) < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // room for a wrong extra send
	msgs := sink.received()
	if len(msgs) != 3 {
		t.Fatalf("%d messages, want 3 (two jobs, one resend)", len(msgs))
	}
	if parseMail(t, msgs[2].Data).Header.Get("Message-Id") != "<"+a.JobID+"@worklog>" {
		t.Error("the resent message has another Message-ID")
	}
	if j, _ := jobs.Get(a.JobID, "u1"); j.Delivery != DeliverySent || j.DeliveryAttempts != 2 {
		t.Errorf("after resend: %s, %d attempts", j.Delivery, j.DeliveryAttempts)
	}
}

func TestNewSMTPMailer(t *testing.T) {
	tests := []struct {
		url     string
		wantErr string
	}{
		{"smtp://mail.example.com", ""},
		{"smtp://user:secret@mail.example.com:2525", ""},
		{"smtps://user:secret@mail.example.com", ""},
		{"smtp://mail.example.com:25?tls=mandatory&timeout=5s", ""},
		{"http://mail.example.com", "scheme must be smtp or smtps"},
		{"smtp://user:secret@mail.example.com:99999", "bad port"},
		{"smtp://:25", "no host"},
		{"smtp://mail.example.com?timeout=soon", "bad timeout"},
	}
	for _, tc := range tests {
		_, err := NewSMTPMailer(tc.url)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.url, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want %q", tc.url, err, tc.wantErr)
		case err != nil && strings.Contains(err.Error(), "secret"):
			t.Errorf("%s: error shows the password: %v", tc.url, err)
		}
	}
}

func TestJobMessage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.csv")
	if err := os.WriteFile(path, []byte("date\n2024-05-10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	job := &Job{ID: newJobID(), Format: FormatCSV, Rows: 1, Bytes: 16, CreatedAt: time.Date(2024, 5, 10, 8, 0, 0, 0, time.UTC),
		FinishedAt: time.Date(2024, 5, 10, 8, 1, 0, 0, time.UTC), ExpiresAt: time.Date(2024, 5, 17, 8, 1, 0, 0, time.UTC)}
	tests := []struct {
		name        string
		m           jobMessage
		attachments int
		wantErr     bool
	}{
		{"attached", jobMessage{From: "a@example.com", To: "b@example.com", Job: job, Path: path, Attach: true, DownloadURL: "https://x/file"}, 1, false},
		{"link", jobMessage{From: "a@example.com", To: "b@example.com", Job: job, Path: path, DownloadURL: "https://x/file"}, 0, false},
		{"missing file is an error, not a message without it", jobMessage{From: "a@example.com", To: "b@example.com", Job: job, Path: path + ".gone", Attach: true}, 0, true},
		{"bad recipient", jobMessage{From: "a@example.com", To: "not an address", Job: job, Path: path}, 0, true},
	}
	for _, tc := range tests {
		msg, err := tc.m.build()
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: error %v", tc.name, err)
			continue
		}
		if err != nil {
			continue
		}
		var buf bytes.Buffer
		if _, err := msg.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		pm := parseMail(t, buf.Bytes())
		if len(pm.Attachments) != tc.attachments || !strings.Contains(pm.Text, "https://x/file") || !strings.Contains(pm.Header.Get("Subject"), "1 rows") {
			t.Errorf("%s: %d attachments, subject %q, text:\n%s", tc.name, len(pm.Attachments), pm.Header.Get("Subject"), pm.Text)
		}
		if att := pm.Attachments["reporting_worklog_20240510T080000Z.csv"]; tc.attachments == 1 && string(att) != "date\n2024-05-10\n" {
			t.Errorf("%s: attachment %q (%v)", tc.name, att, fmt.Sprint(len(pm.Attachments)))
		}
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
