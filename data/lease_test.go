package data

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A leased snapshot keeps its files through any number of commits by any
// writer, whatever the grace; released, they go with the next writer.
func TestLeaseKeepsFilesUntilRelease(t *testing.T) {
	dir := t.TempDir()
	reader, err := Open(dir, StoreOptions{RetireGrace: -1})
	if err != nil {
		t.Fatal(err)
	}
	commitParts(t, reader, nil, map[string]int{"2024-01": 5, "2024-02": 7})
	snap, err := reader.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	again, _ := reader.Acquire() // a second reader of the same generation
	// Another process's writer, with a grace of 1 ns.
	writer, err := Open(dir, StoreOptions{RetireGrace: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		commitParts(t, writer, []string{"2024-01", "2024-02"}, map[string]int{"2024-01": 1 + i, "2024-02": 2 + i})
	}
	exists := func() int {
		n := 0
		for _, f := range snap.Files {
			if _, err := os.Stat(f.Path); err == nil {
				n++
			}
		}
		return n
	}
	if n := exists(); n != 2 {
		t.Fatalf("%d of the leased snapshot's 2 files left after 5 commits", n)
	}
	if got := readBack(t, dir); got != "2024-01:005 2024-02:006" {
		t.Errorf("store reads %s", got)
	}
	snap.Release()
	snap.Release() // idempotent
	commitParts(t, writer, nil, map[string]int{"2024-03": 1})
	if n := exists(); n != 2 {
		t.Fatalf("files removed while another reader holds the generation: %d left", n)
	}
	again.Release()
	commitParts(t, writer, nil, map[string]int{"2024-04": 1})
	if n := exists(); n != 0 {
		t.Errorf("%d files of the released snapshot left", n)
	}
	// Files retired by the 5 commits in between went too.
	m, _ := writer.readManifest()
	for _, r := range m.Retired {
		if _, err := os.Stat(writer.abs(r.Path)); err == nil && r.Gen < m.Generation {
			t.Errorf("retired %s (generation %d) still on disk", r.Path, r.Gen)
		}
	}
}

// A lease whose holder died holds nothing.
func TestDeadLeaseIsSwept(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, StoreOptions{RetireGrace: time.Nanosecond})
	first := commitParts(t, s, nil, map[string]int{"2024-01": 5})
	dead := filepath.Join(s.Dir(), readersDirName, "00000000000000000001-99999-aaaaaaaaaaaa.lease")
	if err := os.WriteFile(dead, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	commitParts(t, s, []string{"2024-01"}, map[string]int{"2024-01": 2})
	txn, err := s.Begin(context.Background(), false) // sweeps
	if err != nil {
		t.Fatal(err)
	}
	txn.Rollback()
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dead lease kept: %v", err)
	}
	if _, err := os.Stat(first.Files[0].Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file held only by a dead lease kept: %v", err)
	}
}
