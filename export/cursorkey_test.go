package export

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"worklog/internal/keyfile"
)

func TestLoadOrCreateCursorKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	k1, err := LoadOrCreateCursorKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) != 2*keyfile.Size {
		t.Errorf("key of %d bytes, want %d hex digits", len(k1), 2*keyfile.Size)
	}
	fi, err := os.Stat(filepath.Join(dir, CursorKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v, %v; want mode 0600", fi, err)
	}
	k2, err := LoadOrCreateCursorKey(dir)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Errorf("second load %q, %v; want the first key", k2, err)
	}
	if err := os.WriteFile(filepath.Join(dir, CursorKeyFile), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateCursorKey(dir); err == nil {
		t.Error("a 5-byte key was accepted")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("data dir holds %d entries, want the key alone (no temporary file)", len(ents))
	}
}
