package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

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
	scratch string // this replica's scratch directory, once made
}

// poolConns is the connection pool's size unless the URL says otherwise
// (pool_max_conns=N): a served request may take a connection for its audit
// line and one for its reader lease while the writer lock holds one and
// River's workers others, and pgxpool's default is only 4 on a small
// machine.
const poolConns = 20

// openShared connects to the database at url, applies the migrations
// (River's, pgstate's, then migs: those of the packages the command uses,
// such as export/jobs') and registers this process for reader leases; an
// empty url gives the empty sharedState. Every process that writes the
// store registers, since a writer must see every replica's leases.
func openShared(ctx context.Context, url string, log *slog.Logger, migs ...pgstate.Migration) (*sharedState, error) {
	if url == "" {
		return &sharedState{}, nil
	}
	db, err := pgstate.Open(ctx, url, pgstate.Options{Log: log, Migrations: migs, MaxConns: poolConns})
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

// close removes this replica's scratch directory, unregisters the process
// and closes the pool; after the store and the engine.
func (s *sharedState) close() {
	if s.scratch != "" {
		os.RemoveAll(s.scratch)
	}
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

// replicaDirPrefix starts the names of the replicas' scratch directories
// in <data>/tmp.
const replicaDirPrefix = "replica-"

// scratchDir is where this process keeps files that no other process may
// touch (DuckDB's spill, received ingest bodies): <data>/tmp alone, or with
// a database <data>/tmp/replica-<id>, since replicas that share a data
// directory sweep their scratch space at start and DuckDB instances must
// not share a temporary directory. The scratch directories of replicas
// whose registration expired (they died) are removed.
func (s *sharedState) scratchDir(ctx context.Context, dataDir string, log *slog.Logger) (string, error) {
	root := filepath.Join(dataDir, "tmp")
	if !s.enabled() {
		return root, nil
	}
	if live, err := s.db.Live(ctx); err != nil {
		log.Warn("cannot list live replicas; their scratch directories stay", "err", err)
	} else {
		dirs, _ := filepath.Glob(filepath.Join(root, replicaDirPrefix+"*"))
		for _, d := range dirs {
			if !live[strings.TrimPrefix(filepath.Base(d), replicaDirPrefix)] {
				if err := os.RemoveAll(d); err != nil {
					log.Warn("cannot remove the scratch directory of a replica that is gone", "dir", d, "err", err)
				}
			}
		}
	}
	dir := filepath.Join(root, replicaDirPrefix+s.readers.ID())
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("scratch directory: %w", err)
	}
	s.scratch = dir
	return dir, nil
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
