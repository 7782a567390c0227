package privacy

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

// MinKeyLen is the shortest pseudonym key accepted, in bytes.
const MinKeyLen = 16

// KeyFile is the name of the generated pseudonym key in the data directory.
const KeyFile = "pseudonym.key"

// LoadOrCreateKey returns the pseudonym key.
//
// A non-empty setting (--pseudonym-key) is the key: the bytes of the string
// as given, at least MinKeyLen of them. Otherwise the key is read from
// <dataDir>/pseudonym.key; when that file does not exist, 32 random bytes are
// written there once, as 64 hex digits and a newline, with mode 0600. The key
// from the file is its text with surrounding white space removed, the same
// rule as the setting, so moving the file's content into the setting keeps
// every pseudonym.
//
// Creation is atomic (fsutil.WriteNew): the key is written to a temporary
// file, synced, and hard-linked to its name, which fails if another process
// created it first; the loser then reads the winner's key, so concurrent
// creators end up with one key.
func LoadOrCreateKey(dataDir, setting string) ([]byte, error) {
	if setting != "" {
		if len(setting) < MinKeyLen {
			return nil, fmt.Errorf("pseudonym key setting: %d bytes, need at least %d", len(setting), MinKeyLen)
		}
		return []byte(setting), nil
	}
	path := filepath.Join(dataDir, KeyFile)
	key, err := readKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	return createKey(dataDir, path)
}

// readKey reads a key file.
func readKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read pseudonym key: %w", err)
	}
	key := bytes.TrimSpace(b)
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("read pseudonym key %s: %d bytes, need at least %d", path, len(key), MinKeyLen)
	}
	return key, nil
}

// createKey writes a new random key to path unless a key appears there
// first, and returns the key stored at path.
func createKey(dataDir, path string) ([]byte, error) {
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create pseudonym key: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("create pseudonym key: %w", err)
	}
	text := []byte(hex.EncodeToString(raw))
	// WriteNew never replaces a file: of several concurrent creators
	// exactly one wins, and the others read its key. Its temporary file has
	// mode 0600 from the start, so the key is never readable by others, not
	// even for a moment.
	if err := fsutil.WriteNew(path, append(text, '\n'), 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKey(path)
		}
		return nil, fmt.Errorf("create pseudonym key: %w", err)
	}
	return text, nil
}

// KeyMissingError refuses to create a pseudonym key beside a store that
// already holds events: a new key would silently change every pseudonym,
// and reports made before could no longer be joined with those made after.
type KeyMissingError struct {
	// Path is where the key file should be.
	Path string
}

func (e *KeyMissingError) Error() string {
	return fmt.Sprintf("pseudonym key %s is missing, but the store holds events: a new key would change every pseudonym. "+
		"Restore the file from a backup (or give the key with --pseudonym-key / WORKLOG_PSEUDONYM_KEY); "+
		"to rotate the key on purpose, write a new one yourself, e.g. 'openssl rand -hex 32 > %s'", e.Path, e.Path)
}

// LoadKey is LoadOrCreateKey for a data directory whose store may hold
// events: when storeHasData is true and neither a setting nor the key file
// gives the key, it returns a *KeyMissingError instead of creating a new
// key. A key is thus created only with an empty store, so every pseudonym a
// store's events ever had comes from one key (SPEC §6).
func LoadKey(dataDir, setting string, storeHasData bool) ([]byte, error) {
	if setting == "" && storeHasData {
		path := filepath.Join(dataDir, KeyFile)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, &KeyMissingError{Path: path}
		}
	}
	return LoadOrCreateKey(dataDir, setting)
}
