package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"worklog/export"
	"worklog/export/jobs"
	"worklog/internal/mailtest"
	"worklog/privacy"
)

// mailLink finds the download link under base in a message text and returns
// it without base.
func mailLink(t *testing.T, text, base string) string {
	t.Helper()
	for _, f := range strings.Fields(text) {
		if strings.HasPrefix(f, base+"/") && strings.Contains(f, "/file") {
			return strings.TrimPrefix(f, base)
		}
	}
	t.Fatalf("no link under %s in:\n%s", base, text)
	return ""
}

// outboxText is the text of the job's message in the outbox.
func (e *jobEnv) outboxText(id string) string {
	e.t.Helper()
	raw, err := os.ReadFile(filepath.Join(e.dir, "outbox", id+".eml"))
	if err != nil {
		e.t.Fatal(err)
	}
	return mailtest.Parse(e.t, raw).Text
}

// browserGet requests a path the way a browser follows a link: no
// Authorization header.
func (e *jobEnv) browserGet(path string) (*http.Response, []byte) {
	e.t.Helper()
	resp, err := http.Get(e.url + path)
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

// A file above the attach limit is sent as a link under the public URL,
// and the link from the e-mail opens the way a browser opens it: a plain
// GET with no Authorization header. The e-mail says until when.
func TestJobLinkInsteadOfAttachment(t *testing.T) {
	env := newJobEnv(t, privacy.Pseudonymized, true, func(c *jobs.Config) { c.AttachLimit = 100 })
	tok := env.token("u1", "ann@example.com")
	sb := env.schedule(tok, "format=csv")
	v := env.wait(tok, sb.JobID, delivered)
	raw, err := os.ReadFile(filepath.Join(env.dir, "outbox", sb.JobID+".eml"))
	if err != nil {
		t.Fatal(err)
	}
	pm := mailtest.Parse(t, raw)
	if len(pm.Attachments) != 0 {
		t.Errorf("%d attachments, want a link only", len(pm.Attachments))
	}
	link := mailLink(t, pm.Text, "https://worklog.example.com")
	if !strings.HasPrefix(link, "/api/mind/export/jobs/"+sb.JobID+"/file?expires=") || !strings.Contains(link, "&sig=") {
		t.Errorf("link %q is not a signed link to the job's file", link)
	}
	if until := v.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC"); !strings.Contains(pm.Text, "until "+until) || strings.Contains(pm.Text, "Bearer") {
		t.Errorf("the e-mail should say the link works until %s, with no token:\n%s", until, pm.Text)
	}
	_, want := env.getPath(tok, JobPaths{}.File(sb.JobID))
	resp, body := env.browserGet(link)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("the link from the e-mail, without a token: %d %s", resp.StatusCode, body)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="reporting_worklog_`) || resp.Header.Get("Cache-Control") != "private, no-store" {
		t.Errorf("headers %v", resp.Header)
	}
	// downloadUrl of the status is the same signed link.
	if v.DownloadURL == nil || *v.DownloadURL != link {
		t.Errorf("downloadUrl %v, want %s", v.DownloadURL, link)
	}
	// It also works when a page sends a token along, whoever's it is.
	if resp, _ := env.getPath(env.token("u2", "bob@example.com"), link); resp.StatusCode != http.StatusOK {
		t.Errorf("signed link with another user's token: %d", resp.StatusCode)
	}
}

// A signed link opens exactly one job's file: an altered job id, expiry or
// signature is refused with 403; the file path without a signature still
// needs a token.
func TestSignedLinkRefusesAlterations(t *testing.T) {
	env := newJobEnv(t, privacy.Pseudonymized, true, nil)
	tok := env.token("u1", "ann@example.com")
	a := env.wait(tok, env.schedule(tok, "format=csv").JobID, delivered)
	b := env.wait(tok, env.schedule(tok, "format=json").JobID, delivered)
	link := *a.DownloadURL
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	exp, sig := u.Query().Get("expires"), u.Query().Get("sig")
	n, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		t.Fatalf("expires %q", exp)
	}
	// Another valid base64url character in the first place, whatever the
	// signature starts with, so the alteration is a wrong signature and
	// never a malformed one.
	flipped := []byte(sig)
	if flipped[0] == 'A' {
		flipped[0] = 'B'
	} else {
		flipped[0] = 'A'
	}
	file := JobPaths{}.File(a.ID)
	tests := []struct {
		name, path string
		want       int
	}{
		{"as sent", link, http.StatusOK},
		{"another job's id", JobPaths{}.File(b.ID) + "?expires=" + exp + "&sig=" + sig, http.StatusForbidden},
		{"a later expiry", file + "?expires=" + strconv.FormatInt(n+86400, 10) + "&sig=" + sig, http.StatusForbidden},
		{"an earlier expiry", file + "?expires=" + strconv.FormatInt(n-1, 10) + "&sig=" + sig, http.StatusForbidden},
		{"a changed signature", file + "?expires=" + exp + "&sig=" + string(flipped), http.StatusForbidden},
		{"a cut signature", file + "?expires=" + exp + "&sig=" + sig[:10], http.StatusForbidden},
		{"no signature", file + "?expires=" + exp, http.StatusForbidden},
		{"no expiry", file + "?sig=" + sig, http.StatusForbidden},
		{"expiry not a number", file + "?expires=soon&sig=" + sig, http.StatusForbidden},
		{"two signatures", link + "&sig=" + sig, http.StatusForbidden},
		{"an id that is no job id", JobsPath + "/0123/file?expires=" + exp + "&sig=" + sig, http.StatusForbidden},
		{"no signature and no token", file, http.StatusUnauthorized},
	}
	for _, tc := range tests {
		resp, body := env.browserGet(tc.path)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, resp.StatusCode, body, tc.want)
		}
		if tc.want == http.StatusForbidden && !bytes.Contains(body, []byte(`"code":"invalid_link"`)) {
			t.Errorf("%s: body %s", tc.name, body)
		}
	}
	// The second job's own link opens its JSON file, not the CSV one.
	resp, body := env.browserGet(*b.DownloadURL)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != export.FormatJSON.ContentType() || !bytes.HasPrefix(body, []byte("[")) {
		t.Errorf("second job's link: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// A job's file is served at the level in force when it is downloaded: a
// server whose level was raised since the job ran refuses the signed link
// and the owner's token alike (SPEC §6).
func TestJobFileAfterLevelRaised(t *testing.T) {
	env := newJobEnv(t, privacy.None, true, nil)
	tok := env.token("u1", "ann@example.com")
	v := env.wait(tok, env.schedule(tok, "format=csv").JobID, delivered)
	if resp, _ := env.browserGet(*v.DownloadURL); resp.StatusCode != http.StatusOK {
		t.Fatalf("at the job's level: %d", resp.StatusCode)
	}
	cfg := env.cfg
	cfg.PrivacyLevel = privacy.Pseudonymized
	srv, err := NewServer(cfg, env.engine)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	signed, _ := http.NewRequest(http.MethodGet, hs.URL+*v.DownloadURL, nil)
	bearer, _ := http.NewRequest(http.MethodGet, hs.URL+JobPaths{}.File(v.ID), nil)
	bearer.Header.Set("Authorization", "Bearer "+tok)
	for name, req := range map[string]*http.Request{"signed link": signed, "bearer": bearer} {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s after the level was raised: %d %s, want 403", name, resp.StatusCode, body)
		}
	}
}

// testClock is a clock a test moves forward.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// After the download TTL the signed link and the owner's download answer
// 410 and the janitor deletes the file. The runner's clock is moved past
// the expiry: nothing waits for real time to pass.
func TestJobLinkExpires(t *testing.T) {
	clock := &testClock{}
	env := newJobEnv(t, privacy.Pseudonymized, true, func(c *jobs.Config) { c.Now = clock.now })
	tok := env.token("u1", "ann@example.com")
	sb := env.schedule(tok, "format=csv")
	v := env.wait(tok, sb.JobID, delivered)
	link := mailLink(t, env.outboxText(sb.JobID), "https://worklog.example.com")
	if resp, _ := env.browserGet(link); resp.StatusCode != http.StatusOK {
		t.Fatalf("fresh link: %d", resp.StatusCode)
	}
	if left := time.Until(*v.ExpiresAt); left < jobs.DefaultDownloadTTL-time.Minute || left > jobs.DefaultDownloadTTL {
		t.Errorf("the link expires in %s, want the default %s", left, jobs.DefaultDownloadTTL)
	}
	clock.advance(time.Until(*v.ExpiresAt) + time.Second)
	for name, get := range map[string]func() (*http.Response, []byte){
		"signed link": func() (*http.Response, []byte) { return env.browserGet(link) },
		"bearer":      func() (*http.Response, []byte) { return env.getPath(tok, JobPaths{}.File(sb.JobID)) },
	} {
		resp, body := get()
		if resp.StatusCode != http.StatusGone || !bytes.Contains(body, []byte(`"code":"gone"`)) {
			t.Errorf("%s after expiry: %d %s, want 410", name, resp.StatusCode, body)
		}
	}
	// The janitor (its sweeps run every 20 ms on the moved clock) deletes
	// the file; this waits for that, it proves nothing by waiting.
	file := filepath.Join(env.dir, "exports", sb.JobID+".csv")
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := os.Stat(file)
		if j, _ := env.jobs.Get(sb.JobID, "u1"); errors.Is(err, os.ErrNotExist) && j.Expired {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the janitor left the expired file")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resp, _ := env.browserGet(link); resp.StatusCode != http.StatusGone {
		t.Errorf("link after the file was deleted: %d", resp.StatusCode)
	}
	// The outbox message, which may carry the file attached, expired with it.
	if _, err := os.Stat(filepath.Join(env.dir, "outbox", sb.JobID+".eml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("outbox message outlived the download: %v", err)
	}
	if j, err := env.jobs.Get(sb.JobID, "u1"); err != nil || j.Status != jobs.Done {
		t.Errorf("job after expiry %+v %v", j, err)
	}
}

// GET /api/mind/export/jobs lists the caller's own jobs, newest first, as
// job statuses; limit bounds the list, X-Total-Count counts them all.
func TestJobList(t *testing.T) {
	env := newJobEnv(t, privacy.Pseudonymized, false, func(c *jobs.Config) { c.PerUser = 10 }) // no workers: jobs stay queued
	ann, bob := env.token("u1", "ann@example.com"), env.token("u2", "bob@example.com")
	var ids []string
	for _, f := range []string{"csv", "json", "xlsx"} {
		ids = append(ids, env.schedule(ann, "format="+f).JobID)
	}
	bobs := env.schedule(bob, "format=csv").JobID
	list := func(tok, q string) ([]JobView, *http.Response) {
		t.Helper()
		resp, body := env.getPath(tok, JobsPath+q)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("list%s: %d %s", q, resp.StatusCode, body)
		}
		var vs []JobView
		if err := json.Unmarshal(body, &vs); err != nil {
			t.Fatalf("list body %s: %v", body, err)
		}
		return vs, resp
	}
	vs, resp := list(ann, "")
	var got []string
	for _, v := range vs {
		got = append(got, v.ID)
		if v.Status != jobs.Queued || v.DeliverTo != "ann@example.com" {
			t.Errorf("job %+v", v)
		}
	}
	if want := []string{ids[2], ids[1], ids[0]}; !slices.Equal(got, want) || resp.Header.Get("X-Total-Count") != "3" {
		t.Errorf("ann's jobs %v (total %s), want newest first %v", got, resp.Header.Get("X-Total-Count"), want)
	}
	if vs, resp := list(ann, "?limit=1"); len(vs) != 1 || vs[0].ID != ids[2] || resp.Header.Get("X-Total-Count") != "3" {
		t.Errorf("limit=1: %+v", vs)
	}
	if vs, _ := list(bob, ""); len(vs) != 1 || vs[0].ID != bobs {
		t.Errorf("bob sees %+v", vs)
	}
	resp, body := env.getPath(env.token("u9", "cy@example.com"), JobsPath)
	if resp.StatusCode != http.StatusOK || string(bytes.TrimSpace(body)) != "[]" {
		t.Errorf("a user without jobs: %d %s, want []", resp.StatusCode, body)
	}
	for q, param := range map[string]string{"?limit=0": "limit", "?limit=x": "limit", "?limit=1001": "limit", "?status=done": "status"} {
		resp, body := env.getPath(ann, JobsPath+q)
		if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte(`"param":"`+param+`"`)) {
			t.Errorf("%s: %d %s", q, resp.StatusCode, body)
		}
	}
	if resp, _ := env.browserGet(JobsPath); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: %d", resp.StatusCode)
	}
}
