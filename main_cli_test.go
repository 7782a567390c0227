package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The command line behaves like the standard tools: flags after file names,
// -h exits 0, settings show their real type, token takes days and a
// privacy level and refuses unknown permissions, export refuses an output
// name whose extension is no format.
func TestCommandLineBehaves(t *testing.T) {
	dir := t.TempDir()
	dump := writeFile(t, t.TempDir(), "dump.ndjson", event(1, 5, 3, 10, 0)+"\n"+`{"date":"bad"}`+"\n")
	if stdout, stderr, code := worklog(t, nil, "ingest", "--data", dir, dump, "--on-error", "skip"); code != 0 || !strings.Contains(stdout+stderr, "1 rejected") {
		t.Errorf("ingest FILE --on-error skip: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, cmd := range []string{"serve", "ingest", "export", "token"} {
		stdout, stderr, code := worklog(t, nil, cmd, "-h")
		if code != 0 {
			t.Errorf("%s -h: exit %d", cmd, code)
		}
		if cmd == "serve" {
			help := stdout + stderr
			for _, want := range []string{"-max-filters int", "-csv-bom bool", "-export-timeout duration", "-max-query-bytes size", "-addr string"} {
				if !strings.Contains(help, want) {
					t.Errorf("serve -h lacks %q", want)
				}
			}
		}
	}

	secret := "0123456789abcdef0123"
	stdout, stderr, code := worklog(t, nil, "token", "--jwt-secret", secret, "--sub", "u1", "--ttl", "7d", "--privacy-level", "pseudonymized", "--permission", "reporting.viewEmail")
	if code != 0 {
		t.Fatalf("token: exit %d %s", code, stderr)
	}
	parts := strings.Split(strings.TrimSpace(stdout), ".")
	if len(parts) != 3 {
		t.Fatalf("token %q", stdout)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		Exp, Iat int64
		Level    string   `json:"reportingPrivacyLevel"`
		Perms    []string `json:"permissions"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil || claims.Exp-claims.Iat != 7*86400 || claims.Level != "pseudonymized" || len(claims.Perms) != 1 {
		t.Errorf("claims %s (%v)", raw, err)
	}
	_, stderr, code = worklog(t, nil, "token", "--jwt-secret", secret, "--sub", "u1", "--permission", "reporting.viewemail")
	if code == 0 || !strings.Contains(stderr, `unknown permission "reporting.viewemail"`) || !strings.Contains(stderr, "reporting.viewEmail, reporting.ingest, reporting.erase") {
		t.Errorf("unknown permission: exit %d %s", code, stderr)
	}
	if _, stderr, code = worklog(t, nil, "token", "--jwt-secret", secret, "--sub", "u1", "--ttl", "7x"); code == 0 {
		t.Errorf("--ttl 7x accepted: %s", stderr)
	}

	pdf := filepath.Join(t.TempDir(), "report.pdf")
	_, stderr, code = worklog(t, nil, "export", "--data", dir, "--privacy-level", "none", "--out", pdf)
	if code == 0 || !strings.Contains(stderr, "unknown extension .pdf") {
		t.Errorf("export --out report.pdf: exit %d %s", code, stderr)
	}
	if _, err := os.Stat(pdf); !os.IsNotExist(err) {
		t.Errorf("report.pdf was written: %v", err)
	}
}
