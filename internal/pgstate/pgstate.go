// Package pgstate is the state that several worklog processes share in
// PostgreSQL when they are given --database-url (SPEC §13): the connection
// pool, the schema (River's tables and ours, migrated at start), and the
// shared counterparts of what one process otherwise keeps in files (the
// store's writer lock, reader leases, the audit trail, the signing keys).
//
// It uses jackc/pgx/v5 (pgxpool) and River's migrator; the job queue itself
// is River's (export/jobs). Nothing here is a queue or a lock of our own
// making: locks are PostgreSQL advisory locks, leases are rows with an
// expiry that the database's own clock decides.
package pgstate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// Options configures Open.
type Options struct {
	// Migrations are applied after River's and this package's own, in
	// order; other packages pass their tables here (see Migration).
	Migrations []Migration
	// Log receives notices; nil discards them.
	Log *slog.Logger
	// MaxConns caps the pool unless the URL sets pool_max_conns; zero keeps
	// pgxpool's default (the larger of 4 and the number of CPUs).
	MaxConns int32
}

// DB is an open connection pool to the shared database, migrated.
type DB struct {
	// Pool is the connection pool; River and the other packages share it.
	Pool *pgxpool.Pool
	log  *slog.Logger
}

// Open connects to the database at url (a postgres:// URL or a libpq
// key=value string), checks that it answers, and applies every migration
// that it lacks (River's, ours, opts.Migrations) under an advisory lock, so
// that replicas starting together migrate once.
func Open(ctx context.Context, dbURL string, opts Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		// pgx's message may repeat the URL, password included.
		return nil, fmt.Errorf("--database-url: not a PostgreSQL URL (postgres://user:password@host:5432/db): %s", redact(err.Error(), dbURL))
	}
	if opts.MaxConns > 0 && !strings.Contains(dbURL, "pool_max_conns") {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("--database-url %s: %s", Redact(dbURL), redact(err.Error(), dbURL))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("--database-url %s: %s", Redact(dbURL), redact(err.Error(), dbURL))
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db := &DB{Pool: pool, log: log}
	if err := db.Migrate(ctx, opts.Migrations...); err != nil {
		pool.Close()
		return nil, err
	}
	return db, nil
}

// Ping checks that the database answers (a replica's readiness).
func (db *DB) Ping(ctx context.Context) error { return db.Pool.Ping(ctx) }

// Close closes the pool; connections in use are closed when released.
func (db *DB) Close() {
	if db != nil && db.Pool != nil {
		db.Pool.Close()
	}
}

// Migration is one step of a schema. Steps form lines (independent
// sequences: "worklog" is this package's, "jobs" export/jobs', and so on),
// each numbered from 1 without gaps; a step once applied is recorded in
// worklog_migration and never applied again, so a step's SQL must never be
// changed after it has landed: add a new step instead.
//
// Convention for other packages: keep your steps in your package as an
// exported, ordered []Migration with your own Line, and pass them in
// Options.Migrations (or call DB.Migrate with them). Each step runs in a
// transaction of its own, so a failing step leaves nothing of itself.
type Migration struct {
	// Line names the sequence this step belongs to.
	Line string
	// Version is the step's number within its line, from 1.
	Version int
	// Name says what the step does, for the log and the record.
	Name string
	// SQL is the step; it may hold several statements.
	SQL string
}

// migrateLockKey is the advisory lock (worklog's class, object 1) that
// serialises migrations across processes.
const migrateLockKey = 1

// lockClass is the first key of every advisory lock of worklog (the two-key
// form, a namespace apart from River's one-key locks): "wl" in ASCII.
const lockClass = 0x776c

// Migrate applies River's migrations and then every step of migs (after
// this package's own) that the database lacks. It is idempotent and safe
// to run from several processes at once: a session advisory lock on one
// connection orders them. Each step runs in a transaction of its own with
// its record (River's steps too: one of them adds an enum value that a
// later one uses, which PostgreSQL refuses within one transaction), so a
// failing step leaves nothing of itself and the steps before it stay.
func (db *DB) Migrate(ctx context.Context, migs ...Migration) error {
	all := append(append([]Migration(nil), migrations...), migs...)
	if err := checkLines(all); err != nil {
		return err
	}
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, $2)", lockClass, migrateLockKey); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	defer func() {
		if _, err := conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1, $2)", lockClass, migrateLockKey); err != nil {
			// The session may keep the lock: drop the connection.
			conn.Conn().Close(context.Background())
		}
	}()
	// River logs every start ("No migrations to apply") at info; what it
	// applied is logged below, so only its warnings pass.
	migrator, err := rivermigrate.New(riverpgxv5.New(db.Pool), &rivermigrate.Config{Logger: slog.New(minLevel{db.log.Handler(), slog.LevelWarn})})
	if err != nil {
		return fmt.Errorf("migrate River: %w", err)
	}
	res, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("migrate River: %w", err)
	}
	for _, v := range res.Versions {
		db.log.Info("database: applied River migration", "version", v.Version, "name", v.Name)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS worklog_migration (
		line       text        NOT NULL,
		version    int         NOT NULL,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now(),
		PRIMARY KEY (line, version))`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	applied := map[string]int{}
	rows, err := conn.Query(ctx, "SELECT line, max(version) FROM worklog_migration GROUP BY line")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for rows.Next() {
		var line string
		var v int
		if err := rows.Scan(&line, &v); err != nil {
			rows.Close()
			return fmt.Errorf("migrate: %w", err)
		}
		applied[line] = v
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, m := range all {
		if m.Version <= applied[m.Line] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO worklog_migration (line, version, name) VALUES ($1, $2, $3)", m.Line, m.Version, m.Name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s %d (%s): %w", m.Line, m.Version, m.Name, err)
		}
		db.log.Info("database: applied migration", "line", m.Line, "version", m.Version, "name", m.Name)
	}
	return nil
}

// checkLines rejects a list whose lines are not each numbered 1, 2, 3…
// in order: a programming error that must not reach a database.
func checkLines(migs []Migration) error {
	next := map[string]int{}
	for _, m := range migs {
		if m.Line == "" || m.SQL == "" {
			return fmt.Errorf("migration %q %d: empty line or SQL", m.Line, m.Version)
		}
		if m.Version != next[m.Line]+1 {
			return fmt.Errorf("migration %s %d (%s): expected version %d", m.Line, m.Version, m.Name, next[m.Line]+1)
		}
		next[m.Line] = m.Version
	}
	return nil
}

// Redact returns a database URL without its password, for logs and
// errors.
func Redact(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil || u.Scheme == "" {
		return "(database URL)"
	}
	return u.Redacted()
}

// redact removes the password of dbURL from a message.
func redact(msg, dbURL string) string {
	if u, err := url.Parse(dbURL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return msg
}

// isNoRows reports whether err is pgx's "no rows".
func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

// minLevel passes the records of its handler at min or above.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(attrs), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}
