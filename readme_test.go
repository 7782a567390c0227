package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"
)

// cookbookHeading is the README section whose first ```sh block
// TestReadmeCookbook runs.
const cookbookHeading = "## Cookbook"

// cookbookStep is one command of the cookbook: a paragraph of the block,
// titled by the comment above it.
type cookbookStep struct {
	title, script string
}

// cookbook returns the commands of the README's cookbook block: its
// paragraphs (commands separated by blank lines), comment lines left out,
// each titled by the last comment line before it.
func cookbook(readme string) ([]cookbookStep, error) {
	_, rest, ok := strings.Cut(readme, "\n"+cookbookHeading+"\n")
	if !ok {
		return nil, fmt.Errorf("README has no %q section", cookbookHeading)
	}
	if next := strings.Index(rest, "\n## "); next >= 0 {
		rest = rest[:next]
	}
	_, block, ok := strings.Cut(rest, "\n```sh\n")
	if !ok {
		return nil, fmt.Errorf("%s has no ```sh block", cookbookHeading)
	}
	block, _, ok = strings.Cut(block, "\n```\n")
	if !ok {
		return nil, fmt.Errorf("%s: the ```sh block does not end", cookbookHeading)
	}
	var steps []cookbookStep
	var cur []string
	title := ""
	flush := func() {
		if len(cur) > 0 {
			steps = append(steps, cookbookStep{title: title, script: strings.Join(cur, "\n")})
			cur, title = nil, ""
		}
	}
	for _, line := range strings.Split(block, "\n") {
		switch t := strings.TrimSpace(line); {
		case t == "":
			flush()
		case strings.HasPrefix(t, "#"):
			if len(cur) == 0 {
				title = strings.TrimSpace(strings.TrimLeft(t, "#"))
			}
		default:
			cur = append(cur, line)
		}
	}
	flush()
	return steps, nil
}

func TestCookbookParse(t *testing.T) {
	readme := "# x\n\n## Cookbook\n\ntext\n\n```sh\n# a comment\nA=1\nB=2\n\n# two\ncurl -g x \\\n  y\n\nwhile true; do\n  break\ndone\n```\n\n## Next\n\n```sh\nnot this\n```\n"
	got, err := cookbook(readme)
	want := []cookbookStep{{"a comment", "A=1\nB=2"}, {"two", "curl -g x \\\n  y"}, {"", "while true; do\n  break\ndone"}}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("cookbook = %q, %v; want %q", got, err, want)
	}
	for _, bad := range []string{"# x\n", "## Cookbook\n\nno block\n", "## Cookbook\n\n```sh\nopen\n"} {
		if _, err := cookbook(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	for _, tc := range []struct {
		cmd           string
		calls         int
		globOff, fail bool // of the last call
	}{
		{`curl -g -fsS "$BASE/x?a[0]=1"`, 1, true, true},
		{"curl -fsS \\\n  \"$BASE/x?a[0]=1\"", 1, false, true},
		{`X=$(curl -gfsS "$BASE/a" | grep -o '"id":"[^"]*"')`, 1, true, true},
		{`until curl -s a | grep -q b; do sleep 1; done && curl --data-binary @f -o x b`, 2, false, false},
	} {
		calls := curlCall.FindAllString(tc.cmd, -1)
		if len(calls) != tc.calls {
			t.Errorf("%s: calls %q", tc.cmd, calls)
			continue
		}
		last := calls[len(calls)-1]
		if curlGlobOff.MatchString(last) != tc.globOff || curlFail.MatchString(last) != tc.fail {
			t.Errorf("%s: -g %v -f %v in %q", tc.cmd, curlGlobOff.MatchString(last), curlFail.MatchString(last), last)
		}
		if strings.Contains(tc.cmd, "\\\n") && !strings.Contains(last, "[0]") {
			t.Errorf("%s: the call stops at its continuation line: %q", tc.cmd, last)
		}
		if strings.Contains(calls[0], "grep") {
			t.Errorf("%s: the call runs past its pipe: %q", tc.cmd, calls[0])
		}
	}
}

var (
	// curlCall is one curl invocation, continuation lines included, up to
	// the end of its pipeline stage.
	curlCall = regexp.MustCompile(`(?:^|[\s(|;])curl\s(?:\\\n|[^|;\n])*`)
	// shortFlag matches a cluster of short options holding the letter.
	shortFlag = func(letter string) *regexp.Regexp {
		return regexp.MustCompile(`(?:^|\s)-[A-Za-z]*` + letter + `[A-Za-z]*(?:\s|$)`)
	}
	curlGlobOff = shortFlag("g")
	curlFail    = shortFlag("f")
	// assigned finds the variables a command assigns at the start of a line.
	assigned = regexp.MustCompile(`(?m)^\s*([A-Za-z_][A-Za-z0-9_]*)=`)
)

// TestReadmeCookbook runs the README's cookbook, command by command and in
// order, in bash, against 'serve --demo' on a loopback port, as a reader
// would paste it: from the directory that holds ./data, with worklog on the
// PATH. BASE is the one value the test sets (the server's address);
// everything else, the token included, comes from the block itself.
// Variables a command assigns are carried to the commands after it. Each
// command must exit 0 (its curls carry -f, so an HTTP error fails) and give
// an answer that makes sense: rows for the data queries, a 202 body for a
// background export, a readable XLSX, NDJSON whose ids never repeat.
func TestReadmeCookbook(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a demo server")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the README cookbook test needs curl (Debian package curl), and CI=true: .ci/run installs it")
		}
		t.Skip("skipping the README cookbook test: it needs curl (Debian package curl: apt-get install curl)")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("skipping the README cookbook test: it needs bash")
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	steps, err := cookbook(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) < 8 {
		t.Fatalf("the cookbook has %d commands; it should answer about ten questions", len(steps))
	}
	for _, st := range steps {
		for _, call := range curlCall.FindAllString(st.script, -1) {
			if strings.Contains(call, "[") && !curlGlobOff.MatchString(call) {
				t.Errorf("a bracketed URL needs curl -g:\n%s", call)
			}
			if !curlFail.MatchString(call) {
				t.Errorf("curl without -f lets an HTTP error pass as an answer:\n%s", call)
			}
		}
	}

	dir := t.TempDir()
	bin := worklogBin(t)
	addr := freeAddr(t)
	srv := exec.Command(bin, "serve", "--demo", "--data", filepath.Join(dir, "data"), "--addr", addr)
	logs := &lockedBuffer{}
	srv.Stdout, srv.Stderr = logs, logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Process.Kill()
		srv.Wait()
	})
	waitUntil(t, "serve --demo to answer", func() bool { return strings.Contains(logs.String(), `"msg":"serving"`) })

	env := map[string]string{}
	for i, st := range steps {
		env["BASE"] = "http://" + addr // the one placeholder the test sets
		c := st.script
		name := fmt.Sprintf("%d %.50s", i+1, st.title)
		ok := t.Run(name, func(t *testing.T) {
			vars := assigned.FindAllStringSubmatch(c, -1)
			before := listFiles(t, dir)
			out, got := runCookbookCommand(t, bash, dir, env, c, vars)
			for k, v := range got {
				env[k] = v
			}
			answers := 0
			if len(bytes.TrimSpace(out)) > 0 {
				answers++
				checkAnswer(t, "stdout", out)
			}
			for p, size := range listFiles(t, dir) {
				if old, ok := before[p]; ok && old == size {
					continue
				}
				answers++
				b, err := os.ReadFile(filepath.Join(dir, p))
				if err != nil {
					t.Fatal(err)
				}
				checkAnswer(t, p, b)
			}
			if answers == 0 {
				// A command without output only sets variables (the token).
				for _, v := range vars {
					if got[v[1]] == "" {
						t.Errorf("%s is empty after:\n%s", v[1], c)
					}
					answers++
				}
			}
			if answers == 0 {
				t.Errorf("no answer from:\n%s", c)
			}
			if t.Failed() {
				t.Logf("the command:\n%s\nits output:\n%.2000q", c, out)
			}
		})
		if !ok {
			break // the commands after it may build on its answer
		}
	}
	if t.Failed() {
		t.Logf("server log:\n%.4000s", logs.String())
	}
}

// runCookbookCommand runs c in bash in dir, with env and worklog on the
// PATH, fails the test unless it exits 0, and returns its stdout and the
// values of the variables it assigns.
func runCookbookCommand(t *testing.T, bash, dir string, env map[string]string, c string, vars [][]string) ([]byte, map[string]string) {
	t.Helper()
	varsFile := filepath.Join(t.TempDir(), "vars")
	script := "set -euo pipefail\n" + c + "\n"
	for _, v := range vars {
		script += fmt.Sprintf("printf '%%s=%%s\\0' %s \"${%s-}\" >> %q\n", v[1], v[1], varsFile)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bash, "-c", script)
	// A killed bash may leave a curl or a sleep holding its output open.
	cmd.WaitDelay = 5 * time.Second
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(worklogBin(t))+string(os.PathListSeparator)+os.Getenv("PATH"))
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s\nstderr:\n%s\nstdout:\n%.2000s", err, c, errOut.String(), out.String())
	}
	got := map[string]string{}
	b, _ := os.ReadFile(varsFile)
	for _, kv := range strings.Split(string(b), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			got[k] = v
		}
	}
	return out.Bytes(), got
}

// listFiles maps the files under dir (outside the data directory) to their
// sizes.
func listFiles(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			out[e.Name()] = info.Size()
		}
	}
	return out
}

// checkAnswer fails the test unless b, a command's output or a file it
// wrote, is a sensible answer: an XLSX with rows; HTTP headers of a 200 or
// 202 followed by a body; a JSON array of at least one element; a JSON
// object that is no error; NDJSON objects whose userWorklogIds never
// repeat; or CSV with a header and at least one row.
func checkAnswer(t *testing.T, what string, b []byte) {
	t.Helper()
	switch {
	case len(bytes.TrimSpace(b)) == 0:
		t.Errorf("%s: empty", what)
	case bytes.HasPrefix(b, []byte("PK\x03\x04")):
		f, err := excelize.OpenReader(bytes.NewReader(b))
		if err != nil {
			t.Errorf("%s: not an XLSX file: %v", what, err)
			return
		}
		defer f.Close()
		rows, err := f.GetRows(f.GetSheetName(0))
		if err != nil || len(rows) < 2 {
			t.Errorf("%s: %d rows in the first sheet (%v), want a header and rows", what, len(rows), err)
		}
	case bytes.HasPrefix(b, []byte("HTTP/")):
		head, body, _ := bytes.Cut(b, []byte("\r\n\r\n"))
		status, _, _ := bytes.Cut(head, []byte("\r\n"))
		if f := strings.Fields(string(status)); len(f) < 2 || (f[1] != "200" && f[1] != "202") {
			t.Errorf("%s: status line %q, want 200 or 202", what, status)
		}
		checkAnswer(t, what+" (body)", body)
	case b[0] == '[':
		var rows []json.RawMessage
		if err := json.Unmarshal(b, &rows); err != nil || len(rows) == 0 {
			t.Errorf("%s: want a JSON array with elements, got %d (%v): %.200s", what, len(rows), err, b)
		}
	case b[0] == '{' && bytes.Count(bytes.TrimSpace(b), []byte("\n")) == 0:
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(b, &obj); err != nil || len(obj) == 0 || obj["error"] != nil {
			t.Errorf("%s: want a JSON object that is no error: %.300s", what, b)
		}
		if obj["rows"] != nil && string(obj["rows"]) == "0" {
			t.Errorf("%s: no rows: %s", what, b)
		}
		if obj["new"] != nil {
			var s struct{ New, Updated, Unchanged int64 }
			json.Unmarshal(b, &s)
			if s.New+s.Updated+s.Unchanged == 0 {
				t.Errorf("%s: an ingest of nothing: %s", what, b)
			}
		}
	case b[0] == '{':
		seen := map[int64]bool{}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for n := 1; sc.Scan(); n++ {
			var row struct {
				ID *int64 `json:"userWorklogId"`
			}
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil || row.ID == nil {
				t.Errorf("%s: line %d is no event (%v): %.200s", what, n, err, sc.Bytes())
				return
			}
			if seen[*row.ID] {
				t.Errorf("%s: line %d repeats userWorklogId %d", what, n, *row.ID)
			}
			seen[*row.ID] = true
		}
	default:
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) < 2 || !strings.Contains(lines[0], ",") {
			t.Errorf("%s: want CSV with a header and rows: %.300s", what, b)
			return
		}
		if cols := strings.Count(lines[0], ","); strings.Count(lines[1], ",") < cols {
			t.Errorf("%s: the first row has fewer fields than the header (%d commas): %.300s", what, cols, lines[1])
		}
	}
}
