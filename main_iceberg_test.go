package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"worklog/data"
	"worklog/data/iceberg"
)

// icebergState reads the Iceberg table of dataDir with iceberg-go: the
// store generation it says it holds and its row count.
func icebergState(t *testing.T, dataDir string) (gen string, rows int64) {
	t.Helper()
	tbl, err := iceberg.New(filepath.Join(dataDir, "worklog"), iceberg.Options{})
	if err != nil {
		t.Fatal(err)
	}
	it, err := tbl.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	at, err := it.Scan().ToArrowTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	return it.Properties().Get(iceberg.GenerationKey, ""), at.NumRows()
}

// The commands that change the store publish each commit to the Iceberg
// table, and refuse a bad --snapshot-retention before touching anything.
func TestCommandsPublishIceberg(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i := 1; i <= 40; i++ {
		b.WriteString(event(i, 1+i%4, 1+i%28, i, 10) + "\n")
	}
	dump := writeFile(t, t.TempDir(), "dump.ndjson", b.String())

	if _, stderr, code := worklog(t, nil, "ingest", "--data", dir, "--snapshot-retention", "0s", dump); code != 2 || !strings.Contains(stderr, "--snapshot-retention") {
		t.Errorf("--snapshot-retention 0s: exit %d %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "worklog", "metadata")); !os.IsNotExist(err) {
		t.Errorf("a refused command created the table: %v", err)
	}
	if _, stderr, code := worklog(t, nil, "ingest", "--data", dir, "--snapshot-retention", "48h", dump); code != 0 {
		t.Fatalf("ingest: exit %d %s", code, stderr)
	}
	check := func(what string) {
		t.Helper()
		st, err := data.Open(dir, data.StoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		snap, err := st.Snapshot()
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		gen, rows := icebergState(t, dir)
		if gen != strconv.FormatUint(snap.Generation, 10) || rows != snap.Rows() {
			t.Errorf("after %s: table holds generation %s with %d rows, store %d with %d", what, gen, rows, snap.Generation, snap.Rows())
		}
	}
	check("ingest")

	cmd := exec.Command(worklogBin(t), "prune", "--data", dir, "--retention-days", "1")
	cmd.Env = append(os.Environ(), "WORKLOG_SNAPSHOT_RETENTION=soon")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "--snapshot-retention") {
		t.Errorf("WORKLOG_SNAPSHOT_RETENTION=soon: %v %s", err, out)
	}
	if _, stderr, code := worklog(t, nil, "forget", "--data", dir, "--user-id", "3", "--mode", "delete"); code != 0 {
		t.Fatalf("forget: exit %d %s", code, stderr)
	}
	check("forget")
	if _, stderr, code := worklog(t, nil, "prune", "--data", dir, "--retention-days", "1"); code != 0 {
		t.Fatalf("prune: exit %d %s", code, stderr)
	}
	check("prune")
}
