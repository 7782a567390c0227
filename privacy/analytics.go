package privacy

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"

	"worklog/data"
)

// This file holds the analytics rules of SPEC §10. They derive from the same
// column actions as the export's: what a level omits cannot be read by an
// aggregate, and the name a level pseudonymizes is grouped by agent and
// labelled by Transform with the very pseudonym an export shows (an
// aggregate's batch carries the agent's name and userId columns, which
// Transform turns into the pseudonym and drops, as for an export row).

// ReadAllowed returns nil if an aggregate may group by or measure the field
// at the policy's level, else an error (matching ErrFieldNotAvailable)
// saying why: fields the level omits are refused. Unlike FieldAllowed, a
// pseudonymized name is allowed: it is grouped by agent and labelled with
// pseudonyms (see GroupsByAgent). The counts of distinct tickets and agents
// read identifiers but reveal none; the planner does not ask about them.
func (p *Policy) ReadAllowed(field string) error {
	f, ok := data.Lookup(field)
	if !ok {
		return notAvailable(fmt.Sprintf("unknown field %q", field))
	}
	if p.actionFor(f) == omit {
		if f.Privacy == data.PrivacyEmail && p.level == Partial {
			return notAvailable(fmt.Sprintf("field %q is not available at privacy level %s without permission %s",
				field, p.level, PermViewEmail))
		}
		return notAvailable(fmt.Sprintf("field %q is not available at privacy level %s", field, p.level))
	}
	return nil
}

// GroupsByAgent reports whether grouping by the name field groups by agent
// and labels the groups with pseudonyms (the levels that pseudonymize names).
func (p *Policy) GroupsByAgent() bool {
	f, ok := data.Lookup("name")
	return ok && p.actionFor(f) == toPseudonym
}

// MinGroupAgents returns the smallest number of distinct agents a group of
// an aggregate must have to be shown, given the server's setting n: n at
// the pseudonymizing levels (partiallyPseudonymized and pseudonymized) when
// n > 1, else 0 (no suppression). Level none shows every group.
func (p *Policy) MinGroupAgents(n int) int {
	if n <= 1 || p.level == None {
		return 0
	}
	return n
}

// GroupAllowed returns nil if an aggregate may group by the field given the
// server's --min-group-agents setting n, else an error matching
// ErrFieldNotAvailable: while small groups are suppressed, grouping by the
// agent (the field of privacy class PrivacyName) is refused, since every
// such group is one agent. It does not repeat ReadAllowed's check.
func (p *Policy) GroupAllowed(field string, n int) error {
	f, ok := data.Lookup(field)
	if !ok {
		return notAvailable(fmt.Sprintf("unknown field %q", field))
	}
	if f.Privacy == data.PrivacyName && p.MinGroupAgents(n) > 1 {
		return notAvailable(fmt.Sprintf("grouping by %q is not available at privacy level %s: groups of fewer than %d agents are suppressed",
			field, p.level, n))
	}
	return nil
}

// derivedAction decides a column outside the catalogue that declares, in its
// Arrow metadata, the field it is derived from (an analytics result column,
// see data.MetaDerivedFrom). It keeps what the level lets an aggregate read
// and refuses the rest, so the privacy layer still fails closed:
//   - a count of events or of distinct identifiers (a measure reading no
//     field) is kept;
//   - a measure of a field is kept when the level shows the field as it is;
//   - a dimension of a field is kept when the level shows it, or cuts it to
//     its date and the dimension is a time bucket of a day or coarser.
func (p *Policy) derivedAction(md arrow.Metadata) action {
	get := func(k string) (string, bool) {
		i := md.FindKey(k)
		if i < 0 {
			return "", false
		}
		return md.Values()[i], true
	}
	from, ok := get(data.MetaDerivedFrom)
	if !ok {
		return refuse
	}
	_, measure := get(data.MetaMeasure)
	if measure && from == "" {
		return keep
	}
	f, ok := data.Lookup(from)
	if !ok {
		return refuse
	}
	switch p.actionFor(f) {
	case keep:
		return keep
	case toDate:
		if b, _ := get(data.MetaBucket); !measure && b != "" && b != "hour" {
			return keep
		}
	}
	return refuse
}
