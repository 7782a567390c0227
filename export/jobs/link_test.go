package jobs

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// The download-link key is created once, private, and kept: a reopened
// runner (a restart) checks the links the first one signed.
func TestLinkKeyKeptAcrossRestarts(t *testing.T) {
	b := newBackend(t)
	clock := time.Now()
	r, err := Open(b.config(func(c *Config) { c.Now = func() time.Time { return clock } }))
	if err != nil {
		t.Fatal(err)
	}
	job := submit(t, r, "csv")
	done := time.Now().UTC()
	if _, err := r.store.update(job.ID, func(j *Job) error {
		j.Status, j.FinishedAt, j.ExpiresAt = Done, done, done.Add(time.Hour)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	job, _ = r.Get(job.ID, "u1")
	link := r.DownloadLink(job)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(b.dir, LinkKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v %v, want mode 0600", st, err)
	}
	r, err = Open(b.config(func(c *Config) { c.Now = func() time.Time { return clock } }))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if l := r.DownloadLink(job); l != link {
		t.Errorf("link after reopen %+v, want %+v", l, link)
	}
	if link.Expires != job.ExpiresAt.Unix() {
		t.Errorf("link expires %d, want the job's %d", link.Expires, job.ExpiresAt.Unix())
	}
	tests := []struct {
		name string
		link Link
		now  time.Time
		want error
	}{
		{"valid", link, done, nil},
		{"other id", Link{ID: newJobID(), Expires: link.Expires, Sig: link.Sig}, done, ErrBadSignature},
		{"bad id", Link{ID: "../jobs.db", Expires: link.Expires, Sig: link.Sig}, done, ErrBadSignature},
		{"later", Link{ID: link.ID, Expires: link.Expires + 1, Sig: link.Sig}, done, ErrBadSignature},
		{"empty sig", Link{ID: link.ID, Expires: link.Expires}, done, ErrBadSignature},
		{"expired", link, link.ExpiresAt(), ErrExpired},
		{"altered and expired: altered wins", Link{ID: link.ID, Expires: link.Expires - 7200, Sig: link.Sig}, done, ErrBadSignature},
	}
	for _, tc := range tests {
		clock = tc.now
		_, _, err := r.OpenLink(tc.link)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// Concurrent first starts agree on one key.
func TestLinkKeyConcurrentCreate(t *testing.T) {
	dir := t.TempDir()
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := loadOrCreateLinkKey(dir)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if string(k) != string(keys[0]) || len(k) != 64 {
			t.Fatalf("keys differ or are short: %q vs %q", k, keys[0])
		}
	}
	if ents, _ := filepath.Glob(filepath.Join(dir, ".*.tmp")); len(ents) != 0 {
		t.Errorf("temporary files left: %v", ents)
	}
}
