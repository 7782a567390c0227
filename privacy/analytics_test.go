package privacy

import (
	"errors"
	"testing"
)

func TestAnalyticsRules(t *testing.T) {
	tests := []struct {
		level     Level
		perm      string
		field     string
		n         int
		read, grp bool // allowed
		byAgent   bool
		minAgents int
	}{
		{None, "", "name", 5, true, true, false, 0},
		{None, "", "ticketId", 5, true, true, false, 0},
		{None, "", "email", 0, true, true, false, 0},
		{Partial, "", "email", 0, false, true, false, 0},
		{Partial, PermViewEmail, "email", 0, true, true, false, 0},
		{Partial, "", "name", 0, true, true, false, 0},
		{Partial, "", "name", 5, true, false, false, 5},
		{Partial, "", "name", 1, true, true, false, 0},
		{Partial, "", "topic", 5, true, true, false, 5},
		{Pseudonymized, "", "name", 0, true, true, true, 0},
		{Pseudonymized, "", "name", 2, true, false, true, 2},
		{Pseudonymized, "", "ticketId", 0, false, true, true, 0},
		{Pseudonymized, "", "userId", 0, false, true, true, 0},
		{Pseudonymized, "", "date", 0, true, true, true, 0},
		{Pseudonymized, "", "duration", 3, true, true, true, 3},
	}
	for _, tt := range tests {
		p, err := NewPolicy(tt.level, []string{tt.perm}, testKey)
		if err != nil {
			t.Fatal(err)
		}
		err = p.ReadAllowed(tt.field)
		if (err == nil) != tt.read || (err != nil && !errors.Is(err, ErrFieldNotAvailable)) {
			t.Errorf("%s %q: ReadAllowed(%s) = %v, want allowed %t", tt.level, tt.perm, tt.field, err, tt.read)
		}
		err = p.GroupAllowed(tt.field, tt.n)
		if (err == nil) != tt.grp || (err != nil && !errors.Is(err, ErrFieldNotAvailable)) {
			t.Errorf("%s: GroupAllowed(%s, %d) = %v, want allowed %t", tt.level, tt.field, tt.n, err, tt.grp)
		}
		if got := p.GroupsByAgent(); got != tt.byAgent {
			t.Errorf("%s: GroupsByAgent = %t", tt.level, got)
		}
		if got := p.MinGroupAgents(tt.n); got != tt.minAgents {
			t.Errorf("%s: MinGroupAgents(%d) = %d, want %d", tt.level, tt.n, got, tt.minAgents)
		}
	}
	p, _ := NewPolicy(None, nil, testKey)
	if err := p.ReadAllowed("nope"); err == nil {
		t.Error("unknown field allowed")
	}
}
