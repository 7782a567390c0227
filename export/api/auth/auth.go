// Package auth verifies and mints the bearer tokens of the API (SPEC §7):
// JWTs whose algorithm is pinned by the configured key. It knows nothing of
// HTTP routing and must not import Echo, so `worklog token` links only this.
package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Permission names carried in a token's "permissions" claim.
const (
	// PermIngest allows POST /api/mind/ingest/reporting_worklog.
	PermIngest = "reporting.ingest"
	// PermErase allows POST /api/mind/privacy/forget: erasing a user's
	// identity or events from the store (SPEC §12).
	PermErase = "reporting.erase"
)

// ClockLeeway is the tolerance applied to exp, nbf and iat (SPEC §7).
const ClockLeeway = 30 * time.Second

// MinSecretLen is the shortest HS256 secret the server accepts: a shorter
// one can be brute-forced from a single token.
const MinSecretLen = 16

// Claims are the token claims worklog reads.
type Claims struct {
	// Email is where background exports are delivered.
	Email string `json:"email,omitempty"`
	// Permissions grant optional rights (reporting.viewEmail, reporting.ingest,
	// reporting.erase).
	Permissions []string `json:"permissions,omitempty"`
	// PrivacyLevel may raise (never lower) the server's privacy level.
	PrivacyLevel string `json:"reportingPrivacyLevel,omitempty"`
	jwt.RegisteredClaims
}

// Has reports whether the claims grant permission p.
func (c *Claims) Has(p string) bool {
	for _, q := range c.Permissions {
		if q == p {
			return true
		}
	}
	return false
}

// ErrUnauthorized is returned for every token that is not accepted; the
// wrapped cause says why (for the operator, never for the log line's token).
var ErrUnauthorized = errors.New("unauthorized")

// Verifier checks bearer tokens against one configured key. The signing
// algorithm is pinned by the key: a secret accepts HS256 only, an RSA key
// RS256 only, an EC P-256 key ES256 only, so a token cannot pick its own
// algorithm ("alg": "none", or HS256 signed with the public key).
type Verifier struct {
	alg    string
	key    any
	parser *jwt.Parser
	// issuer and audience, when set, are required values of iss and aud.
	issuer, audience string
}

// NewHMACVerifier returns a verifier for HS256 tokens signed with secret.
func NewHMACVerifier(secret []byte) (*Verifier, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("jwt secret: at least %d bytes required, got %d", MinSecretLen, len(secret))
	}
	return newVerifier(jwt.SigningMethodHS256.Alg(), secret), nil
}

// NewPublicKeyVerifier returns a verifier for a PEM public key: RS256 for an
// RSA key, ES256 for an EC P-256 key.
func NewPublicKeyVerifier(pemBytes []byte) (*Verifier, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("jwt public key: no PEM block found")
	}
	var pub any
	var err error
	switch block.Type {
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		cert, err = x509.ParseCertificate(block.Bytes)
		if err == nil {
			pub = cert.PublicKey
		}
	default:
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("jwt public key: %w", err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("jwt public key: RSA key of %d bits, at least 2048 required", k.N.BitLen())
		}
		return newVerifier(jwt.SigningMethodRS256.Alg(), k), nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("jwt public key: EC curve %s, ES256 needs P-256", k.Curve.Params().Name)
		}
		return newVerifier(jwt.SigningMethodES256.Alg(), k), nil
	default:
		return nil, fmt.Errorf("jwt public key: unsupported key type %T (want RSA or EC P-256)", pub)
	}
}

func newVerifier(alg string, key any) *Verifier {
	v := &Verifier{alg: alg, key: key}
	v.parser = jwt.NewParser(v.parserOptions()...)
	return v
}

func (v *Verifier) parserOptions() []jwt.ParserOption {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{v.alg}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(ClockLeeway),
	}
	if v.issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.issuer))
	}
	if v.audience != "" {
		opts = append(opts, jwt.WithAudience(v.audience))
	}
	return opts
}

// RequireIssuerAudience makes the verifier refuse tokens whose iss is not
// issuer, or whose aud does not name audience; an empty value checks
// nothing (--jwt-issuer, --jwt-audience).
func (v *Verifier) RequireIssuerAudience(issuer, audience string) {
	v.issuer, v.audience = issuer, audience
	v.parser = jwt.NewParser(v.parserOptions()...)
}

// Algorithm is the one algorithm the verifier accepts.
func (v *Verifier) Algorithm() string { return v.alg }

// Verify parses and checks a token: signature with the pinned algorithm,
// exp required, exp/nbf/iat within the leeway, a non-empty sub. Every
// failure wraps ErrUnauthorized.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if err := checkSegments(token); err != nil {
		return nil, &Error{Reason: ReasonMalformed, err: err}
	}
	var claims Claims
	tok, err := v.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return v.key, nil })
	if err != nil {
		return nil, &Error{Reason: v.reason(tok, err), err: err}
	}
	if strings.TrimSpace(claims.Subject) == "" {
		return nil, &Error{Reason: ReasonMissingSub, err: errors.New("token has no sub claim")}
	}
	return &claims, nil
}

// Why a token was refused: the code the server logs (never the token) so
// that an operator can tell a clock or key problem from a forged token.
const (
	ReasonMissingToken   = "missing_token"
	ReasonMalformed      = "malformed"
	ReasonExpired        = "expired"
	ReasonNotYetValid    = "not_yet_valid"
	ReasonIssuedInFuture = "issued_in_future"
	ReasonMissingExp     = "missing_exp"
	ReasonMissingSub     = "missing_sub"
	ReasonWrongAlgorithm = "wrong_algorithm"
	ReasonBadSignature   = "bad_signature"
	ReasonInvalid        = "invalid"
)

// Error is a refused token; it wraps ErrUnauthorized.
type Error struct {
	// Reason is one of the Reason constants.
	Reason string
	err    error
}

func (e *Error) Error() string { return "unauthorized: " + e.Reason + ": " + e.err.Error() }

// Unwrap lets errors.Is find ErrUnauthorized and the jwt error.
func (e *Error) Unwrap() []error { return []error{ErrUnauthorized, e.err} }

// reason classifies a parse error. A token signed with another algorithm
// than the pinned one fails as an invalid signature in jwt; its header
// (parsed even when verification fails) tells the two apart.
func (v *Verifier) reason(tok *jwt.Token, err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ReasonMalformed
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return ReasonMissingExp // the only claim the parser requires
	case errors.Is(err, jwt.ErrTokenExpired):
		return ReasonExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return ReasonNotYetValid
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ReasonIssuedInFuture
	case tok != nil && tok.Method != nil && tok.Method.Alg() != v.alg,
		tok != nil && tok.Header["alg"] != v.alg:
		return ReasonWrongAlgorithm
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ReasonBadSignature
	}
	return ReasonInvalid
}

// ReasonOf returns the reason of a refused token, or "" for another error.
func ReasonOf(err error) string {
	var ae *Error
	if errors.As(err, &ae) {
		return ae.Reason
	}
	return ""
}

// BearerToken extracts the token from an Authorization header value.
func BearerToken(header string) (string, bool) {
	const prefix = "bearer "
	if len(header) <= len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return "", false
	}
	tok := strings.TrimSpace(header[len(prefix):])
	return tok, tok != ""
}

// TokenRequest describes a token to mint for local use (`worklog token`).
type TokenRequest struct {
	Subject     string
	Email       string
	Permissions []string
	// PrivacyLevel is the reportingPrivacyLevel claim; empty leaves it out.
	PrivacyLevel string
	// Issuer is the iss claim and Audience the aud claim, so that a server
	// started with --jwt-issuer/--jwt-audience accepts the token; empty
	// leaves them out.
	Issuer   string
	Audience []string
	TTL      time.Duration
	Now      time.Time // zero: time.Now()
}

// MintHS256 signs a token for req with secret.
func MintHS256(secret []byte, req TokenRequest) (string, error) {
	if len(secret) < MinSecretLen {
		return "", fmt.Errorf("jwt secret: at least %d bytes required, got %d", MinSecretLen, len(secret))
	}
	if req.Subject == "" {
		return "", errors.New("token: --sub is required")
	}
	if req.TTL <= 0 {
		return "", fmt.Errorf("token: ttl must be positive, got %s", req.TTL)
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	claims := Claims{
		Email:        req.Email,
		Permissions:  req.Permissions,
		PrivacyLevel: req.PrivacyLevel,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   req.Subject,
			Issuer:    req.Issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(req.TTL)),
		},
	}
	if len(req.Audience) > 0 {
		claims.Audience = jwt.ClaimStrings(req.Audience)
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}
