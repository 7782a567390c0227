package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"worklog/privacy"
)

// A truncated part makes the service not ready and every request that reads
// it fail with an error naming the file in words; requests that skip its
// month still answer.
func TestDamagedPartIsNamed(t *testing.T) {
	env := newTestEnv(t, privacy.None, nil, readFixture(t))
	snap, err := env.store.Snapshot()
	if err != nil || len(snap.Files) < 2 {
		t.Fatalf("snapshot: %d files, %v", len(snap.Files), err)
	}
	victim := snap.Files[0]
	b, err := os.ReadFile(victim.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victim.Path, b[:len(b)/2], 0o640); err != nil {
		t.Fatal(err)
	}
	name := "month=" + victim.Month + "/" + filepath.Base(victim.Path)

	resp, err := http.Get(env.url + ReadyzPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !bytes.Contains(body, []byte(name)) {
		t.Errorf("readyz: %d %s; want 503 naming %s", resp.StatusCode, body, name)
	}

	tok := env.token("u1", "")
	resp, body = env.get(tok, "")
	var e struct {
		Error APIError `json:"error"`
	}
	json.Unmarshal(body, &e)
	if resp.StatusCode != 500 || e.Error.Code != "store_damaged" || !strings.Contains(e.Error.Message, name) ||
		strings.Contains(e.Error.Message, "read_parquet") || strings.Contains(e.Error.Message, env.store.Dir()) {
		t.Errorf("export over a damaged file: %d %s; want 500 store_damaged naming %s, no SQL, no absolute path", resp.StatusCode, body, name)
	}

	// A month without damaged files still answers.
	other := snap.Files[len(snap.Files)-1]
	if other.Month == victim.Month {
		t.Fatal("fixture has one month")
	}
	q := "filters[0][key]=date&filters[0][comparator]=between&filters[0][from]=" + other.Month + "-01&filters[0][to]=" + other.Month + "-28"
	if resp, body := env.get(tok, q); resp.StatusCode != 200 {
		t.Errorf("export of an intact month: %d %s", resp.StatusCode, body)
	}
}
