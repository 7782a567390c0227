// Package storetest builds what tests of the upper layers sit on: a real
// Parquet store in a temporary data directory, filled by real ingests, with
// its DuckDB engine and pseudonym key. Only tests import it.
package storetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"worklog/data"
	"worklog/ingest"
	"worklog/privacy"
	"worklog/query"
)

// Backend is a store, its engine and its pseudonym key; all are closed when
// the test ends.
type Backend struct {
	// Dir is the data directory.
	Dir    string
	Store  *data.Store
	Engine *query.Engine
	Key    []byte
}

// New ingests the NDJSON dumps, one commit each, into a fresh store.
func New(t testing.TB, dumps ...string) Backend {
	t.Helper()
	dir := t.TempDir()
	store, err := data.Open(dir, data.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	for i, d := range dumps {
		if _, err := ingest.Run(context.Background(), store, []ingest.Input{{Name: fmt.Sprintf("dump%d", i), R: strings.NewReader(d)}}, ingest.Options{}); err != nil {
			t.Fatalf("ingest dump %d: %v", i, err)
		}
	}
	engine, err := query.NewEngine(store, query.EngineOptions{TempDirectory: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Close() })
	key, err := privacy.LoadOrCreateKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	return Backend{Dir: dir, Store: store, Engine: engine, Key: key}
}

// Fixture returns the query package's fixture dump: the reference's example
// event plus 32 varied rows over four months.
func Fixture(t testing.TB) string {
	t.Helper()
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("storetest: cannot locate the fixture")
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(self), "..", "..", "query", "testdata", "events.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
