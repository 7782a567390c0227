// Package privacy applies the reporting privacy levels of SPEC §6 to Arrow
// record batches before any encoder sees them.
//
// The whole policy is derived from the privacy classes of the field catalogue
// (data.Field.Privacy); this package holds no list of field names. A Policy
// answers two questions for one request: which fields may be filtered and
// ordered on (FieldAllowed), and what each record batch looks like to the
// user (Schema, Transform). It also owns the pseudonym key (key.go).
//
// It imports data (the catalogue), internal/fsutil (the key file) and Arrow;
// never query, ingest, export, DuckDB or anything of HTTP.
package privacy

import (
	"fmt"
	"strings"
)

// Level is a reporting privacy level, the server setting reportingPrivacyLevel.
type Level string

// The privacy levels, from the most open to the strictest.
const (
	// None shows every field.
	None Level = "none"
	// Partial omits the e-mail unless the token has PermViewEmail.
	Partial Level = "partiallyPseudonymized"
	// Pseudonymized omits the e-mail and identifying fields, cuts date-times
	// of the timestamp class to their date and replaces names by pseudonyms.
	Pseudonymized Level = "pseudonymized"
)

// levels lists the levels from the most open to the strictest; a level's
// index is its strictness.
var levels = [...]Level{None, Partial, Pseudonymized}

// rank returns the strictness of l, or -1 for an unknown level.
func (l Level) rank() int {
	for i, v := range levels {
		if v == l {
			return i
		}
	}
	return -1
}

// ParseLevel parses a level name. Names are case-sensitive, as in the
// reference API: none, partiallyPseudonymized, pseudonymized.
func ParseLevel(s string) (Level, error) {
	l := Level(s)
	if l.rank() < 0 {
		names := make([]string, len(levels))
		for i, v := range levels {
			names[i] = string(v)
		}
		return "", fmt.Errorf("unknown privacy level %q (want one of %s)", s, strings.Join(names, ", "))
	}
	return l, nil
}

// Stricter returns the stricter of the server's level and a level claimed in
// a token: a token can raise the level, never lower it. An empty claim keeps
// the server level; an unknown claim is an error, so that a typo in a token
// never silently yields the more open server level.
func Stricter(server Level, claim string) (Level, error) {
	if server.rank() < 0 {
		return "", fmt.Errorf("server privacy level: unknown level %q", server)
	}
	if claim == "" {
		return server, nil
	}
	c, err := ParseLevel(claim)
	if err != nil {
		return "", fmt.Errorf("token privacy level: %w", err)
	}
	if c.rank() > server.rank() {
		return c, nil
	}
	return server, nil
}
