package jobs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"worklog/internal/mailtest"

	"github.com/wneessen/go-mail"
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

// The attach limit applies to the message as sent: a file that fits the
// limit raw but not once base64-encoded goes as a link, and a message that
// carries the file is never larger than the limit.
func TestAttachLimitCountsMessageAsSent(t *testing.T) {
	b := newBackend(t)
	n := int64(len(b.direct(t, "csv")))
	if base64Size(n) < n+n/4 {
		t.Fatalf("base64Size(%d) = %d: base64 grows a file by a third", n, base64Size(n))
	}
	tests := []struct {
		name   string
		limit  int64
		attach bool
	}{
		{"file fits raw, not encoded", n + n/10, false},
		{"attachment fits encoded, the message not", base64Size(n) + 16, false},
		{"message fits", base64Size(n) + 16<<10, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Open(b.config(func(c *Config) { c.AttachLimit = tc.limit }))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			r.Start(context.Background())
			j := waitJob(t, r, submit(t, r, "csv").ID, delivered)
			if j.Bytes != n || j.Delivery != DeliveryWritten || j.Attached != tc.attach {
				t.Fatalf("job %+v, want %d bytes, written, attached %v", j, n, tc.attach)
			}
			raw, err := os.ReadFile(j.DeliveryPath)
			if err != nil {
				t.Fatal(err)
			}
			pm := mailtest.Parse(t, raw)
			if got := len(pm.Attachments) == 1; got != tc.attach {
				t.Errorf("attached %v, want %v", got, tc.attach)
			}
			if tc.attach && int64(len(raw)) > tc.limit {
				t.Errorf("a %d-byte message carries the file under a %d-byte limit", len(raw), tc.limit)
			}
			if !tc.attach && !strings.Contains(pm.Text, "too large to attach") {
				t.Errorf("text:\n%s", pm.Text)
			}
		})
	}
}

// base64Size is the size go-mail writes for an attachment's body: two
// messages that differ only in the attachment differ by exactly that much.
func TestBase64Size(t *testing.T) {
	size := func(n int) int64 {
		msg := mail.NewMsg()
		msg.SetBoundary("b")
		msg.SetBodyString(mail.TypeTextPlain, "x")
		if err := msg.AttachReader("f.bin", bytes.NewReader(bytes.Repeat([]byte{0xfe}, n))); err != nil {
			t.Fatal(err)
		}
		got, err := messageSize(msg)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	one := size(1)
	for _, n := range []int{2, 3, 4, 56, 57, 58, 59, 1000, 8 << 10, 100003} {
		if got, want := size(n)-one, base64Size(int64(n))-base64Size(1); got != want {
			t.Errorf("%d bytes: the message grows by %d, base64Size says %d", n, got, want)
		}
	}
}
