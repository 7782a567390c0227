package iceberg_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/table"

	"worklog/data"
	"worklog/data/iceberg"
	"worklog/export"
	"worklog/ingest"
	"worklog/internal/storetest"
	"worklog/privacy"
	"worklog/query"
)

// env is a store that publishes to its Iceberg table, with the engine that
// exports it.
type env struct {
	dir    string
	store  *data.Store
	table  *iceberg.Table
	engine *query.Engine
	key    []byte
}

func newEnv(t *testing.T, dir string, opts iceberg.Options) *env {
	t.Helper()
	tbl, err := iceberg.New(filepath.Join(dir, "worklog"), opts)
	if err != nil {
		t.Fatal(err)
	}
	// A negative grace deletes replaced files right after a commit unless
	// something keeps them: here, the retained snapshots.
	store, err := data.Open(dir, data.StoreOptions{Publisher: tbl, RetireGrace: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	engine, err := query.NewEngine(store, query.EngineOptions{TempDirectory: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Close() })
	key, err := privacy.LoadOrCreateKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	return &env{dir: dir, store: store, table: tbl, engine: engine, key: key}
}

func (e *env) ingest(t *testing.T, dump string) {
	t.Helper()
	if _, err := ingest.Run(context.Background(), e.store, []ingest.Input{{Name: "dump", R: strings.NewReader(dump)}}, ingest.Options{}); err != nil {
		t.Fatal(err)
	}
}

// row is one event as the comparisons see it: every value as JSON would
// carry it, integers and floats as decimal strings.
type row map[string]any

// exportRows is the JSON export at level none, ordered by userWorklogId.
func (e *env) exportRows(t *testing.T) []row {
	t.Helper()
	pol, err := privacy.NewPolicy(privacy.None, nil, e.key)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := query.Parse(url.Values{"format": {"json"}, "orderByField": {"userWorklogId"}, "orderByDirection": {"asc"}},
		export.PlanOptions(pol, export.FormatJSON))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := e.engine.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := export.Run(context.Background(), export.Request{Engine: e.engine, Snapshot: snap, Plan: plan, Policy: pol, Format: export.FormatJSON}, &buf, nil); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&buf)
	dec.UseNumber()
	var rows []map[string]any
	if err := dec.Decode(&rows); err != nil {
		t.Fatalf("export: %v", err)
	}
	out := make([]row, len(rows))
	for i, r := range rows {
		out[i] = normalize(t, r)
	}
	return out
}

// normalize brings a row from any reader to one form: numbers as decimal
// strings, lists as []any of strings (an export writes a list as a JSON
// array or as its text).
func normalize(t *testing.T, r map[string]any) row {
	t.Helper()
	out := row{}
	for _, f := range data.Fields() {
		v, ok := r[f.Name]
		if !ok {
			t.Fatalf("row without %s: %v", f.Name, r)
		}
		switch x := v.(type) {
		case json.Number:
			v = x.String()
		case float64:
			v = strconv.FormatFloat(x, 'g', -1, 64)
		case string:
			if f.Kind == data.KindList {
				var l []any
				if err := json.Unmarshal([]byte(x), &l); err != nil {
					t.Fatalf("%s: %q is not a list", f.Name, x)
				}
				v = l
			}
			if f.Kind == data.KindFloat || f.Kind == data.KindInt || f.Kind == data.KindFlag {
				n, err := strconv.ParseFloat(x, 64)
				if err != nil {
					t.Fatalf("%s: %q is not a number", f.Name, x)
				}
				v = strconv.FormatFloat(n, 'g', -1, 64)
			}
		case []any:
			if len(x) == 0 {
				v = []any{}
			}
		}
		if n, ok := v.(string); ok && (f.Kind == data.KindFloat || f.Kind == data.KindInt || f.Kind == data.KindFlag) {
			f, err := strconv.ParseFloat(n, 64)
			if err == nil {
				v = strconv.FormatFloat(f, 'g', -1, 64)
			}
		}
		out[f.Name] = v
	}
	return out
}

// scanRows reads the table's current snapshot with iceberg-go's scan.
func (e *env) scanRows(t *testing.T, opts ...table.ScanOption) []row {
	t.Helper()
	tbl, err := e.table.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	at, err := tbl.Scan(opts...).ToArrowTable(context.Background())
	if err != nil {
		t.Fatalf("iceberg scan: %v", err)
	}
	defer at.Release()
	var out []row
	tr := array.NewTableReader(at, 1024)
	defer tr.Release()
	for tr.Next() {
		rec := tr.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			r := map[string]any{}
			for c, fld := range rec.Schema().Fields() {
				r[fld.Name] = arrowValue(t, rec.Column(c), i)
			}
			out = append(out, normalize(t, r))
		}
	}
	sortRows(out)
	return out
}

func arrowValue(t *testing.T, col arrow.Array, i int) any {
	if col.IsNull(i) {
		return nil
	}
	switch c := col.(type) {
	case *array.Int64:
		return strconv.FormatInt(c.Value(i), 10)
	case *array.Float64:
		return strconv.FormatFloat(c.Value(i), 'g', -1, 64)
	case *array.String:
		return c.Value(i)
	case *array.LargeString:
		return c.Value(i)
	case *array.Timestamp:
		unit := c.DataType().(*arrow.TimestampType).Unit
		return c.Value(i).ToTime(unit).UTC().Format(data.TimestampLayout)
	case array.ListLike:
		start, end := c.ValueOffsets(i)
		l := []any{}
		for j := start; j < end; j++ {
			l = append(l, arrowValue(t, c.ListValues(), int(j)))
		}
		return l
	}
	t.Fatalf("unexpected arrow column %T", col)
	return nil
}

func sortRows(rows []row) {
	slices.SortFunc(rows, func(a, b row) int {
		x, _ := strconv.ParseInt(a["userWorklogId"].(string), 10, 64)
		y, _ := strconv.ParseInt(b["userWorklogId"].(string), 10, 64)
		return int(x - y)
	})
}

// nodeReader returns the node binary, or skips the test (fails it under
// CI=true) naming what to install.
func nodeReader(t *testing.T) string {
	t.Helper()
	missing := ""
	node, err := exec.LookPath("node")
	if err != nil {
		missing = "node is not installed (Debian packages nodejs and npm)"
	} else if _, err := os.Stat(filepath.Join("testdata", "js", "node_modules", "icebird")); err != nil {
		missing = "the npm package icebird is not installed: run npm ci in data/iceberg/testdata/js"
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

// serveDir serves dir over HTTP on loopback until the test ends.
func serveDir(t *testing.T, dir string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// nodeRows reads the table with icebird over HTTP.
func (e *env) nodeRows(t *testing.T, node, base string) ([]row, string) {
	t.Helper()
	abs, err := filepath.Abs(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	filePrefix := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
	cmd := exec.Command(node, "read.mjs", base+"/worklog", filePrefix, base)
	cmd.Dir = filepath.Join("testdata", "js")
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("node read.mjs: %v\n%s", err, ee.Stderr)
	}
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Version string
		Rows    []map[string]any
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("node output: %v\n%.300s", err, out)
	}
	rows := make([]row, len(got.Rows))
	for i, r := range got.Rows {
		rows[i] = normalize(t, r)
	}
	sortRows(rows)
	return rows, got.Version
}

func equalRows(t *testing.T, what string, got, want []row) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			for k := range want[i] {
				if !reflect.DeepEqual(got[i][k], want[i][k]) {
					t.Errorf("%s: row %d (userWorklogId %v) %s = %#v, want %#v", what, i, want[i]["userWorklogId"], k, got[i][k], want[i][k])
				}
			}
			t.FailNow()
		}
	}
}

// check compares the table, read by iceberg-go and by icebird, with the
// store's JSON export.
func (e *env) check(t *testing.T, node, base string) {
	t.Helper()
	want := e.exportRows(t)
	equalRows(t, "iceberg-go scan", e.scanRows(t), want)
	if node != "" {
		got, version := e.nodeRows(t, node, base)
		equalRows(t, "icebird "+version, got, want)
	}
	e.checkGeneration(t)
}

// checkGeneration checks that the table says it holds the store's
// generation.
func (e *env) checkGeneration(t *testing.T) {
	t.Helper()
	snap, err := e.store.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := e.table.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.FormatUint(snap.Generation, 10)
	if got := tbl.Properties().Get(iceberg.GenerationKey, ""); got != want {
		t.Errorf("table generation %q, want %q", got, want)
	}
	if cur := tbl.CurrentSnapshot(); cur != nil && cur.Summary.Properties[iceberg.GenerationKey] != want {
		t.Errorf("current snapshot's generation %q, want %q", cur.Summary.Properties[iceberg.GenerationKey], want)
	}
}

// updateDump changes some fixture events (one moves to another month) and
// adds new ones.
func updateDump(t *testing.T, fixture string) string {
	t.Helper()
	var b strings.Builder
	for i, line := range strings.Split(strings.TrimSpace(fixture), "\n") {
		if i%5 != 0 {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		ev["duration"] = 1000 + i
		ev["status"] = fmt.Sprintf("updated-%d", i)
		if i == 5 {
			ev["date"] = "2024-09-01 08:00:00"
		}
		out, _ := json.Marshal(ev)
		b.Write(out)
		b.WriteByte('\n')
		ev["userWorklogId"] = 100000 + i
		ev["tags"] = []string{"new", "tag"}
		out, _ = json.Marshal(ev)
		b.Write(out)
		b.WriteByte('\n')
	}
	return b.String()
}

// TestPublishedTableEqualsStore ingests, updates, prunes and forgets, and
// after each commit reads the Iceberg table with iceberg-go and with
// icebird over HTTP: the rows equal the JSON export at level none.
func TestPublishedTableEqualsStore(t *testing.T) {
	node := nodeReader(t)
	dir := t.TempDir()
	e := newEnv(t, dir, iceberg.Options{})
	base := serveDir(t, dir)
	fixture := storetest.Fixture(t)

	e.ingest(t, fixture)
	e.check(t, node, base)
	first, err := e.store.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := e.table.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	firstID := tbl.CurrentSnapshot().SnapshotID
	if op := tbl.CurrentSnapshot().Summary.Operation; op != table.OpAppend {
		t.Errorf("first ingest: operation %s, want append", op)
	}

	e.ingest(t, updateDump(t, fixture))
	e.check(t, node, base)
	tbl, err = e.table.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if op := tbl.CurrentSnapshot().Summary.Operation; op != table.OpOverwrite {
		t.Errorf("update ingest: operation %s, want overwrite", op)
	}
	// The first snapshot is retained (24h), so the files it lists are
	// kept although the store retired them with no grace.
	for _, f := range first.Files {
		if _, err := os.Stat(f.Path); err != nil {
			t.Errorf("file of a retained snapshot: %v", err)
		}
	}
	old := e.scanRows(t, table.WithSnapshotID(firstID))
	if len(old) != int(first.Rows()) {
		t.Errorf("first snapshot read back %d rows, want %d", len(old), first.Rows())
	}

	if _, err := ingest.Prune(context.Background(), e.store, time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC), ingest.LifecycleOptions{}); err != nil {
		t.Fatal(err)
	}
	e.check(t, node, base)

	if _, err := ingest.Forget(context.Background(), e.store, 2, ingest.Anonymize, ingest.LifecycleOptions{}); err != nil {
		t.Fatal(err)
	}
	e.check(t, node, base)
	if _, err := ingest.Forget(context.Background(), e.store, 1, ingest.Delete, ingest.LifecycleOptions{}); err != nil {
		t.Fatal(err)
	}
	e.check(t, node, base)
}

// crashDirEnv names the data directory of crashHelper's child process.
const crashDirEnv = "WORKLOG_ICEBERG_CRASH_DIR"

// killingPublisher kills its own process with SIGKILL when asked to
// publish generation gen: the state a crash between the store's commit
// point and the Iceberg publish leaves.
type killingPublisher struct {
	*iceberg.Table
	gen uint64
}

func (p killingPublisher) Publish(ctx context.Context, snap data.Snapshot) error {
	if snap.Generation == p.gen {
		killSelf()
	}
	return p.Table.Publish(ctx, snap)
}

// TestCrashHelper is the child process of TestCrashBeforePublish: it
// ingests the update dump into the store of crashDirEnv and dies in its
// publish.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("the child process of TestCrashBeforePublish")
	}
	tbl, err := iceberg.New(filepath.Join(dir, "worklog"), iceberg.Options{})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := data.Open(dir, data.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := snap.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	snap.Close()
	store, err := data.Open(dir, data.StoreOptions{Publisher: killingPublisher{Table: tbl, gen: s.Generation + 1}, RetireGrace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ingest.Run(context.Background(), store, []ingest.Input{{Name: "update", R: strings.NewReader(updateDump(t, storetest.Fixture(t)))}}, ingest.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Fatal("the publish of the update did not kill the process")
}

// TestCrashBeforePublish kills an ingest (SIGKILL) after its commit point
// and before its publish: the table is one generation behind, and the next
// open publishes, after which the table equals the store again.
func TestCrashBeforePublish(t *testing.T) {
	node := nodeReader(t)
	dir := t.TempDir()
	e := newEnv(t, dir, iceberg.Options{})
	e.ingest(t, storetest.Fixture(t))
	e.store.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !killedBySIGKILL(ee) {
		t.Fatalf("child: %v, want death by SIGKILL\n%s", err, out)
	}

	// The store committed generation 2, the table still holds 1.
	tbl, err := e.table.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if g := tbl.Properties().Get(iceberg.GenerationKey, ""); g != "1" {
		t.Fatalf("table generation %q after the crash, want 1", g)
	}
	// The next open publishes.
	e2 := newEnv(t, dir, iceberg.Options{})
	if s, _ := e2.store.Snapshot(); s.Generation != 2 {
		t.Fatalf("store generation %d, want 2", s.Generation)
	}
	e2.check(t, node, serveDir(t, dir))
}

// TestSnapshotExpiry: a snapshot replaced longer than the retention ago is
// expired at the next publish, its manifest list is deleted, and the store
// then deletes the part files only it listed.
func TestSnapshotExpiry(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir, iceberg.Options{SnapshotRetention: time.Hour})
	fixture := storetest.Fixture(t)
	e.ingest(t, fixture)
	first, err := e.store.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := e.table.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s1 := tbl.CurrentSnapshot()
	e.ingest(t, updateDump(t, fixture))
	second, err := e.store.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	tbl, err = e.table.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The first snapshot was current until this commit: it stays for the
	// retention.
	if tbl.SnapshotByID(s1.SnapshotID) == nil {
		t.Fatal("the snapshot just replaced was expired")
	}
	live := map[string]bool{}
	for _, f := range second.Files {
		live[f.Path] = true
	}
	var replaced []string
	for _, f := range first.Files {
		if !live[f.Path] {
			replaced = append(replaced, f.Path)
		}
	}
	if len(replaced) == 0 {
		t.Fatal("the update replaced no file")
	}
	for _, p := range replaced {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("file of a retained snapshot: %v", err)
		}
	}

	// Once the retention has passed since the first snapshot was replaced
	// (the clock moved past it), the next open expires it: its sweep still
	// saw the snapshot, the next writer's deletes its files.
	later := time.UnixMilli(tbl.CurrentSnapshot().TimestampMs).Add(time.Hour + time.Millisecond)
	e.store.Close()
	e = newEnv(t, dir, iceberg.Options{SnapshotRetention: time.Hour, Now: func() time.Time { return later }})
	tbl, err = e.table.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tbl.Metadata().Snapshots()); n != 1 || tbl.SnapshotByID(s1.SnapshotID) != nil {
		t.Fatalf("%d snapshots after expiry, want only the current one", n)
	}
	u, err := url.Parse(s1.ManifestList)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(u.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the expired snapshot's manifest list: %v, want it deleted", err)
	}
	tx, err := e.store.Begin(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	tx.Rollback()
	for _, p := range replaced {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("replaced file %s: %v, want it deleted once no snapshot lists it", filepath.Base(p), err)
		}
	}
	for p := range live {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("live file: %v", err)
		}
	}
	equalRows(t, "iceberg-go scan", e.scanRows(t), e.exportRows(t))
}
