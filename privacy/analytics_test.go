package privacy

import (
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"worklog/data"
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

// TestDerivedColumns checks how Transform treats analytics result columns:
// kept when their metadata declares what the level lets an aggregate read,
// refused otherwise (fail closed).
func TestDerivedColumns(t *testing.T) {
	col := func(name string, kv ...string) arrow.Field {
		var keys, vals []string
		for i := 0; i+1 < len(kv); i += 2 {
			keys, vals = append(keys, kv[i]), append(vals, kv[i+1])
		}
		f := arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Int64, Nullable: true}
		if len(keys) > 0 {
			f.Metadata = arrow.NewMetadata(keys, vals)
		}
		return f
	}
	tests := []struct {
		level Level
		field arrow.Field
		kept  bool
	}{
		{Pseudonymized, col("count", data.MetaDerivedFrom, "", data.MetaMeasure, "count"), true},
		{Pseudonymized, col("tickets", data.MetaDerivedFrom, "", data.MetaMeasure, "tickets"), true},
		{Pseudonymized, col("avg(duration)", data.MetaDerivedFrom, "duration", data.MetaMeasure, "avg"), true},
		{Pseudonymized, col("max(ticketId)", data.MetaDerivedFrom, "ticketId", data.MetaMeasure, "max"), false},
		{Pseudonymized, col("date:week", data.MetaDerivedFrom, "date", data.MetaBucket, "week"), true},
		{Pseudonymized, col("date:hour", data.MetaDerivedFrom, "date", data.MetaBucket, "hour"), false},
		{None, col("date:hour", data.MetaDerivedFrom, "date", data.MetaBucket, "hour"), true},
		{Pseudonymized, col("max(date)", data.MetaDerivedFrom, "date", data.MetaMeasure, "max"), false},
		{Pseudonymized, col("x", data.MetaDerivedFrom, "nope", data.MetaMeasure, "avg"), false},
		{None, col("unmarked"), false},
		{None, col("measure without source", data.MetaMeasure, "avg"), false},
	}
	for _, tt := range tests {
		p, err := NewPolicy(tt.level, nil, testKey)
		if err != nil {
			t.Fatal(err)
		}
		schema := arrow.NewSchema([]arrow.Field{tt.field}, nil)
		kept := p.Schema(schema).NumFields() == 1
		if kept != tt.kept {
			t.Errorf("%s: column %s %v kept %t, want %t", tt.level, tt.field.Name, tt.field.Metadata, kept, tt.kept)
		}
	}
}
