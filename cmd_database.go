package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"worklog/data"
	"worklog/export"
	"worklog/internal/audit"
	"worklog/internal/pgstate"
)

// databaseURLEnv is the environment variable of --database-url.
const databaseURLEnv = "WORKLOG_DATABASE_URL"

// databaseURLFlag defines --database-url (SPEC §13). Unlike the other
// settings its help never shows the environment's value: the URL may carry
// a password.
func databaseURLFlag(fs *flag.FlagSet) *string {
	return fs.String("database-url", "", "PostgreSQL database that several replicas over one shared data directory share: "+
		"the writer lock, reader leases, the audit trail, the signing keys and background jobs; "+
		"empty keeps them in the data directory (`postgres://user:password@host:5432/db`) (env "+databaseURLEnv+")")
}

// databaseURL is the flag's value, else the environment's.
func databaseURL(flagValue *string) string {
	if *flagValue != "" {
		return *flagValue
	}
	return os.Getenv(databaseURLEnv)
}

// sharedState is what --database-url moves into PostgreSQL. Without the
// setting it is empty and everything stays as it was: a file lock, lease
// files, <data>/audit.log and key files.
type sharedState struct {
	db      *pgstate.DB
	readers *pgstate.Readers
}

// openShared connects to the database at url, applies the migrations
// (River's, pgstate's, then migs: those of the packages the command uses,
// such as export/jobs') and registers this process for reader leases; an
// empty url gives the empty sharedState. Every process that writes the
// store registers, since a writer must see every replica's leases.
func openShared(ctx context.Context, url string, log *slog.Logger, migs ...pgstate.Migration) (*sharedState, error) {
	if url == "" {
		return &sharedState{}, nil
	}
	db, err := pgstate.Open(ctx, url, pgstate.Options{Log: log, Migrations: migs})
	if err != nil {
		return nil, err
	}
	readers, err := db.Readers(ctx, 0)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &sharedState{db: db, readers: readers}, nil
}

// enabled reports whether the state is in a database.
func (s *sharedState) enabled() bool { return s.db != nil }

// close unregisters the process and closes the pool; after the store.
func (s *sharedState) close() {
	if s.readers != nil {
		s.readers.Close()
	}
	s.db.Close()
}

// readyCheck is the database's part of /readyz, or nil without one.
func (s *sharedState) readyCheck() func(context.Context) error {
	if !s.enabled() {
		return nil
	}
	return s.db.Ping
}

// storeOptions puts the writer lock and the reader leases of opts in the
// database.
func (s *sharedState) storeOptions(opts data.StoreOptions) data.StoreOptions {
	if s.enabled() {
		opts.Locker, opts.Readers = s.db.WriterLock(), s.readers
	}
	return opts
}

// openAudit opens the audit trail: the database's when there is one, else
// the --audit-log file (default <data>/audit.log).
func (s *sharedState) openAudit(dataDir, path string) (*audit.Log, error) {
	if !s.enabled() {
		return openAudit(dataDir, path)
	}
	if path != "" {
		return nil, fmt.Errorf("--audit-log: with --database-url the audit trail is kept in the database (table worklog_audit); leave --audit-log (%s) unset", "WORKLOG_AUDIT_LOG")
	}
	return audit.NewShared(s.db.Audit()), nil
}

// cursorKey returns the page-cursor key: the database's, seeded from
// <data>/cursor.key when that exists, else the key file.
func (s *sharedState) cursorKey(ctx context.Context, dataDir string) ([]byte, error) {
	if !s.enabled() {
		return export.LoadOrCreateCursorKey(dataDir)
	}
	return s.db.Key(ctx, pgstate.CursorKey, filepath.Join(dataDir, export.CursorKeyFile))
}
