package iceberg

import (
	"testing"

	ice "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"worklog/data"
)

// TestFieldIDs pins the table's field ids: engines and the name mapping
// refer to columns by id, so an id must never move. A new catalogue field
// gets the next id; this list then grows, it never changes.
func TestFieldIDs(t *testing.T) {
	want := map[string]int{
		"date": 1, "name": 2, "ticketId": 3, "conversationId": 4, "userId": 5, "action": 6, "duration": 7,
		"durationAfterWork": 8, "reOpened": 9, "status": 10, "aiAgent": 11, "topic": 12, "subTopic": 13,
		"allTags": 14, "tags": 15, "channel": 16, "department": 17, "teams": 18, "email": 19, "rawData": 20,
		"aiAutomationLevel": 21, "customerIdentifiedCorrectly": 22, "tagsIdentifiedCorrectly": 23,
		"textAssistanceAccuracy": 24, "aiAgentsUsed": 25, "skippedTicket": 26, "netSecondsClosedAfterSLA": 27,
		"closingDateForSLA": 28, "statusActionDetail": 29, "pendingDueBy": 30, "pendingSeconds": 31,
		"netPendingSeconds": 32, "firstPendingAt": 33, "userWorklogId": 34, "timesSetToOpen": 35,
	}
	wantElements := map[string]int{"tags": 1015, "teams": 1018, "aiAgentsUsed": 1025}
	sc, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Fields()) != data.FieldCount() {
		t.Fatalf("%d columns, want the catalogue's %d", len(sc.Fields()), data.FieldCount())
	}
	for _, f := range sc.Fields() {
		if want[f.Name] != f.ID {
			t.Errorf("%s has id %d, want %d", f.Name, f.ID, want[f.Name])
		}
		if l, ok := f.Type.(*ice.ListType); ok {
			if wantElements[f.Name] != l.ElementID {
				t.Errorf("%s element has id %d, want %d", f.Name, l.ElementID, wantElements[f.Name])
			}
			if !l.Element.Equals(ice.PrimitiveTypes.String) {
				t.Errorf("%s element is %s, want string", f.Name, l.Element)
			}
		}
		cf, _ := data.Lookup(f.Name)
		if cf.Kind == data.KindTimestamp && !f.Type.Equals(ice.PrimitiveTypes.Timestamp) {
			t.Errorf("%s is %s, want timestamp (without zone)", f.Name, f.Type)
		}
	}
	spec, err := partitionSpec(sc)
	if err != nil {
		t.Fatal(err)
	}
	if spec.NumFields() != 1 {
		t.Fatalf("partition spec %s, want month(date)", spec)
	}
	pf := spec.Field(0)
	if pf.SourceID() != 1 || pf.Transform.String() != "month" {
		t.Errorf("partition field %s, want month of field 1 (date)", pf.String())
	}
}

func TestRetainCount(t *testing.T) {
	snap := func(ms int64) table.Snapshot { return table.Snapshot{TimestampMs: ms} }
	for _, tc := range []struct {
		name    string
		history []table.Snapshot
		cutoff  int64
		want    int
	}{
		{"only the current one", []table.Snapshot{snap(10)}, 100, 1},
		{"replaced long ago", []table.Snapshot{snap(50), snap(40), snap(30)}, 100, 1},
		{"the last one replaced within the retention", []table.Snapshot{snap(150), snap(40), snap(30)}, 100, 2},
		{"all replaced within it", []table.Snapshot{snap(150), snap(120), snap(110)}, 100, 3},
		{"replaced exactly at the cutoff", []table.Snapshot{snap(100), snap(40)}, 100, 2},
	} {
		if got := retainCount(tc.history, tc.cutoff); got != tc.want {
			t.Errorf("%s: keep %d, want %d", tc.name, got, tc.want)
		}
	}
}
