package privacy

import "testing"

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in      string
		want    Level
		wantErr string
	}{
		{"none", None, ""},
		{"partiallyPseudonymized", Partial, ""},
		{"pseudonymized", Pseudonymized, ""},
		{"", "", `unknown privacy level "" (want one of none, partiallyPseudonymized, pseudonymized)`},
		{"Pseudonymized", "", `unknown privacy level "Pseudonymized" (want one of none, partiallyPseudonymized, pseudonymized)`},
		{"partial", "", `unknown privacy level "partial" (want one of none, partiallyPseudonymized, pseudonymized)`},
	}
	for _, tt := range tests {
		got, err := ParseLevel(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParseLevel(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseLevel(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestStricter(t *testing.T) {
	tests := []struct {
		server  Level
		claim   string
		want    Level
		wantErr string
	}{
		{None, "", None, ""},
		{Pseudonymized, "", Pseudonymized, ""},
		// A token raises the level...
		{None, "partiallyPseudonymized", Partial, ""},
		{None, "pseudonymized", Pseudonymized, ""},
		{Partial, "pseudonymized", Pseudonymized, ""},
		// ...and never lowers it.
		{Pseudonymized, "none", Pseudonymized, ""},
		{Pseudonymized, "partiallyPseudonymized", Pseudonymized, ""},
		{Partial, "none", Partial, ""},
		{Partial, "partiallyPseudonymized", Partial, ""},
		{None, "off", "", `token privacy level: unknown privacy level "off" (want one of none, partiallyPseudonymized, pseudonymized)`},
		{"open", "", "", `server privacy level: unknown level "open"`},
	}
	for _, tt := range tests {
		got, err := Stricter(tt.server, tt.claim)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("Stricter(%q, %q) error = %v, want %q", tt.server, tt.claim, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Stricter(%q, %q) = %q, %v; want %q", tt.server, tt.claim, got, err, tt.want)
		}
	}
}
