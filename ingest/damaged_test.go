package ingest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"worklog/data"
)

// A truncated part blocks only its month: an ingest into another month
// commits, one into the damaged month is refused naming the file.
func TestDamagedPartBlocksOnlyItsMonth(t *testing.T) {
	st := openStore(t)
	mustIngest(t, st, `{"date":"2024-01-05 10:00:00","action":"readAction","userWorklogId":1}`+"\n"+
		`{"date":"2024-02-05 10:00:00","action":"readAction","userWorklogId":2}`+"\n")
	snap, _ := st.Snapshot()
	jan := snap.FilesIn(func(m string) bool { return m == "2024-01" })[0]
	b, _ := os.ReadFile(jan.Path)
	if err := os.WriteFile(jan.Path, b[:len(b)-20], 0o640); err != nil {
		t.Fatal(err)
	}

	sum, err := ingestText(t, st, Options{}, `{"date":"2024-03-05 10:00:00","action":"readAction","userWorklogId":3}`+"\n"+
		`{"date":"2024-02-06 10:00:00","action":"readAction","userWorklogId":2}`+"\n")
	if err != nil || sum.New != 1 || sum.Updated != 1 {
		t.Fatalf("ingest into other months: %v, %v", sum, err)
	}

	_, err = ingestText(t, st, Options{}, `{"date":"2024-01-06 10:00:00","action":"readAction","userWorklogId":4}`+"\n")
	var de *data.DamagedPartError
	name := "month=2024-01/" + filepath.Base(jan.Path)
	if !errors.As(err, &de) || de.Path != name || strings.Contains(err.Error(), "SELECT") {
		t.Errorf("ingest into the damaged month: %v; want a DamagedPartError naming %s", err, name)
	}
}
