package api

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"worklog/privacy"

	"github.com/golang-jwt/jwt/v5"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// line returns the request log line of request id.
func (s *syncBuffer) line(t *testing.T, id string) map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range strings.Split(s.b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "request" && m["request_id"] == id {
			return m
		}
	}
	t.Fatalf("no request line for %s in:\n%s", id, s.b.String())
	return nil
}

// A refused token's log line says why (expired, bad signature, wrong
// algorithm, missing exp, ...) and never holds the token; an expired token
// is told so. A 400's line carries the error code and the parameter.
func TestRefusalsExplainedInLog(t *testing.T) {
	logs := &syncBuffer{}
	env := newTestEnv(t, privacy.None, func(c *Config) { c.Logger = slog.New(slog.NewJSONHandler(logs, nil)) })
	now := time.Now()
	signed := func(m jwt.SigningMethod, key any, c jwt.MapClaims) string {
		t.Helper()
		s, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := jwt.MapClaims{"sub": "u", "exp": now.Add(time.Hour).Unix()}
	tests := []struct {
		name, token, reason string
	}{
		{"missing", "", "missing_token"},
		{"garbage", "garbage", "malformed"},
		{"wrong signature", signed(jwt.SigningMethodHS256, []byte("some-other-secret-123456"), valid), "bad_signature"},
		{"expired", signed(jwt.SigningMethodHS256, env.secret, jwt.MapClaims{"sub": "u", "exp": now.Add(-time.Hour).Unix()}), "expired"},
		{"no exp", signed(jwt.SigningMethodHS256, env.secret, jwt.MapClaims{"sub": "u"}), "missing_exp"},
		{"HS512", signed(jwt.SigningMethodHS512, env.secret, valid), "wrong_algorithm"},
		{"alg none", signed(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid), "wrong_algorithm"},
		{"no sub", signed(jwt.SigningMethodHS256, env.secret, jwt.MapClaims{"exp": now.Add(time.Hour).Unix()}), "missing_sub"},
	}
	for _, tc := range tests {
		resp, body := env.get(tc.token, "limit=1")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: %d %s", tc.name, resp.StatusCode, body)
			continue
		}
		line := logs.line(t, resp.Header.Get("X-Request-Id"))
		if line["auth_reason"] != tc.reason || line["error_code"] != "unauthorized" {
			t.Errorf("%s: log line %v, want auth_reason %s", tc.name, line, tc.reason)
		}
		if tc.token != "" && strings.Contains(logs.b.String(), tc.token) {
			t.Errorf("%s: the token is in the log", tc.name)
		}
		if wantExpired := tc.reason == "expired"; bytes.Contains(body, []byte("token expired")) != wantExpired {
			t.Errorf("%s: body %s", tc.name, body)
		}
	}
	resp, body := env.get(env.token("u", ""), "limit=abc")
	if line := logs.line(t, resp.Header.Get("X-Request-Id")); resp.StatusCode != http.StatusBadRequest || line["error_code"] != "invalid_parameter" || line["error_param"] != "limit" {
		t.Errorf("400: %d %s, log line %v", resp.StatusCode, body, line)
	}
}
