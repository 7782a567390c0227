package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testSecret = []byte("test-secret-0123456789abcdef")

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifierHS256(t *testing.T) {
	v, err := NewHMACVerifier(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ok := jwt.MapClaims{"sub": "u1", "email": "a@example.com", "permissions": []string{"reporting.viewEmail"}, "exp": now.Add(time.Hour).Unix()}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"valid", sign(t, jwt.SigningMethodHS256, testSecret, ok), true},
		{"expired within leeway", sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "u1", "exp": now.Add(-10 * time.Second).Unix()}), true},
		{"expired beyond leeway", sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "u1", "exp": now.Add(-time.Minute).Unix()}), false},
		{"no exp", sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "u1"}), false},
		{"nbf in the future", sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "u1", "exp": now.Add(time.Hour).Unix(), "nbf": now.Add(time.Hour).Unix()}), false},
		{"iat in the future", sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "u1", "exp": now.Add(time.Hour).Unix(), "iat": now.Add(time.Hour).Unix()}), false},
		{"no sub", sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": now.Add(time.Hour).Unix()}), false},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789"), ok), false},
		{"HS512 with the right secret", sign(t, jwt.SigningMethodHS512, testSecret, ok), false},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, ok), false},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, ok), false},
		{"garbage", "not.a.token", false},
		{"empty", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			claims, err := v.Verify(tc.token)
			if tc.ok {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if claims.Subject != "u1" {
					t.Errorf("sub = %q", claims.Subject)
				}
				return
			}
			if !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("Verify = %v, want ErrUnauthorized", err)
			}
		})
	}
}

func TestVerifierPublicKeys(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pemOf := func(pub any) []byte {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	rsaPEM, ecPEM := pemOf(&rsaKey.PublicKey), pemOf(&ecKey.PublicKey)
	claims := jwt.MapClaims{"sub": "u1", "exp": time.Now().Add(time.Hour).Unix()}

	rv, err := NewPublicKeyVerifier(rsaPEM)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := NewPublicKeyVerifier(ecPEM)
	if err != nil {
		t.Fatal(err)
	}
	if rv.Algorithm() != "RS256" || ev.Algorithm() != "ES256" {
		t.Fatalf("algorithms %s, %s", rv.Algorithm(), ev.Algorithm())
	}
	tests := []struct {
		name  string
		v     *Verifier
		token string
		ok    bool
	}{
		{"RS256 valid", rv, sign(t, jwt.SigningMethodRS256, rsaKey, claims), true},
		{"ES256 valid", ev, sign(t, jwt.SigningMethodES256, ecKey, claims), true},
		{"RS512 on RSA key", rv, sign(t, jwt.SigningMethodRS512, rsaKey, claims), false},
		{"ES256 on RSA verifier", rv, sign(t, jwt.SigningMethodES256, ecKey, claims), false},
		{"RS256 on EC verifier", ev, sign(t, jwt.SigningMethodRS256, rsaKey, claims), false},
		// Key confusion: an HS256 token whose secret is the public key PEM.
		{"HS256 signed with the public key", rv, sign(t, jwt.SigningMethodHS256, rsaPEM, claims), false},
		{"HS256 signed with the EC public key", ev, sign(t, jwt.SigningMethodHS256, ecPEM, claims), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.v.Verify(tc.token)
			if (err == nil) != tc.ok {
				t.Fatalf("Verify err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if _, err := NewPublicKeyVerifier([]byte("not pem")); err == nil {
		t.Error("NewPublicKeyVerifier accepted garbage")
	}
}

func TestMintHS256RoundTrip(t *testing.T) {
	tok, err := MintHS256(testSecret, TokenRequest{Subject: "agent-7", Email: "a@example.com", Permissions: []string{"reporting.ingest"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := NewHMACVerifier(testSecret)
	c, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "agent-7" || c.Email != "a@example.com" || !c.Has(PermIngest) || c.Has("reporting.viewEmail") {
		t.Fatalf("claims = %+v", c)
	}
	if _, err := MintHS256([]byte("short"), TokenRequest{Subject: "x", TTL: time.Hour}); err == nil {
		t.Error("short secret accepted")
	}
	if _, err := NewHMACVerifier([]byte("short")); err == nil {
		t.Error("short secret accepted by verifier")
	}
}

func TestBearerToken(t *testing.T) {
	for _, tc := range []struct {
		in, tok string
		ok      bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer  abc ", "abc", true},
		{"Basic abc", "", false},
		{"Bearer ", "", false},
		{"", "", false},
	} {
		tok, ok := BearerToken(tc.in)
		if tok != tc.tok || ok != tc.ok {
			t.Errorf("BearerToken(%q) = %q, %v", tc.in, tok, ok)
		}
	}
}
