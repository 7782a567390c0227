package data

import (
	"slices"
	"strings"
	"testing"
)

// namesWhere lists, in catalogue order, the fields for which keep holds.
func namesWhere(keep func(Field) bool) []string {
	var out []string
	for _, f := range Fields() {
		if keep(f) {
			out = append(out, f.Name)
		}
	}
	return out
}

// TestCatalogueFacts checks the declared facts against the lists of the
// SPEC (§3, §4, §10).
func TestCatalogueFacts(t *testing.T) {
	all := strings.Split("date, name, ticketId, conversationId, userId, action, "+
		"duration, durationAfterWork, reOpened, status, aiAgent, topic, subTopic, allTags, tags, "+
		"channel, department, teams, email, rawData, aiAutomationLevel, customerIdentifiedCorrectly, "+
		"tagsIdentifiedCorrectly, textAssistanceAccuracy, aiAgentsUsed, skippedTicket, "+
		"netSecondsClosedAfterSLA, closingDateForSLA, statusActionDetail, pendingDueBy, "+
		"pendingSeconds, netPendingSeconds, firstPendingAt, userWorklogId, timesSetToOpen", ", ")
	tests := []struct {
		fact string
		keep func(Field) bool
		want []string // in catalogue order
	}{
		{"all fields", func(Field) bool { return true }, all},
		{"filterable (§4: any of the 35)", func(f Field) bool { return f.Filterable }, all},
		{"sortable (§4: any of the 35)", func(f Field) bool { return f.Sortable }, all},
		{"groupable (§10)", func(f Field) bool { return f.Groupable }, []string{"date", "name", "action", "reOpened",
			"status", "aiAgent", "topic", "subTopic", "tags", "channel", "department", "teams", "aiAutomationLevel",
			"customerIdentifiedCorrectly", "tagsIdentifiedCorrectly", "aiAgentsUsed", "skippedTicket", "statusActionDetail"}},
		{"numeric (§10)", func(f Field) bool { return f.Numeric }, []string{"duration", "durationAfterWork",
			"aiAutomationLevel", "textAssistanceAccuracy", "netSecondsClosedAfterSLA", "pendingSeconds",
			"netPendingSeconds", "timesSetToOpen"}},
		{"0/1 flags (§3)", func(f Field) bool { return f.Kind == KindFlag }, []string{"reOpened",
			"customerIdentifiedCorrectly", "tagsIdentifiedCorrectly", "skippedTicket"}},
		{"date-times (§3)", func(f Field) bool { return f.Kind == KindTimestamp }, []string{"date",
			"closingDateForSLA", "pendingDueBy", "firstPendingAt"}},
		{"lists (§3)", func(f Field) bool { return f.Kind == KindList }, []string{"tags", "teams", "aiAgentsUsed"}},
	}
	for _, tc := range tests {
		if got := namesWhere(tc.keep); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v\nwant %v", tc.fact, got, tc.want)
		}
	}
	for _, f := range Fields() {
		if f.Numeric && f.Kind != KindInt && f.Kind != KindFloat {
			t.Errorf("%s is numeric but of kind %s", f.Name, f.Kind)
		}
		if f.Groupable && f.Kind == KindTimestamp && f.Name != DateField {
			t.Errorf("%s: only date groups by time bucket", f.Name)
		}
	}
}

// TestFieldsAndLookupHandOutCopies checks that no caller can change the
// catalogue through what Fields and Lookup return.
func TestFieldsAndLookupHandOutCopies(t *testing.T) {
	fs := Fields()
	fs[Index("action")].Enum[0] = "changed"
	fs[Index("action")].Filterable = false
	f, _ := Lookup("channel")
	f.Enum[0] = "changed"
	for _, name := range []string{"action", "channel"} {
		f, _ := Lookup(name)
		if slices.Contains(f.Enum, "changed") || !f.Filterable {
			t.Errorf("%s changed through a copy: %+v", name, f)
		}
		if g := Fields()[Index(name)]; slices.Contains(g.Enum, "changed") {
			t.Errorf("Fields() shows %s changed: %v", name, g.Enum)
		}
	}
}
