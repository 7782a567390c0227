package iceberg

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	ice "github.com/apache/iceberg-go"

	"worklog/data"
	"worklog/ingest"
	"worklog/internal/storetest"
)

// A table created when the catalogue had one field fewer gets the new
// field as a new schema at the next publish: the old fields keep their
// ids, the new one gets the id a new table would give it, and the rows
// read back with it.
func TestPublishAddsCatalogueFields(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tbl, err := New(filepath.Join(dir, "worklog"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	full, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	fields := full.Fields()
	older := ice.NewSchema(0, fields[:len(fields)-1]...)
	if _, err := tbl.createWith(ctx, 1, older); err != nil {
		t.Fatal(err)
	}
	store, err := data.Open(dir, data.StoreOptions{Publisher: tbl})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	fixture := storetest.Fixture(t)
	if _, err := ingest.Run(ctx, store, []ingest.Input{{Name: "fixture", R: strings.NewReader(fixture)}}, ingest.Options{}); err != nil {
		t.Fatal(err)
	}
	if n := store.PublishFailures(); n != 0 {
		t.Fatalf("%d publish failures", n)
	}
	it, err := tbl.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !it.Schema().Equals(full) {
		t.Fatalf("table schema\n%s\nwant the catalogue's\n%s", it.Schema(), full)
	}
	if n := len(it.Metadata().Schemas()); n != 2 {
		t.Errorf("%d schemas, want the older one and the new one", n)
	}
	at, err := it.Scan().ToArrowTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	if want := int64(strings.Count(strings.TrimSpace(fixture), "\n") + 1); at.NumRows() != want {
		t.Errorf("%d rows, want %d", at.NumRows(), want)
	}
	last := fields[len(fields)-1]
	if at.Schema().Field(int(at.NumCols())-1).Name != last.Name {
		t.Errorf("last column %s, want %s", at.Schema().Field(int(at.NumCols())-1).Name, last.Name)
	}
}
