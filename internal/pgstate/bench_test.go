package pgstate

import (
	"context"
	"path/filepath"
	"testing"

	"worklog/data"
	"worklog/internal/audit"
	"worklog/internal/pgtest"
)

// What the shared state costs per operation against the files of one
// process: one audit line, one writer lock taken and released, one reader
// lease (Store.Acquire and Release). The test server runs with fsync off,
// so the database's figures leave out its commit's disk flush.
func BenchmarkSharedState(b *testing.B) {
	ctx := context.Background()
	db, err := Open(ctx, pgtest.New(b), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	readers, err := db.Readers(ctx, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer readers.Close()
	fileLog, err := audit.Open(filepath.Join(b.TempDir(), "audit.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer fileLog.Close()
	trails := map[string]*audit.Log{"file": fileLog, "database": audit.NewShared(db.Audit())}
	stores := map[string]*data.Store{}
	for name, opts := range map[string]data.StoreOptions{
		"file":     {},
		"database": {Locker: db.WriterLock(), Readers: readers},
	} {
		s, err := data.Open(b.TempDir(), opts)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		stores[name] = s
	}
	for _, name := range []string{"file", "database"} {
		b.Run("audit/"+name, func(b *testing.B) {
			for b.Loop() {
				if err := trails[name].Append(audit.Entry{Sub: "bench", Action: audit.ActionExport, Outcome: audit.OutcomeOK}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("writerLock/"+name, func(b *testing.B) {
			for b.Loop() {
				txn, err := stores[name].Begin(ctx, false)
				if err != nil {
					b.Fatal(err)
				}
				txn.Rollback()
			}
		})
		b.Run("readerLease/"+name, func(b *testing.B) {
			for b.Loop() {
				snap, err := stores[name].Acquire()
				if err != nil {
					b.Fatal(err)
				}
				snap.Release()
			}
		})
	}
}
