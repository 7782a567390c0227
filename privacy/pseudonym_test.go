package privacy

import (
	"regexp"
	"testing"
)

func TestPseudonym(t *testing.T) {
	id := func(v int64) *int64 { return &v }
	p1, err := NewPolicy(Pseudonymized, nil, testKey)
	if err != nil {
		t.Fatal(err)
	}
	// A second policy with the same key stands for a restarted server.
	p2, err := NewPolicy(Pseudonymized, nil, append([]byte(nil), testKey...))
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewPolicy(Pseudonymized, nil, []byte("another key of 32 bytes, unused!"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		userID *int64
		user   string
		want   string
	}{
		// Golden values: HMAC-SHA256 with key testKey, as
		// printf 42 | openssl dgst -sha256 -hmac 0123456789abcdef0123456789abcdef
		{"by user id", id(42), "Alice Example", "Agent-3b12d0412d"},
		{"name ignored when user id is set", id(42), "Someone Else", "Agent-3b12d0412d"},
		{"another user", id(7), "Alice Example", "Agent-9657f4db03"},
		// printf 'name:Carol NoId' | openssl dgst -sha256 -hmac …
		{"name when user id is null", nil, "Carol NoId", "Agent-0adb4b56d0"},
	}
	format := regexp.MustCompile(`^Agent-[0-9a-f]{10}$`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := p1.Pseudonym(tt.userID, tt.user)
			if got != tt.want || !format.MatchString(got) {
				t.Errorf("Pseudonym = %s, want %s", got, tt.want)
			}
			if again := p1.Pseudonym(tt.userID, tt.user); again != got {
				t.Errorf("cached pseudonym %s differs from first %s", again, got)
			}
			if restarted := p2.Pseudonym(tt.userID, tt.user); restarted != got {
				t.Errorf("same key, new policy: %s, want %s", restarted, got)
			}
			if o := other.Pseudonym(tt.userID, tt.user); o == got || !format.MatchString(o) {
				t.Errorf("another key gives %s, want a different pseudonym than %s", o, got)
			}
		})
	}
}

// A name never shares a pseudonym with the user id it spells.
func TestNamePseudonymApartFromIDs(t *testing.T) {
	p, err := NewPolicy(Pseudonymized, nil, testKey)
	if err != nil {
		t.Fatal(err)
	}
	id := int64(42)
	if byName, byID := p.Pseudonym(nil, "42"), p.Pseudonym(&id, ""); byName == byID {
		t.Errorf("the name \"42\" and the userId 42 share %s", byID)
	}
}

// TestPseudonymCacheBound checks that pseudonyms stay right after the cache
// was cleared for growing past its bound.
func TestPseudonymCacheBound(t *testing.T) {
	p, err := NewPolicy(Pseudonymized, nil, testKey)
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < maxCached+10; i++ {
		p.Pseudonym(&i, "")
	}
	if len(p.ids) > maxCached {
		t.Errorf("cache holds %d entries, bound %d", len(p.ids), maxCached)
	}
	v := int64(42)
	if got := p.Pseudonym(&v, ""); got != "Agent-3b12d0412d" {
		t.Errorf("Pseudonym(42) = %s after the cache was cleared", got)
	}
}
