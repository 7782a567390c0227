// Package audit writes the audit trail of SPEC §12: one JSON line per
// export (synchronous, background, CLI), analytics query, ingest, prune and
// forget, appended to <data>/audit.log (or the --audit-log path).
//
// A line says who (the token's sub, or "cli"), what (action, privacy level,
// parameters), how much (rows returned or changed) and how it ended
// (outcome, HTTP status, error code), with the time and the request id. It
// never holds a token or a row's content: parameters are the request's own
// (a key that could carry a credential is dropped), and errors are recorded
// by code, not by message, because a message may quote a record
// (`line 3: name: ...`).
//
// Append-only. The file is opened with O_APPEND, each line is written with
// one write and fsynced before Append returns, so a caller that answers
// after Append knows its line is on disk. The service never truncates or
// rewrites the file. Each line carries "prev", the hex SHA-256 of the line
// before it in the file (without its newline), so a reader can verify that
// no line was changed or removed (Verify; or sha256sum per line by hand).
// Several processes (serve, the CLI commands) may append to the same file:
// an exclusive lock on "<path>.lock" orders their lines and their chain.
//
// Replicas on a shared database keep one trail in it instead of a file
// (NewShared with internal/pgstate's backend): the same lines, the same
// chain, appended in one transaction each.
//
// Rotation: rename the file (logrotate's default, not copytruncate). The
// next Append sees that the path names another file, or none, and opens a
// new one; its first line's prev is the hash of the last line of the
// renamed file, so the chain continues across files.
package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"
)

// FileName is the audit trail's name in the data directory.
const FileName = "audit.log"

// The actions of the trail.
const (
	ActionExport    = "export"    // a synchronous export or page (HTTP)
	ActionJobExport = "jobExport" // a background export job's file
	ActionCLIExport = "cliExport" // `worklog export`
	ActionAnalytics = "analytics" // an analytics query
	ActionIngest    = "ingest"    // HTTP or CLI ingest
	ActionPrune     = "prune"     // retention, by serve or `worklog prune`
	ActionForget    = "forget"    // erasure of a user
)

// The outcomes of an action.
const (
	OutcomeOK        = "ok"        // done; for an export: every row sent
	OutcomeScheduled = "scheduled" // handed to a background job
	OutcomeDenied    = "denied"    // refused: no or bad token, missing permission
	OutcomeInvalid   = "invalid"   // refused: bad parameters or input
	OutcomeRefused   = "refused"   // refused for load: too large, too many, unavailable
	OutcomeFailed    = "failed"    // an error on our side, or the client went away
)

// CLISubject is the sub of lines written by the command line.
const CLISubject = "cli"

// Entry is one line of the trail. Time and Prev are set by Append.
type Entry struct {
	Time time.Time `json:"time"`
	// Sub is the token's subject, or CLISubject.
	Sub    string `json:"sub"`
	Action string `json:"action"`
	// Level is the privacy level the action ran at (reads only).
	Level string `json:"level,omitempty"`
	// Params are the request's parameters (query string, body fields,
	// command flags); see Params for what is dropped.
	Params map[string][]string `json:"params,omitempty"`
	// Rows counts rows returned (reads) or changed (writes).
	Rows    int64  `json:"rows"`
	Outcome string `json:"outcome"`
	// Status is the HTTP status answered, for HTTP actions.
	Status int `json:"status,omitempty"`
	// Error is the error code (never the message) when the outcome is not ok.
	Error string `json:"error,omitempty"`
	// RequestID is the X-Request-Id of an HTTP action.
	RequestID string `json:"requestId,omitempty"`
	// Job is the background job of a job export.
	Job string `json:"job,omitempty"`
	// Prev is the hex SHA-256 of the previous line of the file.
	Prev string `json:"prev"`
}

// secretKeys are parameter names that could carry a credential; Params
// drops them whatever the endpoint would have done with them.
var secretKeys = []string{"access_token", "token", "authorization", "password", "secret", "key", "sig", "signature"}

// opaqueKeys are parameters whose values are sealed data derived from rows
// (a page cursor carries the last row's ordering key, encrypted): Params
// keeps only a digest, so pages can be told apart without the trail
// holding anything a key could open.
var opaqueKeys = map[string]bool{"cursor": true}

// Params copies request parameters for an Entry, without any whose name
// could carry a credential (access_token, token, sig, ...), and with
// sealed row-derived values (cursor) replaced by "sha256:" and 16 hex
// digits of their hash.
func Params(v map[string][]string) map[string][]string {
	if len(v) == 0 {
		return nil
	}
	out := make(map[string][]string, len(v))
	for k, vals := range v {
		lk := strings.ToLower(k)
		drop := false
		for _, s := range secretKeys {
			drop = drop || lk == s || strings.HasSuffix(lk, "_"+s)
		}
		switch {
		case drop:
		case opaqueKeys[lk]:
			for _, x := range vals {
				h := sha256.Sum256([]byte(x))
				out[k] = append(out[k], "sha256:"+hex.EncodeToString(h[:8]))
			}
		default:
			out[k] = append([]string(nil), vals...)
		}
	}
	return out
}

// Log appends entries to the audit file. A nil *Log discards them, so code
// paths that run without a trail (tests, tools) need no checks. It is safe
// for concurrent use.
type Log struct {
	path   string
	lock   *flock.Flock
	shared Backend // instead of the file, when set

	mu sync.Mutex
	f  *os.File
	// now is the clock (tests).
	now func() time.Time
}

// Open opens (creating, mode 0600) the audit file at path for appending.
func Open(path string) (*Log, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	l := &Log{path: path, lock: flock.New(path + ".lock"), now: time.Now}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

// Backend keeps a trail that several processes share somewhere other than
// a file (a database).
type Backend interface {
	// Append stores the line that encode returns for prev, the hash of the
	// last line stored ("" for the first), ordered against every other
	// appender of any process, and durably before it returns.
	Append(encode func(prev string) ([]byte, error)) error
	// Where names the trail for people (a table of a database).
	Where() string
}

// NewShared returns a trail kept by b. Close does not close b.
func NewShared(b Backend) *Log {
	return &Log{path: b.Where(), shared: b, now: time.Now}
}

// Path is the audit file's path, or where a shared trail is kept.
func (l *Log) Path() string {
	if l == nil {
		return ""
	}
	return l.path
}

func (l *Log) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	l.f = f
	return nil
}

// reopenIfRotated opens a new file when the path no longer names the open
// one: the operator renamed it away.
func (l *Log) reopenIfRotated() error {
	st, err := os.Stat(l.path)
	if err == nil {
		if ours, ferr := l.f.Stat(); ferr == nil && os.SameFile(st, ours) {
			return nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("audit log: %w", err)
	}
	l.f.Close()
	return l.open()
}

// Append writes e as one line, fsynced, before it returns. It sets e.Time
// (when zero) and e.Prev.
func (l *Log) Append(e Entry) error {
	if l == nil {
		return nil
	}
	if l.shared != nil {
		if e.Time.IsZero() {
			e.Time = l.now()
		}
		e.Time = e.Time.UTC()
		return l.shared.Append(func(prev string) ([]byte, error) {
			e.Prev = prev
			b, err := json.Marshal(e)
			if err != nil {
				return nil, fmt.Errorf("audit log: encode: %w", err)
			}
			return b, nil
		})
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.lock.Lock(); err != nil {
		return fmt.Errorf("audit log: lock: %w", err)
	}
	defer l.lock.Unlock()
	if err := l.reopenIfRotated(); err != nil {
		return err
	}
	prev, err := l.lastHash()
	if err != nil {
		return err
	}
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	e.Time = e.Time.UTC()
	e.Prev = prev
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit log: encode: %w", err)
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("audit log: write: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit log: fsync: %w", err)
	}
	return nil
}

// lastHash is the hash of the file's last line; for an empty file (new, or
// just rotated) the last line of the newest rotated file beside it, so the
// chain continues; "" when there is none.
func (l *Log) lastHash() (string, error) {
	line, err := lastLine(l.path)
	if err != nil {
		return "", err
	}
	if line == nil {
		if line, err = lastLine(l.newestRotated()); err != nil {
			return "", err
		}
	}
	if line == nil {
		return "", nil
	}
	return Hash(line), nil
}

// newestRotated is the most recently modified file named <path>.* (not the
// lock file), or "".
func (l *Log) newestRotated() string {
	matches, _ := filepath.Glob(l.path + ".*")
	var best string
	var bestTime time.Time
	for _, m := range matches {
		if m == l.path+".lock" {
			continue
		}
		st, err := os.Stat(m)
		if err != nil || st.IsDir() || strings.HasSuffix(m, ".gz") {
			continue
		}
		if best == "" || st.ModTime().After(bestTime) {
			best, bestTime = m, st.ModTime()
		}
	}
	return best
}

// maxLine bounds the tail read to find the last line; entries are far
// smaller (parameters are bounded by the server's query-string limit).
const maxLine = 1 << 20

// lastLine returns the last complete line of the file at path, without its
// newline; nil when the file is empty or missing.
func lastLine(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	size := st.Size()
	if size == 0 {
		return nil, nil
	}
	n := min(size, maxLine)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, size-n); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("audit log: read tail: %w", err)
	}
	buf = bytes.TrimSuffix(buf, []byte("\n"))
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		buf = buf[i+1:]
	}
	return buf, nil
}

// Hash is the chain hash of one line (without its newline): hex SHA-256.
func Hash(line []byte) string {
	h := sha256.Sum256(line)
	return hex.EncodeToString(h[:])
}

// Close closes the file.
func (l *Log) Close() error {
	if l == nil || l.shared != nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// ChainError says where a trail's chain breaks.
type ChainError struct {
	// Line is the 1-based line whose prev does not match.
	Line int
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit log: line %d: prev does not match the line before: a line was changed, removed or inserted", e.Line)
}

// Verify reads an audit file and checks its chain: every line is a JSON
// entry whose prev is the hash of the line before. The first line's prev
// is returned (it names the last line of the file rotated before this
// one), so files can be checked in sequence. Lines must not be longer than
// 1 MiB.
func Verify(r io.Reader) (first string, lines int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var prev string
	for sc.Scan() {
		lines++
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return first, lines, fmt.Errorf("audit log: line %d: %w", lines, err)
		}
		if lines == 1 {
			first = e.Prev
		} else if e.Prev != prev {
			return first, lines, &ChainError{Line: lines}
		}
		prev = Hash(sc.Bytes())
	}
	return first, lines, sc.Err()
}
