package main

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"worklog/data"
)

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// removeBuiltBinary removes what worklogBin built, once the tests are done.
func removeBuiltBinary() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// worklogBin builds the command once per test run.
func worklogBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "worklog-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binDir = dir
		binPath = filepath.Join(dir, "worklog")
		out, err := exec.Command("go", "build", "-tags", "duckdb_arrow", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// worklog runs the command and returns stdout, stderr and the exit code.
func worklog(t *testing.T, stdin io.Reader, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(worklogBin(t), args...)
	cmd.Stdin = stdin
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// event is one valid NDJSON event; pad makes rawData longer.
func event(id, month, day, duration int, pad int) string {
	return fmt.Sprintf(`{"date":"2024-%02d-%02d 12:00:00","action":"writeAction","userWorklogId":%d,"duration":%d,"tags":["t%d"],"rawData":%q}`,
		month, day, id, duration, id%7, strings.Repeat("x", pad))
}

// tree maps every file under dir to its content.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			out[p] = string(b)
		}
		return nil
	})
	return out
}

// storeDigest reads the whole store through DuckDB (the path the server
// uses) and returns a digest of every row and the row count.
func storeDigest(t *testing.T, dataDir string) string {
	t.Helper()
	st, err := data.Open(dataDir, data.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := st.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	var digest sql.NullString
	q := `SELECT count(*), md5(string_agg(CAST(s AS VARCHAR), chr(10) ORDER BY s."userWorklogId")) FROM ` + data.ScanSQL(snap.Files) + ` s`
	if err := db.QueryRow(q).Scan(&n, &digest); err != nil {
		t.Fatalf("read store: %v", err)
	}
	return fmt.Sprintf("%d rows %s", n, digest.String)
}

func TestIngestCommand(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.ndjson", event(1, 1, 5, 10, 0)+"\n"+event(2, 2, 5, 20, 0)+"\n")
	bad := writeFile(t, dir, "bad.ndjson", event(3, 3, 5, 30, 0)+"\n"+
		`{"date":"2024-03-06 10:00:00","action":"readAction","userWorklogId":4,"duration":"abc"}`+"\n")
	store := filepath.Join(dir, "data")

	out, errOut, code := worklog(t, nil, "ingest", "--data", store, good)
	if code != 0 || !strings.HasPrefix(out, "ingested 2 events (new 2, updated 0, unchanged 0), 0 rejected, in ") {
		t.Fatalf("good: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	before := tree(t, filepath.Join(store, "worklog"))

	t.Run("fail names line and field, exits 1, changes nothing", func(t *testing.T) {
		out, errOut, code := worklog(t, nil, "ingest", "--data", store, bad)
		if code != 1 {
			t.Errorf("exit code %d, want 1", code)
		}
		if !strings.HasPrefix(errOut, `line 2: duration: expected integer, got "abc"`+"\n") {
			t.Errorf("stderr %q", errOut)
		}
		if !strings.HasPrefix(out, "ingested 0 events (new 0, updated 0, unchanged 0), 1 rejected") {
			t.Errorf("stdout %q", out)
		}
		after := tree(t, filepath.Join(store, "worklog"))
		if len(after) != len(before) {
			t.Errorf("files: %d, were %d", len(after), len(before))
		}
		for p, b := range before {
			if after[p] != b {
				t.Errorf("%s changed", p)
			}
		}
	})
	t.Run("several files prefix errors with the file name", func(t *testing.T) {
		_, errOut, code := worklog(t, nil, "ingest", "--data", store, good, bad)
		if code != 1 || !strings.HasPrefix(errOut, bad+`: line 2: duration: expected integer, got "abc"`) {
			t.Errorf("code %d, stderr %q", code, errOut)
		}
	})
	t.Run("skip commits the rest and writes rejects", func(t *testing.T) {
		rejects := filepath.Join(dir, "rejects.ndjson")
		out, errOut, code := worklog(t, nil, "ingest", "--data", store, "--on-error", "skip", "--rejects", rejects, bad)
		if code != 0 || !strings.HasPrefix(out, "ingested 1 events (new 1, updated 0, unchanged 0), 1 rejected") {
			t.Errorf("code %d, stdout %q, stderr %q", code, out, errOut)
		}
		got, _ := os.ReadFile(rejects)
		want := `{"date":"2024-03-06 10:00:00","action":"readAction","userWorklogId":4,"duration":"abc","_line":2,"_error":"line 2: duration: expected integer, got \"abc\""}` + "\n"
		if string(got) != want {
			t.Errorf("rejects %q\nwant     %q", got, want)
		}
		if leftovers, _ := filepath.Glob(filepath.Join(dir, ".rejects*")); len(leftovers) > 0 {
			t.Errorf("temp files left: %v", leftovers)
		}
	})
	t.Run("skip without a rejects file says why, the first 10 reasons", func(t *testing.T) {
		var dump strings.Builder
		dump.WriteString(event(50, 5, 1, 10, 0) + "\n")
		for i := range 13 {
			fmt.Fprintf(&dump, `{"date":"2024-05-02 10:00:00","action":"readAction","userWorklogId":%d,"duration":"x%d"}`+"\n", 60+i, i)
		}
		many := writeFile(t, dir, "many-bad.ndjson", dump.String())
		out, errOut, code := worklog(t, nil, "ingest", "--data", store, many, "--on-error", "skip")
		if code != 0 || !strings.HasPrefix(out, "ingested 1 events (new 1, updated 0, unchanged 0), 13 rejected") {
			t.Errorf("code %d, stdout %q, stderr %q", code, out, errOut)
		}
		lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
		if len(lines) != 11 {
			t.Fatalf("stderr has %d lines, want 10 reasons and a last line:\n%s", len(lines), errOut)
		}
		for i, l := range lines[:10] {
			if want := fmt.Sprintf(`line %d: duration: expected integer, got "x%d"`, i+2, i); l != want {
				t.Errorf("line %d: %q, want %q", i, l, want)
			}
		}
		if !strings.Contains(lines[10], "3 more rejected") || !strings.Contains(lines[10], "--rejects FILE") {
			t.Errorf("last line %q", lines[10])
		}
		// With a rejects file the reasons go there, not to the terminal.
		_, errOut, _ = worklog(t, nil, "ingest", "--data", store, many, "--on-error", "skip", "--rejects", filepath.Join(dir, "r.ndjson"))
		if strings.Contains(errOut, "line ") {
			t.Errorf("with --rejects, stderr %q", errOut)
		}
	})
	t.Run("the same dump again is unchanged", func(t *testing.T) {
		before := tree(t, filepath.Join(store, "worklog"))
		out, errOut, code := worklog(t, nil, "ingest", "--data", store, good)
		if code != 0 || !strings.HasPrefix(out, "ingested 2 events (new 0, updated 0, unchanged 2), 0 rejected, in ") {
			t.Fatalf("code %d, stdout %q, stderr %q", code, out, errOut)
		}
		after := tree(t, filepath.Join(store, "worklog"))
		for p, b := range before {
			if after[p] != b {
				t.Errorf("%s changed", p)
			}
		}
		if len(after) != len(before) {
			t.Errorf("files: %d, were %d", len(after), len(before))
		}
	})
	t.Run("stdin", func(t *testing.T) {
		out, _, code := worklog(t, strings.NewReader(event(2, 4, 1, 99, 0)+"\n"), "ingest", "--data", store, "-")
		if code != 0 || !strings.HasPrefix(out, "ingested 1 events (new 0, updated 1, unchanged 0), 0 rejected") {
			t.Errorf("code %d, stdout %q", code, out)
		}
	})
	t.Run("usage errors exit 2", func(t *testing.T) {
		for _, args := range [][]string{{"ingest", "--data", store}, {"ingest", "--on-error", "maybe", good}} {
			if _, _, code := worklog(t, nil, args...); code != 2 {
				t.Errorf("%v: exit code %d, want 2", args, code)
			}
		}
	})
}

func TestDemoCommand(t *testing.T) {
	store := t.TempDir()
	out, errOut, code := worklog(t, nil, "demo", "--rows", "2000", "--data", store)
	if code != 0 || !strings.HasPrefix(out, "ingested 2000 events (new 2000, updated 0, unchanged 0), 0 rejected") {
		t.Fatalf("code %d, stdout %q, stderr %q", code, out, errOut)
	}
	first := storeDigest(t, store)
	out, _, _ = worklog(t, nil, "demo", "--rows", "2000", "--data", store)
	if !strings.HasPrefix(out, "ingested 2000 events (new 0, updated 0, unchanged 2000), 0 rejected") {
		t.Errorf("second run: %q", out)
	}
	if again := storeDigest(t, store); again != first {
		t.Errorf("same demo twice changed the store: %s, was %s", again, first)
	}
}

// copyTree copies the directory src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestIngestSurvivesSIGKILL kills `worklog ingest` at moments spread over
// its run and checks that the store always reads back exactly as before the
// ingest or exactly as after it, and that the next ingest succeeds.
func TestIngestSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary many times")
	}
	dir := t.TempDir()
	var a, b strings.Builder
	for i := 1; i <= 6000; i++ {
		a.WriteString(event(i, 1+i%4, 1+i%28, i, 400) + "\n")
	}
	// The second dump updates half of the ids, moves some to other months
	// and adds new ones, over five months.
	for i := 3001; i <= 9000; i++ {
		b.WriteString(event(i, 1+(i+1)%5, 1+i%28, -i, 500) + "\n")
	}
	dumpA := writeFile(t, dir, "a.ndjson", a.String())
	dumpB := writeFile(t, dir, "b.ndjson", b.String())

	base := filepath.Join(dir, "base")
	if _, errOut, code := worklog(t, nil, "ingest", "--data", base, dumpA); code != 0 {
		t.Fatalf("ingest a: %s", errOut)
	}
	before := storeDigest(t, base)
	full := filepath.Join(dir, "full")
	copyTree(t, base, full)
	start := time.Now()
	if _, errOut, code := worklog(t, nil, "ingest", "--data", full, dumpB); code != 0 {
		t.Fatalf("ingest b: %s", errOut)
	}
	took := time.Since(start)
	after := storeDigest(t, full)
	if before == after {
		t.Fatal("the second dump changes nothing; the test would prove nothing")
	}

	// Moments from early in the read to past the end, denser around the
	// commit at the end of the run.
	const runs = 12
	seen := map[string]int{}
	for i := range runs {
		delay := took/10 + took*time.Duration(14*i)/time.Duration(10*(runs-1))
		work := filepath.Join(dir, fmt.Sprintf("run%d", i))
		copyTree(t, base, work)
		cmd := exec.Command(worklogBin(t), "ingest", "--data", work, dumpB)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		got := storeDigest(t, work)
		switch got {
		case before:
			seen["before"]++
		case after:
			seen["after"]++
		default:
			t.Errorf("killed after %v: store reads %s, want before (%s) or after (%s)", delay, got, before, after)
		}
		// The next writer recovers: the same ingest completes.
		if _, errOut, code := worklog(t, nil, "ingest", "--data", work, dumpB); code != 0 {
			t.Errorf("ingest after kill at %v: %s", delay, errOut)
		} else if got := storeDigest(t, work); got != after {
			t.Errorf("ingest after kill at %v: store reads %s, want %s", delay, got, after)
		}
		if tmp, _ := filepath.Glob(filepath.Join(work, "worklog", "month=*", "*.tmp")); len(tmp) > 0 {
			t.Errorf("temp files left after recovery: %v", tmp)
		}
	}
	t.Logf("full ingest took %v; killed runs read back as %v", took, seen)
}

// A store whose manifest went missing is refused by every command that
// opens it, with a message naming the directory and what to do, and
// nothing in it changes.
func TestMissingManifestRefused(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "data")
	good := writeFile(t, dir, "good.ndjson", event(1, 1, 5, 10, 0)+"\n"+event(2, 2, 5, 20, 0)+"\n")
	if out, errOut, code := worklog(t, nil, "ingest", "--data", store, good); code != 0 {
		t.Fatalf("ingest: code %d, %s %s", code, out, errOut)
	}
	storeDir := filepath.Join(store, "worklog")
	if err := os.Rename(filepath.Join(storeDir, "_manifest.json"), filepath.Join(dir, "manifest.bak")); err != nil {
		t.Fatal(err)
	}
	before := tree(t, storeDir)
	more := writeFile(t, dir, "more.ndjson", event(3, 1, 6, 10, 0)+"\n")
	for _, args := range [][]string{
		{"ingest", "--data", store, more},
		{"serve", "--data", store, "--jwt-secret", "s3cret-s3cret-s3cret-s3cret-s3cret", "--addr", freeAddr(t)},
		{"export", "--data", store, "--privacy-level", "none", "--out", filepath.Join(dir, "x.json")},
	} {
		_, errOut, code := worklog(t, nil, args...)
		if code != 1 || !strings.Contains(errOut, storeDir) || !strings.Contains(errOut, "no _manifest.json") || !strings.Contains(errOut, "restore") {
			t.Errorf("%s: exit code %d, stderr %q; want 1 and a message naming %s and what to do", args[0], code, errOut, storeDir)
		}
	}
	after := tree(t, storeDir)
	if len(after) != len(before) {
		t.Errorf("files: %d, were %d", len(after), len(before))
	}
	for p, b := range before {
		if after[p] != b {
			t.Errorf("%s changed or removed", p)
		}
	}
}

// TestIngestRefusesGiantLine: a line beyond --max-record-bytes (here from
// standard input, 8 MiB against 1 MiB) ends the ingest with exit code 1 and
// a line-numbered error naming the setting; nothing is committed.
func TestIngestRefusesGiantLine(t *testing.T) {
	dir := t.TempDir()
	in := event(1, 1, 1, 10, 0) + "\n" + `{"date":"2024-01-02 00:00:00","action":"readAction","userWorklogId":2,"rawData":"` +
		strings.Repeat("x", 8<<20) + "\"}\n"
	_, errOut, code := worklog(t, strings.NewReader(in), "ingest", "--data", dir, "--max-record-bytes", "1MiB", "-")
	if code != 1 || !strings.Contains(errOut, "line 2: the record is larger than 1048576 bytes") || !strings.Contains(errOut, "--max-record-bytes") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "worklog", "month=*", "*.parquet")); len(files) != 0 {
		t.Errorf("a refused ingest committed %v", files)
	}
	if _, errOut, code := worklog(t, nil, "ingest", "--data", dir, "--max-record-bytes", "lots", "-"); code != 2 || !strings.Contains(errOut, "--max-record-bytes") {
		t.Errorf("bad setting: exit %d, stderr %q", code, errOut)
	}
}

// The first ingest creates the pseudonym key with the first events; a store
// whose key file is then lost is refused by serve and export with a message
// saying how to restore or rotate, and no new key is written.
func TestLostPseudonymKeyRefused(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "data")
	good := writeFile(t, dir, "good.ndjson", event(1, 1, 5, 10, 0)+"\n")
	if _, errOut, code := worklog(t, nil, "ingest", "--data", store, good); code != 0 {
		t.Fatalf("ingest: %d %s", code, errOut)
	}
	keyPath := filepath.Join(store, "pseudonym.key")
	if _, err := os.Stat(keyPath); err != nil {
		t.Fatalf("the first ingest made no key: %v", err)
	}
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"serve", "--data", store, "--jwt-secret", "s3cret-s3cret-s3cret-s3cret-s3cret", "--addr", freeAddr(t)},
		{"export", "--data", store, "--out", filepath.Join(dir, "x.json")},
	} {
		_, errOut, code := worklog(t, nil, args...)
		if code != 1 || !strings.Contains(errOut, keyPath) || !strings.Contains(errOut, "Restore") || !strings.Contains(errOut, "rotate") {
			t.Errorf("%s: exit %d, stderr %q; want 1 and how to restore or rotate %s", args[0], code, errOut, keyPath)
		}
		if _, err := os.Stat(keyPath); err == nil {
			t.Fatalf("%s wrote a new key", args[0])
		}
	}
	// Given on purpose, a key is used.
	if _, errOut, code := worklog(t, nil, "export", "--data", store, "--pseudonym-key", "a new key, chosen on purpose", "--out", filepath.Join(dir, "y.json")); code != 0 {
		t.Errorf("export with --pseudonym-key: %d %s", code, errOut)
	}
}
