package api

import (
	"bytes"
	"net/http"
	"testing"

	"worklog/privacy"
)

// A job's file is served at the level in force at download: the owner's
// token that now lacks reporting.viewEmail, or carries a stricter level,
// is refused the file made with e-mails.
func TestJobFileServedAtLevelInForce(t *testing.T) {
	env := newJobEnv(t, privacy.Partial, true, nil)
	withEmail := env.token("u1", "ann@example.com", privacy.PermViewEmail)
	sb := env.schedule(withEmail, "format=csv")
	env.wait(withEmail, sb.JobID, delivered)
	path := JobPaths{}.File(sb.JobID)
	resp, body := env.getPath(withEmail, path)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("@")) {
		t.Fatalf("owner with the permission: %d, %d bytes with e-mails: %t", resp.StatusCode, len(body), bytes.Contains(body, []byte("@")))
	}
	stricter, err := signClaims(env.secret, map[string]any{"sub": "u1", "email": "ann@example.com",
		"permissions": []string{privacy.PermViewEmail}, "reportingPrivacyLevel": "pseudonymized"})
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{
		"without reporting.viewEmail": env.token("u1", "ann@example.com"),
		"at level pseudonymized":      stricter,
	} {
		resp, body := env.getPath(tok, path)
		if resp.StatusCode != http.StatusForbidden || bytes.Contains(body, []byte("example.com\n")) || !bytes.Contains(body, []byte(`"code":"forbidden"`)) {
			t.Errorf("owner %s: %d %s; want 403", name, resp.StatusCode, body)
		}
	}
}
