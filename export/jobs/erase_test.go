package jobs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"worklog/export"
)

// A job that was running when an erasure committed read the old snapshot:
// when its run ends it is queued again instead of finished, and its file
// is gone. A job that starts after the erasure finishes normally.
func TestJobRunningAtErasureRunsAgain(t *testing.T) {
	b := newBackend(t)
	r, err := Open(b.config(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	job := submit(t, r, export.FormatCSV)
	claimed, err := r.store.claim(time.Now().UTC())
	if err != nil || claimed == nil || claimed.ID != job.ID {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	if n, err := r.EraseBefore(time.Now().UTC().Add(time.Millisecond)); err != nil || n != 0 {
		t.Fatalf("erase: %d %v", n, err)
	}
	r.run(context.Background(), claimed)
	got, _ := r.Get(job.ID, "u1")
	if got.Status != Queued {
		t.Fatalf("status %s, want queued again", got.Status)
	}
	if _, err := os.Stat(r.filePath(got)); !os.IsNotExist(err) {
		t.Errorf("the stale file is still there: %v", err)
	}

	again, _ := r.store.claim(time.Now().UTC().Add(time.Second))
	r.run(context.Background(), again)
	got, _ = r.Get(job.ID, "u1")
	if got.Status != Done || got.Runs != 2 {
		t.Fatalf("second run: %s after %d runs", got.Status, got.Runs)
	}
	if _, _, err := r.FilePath(job.ID, "u1"); err != nil {
		t.Errorf("file: %v", err)
	}
}

// EraseBefore deletes the file and the outbox message of every finished job
// that started before t, and only those; their file answers ErrErased.
func TestEraseBefore(t *testing.T) {
	b := newBackend(t)
	r, err := Open(b.config(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var done []*Job
	for range 2 {
		j := submit(t, r, export.FormatJSON)
		c, _ := r.store.claim(time.Now().UTC())
		r.run(context.Background(), c)
		got, _ := r.Get(j.ID, "u1")
		if got.Status != Done || got.Delivery != DeliveryWritten {
			t.Fatalf("job %+v", got)
		}
		done = append(done, got)
	}
	t0 := done[1].StartedAt // the first started before, the second at t0
	n, err := r.EraseBefore(t0)
	if err != nil || n != 1 {
		t.Fatalf("erase: %d %v", n, err)
	}
	outbox := filepath.Join(b.dir, outboxDir)
	if _, _, err := r.FilePath(done[0].ID, "u1"); !errors.Is(err, ErrErased) || !errors.Is(err, ErrExpired) {
		t.Errorf("erased job's file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outbox, done[0].ID+".eml")); !os.IsNotExist(err) {
		t.Errorf("erased job's message: %v", err)
	}
	if _, _, err := r.FilePath(done[1].ID, "u1"); err != nil {
		t.Errorf("later job's file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outbox, done[1].ID+".eml")); err != nil {
		t.Errorf("later job's message: %v", err)
	}
	got, _ := r.Get(done[0].ID, "u1")
	if got.Status != Erased || got.ErasedAt.IsZero() || got.Error == "" {
		t.Errorf("erased job %+v", got)
	}
	// Erasing again changes nothing more.
	if n, err := r.EraseBefore(t0); err != nil || n != 0 {
		t.Errorf("second erase: %d %v", n, err)
	}
}
