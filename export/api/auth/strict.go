package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
)

// checkSegments refuses, before any signature check, what the JWT library
// would accept but worklog must not:
//   - a "crit" header: RFC 7515 §4.1.11 requires a verifier to refuse
//     extensions it does not understand, and worklog understands none;
//   - a claim given twice: JSON decoders keep the last value, another
//     component may read the first, so the token means two things;
//   - exp, nbf or iat given as a string ("exp":"9999999999"), which the
//     library converts to a number.
func checkSegments(token string) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errors.New("token is not three dot-separated segments")
	}
	header, err := objectKeys(parts[0])
	if err != nil {
		return fmt.Errorf("header: %w", err)
	}
	if _, ok := header["crit"]; ok {
		return errors.New(`header: "crit" names extensions this server does not understand`)
	}
	claims, err := objectKeys(parts[1])
	if err != nil {
		return fmt.Errorf("claims: %w", err)
	}
	for _, k := range []string{"exp", "nbf", "iat"} {
		if v, ok := claims[k]; ok && (len(v) == 0 || v[0] == '"') {
			return fmt.Errorf("claims: %s must be a number, not a string", k)
		}
	}
	return nil
}

// objectKeys decodes one base64url segment as a JSON object and returns its
// members, refusing a key that appears twice.
func objectKeys(seg string) (map[string]json.RawMessage, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return nil, errors.New("not base64url")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, errors.New("not a JSON object")
		}
		key, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, errors.New("not a JSON object")
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("%q appears twice", key)
		}
		out[key] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, errors.New("not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return out, nil
}

// ValidEmail reports whether s is a plain e-mail address (as the "email"
// claim must be for a background export to be delivered): one address,
// no display name, no angle brackets, no line breaks.
func ValidEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Name == "" && a.Address == s && strings.Contains(s, "@") && !strings.ContainsAny(s, "\r\n<>")
}
