package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestTokenIssuerAudience: 'worklog token --issuer --audience' mints tokens
// that a server started with --jwt-issuer and --jwt-audience accepts, and
// the server still refuses a token without them or with other values.
func TestTokenIssuerAudience(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	secret := "0123456789abcdef0123456789abcdef"
	mint := func(args ...string) string {
		t.Helper()
		stdout, stderr, code := worklog(t, nil, append([]string{"token", "--jwt-secret", secret, "--sub", "u1"}, args...)...)
		if code != 0 {
			t.Fatalf("token %v: exit %d %s", args, code, stderr)
		}
		return strings.TrimSpace(stdout)
	}
	good := mint("--issuer", "https://idp.example", "--audience", "worklog", "--audience", "other")
	parts := strings.Split(good, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		Iss string
		Aud []string
	}
	if err := json.Unmarshal(raw, &claims); err != nil || claims.Iss != "https://idp.example" || strings.Join(claims.Aud, ",") != "worklog,other" {
		t.Errorf("claims %s (%v)", raw, err)
	}
	if _, stderr, code := worklog(t, nil, "token", "--jwt-secret", secret, "--sub", "u1", "--audience", " "); code == 0 || !strings.Contains(stderr, "--audience") {
		t.Errorf("empty --audience: exit %d %s", code, stderr)
	}

	s := startServe(t, "--data", t.TempDir(), "--jwt-secret", secret, "--jwt-issuer", "https://idp.example", "--jwt-audience", "worklog")
	tests := []struct {
		name string
		tok  string
		want int
	}{
		{"issuer and audience", good, http.StatusOK},
		{"neither", mint(), http.StatusUnauthorized},
		{"issuer only", mint("--issuer", "https://idp.example"), http.StatusUnauthorized},
		{"other issuer", mint("--issuer", "https://evil.example", "--audience", "worklog"), http.StatusUnauthorized},
		{"other audience", mint("--issuer", "https://idp.example", "--audience", "reports"), http.StatusUnauthorized},
	}
	for _, tc := range tests {
		if code, body := s.get(t, tc.tok, "/api/mind/export/jobs"); code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.want)
		}
	}
}
