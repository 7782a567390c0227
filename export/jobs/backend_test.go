package jobs

import (
	"strings"
	"testing"
	"time"

	"worklog/export"
)

// A run past Config.JobTimeout is cancelled and the job fails with a
// message naming the limit; it is not queued again as a shutdown would be.
func TestJobTimeoutFails(t *testing.T) {
	b := newBackend(t)
	r, err := Open(b.config(func(c *Config) { c.JobTimeout = time.Nanosecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	job := submit(t, r, export.FormatCSV)
	claimed, err := r.store.claim(time.Now().UTC())
	if err != nil || claimed == nil {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	r.run(t.Context(), claimed)
	got, err := r.Get(job.ID, "u1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != Failed || got.ErrorCode != CodeTimeout || !strings.Contains(got.Error, "did not finish within 1ns") {
		t.Errorf("after the time limit: %s %q", got.Status, got.Error)
	}
}
