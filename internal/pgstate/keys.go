package pgstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"

	"worklog/internal/keyfile"
)

// Names of the signing keys in worklog_key.
const (
	// CursorKey seals page cursors (export's cursor key).
	CursorKey = "cursor"
	// LinkKey signs download links (export/jobs' link key).
	LinkKey = "download-link"
)

// Key returns the secret key name from worklog_key, shared by every
// replica so that a cursor or a link minted by one is accepted by the
// others. The first process to ask creates it: from the key file at
// seedPath when one exists (a store that ran alone before keeps its
// cursors and links valid), else 32 random bytes; concurrent first uses
// agree on one key. The key is the same text a key file holds (64 hex
// digits), as keyfile returns it.
func (db *DB) Key(ctx context.Context, name, seedPath string) ([]byte, error) {
	var key string
	err := db.Pool.QueryRow(ctx, "SELECT key FROM worklog_key WHERE name = $1", name).Scan(&key)
	if err == nil {
		return []byte(key), nil
	}
	if !isNoRows(err) {
		return nil, fmt.Errorf("database: %s key: %w", name, err)
	}
	seed, err := keyfile.Read(seedPath, name+" key")
	if errors.Is(err, fs.ErrNotExist) || seedPath == "" {
		raw := make([]byte, keyfile.Size)
		if _, err := rand.Read(raw); err != nil {
			return nil, fmt.Errorf("create %s key: %w", name, err)
		}
		seed, err = []byte(hex.EncodeToString(raw)), nil
	}
	if err != nil {
		return nil, err
	}
	// The first insert wins; every process reads back the winner.
	if _, err := db.Pool.Exec(ctx, "INSERT INTO worklog_key (name, key) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", name, string(seed)); err != nil {
		return nil, fmt.Errorf("database: %s key: %w", name, err)
	}
	if err := db.Pool.QueryRow(ctx, "SELECT key FROM worklog_key WHERE name = $1", name).Scan(&key); err != nil {
		return nil, fmt.Errorf("database: %s key: %w", name, err)
	}
	return []byte(key), nil
}
