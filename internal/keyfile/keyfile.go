// Package keyfile keeps the server's secret keys in the data directory (the
// page-cursor key, the download-link key): 32 random bytes as 64 hex digits,
// mode 0600, created once and atomically, so that concurrent first starts
// agree on one key and a half-written key never exists. It imports only the
// standard library and internal/fsutil.
package keyfile

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"worklog/internal/fsutil"
)

// Size is the length of a generated key in random bytes.
const Size = 32

// minLen is the shortest key text accepted from a file.
const minLen = 16

// LoadOrCreate returns the key in path, creating it on first use; what
// names the key in errors ("cursor key").
func LoadOrCreate(path, what string) ([]byte, error) {
	key, err := Read(path, what)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	raw := make([]byte, Size)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("create %s: %w", what, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create %s: %w", what, err)
	}
	text := []byte(hex.EncodeToString(raw) + "\n")
	if err := fsutil.WriteNew(path, text, 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return Read(path, what) // another process was first
		}
		return nil, fmt.Errorf("create %s: %w", what, err)
	}
	return bytes.TrimSpace(text), nil
}

// Read returns the key text in path without surrounding white space; an
// error matching fs.ErrNotExist when there is none.
func Read(path, what string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	key := bytes.TrimSpace(b)
	if len(key) < minLen {
		return nil, fmt.Errorf("read %s %s: %d bytes, need at least %d", what, path, len(key), minLen)
	}
	return key, nil
}
