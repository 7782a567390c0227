package privacy

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"worklog/data"
)

func TestFieldAllowed(t *testing.T) {
	const (
		ok       = ""
		pseudo   = `field "%s" is not available at privacy level pseudonymized`
		noPerm   = `field "email" is not available at privacy level partiallyPseudonymized without permission reporting.viewEmail`
		viewMail = PermViewEmail
	)
	tests := []struct {
		level Level
		perm  string
		field string
		want  string
	}{
		{None, "", "email", ok},
		{None, "", "name", ok},
		{None, "", "userId", ok},
		{None, "", "rawData", ok},
		{None, "", "date", ok},
		{Partial, "", "email", noPerm},
		{Partial, viewMail, "email", ok},
		{Partial, "", "name", ok},
		{Partial, "", "ticketId", ok},
		{Partial, "", "rawData", ok},
		{Partial, "", "date", ok},
		{Pseudonymized, viewMail, "email", fmt.Sprintf(pseudo, "email")},
		{Pseudonymized, "", "name", fmt.Sprintf(pseudo, "name")},
		{Pseudonymized, "", "ticketId", fmt.Sprintf(pseudo, "ticketId")},
		{Pseudonymized, "", "conversationId", fmt.Sprintf(pseudo, "conversationId")},
		{Pseudonymized, "", "userId", fmt.Sprintf(pseudo, "userId")},
		{Pseudonymized, "", "rawData", fmt.Sprintf(pseudo, "rawData")},
		{Pseudonymized, "", "date", ok}, // at day precision
		{Pseudonymized, "", "duration", ok},
		{Pseudonymized, "", "userWorklogId", ok},
		{None, "", "Email", `unknown field "Email"`},
	}
	for _, tt := range tests {
		p, err := NewPolicy(tt.level, []string{tt.perm}, testKey)
		if err != nil {
			t.Fatal(err)
		}
		err = p.FieldAllowed(tt.field)
		if tt.want == ok {
			if err != nil {
				t.Errorf("%s %q: FieldAllowed(%q) = %v, want nil", tt.level, tt.perm, tt.field, err)
			}
			continue
		}
		if err == nil || err.Error() != tt.want || !errors.Is(err, ErrFieldNotAvailable) {
			t.Errorf("%s %q: FieldAllowed(%q) = %v\nwant %s", tt.level, tt.perm, tt.field, err, tt.want)
		}
	}
}

// TestFieldAllowedMatchesOutput checks that a field is allowed exactly when
// the user sees its values (date: its date part), at every level.
func TestFieldAllowedMatchesOutput(t *testing.T) {
	for _, level := range levels {
		for _, perms := range [][]string{nil, {PermViewEmail}} {
			p, err := NewPolicy(level, perms, testKey)
			if err != nil {
				t.Fatal(err)
			}
			out := p.Schema(storeSchema())
			for _, f := range data.Fields() {
				idx := out.FieldIndices(f.Name)
				shown := len(idx) == 1 && (f.Name != "name" || level != Pseudonymized)
				if allowed := p.FieldAllowed(f.Name) == nil; allowed != shown {
					t.Errorf("%s %v: %s allowed %t, shown %t", level, perms, f.Name, allowed, shown)
				}
			}
		}
	}
}

func TestDayPrecisionDate(t *testing.T) {
	for _, tt := range []struct {
		level Level
		want  bool
	}{{None, false}, {Partial, false}, {Pseudonymized, true}} {
		p, err := NewPolicy(tt.level, nil, testKey)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.DayPrecisionDate(); got != tt.want {
			t.Errorf("%s: DayPrecisionDate = %t, want %t", tt.level, got, tt.want)
		}
		if p.Level() != tt.level {
			t.Errorf("Level() = %s, want %s", p.Level(), tt.level)
		}
	}
}

func TestSchema(t *testing.T) {
	in := storeSchema()
	p, err := NewPolicy(Pseudonymized, nil, testKey)
	if err != nil {
		t.Fatal(err)
	}
	out := p.Schema(in)
	if out.NumFields() != 30 {
		t.Errorf("fields = %d, want 30: %v", out.NumFields(), names(out))
	}
	for _, tt := range []struct {
		field string
		want  arrow.DataType
	}{
		{"date", arrow.FixedWidthTypes.Date32},
		{"name", arrow.BinaryTypes.String},
		// Every date-time is cut: the others often give the event's time.
		{"closingDateForSLA", arrow.FixedWidthTypes.Date32},
		{"pendingDueBy", arrow.FixedWidthTypes.Date32},
		{"firstPendingAt", arrow.FixedWidthTypes.Date32},
		{"tags", arrow.ListOf(arrow.BinaryTypes.String)},
	} {
		f, ok := out.FieldsByName(tt.field)
		if !ok || !arrow.TypeEqual(f[0].Type, tt.want) {
			t.Errorf("%s: %v, want type %s", tt.field, f, tt.want)
		}
	}
	// The schema of a level that changes nothing is the input's.
	open, err := NewPolicy(None, nil, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if open.Schema(in) != in {
		t.Error("level none: Schema is not the input schema")
	}
}

func TestNewPolicyErrors(t *testing.T) {
	if _, err := NewPolicy("strict", nil, testKey); err == nil || err.Error() != `new privacy policy: unknown level "strict"` {
		t.Errorf("unknown level: %v", err)
	}
	if _, err := NewPolicy(None, nil, []byte("short")); err == nil ||
		err.Error() != "new privacy policy: pseudonym key has 5 bytes, need at least 16" {
		t.Errorf("short key: %v", err)
	}
}

// TestPolicyHidesKey checks that printing a policy never shows the key.
func TestPolicyHidesKey(t *testing.T) {
	p, err := NewPolicy(Partial, []string{PermViewEmail}, testKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		s := fmt.Sprintf(verb, p)
		if strings.Contains(s, string(testKey)) || strings.Contains(s, "0123456789") {
			t.Errorf("%s shows the key: %s", verb, s)
		}
		if want := "privacy.Policy{level: partiallyPseudonymized, viewEmail: true}"; s != want {
			t.Errorf("%s = %s, want %s", verb, s, want)
		}
	}
}

// TestUserIDField checks the one field name the package knows against the
// catalogue: an identifying integer field.
func TestUserIDField(t *testing.T) {
	f, ok := data.Lookup(userIDField)
	if !ok || f.Kind != data.KindInt || f.Privacy != data.PrivacyIdentifying {
		t.Errorf("catalogue field %q = %+v, %t; want an identifying integer", userIDField, f, ok)
	}
}

func TestTreatment(t *testing.T) {
	// want is keyed by privacy class: the policy decides by class, and the
	// catalogue decides which fields are in a class.
	tests := []struct {
		level Level
		perm  string
		want  map[data.PrivacyClass]Treatment // classes not listed are shown
	}{
		{None, "", nil},
		{Partial, "", map[data.PrivacyClass]Treatment{data.PrivacyEmail: TreatOmitted}},
		{Partial, PermViewEmail, nil},
		{Pseudonymized, PermViewEmail, map[data.PrivacyClass]Treatment{
			data.PrivacyEmail: TreatOmitted, data.PrivacyIdentifying: TreatOmitted,
			data.PrivacyTimestamp: TreatDateOnly, data.PrivacyName: TreatPseudonym}},
	}
	for _, tt := range tests {
		p, err := NewPolicy(tt.level, []string{tt.perm}, testKey)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range data.Fields() {
			want, ok := tt.want[f.Privacy]
			if !ok {
				want = TreatShown
			}
			if got := p.Treatment(f); got != want {
				t.Errorf("%s %q: Treatment(%s) = %s, want %s", tt.level, tt.perm, f.Name, got, want)
			}
		}
	}
}

func TestPolicyCovers(t *testing.T) {
	pol := func(l Level, perms ...string) *Policy {
		p, err := NewPolicy(l, perms, testKey)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		now, made *Policy
		want      bool
	}{
		{pol(None), pol(Pseudonymized), true},
		{pol(Partial), pol(Partial), true},
		{pol(Partial, PermViewEmail), pol(Partial), true},
		{pol(Partial), pol(Partial, PermViewEmail), false},
		{pol(Pseudonymized), pol(Partial), false},
		{pol(Partial), pol(None), false},
	}
	for i, tc := range tests {
		if got := tc.now.Covers(tc.made); got != tc.want {
			t.Errorf("case %d: Covers = %t, want %t", i, got, tc.want)
		}
	}
}
