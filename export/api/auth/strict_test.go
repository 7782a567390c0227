package auth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// rawToken signs the header and payload JSON as written, so that tests can
// build what no JWT library would: duplicate keys, odd types.
func rawToken(t *testing.T, header, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(signing, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + enc.EncodeToString(sig)
}

func TestOddTokensRefused(t *testing.T) {
	v, err := NewHMACVerifier(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Unix()
	hdr := `{"alg":"HS256","typ":"JWT"}`
	cases := []struct {
		name, header, payload, want string
	}{
		{"exp as a string", hdr, fmt.Sprintf(`{"sub":"u","exp":"%d"}`, exp), "exp must be a number"},
		{"iat as a string", hdr, fmt.Sprintf(`{"sub":"u","exp":%d,"iat":"1"}`, exp), "iat must be a number"},
		{"duplicate sub", hdr, fmt.Sprintf(`{"sub":"u","exp":%d,"sub":"admin"}`, exp), `"sub" appears twice`},
		{"duplicate permissions", hdr, fmt.Sprintf(`{"sub":"u","exp":%d,"permissions":[],"permissions":["reporting.erase"]}`, exp), `"permissions" appears twice`},
		{"crit header", `{"alg":"HS256","typ":"JWT","crit":["exp"]}`, fmt.Sprintf(`{"sub":"u","exp":%d}`, exp), `"crit"`},
		{"duplicate alg", `{"alg":"HS256","alg":"none"}`, fmt.Sprintf(`{"sub":"u","exp":%d}`, exp), `"alg" appears twice`},
		{"payload not an object", hdr, `[1]`, "not a JSON object"},
		{"trailing data", hdr, fmt.Sprintf(`{"sub":"u","exp":%d}{}`, exp), "data after"},
	}
	for _, tc := range cases {
		_, err := v.Verify(rawToken(t, tc.header, tc.payload))
		if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want unauthorized mentioning %q", tc.name, err, tc.want)
		}
	}
	// The same token, well formed, passes.
	if _, err := v.Verify(rawToken(t, hdr, fmt.Sprintf(`{"sub":"u","exp":%d}`, exp))); err != nil {
		t.Errorf("well-formed token refused: %v", err)
	}
}

func TestIssuerAudience(t *testing.T) {
	v, _ := NewHMACVerifier(testSecret)
	v.RequireIssuerAudience("https://idp.example", "worklog")
	exp := time.Now().Add(time.Hour).Unix()
	ok := jwt.MapClaims{"sub": "u", "exp": exp, "iss": "https://idp.example", "aud": []string{"other", "worklog"}}
	if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, testSecret, ok)); err != nil {
		t.Errorf("matching iss and aud refused: %v", err)
	}
	for name, c := range map[string]jwt.MapClaims{
		"no iss":    {"sub": "u", "exp": exp, "aud": "worklog"},
		"other iss": {"sub": "u", "exp": exp, "iss": "https://evil.example", "aud": "worklog"},
		"no aud":    {"sub": "u", "exp": exp, "iss": "https://idp.example"},
		"other aud": {"sub": "u", "exp": exp, "iss": "https://idp.example", "aud": "billing"},
	} {
		if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, testSecret, c)); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: %v, want unauthorized", name, err)
		}
	}
}

func TestValidEmail(t *testing.T) {
	for s, want := range map[string]bool{
		"a@example.com": true, "first.last+tag@sub.example.org": true,
		"": false, "not-an-address": false, "A <a@example.com>": false, "<a@example.com>": false,
		"a@example.com, b@example.com": false, "a@example.com\r\nBcc: x@evil": false, "a@": false,
	} {
		if got := ValidEmail(s); got != want {
			t.Errorf("ValidEmail(%q) = %v, want %v", s, got, want)
		}
	}
}
