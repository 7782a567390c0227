package export

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

// CursorKeyFile is the name of the page-cursor key in the data
// directory.
const CursorKeyFile = "cursor.key"

// cursorKeyLen is the length of a generated cursor key in bytes.
const cursorKeyLen = 32

// LoadOrCreateCursorKey returns the key that seals page cursors
// (query.EncodeCursor), kept as <dataDir>/cursor.key so that cursors stay
// valid across restarts and between processes sharing the directory. The
// first call creates it: 32 random bytes as 64 hex digits, mode 0600,
// created atomically and only if absent, so that concurrent first starts
// agree on one key.
func LoadOrCreateCursorKey(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, CursorKeyFile)
	key, err := readCursorKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	raw := make([]byte, cursorKeyLen)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("create cursor key: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create cursor key: %w", err)
	}
	text := []byte(hex.EncodeToString(raw) + "\n")
	if err := fsutil.WriteNew(path, text, 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readCursorKey(path) // another process was first
		}
		return nil, fmt.Errorf("create cursor key: %w", err)
	}
	return bytes.TrimSpace(text), nil
}

func readCursorKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read cursor key: %w", err)
	}
	key := bytes.TrimSpace(b)
	if len(key) < 16 {
		return nil, fmt.Errorf("read cursor key %s: %d bytes, need at least 16", path, len(key))
	}
	return key, nil
}
