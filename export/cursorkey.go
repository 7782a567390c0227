package export

import (
	"path/filepath"
	"worklog/internal/keyfile"
)

// CursorKeyFile is the name of the page-cursor key in the data
// directory.
const CursorKeyFile = "cursor.key"

// LoadOrCreateCursorKey returns the key that seals page cursors
// (query.EncodeCursor), kept as <dataDir>/cursor.key so that cursors stay
// valid across restarts and between processes sharing the directory; the
// first call creates it (keyfile.LoadOrCreate).
func LoadOrCreateCursorKey(dataDir string) ([]byte, error) {
	return keyfile.LoadOrCreate(filepath.Join(dataDir, CursorKeyFile), "cursor key")
}
