package api

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"worklog/data"
)

// nodeReadersDir holds the npm readers: apache-arrow and hyparquet with
// hyparquet-compressors, pinned by its package-lock.json; .ci/run runs
// npm ci there.
const nodeReadersDir = "testdata/js"

// nodeReaders returns the node binary, or skips the test (fails it under
// CI=true) naming what to install.
func nodeReaders(t *testing.T) string {
	t.Helper()
	missing := ""
	node, err := exec.LookPath("node")
	if err != nil {
		missing = "node is not installed (Debian packages nodejs and npm)"
	} else if _, err := os.Stat(filepath.Join(nodeReadersDir, "node_modules", "hyparquet-compressors")); err != nil {
		missing = "the npm packages apache-arrow, hyparquet and hyparquet-compressors are not installed: run npm ci in export/api/" + nodeReadersDir
	}
	if missing == "" {
		return node
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(missing)
	}
	t.Skip(missing)
	return ""
}

// readWithNode runs read.mjs over an export body.
func readWithNode(t *testing.T, node, format string, body []byte) (table, []string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "export."+format)
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "read.mjs", format, path)
	cmd.Dir = nodeReadersDir
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("node read.mjs %s: %v\n%s", format, err, ee.Stderr)
	}
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Header []string
		Types  []string
		Rows   [][]any
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node output: %v\n%.300s", err, out)
	}
	tb := table{header: got.Header}
	for _, r := range got.Rows {
		row := make([]string, len(r))
		for i, v := range r {
			switch v := v.(type) {
			case string:
				row[i] = v
			case []any:
				row[i] = referenceStyleList(v)
			default:
				t.Fatalf("node cell %T %v", v, v)
			}
		}
		tb.rows = append(tb.rows, row)
	}
	return tb, got.Types
}

// TestNodeReadersMatchJSON reads the Arrow export with npm's apache-arrow
// and the Parquet export with hyparquet, programs no one here wrote, at
// every privacy level, and compares them with the JSON export: the same
// columns (omitted ones absent), the same values, date-times as naive
// timestamps and a pseudonymized date as a DATE.
func TestNodeReadersMatchJSON(t *testing.T) {
	node := nodeReaders(t)
	dump := demoDump(t, 200)
	for _, pc := range privacyCases {
		env := newTestEnv(t, pc.level, nil, dump)
		tok := env.token("analyst", "analyst@example.org", pc.perms...)
		_, jsonBody := env.get(tok, "format=json")
		want := parseExport(t, "json", jsonBody)
		for _, format := range []string{"arrow", "parquet"} {
			t.Run(pc.name+"/"+format, func(t *testing.T) {
				resp, body := env.get(tok, "format="+format)
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
				got, types := readWithNode(t, node, format, body)
				equalTables(t, "node "+format, got, want)
				for c, name := range got.header {
					fd, _ := data.Lookup(name)
					if fd.Kind != data.KindTimestamp {
						continue
					}
					typ := types[c]
					day := strings.HasPrefix(typ, "Date") || typ == "DATE"
					switch {
					case name == data.DateField && pc.pseudo:
						if !day {
							t.Errorf("%s is %s, want a date", name, typ)
						}
					case pc.pseudo && day:
					case format == "arrow":
						if typ != "Timestamp<MICROSECOND>" {
							t.Errorf("%s is %s, want Timestamp<MICROSECOND> without a time zone", name, typ)
						}
					default:
						if typ != "TIMESTAMP adjustedToUTC=false unit=MICROS" {
							t.Errorf("%s is %s, want TIMESTAMP(MICROS) not adjusted to UTC", name, typ)
						}
					}
				}
			})
		}
	}
}
