package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	netmail "net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"worklog/export/api"
	"worklog/export/api/auth"
	"worklog/export/jobs"

	"github.com/emersion/go-smtp"
	"github.com/xuri/excelize/v2"
)

// mailbox is an in-process SMTP server that keeps every message.
type mailbox struct {
	mu   sync.Mutex
	msgs []mailboxMsg
}

type mailboxMsg struct {
	to   []string
	data []byte
}

func (m *mailbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &mailboxSession{box: m}, nil }

func (m *mailbox) received() []mailboxMsg {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]mailboxMsg(nil), m.msgs...)
}

type mailboxSession struct {
	box *mailbox
	to  []string
}

func (s *mailboxSession) Reset()                               { s.to = nil }
func (s *mailboxSession) Logout() error                        { return nil }
func (s *mailboxSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *mailboxSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *mailboxSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.box.mu.Lock()
	s.box.msgs = append(s.box.msgs, mailboxMsg{to: s.to, data: b})
	s.box.mu.Unlock()
	return nil
}

func startMailbox(t *testing.T) (*mailbox, string) {
	t.Helper()
	box := &mailbox{}
	srv := smtp.NewServer(box)
	srv.Domain = "localhost"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return box, ln.Addr().String()
}

// server is a running 'worklog serve'.
type server struct {
	cmd  *exec.Cmd
	url  string
	logs *lockedBuffer
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServe starts 'worklog serve' on a free port and waits for its
// "serving" log line.
func startServe(t *testing.T, args ...string) *server {
	t.Helper()
	cmd := exec.Command(worklogBin(t), append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	logs := &lockedBuffer{}
	cmd.Stderr, cmd.Stdout = logs, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, logs: logs}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(logs.String(), "\n") {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving" {
				s.url = "http://" + rec.Addr
				return s
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("serve did not start:\n%s", logs.String())
	return nil
}

// waitLog waits (up to a minute) for a log line containing want.
func (s *server) waitLog(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(s.logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line %s:\n%s", want, s.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) get(t *testing.T, tok, path string) (int, []byte) {
	t.Helper()
	code, _, body := s.fetch(t, tok, path, "")
	return code, body
}

func (s *server) job(t *testing.T, tok, id string) api.JobView {
	t.Helper()
	code, body := s.get(t, tok, api.JobPaths{}.Status(id))
	var v api.JobView
	if code != http.StatusOK || json.Unmarshal(body, &v) != nil {
		t.Fatalf("job status: %d %s", code, body)
	}
	return v
}

// xlsxSheets opens an XLSX file and lists its sheets.
func xlsxSheets(t *testing.T, b []byte) []string {
	t.Helper()
	f, err := excelize.OpenReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("open xlsx: %v", err)
	}
	defer f.Close()
	return f.GetSheetList()
}

// attachment returns the one attachment of a raw message.
func attachment(t *testing.T, raw []byte) (string, []byte) {
	t.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no attachment: %v", err)
		}
		if p.FileName() == "" {
			continue
		}
		b, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, p))
		if err != nil {
			t.Fatal(err)
		}
		return p.FileName(), b
	}
}

// A background export survives SIGKILL of the server mid-write: after a
// restart the job runs again from the start, finishes with a correct file
// and is delivered exactly once.
func TestExportJobSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	const rows = 40000
	if _, stderr, code := worklog(t, nil, "demo", "--data", dir, "--rows", fmt.Sprint(rows)); code != 0 {
		t.Fatalf("demo: %s", stderr)
	}
	// The reference: the same export written by 'worklog export', same
	// plan, same privacy level (the default), same pseudonym key.
	ref := filepath.Join(t.TempDir(), "ref.xlsx")
	if _, stderr, code := worklog(t, nil, "export", "--data", dir, "--out", ref); code != 0 {
		t.Fatalf("export: %s", stderr)
	}
	want, err := os.ReadFile(ref)
	if err != nil {
		t.Fatal(err)
	}

	box, smtpAddr := startMailbox(t)
	secret := "kill-test-secret-0123456789"
	args := []string{"--data", dir, "--jwt-secret", secret, "--smtp-url", "smtp://" + smtpAddr}
	tok, err := auth.MintHS256([]byte(secret), auth.TokenRequest{Subject: "ann", Email: "ann@example.com", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}

	srv := startServe(t, args...)
	code, body := srv.get(t, tok, api.ExportPath+"?format=xlsx")
	if code != http.StatusAccepted {
		t.Fatalf("export request: %d %s", code, body)
	}
	var sb struct {
		JobID string
		Rows  int64
	}
	if err := json.Unmarshal(body, &sb); err != nil || sb.Rows != rows {
		t.Fatalf("202 body %s (%v)", body, err)
	}
	// Kill while the job writes its file: running, and its temporary file
	// exists beside the final name.
	deadline := time.Now().Add(30 * time.Second)
	for srv.job(t, tok, sb.JobID).Status != jobs.Running {
		if time.Now().After(deadline) {
			t.Fatal("the job never ran")
		}
		time.Sleep(10 * time.Millisecond)
	}
	tmps := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, "exports", "."+sb.JobID+".xlsx.*.tmp"))
		return m
	}
	for len(tmps()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	srv.cmd.Wait()
	if v := srv.logs.String(); strings.Contains(v, `"msg":"export job done"`) {
		t.Fatalf("the job finished before the kill; the test proves nothing:\n%s", v)
	}
	if len(tmps()) == 0 {
		t.Fatal("no temporary file at the kill: the job was not writing")
	}
	if _, err := os.Stat(filepath.Join(dir, "exports", sb.JobID+".xlsx")); !os.IsNotExist(err) {
		t.Fatalf("a file under the final name after the kill: %v", err)
	}
	if n := len(box.received()); n != 0 {
		t.Fatalf("%d messages before the job finished", n)
	}

	srv = startServe(t, args...)
	deadline = time.Now().Add(120 * time.Second)
	var v api.JobView
	for {
		v = srv.job(t, tok, sb.JobID)
		if v.Delivery == jobs.DeliverySent || v.Status == jobs.Failed || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v.Status != jobs.Done || v.Delivery != jobs.DeliverySent || v.Rows != rows {
		t.Fatalf("after restart: %+v\n%s", v, srv.logs.String())
	}
	if len(tmps()) != 0 {
		t.Error("the killed run's temporary file is still there")
	}
	code, file := srv.get(t, tok, *v.DownloadURL)
	if code != http.StatusOK {
		t.Fatalf("download: %d", code)
	}
	// The XLSX encoder is deterministic, so a correct file is the very
	// bytes of 'worklog export'.
	if !bytes.Equal(file, want) {
		t.Fatalf("download (%d bytes) differs from 'worklog export' (%d bytes)", len(file), len(want))
	}
	if sheets := xlsxSheets(t, file); len(sheets) != 1 || sheets[0] != "reporting_worklog" {
		t.Errorf("sheets %v", sheets)
	}

	// Exactly one delivery, to the token's address, carrying that file —
	// also after a further restart.
	srv.cmd.Process.Signal(syscall.SIGTERM)
	srv.cmd.Wait()
	srv = startServe(t, args...)
	// A second delivery would come from the janitor's sweep at start: wait
	// for that sweep to have run, then look.
	srv.waitLog(t, `"msg":"export jobs: startup sweep done"`)
	if v := srv.job(t, tok, sb.JobID); v.Delivery != jobs.DeliverySent || v.DeliveredAt == nil {
		t.Errorf("after a further restart: %+v", v)
	}
	msgs := box.received()
	if len(msgs) != 1 || len(msgs[0].to) != 1 || msgs[0].to[0] != "ann@example.com" {
		t.Fatalf("messages: %d, want one to ann@example.com", len(msgs))
	}
	name, att := attachment(t, msgs[0].data)
	if !strings.HasSuffix(name, ".xlsx") || !bytes.Equal(att, file) {
		t.Errorf("attachment %s (%d bytes) differs from the download (%d bytes)", name, len(att), len(file))
	}
}

func TestParseHandBack(t *testing.T) {
	tests := []struct {
		in       string
		handBack bool
		above    int64
		ok       bool
	}{
		{"true", true, 0, true},
		{"false", false, 0, true},
		{defaultHandBackAbove, true, 256 << 20, true},
		{"300MB", true, 300e6, true},
		{"0", false, 0, true}, // ParseBool reads 0 as false
		{"sometimes", false, 0, false},
		{"-1MiB", false, 0, false},
	}
	for _, tc := range tests {
		hb, above, err := parseHandBack(tc.in)
		if (err == nil) != tc.ok || hb != tc.handBack || above != tc.above {
			t.Errorf("parseHandBack(%q) = %v, %d, %v; want %v, %d, ok %v", tc.in, hb, above, err, tc.handBack, tc.above, tc.ok)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"10MiB", 10 << 20, true},
		{"10485760", 10 << 20, true},
		{"512 KiB", 512 << 10, true},
		{"1GiB", 1 << 30, true},
		{"5MB", 5e6, true},
		{"100B", 100, true},
		{"0", 0, false},
		{"-1MiB", 0, false},
		{"ten", 0, false},
		{"10TiB", 0, false},
	}
	for _, tc := range tests {
		got, err := parseByteSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
