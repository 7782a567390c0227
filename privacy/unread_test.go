package privacy

import (
	"reflect"
	"testing"
)

func TestUnread(t *testing.T) {
	tests := []struct {
		level Level
		perms []string
		want  []string
	}{
		{None, nil, nil},
		{Partial, nil, []string{"email"}},
		{Partial, []string{PermViewEmail}, nil},
		// userId is omitted too, but it keys the name pseudonyms.
		{Pseudonymized, []string{PermViewEmail}, []string{"ticketId", "conversationId", "email", "rawData"}},
	}
	for _, tt := range tests {
		p, err := NewPolicy(tt.level, tt.perms, testKey)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Unread(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s %v: Unread() = %q, want %q", tt.level, tt.perms, got, tt.want)
		}
	}
}
