package api

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"worklog/export/jobs"
	"worklog/privacy"
)

// TestTwoAuthorizationHeadersRefused: a request with two Authorization
// headers is refused, whichever of them is valid.
func TestTwoAuthorizationHeadersRefused(t *testing.T) {
	env := newTestEnv(t, privacy.None, nil, readFixture(t))
	tok := env.token("u1", "")
	req, _ := http.NewRequest(http.MethodGet, env.url+ExportPath+"?limit=1", nil)
	req.Header.Add("Authorization", "Bearer "+tok)
	req.Header.Add("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("two Authorization headers: %d", resp.StatusCode)
	}
}

// TestInvalidEmailClaimRefusedAtRequest: a background export for a token
// whose email claim is no address is refused at once with 400
// email_invalid, and no job is created.
func TestInvalidEmailClaimRefusedAtRequest(t *testing.T) {
	env := newJobEnv(t, privacy.Pseudonymized, false, func(c *jobs.Config) {})
	for _, email := range []string{"not-an-address", "Ann <ann@example.com>", "a@example.com, b@example.com"} {
		resp, body := env.get(env.token("u9", email), "format=csv")
		if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte(`"code":"email_invalid"`)) {
			t.Errorf("email %q: %d %s", email, resp.StatusCode, body)
		}
	}
	if n, err := env.jobs.CountByState(); err != nil || n["queued"] != 0 {
		t.Errorf("jobs created for invalid e-mails: %v %v", n, err)
	}
}

// TestLogShowsSubHashed: the request log follows a caller by a hash of sub,
// never sub itself (it may be an e-mail address).
func TestLogShowsSubHashed(t *testing.T) {
	var logs logBuffer
	env := newTestEnv(t, privacy.None, withLog(&logs), readFixture(t))
	env.get(env.token("ann.agent@example.com", ""), "limit=1")
	out := logs.String()
	if strings.Contains(out, "ann.agent") || !strings.Contains(out, `"sub":"`+subHash("ann.agent@example.com")+`"`) {
		t.Errorf("log: %s", out)
	}
}
