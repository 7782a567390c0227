package jobs

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"path/filepath"
	"strconv"
	"time"
	"worklog/internal/keyfile"
)

// LinkKeyFile is the name of the download-link key in the data directory.
// Deleting it (and restarting) invalidates every link handed out.
const LinkKeyFile = "download-link.key"

// ErrBadSignature is returned for a download link whose job, expiry or
// signature was altered: the API answers 403.
var ErrBadSignature = errors.New("download link signature does not match")

// linkSigner signs and checks download links: HMAC-SHA256 under a server
// key over the job id and the expiry, so a link opens exactly one job's
// file until exactly that time and no edit of either goes unnoticed.
type linkSigner struct {
	key []byte
}

// linkDomain separates these MACs from any other use of the key, and
// versions the link format.
const linkDomain = "worklog download link v1"

// mac computes the signature of (id, expires) in URL-safe base64.
func (s linkSigner) mac(id string, expires int64) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(linkDomain))
	m.Write([]byte{0})
	m.Write([]byte(id))
	m.Write([]byte{0})
	m.Write([]byte(strconv.FormatInt(expires, 10)))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// check compares sig with the signature of (id, expires) in constant time.
func (s linkSigner) check(id string, expires int64, sig string) error {
	if !hmac.Equal([]byte(sig), []byte(s.mac(id, expires))) {
		return ErrBadSignature
	}
	return nil
}

// Link is a signed download link of one job's file, as the Paths of the API
// turn it into a URL path.
type Link struct {
	// ID is the job.
	ID string
	// Expires is when the link stops working, in Unix seconds: the job's
	// ExpiresAt, truncated to the second.
	Expires int64
	// Sig is the signature over ID and Expires.
	Sig string
}

// ExpiresAt is the link's expiry as a time.
func (l Link) ExpiresAt() time.Time { return time.Unix(l.Expires, 0).UTC() }

// DownloadLink is the signed link to job's file, valid until the file
// expires. It carries no token: whoever holds it can download that one file.
func (j *Runner) DownloadLink(job *Job) Link {
	exp := job.ExpiresAt.Unix()
	return Link{ID: job.ID, Expires: exp, Sig: j.links.mac(job.ID, exp)}
}

// OpenLink checks a signed link and returns its job and the path of the
// file: ErrBadSignature when the id, expiry or signature was altered (this
// is checked first, so nothing about a job leaks to a forged link),
// ErrExpired once the link's expiry has passed, ErrNotFound when the job
// was forgotten, ErrErased when an erasure deleted the file, and
// ErrNotReady for a file that is not there.
func (j *Runner) OpenLink(l Link) (*Job, string, error) {
	if !validJobID(l.ID) {
		return nil, "", ErrBadSignature
	}
	if err := j.links.check(l.ID, l.Expires, l.Sig); err != nil {
		return nil, "", err
	}
	if !j.now().Before(l.ExpiresAt()) {
		return nil, "", ErrExpired
	}
	job, err := j.be.get(l.ID)
	if err != nil {
		return nil, "", err
	}
	if job.Status == Erased {
		return job, "", ErrErased
	}
	if job.Status != Done {
		return job, "", ErrNotReady
	}
	if job.Expired || !j.now().Before(job.ExpiresAt) {
		return job, "", ErrExpired
	}
	return job, j.filePath(job), nil
}

// loadOrCreateLinkKey returns the key of <dataDir>/download-link.key,
// creating it on first use (keyfile.LoadOrCreate).
func loadOrCreateLinkKey(dataDir string) ([]byte, error) {
	return keyfile.LoadOrCreate(filepath.Join(dataDir, LinkKeyFile), "download-link key")
}
