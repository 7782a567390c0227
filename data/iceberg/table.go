// Package iceberg publishes the store as an Apache Iceberg table (SPEC §13),
// so that Spark, Trino, Snowflake, Athena or DuckDB read a consistent table
// over the same Parquet files, never a half-written ingest or a replaced
// file.
//
// The store's manifest stays the commit point. After every commit the store
// calls Table.Publish (data.Publisher) with the state it just committed, still
// under its writer lock; Publish makes that state the table's current
// snapshot: an append when the commit only added part files, an overwrite
// when it replaced some (an update ingest, prune, forget). Store.Open calls
// it too, so a crash between the manifest and the table (or a publish that
// failed) is repaired by the next open: the table always equals a committed
// generation of the store, and says which in the snapshot summary and the
// table property "worklog.generation".
//
// iceberg-go writes everything Iceberg-specific: the Avro manifests and
// manifest lists, and the metadata JSON. This package decides what to add
// and remove, and installs each metadata file (catalog.go) with
// internal/fsutil.
//
// Snapshots older than the retention (--snapshot-retention) are expired at
// each publish; the current one is always kept. The store deletes a retired
// part file only when no retained snapshot lists it (Table.Referenced), so
// an engine reading any retained snapshot finds all its files.
//
// The table's location is <data>/worklog, its metadata in
// <data>/worklog/metadata; data file paths are absolute file:// URIs, as
// Iceberg requires. A data directory moved or restored elsewhere is
// republished as a new table (new UUID, no history) at its new location.
package iceberg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	ice "github.com/apache/iceberg-go"
	icebergio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"

	"worklog/data"
)

// DefaultSnapshotRetention is how long snapshots stay readable after a
// newer one replaced them, when Options.SnapshotRetention is zero.
const DefaultSnapshotRetention = 24 * time.Hour

// GenerationKey is the snapshot-summary key and table property that record
// the store generation a snapshot equals.
const GenerationKey = "worklog.generation"

// Options configure a Table.
type Options struct {
	// SnapshotRetention is how long a snapshot stays in the table after it
	// stopped being the current one; older ones are expired at the next
	// publish. Zero means DefaultSnapshotRetention.
	SnapshotRetention time.Duration
	// Logger receives what publishing could not do. Nil means
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock that decides when a snapshot's retention has
	// passed; nil means time.Now. Tests move it instead of waiting.
	Now func() time.Time
}

// Table is the Iceberg table of one store. Its methods are safe for
// concurrent use; writes happen only under the store's writer lock (the
// store calls Publish with it held).
type Table struct {
	dir       string // <data>/worklog, absolute
	metaDir   string // <dir>/metadata
	location  string // file URI of dir
	retention time.Duration
	now       func() time.Time
	log       *slog.Logger
	io        fileIO

	mu sync.Mutex
	// manifestFiles caches the live data files each manifest lists:
	// manifests never change once written.
	manifestFiles map[string][]string
}

var _ data.Publisher = (*Table)(nil)

// Ident is the table's identifier for iceberg-go.
var Ident = table.Identifier{"worklog"}

// New returns the table of the store in storeDir (<data>/worklog). It
// touches nothing on disk: the first Publish creates the table.
func New(storeDir string, opts Options) (*Table, error) {
	abs, err := filepath.Abs(storeDir)
	if err != nil {
		return nil, fmt.Errorf("iceberg table dir: %w", err)
	}
	t := &Table{
		dir:           abs,
		metaDir:       filepath.Join(abs, metadataDirName),
		location:      fileURI(abs),
		retention:     opts.SnapshotRetention,
		now:           opts.Now,
		log:           opts.Logger,
		manifestFiles: map[string][]string{},
	}
	if t.now == nil {
		t.now = time.Now
	}
	if t.retention <= 0 {
		t.retention = DefaultSnapshotRetention
	}
	if t.log == nil {
		t.log = slog.Default()
	}
	t.io = fileIO{metaDir: t.metaDir}
	return t, nil
}

// Location is the table's location, a file:// URI of <data>/worklog.
func (t *Table) Location() string { return t.location }

// MetadataDir is the absolute path of the table's metadata directory.
func (t *Table) MetadataDir() string { return t.metaDir }

func (t *Table) fs(context.Context) (icebergio.IO, error) { return t.io, nil }

// Load returns the table's current state, for reading it with iceberg-go
// (Scan). It fails with an error matching ErrNoTable before the first
// publish.
func (t *Table) Load(ctx context.Context) (*table.Table, error) {
	tbl, _, err := t.load(ctx)
	return tbl, err
}

// ErrNoTable is returned by Load before the table was first published.
var ErrNoTable = errNoTable

// load reads the current metadata version.
func (t *Table) load(ctx context.Context) (*table.Table, int, error) {
	v, err := currentVersion(t.metaDir)
	if err != nil {
		return nil, 0, err
	}
	loc := fileURI(filepath.Join(t.metaDir, metadataName(v)))
	tbl, err := table.NewFromLocation(ctx, Ident, loc, t.fs, catalog{t})
	if err != nil {
		return nil, 0, fmt.Errorf("load iceberg table %s: %w", loc, err)
	}
	return tbl, v, nil
}

// create writes a new table, with no snapshot, as metadata version v.
func (t *Table) create(ctx context.Context, v int) (*table.Table, error) {
	sc, err := Schema()
	if err != nil {
		return nil, err
	}
	return t.createWith(ctx, v, sc)
}

// nameMapping is the table property that maps the Parquet files' columns,
// which carry no field ids, to sc's fields by name.
func nameMapping(sc *ice.Schema) (string, error) {
	b, err := json.Marshal(sc.NameMapping())
	if err != nil {
		return "", fmt.Errorf("encode name mapping: %w", err)
	}
	return string(b), nil
}

// createWith is create with the schema as a parameter, for tests.
func (t *Table) createWith(ctx context.Context, v int, sc *ice.Schema) (*table.Table, error) {
	spec, err := partitionSpec(sc)
	if err != nil {
		return nil, err
	}
	mapping, err := nameMapping(sc)
	if err != nil {
		return nil, err
	}
	b, err := table.NewMetadataBuilder(2)
	if err != nil {
		return nil, err
	}
	props := ice.Properties{
		// The store's Parquet files carry no Iceberg field ids: readers
		// map their columns by name.
		table.DefaultNameMappingKey: mapping,
		// Old metadata files go with the metadata log's oldest entries.
		table.MetadataDeleteAfterCommitEnabledKey: "true",
		table.MetadataPreviousVersionsMaxKey:      "100",
		"worklog.note":                            "published by worklog from its store's commits; write to the store with worklog, never to this table",
	}
	steps := []error{
		b.SetUUID(uuid.New()),
		b.SetLoc(t.location),
		b.AddSchema(sc),
		b.SetCurrentSchemaID(-1),
		b.AddPartitionSpec(&spec, true),
		b.SetDefaultSpecID(-1),
		b.AddSortOrder(&table.UnsortedSortOrder),
		b.SetDefaultSortOrderID(-1),
		b.SetProperties(props),
	}
	if err := errors.Join(steps...); err != nil {
		return nil, fmt.Errorf("build table metadata: %w", err)
	}
	md, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("build table metadata: %w", err)
	}
	loc, err := t.writeMetadata(md, v)
	if err != nil {
		return nil, err
	}
	return table.New(Ident, md, loc, t.fs, catalog{t}), nil
}

// Publish makes snap, a committed state of the store, the table's current
// snapshot, and expires snapshots past the retention. It does nothing when
// the table already holds snap's generation. The caller holds the store's
// writer lock.
func (t *Table) Publish(ctx context.Context, snap data.Snapshot) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepTemp()
	tbl, v, err := t.load(ctx)
	switch {
	case errors.Is(err, errNoTable):
		if tbl, err = t.create(ctx, 1); err != nil {
			return fmt.Errorf("create iceberg table: %w", err)
		}
	case err != nil:
		return err
	case tbl.Location() != t.location:
		// The data directory was moved or restored elsewhere: the old
		// table's paths name files that are not here.
		t.log.Warn("iceberg: the table's location is not the data directory's; publishing a new table here",
			"table_location", tbl.Location(), "location", t.location)
		if tbl, err = t.create(ctx, v+1); err != nil {
			return fmt.Errorf("recreate iceberg table: %w", err)
		}
	}
	if tbl, err = t.evolve(ctx, tbl); err != nil {
		return fmt.Errorf("update the table schema: %w", err)
	}
	gen := strconv.FormatUint(snap.Generation, 10)
	if tbl.Properties().Get(GenerationKey, "") != gen {
		if tbl, err = t.publish(ctx, tbl, snap, gen); err != nil {
			return fmt.Errorf("publish generation %s: %w", gen, err)
		}
	}
	if err := t.expire(ctx, tbl); err != nil {
		return fmt.Errorf("expire snapshots: %w", err)
	}
	return nil
}

// evolve makes the catalogue's schema the table's current one when they
// differ: the catalogue gained a field since the table was created. The
// schema comes with its own field ids (Schema), so a new field gets the
// id a new table would give it, and no existing id moves.
func (t *Table) evolve(ctx context.Context, tbl *table.Table) (*table.Table, error) {
	want, err := Schema()
	if err != nil {
		return nil, err
	}
	cur := tbl.Schema()
	if cur.Equals(want) {
		return tbl, nil
	}
	for _, f := range cur.Fields() {
		w, ok := want.FindFieldByID(f.ID)
		if !ok || w.Name != f.Name || !w.Type.Equals(f.Type) {
			return nil, fmt.Errorf("column %d (%s %s) of the table is not the catalogue's: "+
				"the catalogue only adds fields; move %s away to publish a new table", f.ID, f.Name, f.Type, t.metaDir)
		}
	}
	mapping, err := nameMapping(want)
	if err != nil {
		return nil, err
	}
	reqs := []table.Requirement{table.AssertCurrentSchemaID(cur.ID)}
	updates := []table.Update{
		table.NewAddSchemaUpdate(want),
		table.NewSetCurrentSchemaUpdate(-1),
		table.NewSetPropertiesUpdate(ice.Properties{table.DefaultNameMappingKey: mapping}),
	}
	if _, _, err := (catalog{t}).CommitTable(ctx, Ident, reqs, updates); err != nil {
		return nil, err
	}
	tbl, _, err = t.load(ctx)
	return tbl, err
}

// publish commits the difference between the table's current snapshot and
// snap: the new part files added, the ones snap no longer lists removed.
func (t *Table) publish(ctx context.Context, tbl *table.Table, snap data.Snapshot, gen string) (*table.Table, error) {
	published := map[string]ice.DataFile{}
	if cur := tbl.CurrentSnapshot(); cur != nil {
		mans, err := cur.Manifests(t.io)
		if err != nil {
			return nil, fmt.Errorf("read manifests: %w", err)
		}
		for _, m := range mans {
			for e, err := range m.Entries(t.io, true) {
				if err != nil {
					return nil, fmt.Errorf("read manifest %s: %w", m.FilePath(), err)
				}
				published[e.DataFile().FilePath()] = e.DataFile()
			}
		}
	}
	want := make(map[string]bool, len(snap.Files))
	var add []ice.DataFile
	for _, f := range snap.Files {
		p := fileURI(f.Path)
		want[p] = true
		if published[p] != nil {
			continue
		}
		df, err := table.FileToDataFile(ctx, t.io, p, tbl.Schema(), tbl.Spec(), 0, tbl.Properties())
		if err != nil {
			return nil, fmt.Errorf("read part %s: %w", f.Path, err)
		}
		add = append(add, df)
	}
	var del []ice.DataFile
	for _, p := range slices.Sorted(maps.Keys(published)) {
		if !want[p] {
			del = append(del, published[p])
		}
	}
	tx := tbl.NewTransaction()
	if err := tx.SetProperties(ice.Properties{GenerationKey: gen}); err != nil {
		return nil, err
	}
	props := ice.Properties{GenerationKey: gen}
	var err error
	switch {
	case len(del) > 0:
		err = tx.ReplaceDataFilesWithDataFiles(ctx, del, add, props)
	case len(add) > 0:
		err = tx.AddDataFiles(ctx, add, props)
	}
	if err != nil {
		return nil, err
	}
	return tx.Commit(ctx)
}

// expire drops the snapshots that stopped being current longer than the
// retention ago (a snapshot stops being current when the next one is
// committed); iceberg-go then deletes their manifests and manifest lists
// (fileIO keeps the data files). The current snapshot always stays.
func (t *Table) expire(ctx context.Context, tbl *table.Table) error {
	cur := tbl.CurrentSnapshot()
	if cur == nil {
		return nil
	}
	keep := retainCount(table.AncestorsOf(cur.SnapshotID, tbl.SnapshotByID), t.now().Add(-t.retention).UnixMilli())
	if keep >= len(tbl.Metadata().Snapshots()) {
		return nil
	}
	// iceberg-go ages a snapshot from its own commit, on the wall clock:
	// WithRetainLast keeps those replaced within the retention, whatever
	// their age, and no age limit of its own (0) leaves the decision to
	// keep, on t.now. (A snapshot replaced before the cutoff was committed
	// before it too, so an age limit of the retention would add nothing.)
	tx := tbl.NewTransaction()
	if err := tx.ExpireSnapshots(table.WithOlderThan(0), table.WithRetainLast(keep)); err != nil {
		return err
	}
	_, err := tx.Commit(ctx)
	return err
}

// retainCount is how many of history (the current snapshot and its
// ancestors, newest first) to keep: the current one, and each one whose
// successor was committed at or after cutoff (Unix ms).
func retainCount(history []table.Snapshot, cutoff int64) int {
	keep := 1
	for i := 1; i < len(history) && history[i-1].TimestampMs >= cutoff; i++ {
		keep++
	}
	return keep
}

// Referenced returns the absolute paths of the part files that a snapshot
// the table retains lists: the store deletes none of them. Before the
// first publish it returns none.
func (t *Table) Referenced(ctx context.Context) (map[string]bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tbl, _, err := t.load(ctx)
	if errors.Is(err, errNoTable) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	seen := map[string]bool{}
	for _, s := range tbl.Metadata().Snapshots() {
		mans, err := s.Manifests(t.io)
		if err != nil {
			return nil, fmt.Errorf("read manifests of snapshot %d: %w", s.SnapshotID, err)
		}
		for _, m := range mans {
			seen[m.FilePath()] = true
			files, ok := t.manifestFiles[m.FilePath()]
			if !ok {
				for e, err := range m.Entries(t.io, true) {
					if err != nil {
						return nil, fmt.Errorf("read manifest %s: %w", m.FilePath(), err)
					}
					p, err := localPath(e.DataFile().FilePath())
					if err != nil {
						return nil, err
					}
					files = append(files, p)
				}
				t.manifestFiles[m.FilePath()] = files
			}
			for _, p := range files {
				out[p] = true
			}
		}
	}
	for p := range t.manifestFiles {
		if !seen[p] {
			delete(t.manifestFiles, p)
		}
	}
	return out, nil
}
