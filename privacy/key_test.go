package privacy

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateKeySetting(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		setting string
		want    string
		wantErr string
	}{
		{"a secret of at least 16 bytes", "a secret of at least 16 bytes", ""},
		{"0123456789abcdef", "0123456789abcdef", ""},
		{"too short", "", "pseudonym key setting: 9 bytes, need at least 16"},
	}
	for _, tt := range tests {
		key, err := LoadOrCreateKey(dir, tt.setting)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("setting %q: error %v, want %q", tt.setting, err, tt.wantErr)
			}
			continue
		}
		if err != nil || string(key) != tt.want {
			t.Errorf("setting %q: key %q, %v; want %q", tt.setting, key, err, tt.want)
		}
	}
	// A key given as a setting writes nothing.
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("data dir holds %v, want nothing", entries)
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // does not exist yet
	key, err := LoadOrCreateKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, KeyFile)
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := hex.DecodeString(strings.TrimSuffix(string(content), "\n"))
	if err != nil || len(raw) != 32 || !strings.HasSuffix(string(content), "\n") {
		t.Errorf("key file holds %q, want 64 hex digits and a newline", content)
	}
	if !bytes.Equal(key, bytes.TrimSpace(content)) {
		t.Errorf("key %q is not the file's text %q", key, content)
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
		}
	}
	assertOnlyKeyFile(t, dir)

	// A restart reads the same key; the setting is not needed.
	again, err := LoadOrCreateKey(dir, "")
	if err != nil || !bytes.Equal(again, key) {
		t.Errorf("second call: %q, %v; want the first key %q", again, err, key)
	}
	// The file's content given as the setting is the same key.
	fromSetting, err := LoadOrCreateKey(t.TempDir(), string(bytes.TrimSpace(content)))
	if err != nil || !bytes.Equal(fromSetting, key) {
		t.Errorf("file content as setting: %q, %v; want %q", fromSetting, err, key)
	}
}

func TestLoadOrCreateKeyExistingFile(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    string
		wantErr string
	}{
		{"hand-written key", "  my own key of many bytes\r\n", "my own key of many bytes", ""},
		{"empty file", "", "", "bytes, need at least 16"},
		{"short key", "short\n", "", "5 bytes, need at least 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, KeyFile), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			key, err := LoadOrCreateKey(dir, "")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(key) != tt.want {
				t.Errorf("key %q, %v; want %q", key, err, tt.want)
			}
		})
	}
}

// TestLoadOrCreateKeyConcurrent starts many creators at once on an empty
// directory: all must get the one key that ends up in the file.
func TestLoadOrCreateKeyConcurrent(t *testing.T) {
	dir := t.TempDir()
	const n = 16
	keys := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			keys[i], errs[i] = LoadOrCreateKey(dir, "")
		})
	}
	close(start)
	wg.Wait()
	content, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if errs[i] != nil || !bytes.Equal(keys[i], bytes.TrimSpace(content)) {
			t.Errorf("caller %d: %q, %v; want the file's key %q", i, keys[i], errs[i], content)
		}
	}
	assertOnlyKeyFile(t, dir)
}

// TestCreateKeyLoses plays the creator that loses the race: another process
// created the key file after this one found none. The winner's key is
// returned and the loser's temporary file removed.
func TestCreateKeyLoses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, KeyFile)
	if err := os.WriteFile(path, []byte("the winner's key, 32 bytes long!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := createKey(dir, path)
	if err != nil || string(key) != "the winner's key, 32 bytes long!" {
		t.Errorf("createKey = %q, %v; want the winner's key", key, err)
	}
	assertOnlyKeyFile(t, dir)
}

// TestLoadOrCreateKeyDataDirIsFile checks the error when the data directory
// is a file.
func TestLoadOrCreateKeyDataDirIsFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadOrCreateKey(file, "")
	if err == nil || !strings.Contains(err.Error(), "pseudonym key") || !strings.Contains(err.Error(), file) {
		t.Errorf("error %v, want one about the pseudonym key naming %s", err, file)
	}
}

// TestLoadOrCreateKeyUnwritable checks the error when the key cannot be
// created, and that no temporary file is left.
func TestLoadOrCreateKeyUnwritable(t *testing.T) {
	if runtime.GOOS == "windows" || os.Geteuid() == 0 {
		t.Skip("needs a directory the user cannot write to")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	if _, err := LoadOrCreateKey(dir, ""); err == nil || !strings.HasPrefix(err.Error(), "create pseudonym key: ") {
		t.Errorf("error %v, want create pseudonym key: ...", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left %v", entries)
	}
}

// assertOnlyKeyFile checks that dir holds the key file and no temporary file.
func assertOnlyKeyFile(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != KeyFile {
		var got []string
		for _, e := range entries {
			got = append(got, e.Name())
		}
		t.Errorf("data dir holds %v, want only %s", got, KeyFile)
	}
}

func TestLoadKeyNeverReplacesALostKey(t *testing.T) {
	dir := t.TempDir()
	_, err := LoadKey(dir, "", true)
	var km *KeyMissingError
	if !errors.As(err, &km) || km.Path != filepath.Join(dir, KeyFile) || !strings.Contains(err.Error(), "Restore") || !strings.Contains(err.Error(), "rotate") {
		t.Fatalf("LoadKey beside events without a key file = %v, want a KeyMissingError saying how to restore or rotate", err)
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a key file was created: %v", err)
	}
	if key, err := LoadKey(dir, "a setting of sixteen bytes+", true); err != nil || string(key) != "a setting of sixteen bytes+" {
		t.Errorf("setting: %q, %v", key, err)
	}
	created, err := LoadKey(dir, "", false) // an empty store gets its key
	if err != nil {
		t.Fatal(err)
	}
	if again, err := LoadKey(dir, "", true); err != nil || string(again) != string(created) {
		t.Errorf("existing key file: %q, %v; want %q", again, err, created)
	}
}
