package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func readLines(t *testing.T, path string) []Entry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []Entry
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		var e Entry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("%v: %q", err, l)
		}
		out = append(out, e)
	}
	return out
}

func TestAppendChainsAndVerifies(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i, a := range []string{ActionExport, ActionIngest, ActionForget} {
		if err := l.Append(Entry{Sub: "u1", Action: a, Rows: int64(i), Outcome: OutcomeOK}); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	es := readLines(t, path)
	if len(es) != 3 || es[0].Prev != "" || es[2].Action != ActionForget || es[2].Rows != 2 || es[0].Time.IsZero() {
		t.Fatalf("entries %+v", es)
	}
	f, _ := os.Open(path)
	first, n, err := Verify(f)
	f.Close()
	if err != nil || n != 3 || first != "" {
		t.Fatalf("verify: %q %d %v", first, n, err)
	}

	// Removing or changing a line breaks the chain.
	b, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(b), "\n")
	for name, text := range map[string]string{
		"removed": lines[0] + lines[2],
		"changed": lines[0] + strings.Replace(lines[1], `"rows":1`, `"rows":9`, 1) + lines[2],
	} {
		_, _, err := Verify(strings.NewReader(text))
		var ce *ChainError
		if !errors.As(err, &ce) || ce.Line != 2 && ce.Line != 3 {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestRotationByRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Append(Entry{Sub: "a", Action: ActionExport, Outcome: OutcomeOK}); err != nil {
		t.Fatal(err)
	}
	rotated := path + ".1"
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(Entry{Sub: "b", Action: ActionExport, Outcome: OutcomeOK}); err != nil {
		t.Fatal(err)
	}
	old := readLines(t, rotated)
	cur := readLines(t, path)
	if len(old) != 1 || len(cur) != 1 || old[0].Sub != "a" || cur[0].Sub != "b" {
		t.Fatalf("old %+v, new %+v", old, cur)
	}
	ob, _ := os.ReadFile(rotated)
	if cur[0].Prev != Hash(bytes.TrimSuffix(ob, []byte("\n"))) {
		t.Error("the new file's first line does not chain to the rotated file's last line")
	}
}

// TestTwoWritersKeepOneChain: two Logs on one file (serve and a CLI
// command) interleave whole lines and one unbroken chain.
func TestTwoWritersKeepOneChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	var wg sync.WaitGroup
	for w := range 2 {
		l, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if err := l.Append(Entry{Sub: string(rune('a' + w)), Action: ActionIngest, Rows: int64(i), Outcome: OutcomeOK}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	f, _ := os.Open(path)
	defer f.Close()
	if _, n, err := Verify(f); err != nil || n != 100 {
		t.Fatalf("verify: %d lines, %v", n, err)
	}
}

func TestParamsDropCredentials(t *testing.T) {
	got := Params(map[string][]string{
		"access_token": {"x"}, "Token": {"x"}, "sig": {"x"}, "api_key": {"x"},
		"filters[0][key]": {"name"}, "format": {"csv"}, "cursor": {"c2VhbGVk"},
	})
	if len(got) != 3 || got["format"][0] != "csv" || got["filters[0][key]"][0] != "name" ||
		got["cursor"][0] != "sha256:"+Hash([]byte("c2VhbGVk"))[:16] {
		t.Errorf("params %v", got)
	}
	if Params(nil) != nil {
		t.Error("nil params")
	}
}

func TestNilLogDiscards(t *testing.T) {
	var l *Log
	if err := l.Append(Entry{Action: ActionExport}); err != nil || l.Close() != nil || l.Path() != "" {
		t.Error("nil log")
	}
}
