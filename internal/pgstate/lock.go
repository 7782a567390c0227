package pgstate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"worklog/data"
)

// writerLockKey is the advisory lock (worklog's class, object 2) of the
// store's single writer.
const writerLockKey = 2

// lockTimeout bounds each statement of the lock, so that a database that
// stopped answering fails a writer instead of hanging it.
const lockTimeout = 30 * time.Second

// WriterLock is the store's single-writer lock in the database: a
// session-level advisory lock, taken on a connection of its own that is
// held, out of the pool, for as long as the lock. Every process that writes
// the store (each replica's ingest, prune and forget, and the CLI
// commands) given the same database serialises on it. When the session
// ends (the process died, the connection broke) PostgreSQL releases the
// lock, so a dead writer never blocks the others.
type WriterLock struct {
	db *DB
	// hold, when set, is called after the lock was taken and before
	// TryLock returns it (tests: park a writer while it holds the lock).
	hold func()
	// busy, when set, is called when TryLock finds the lock held by
	// another session (tests: see that a writer waits).
	busy func()
}

var _ data.Locker = (*WriterLock)(nil)

// WriterLock returns the store's writer lock for StoreOptions.Locker.
func (db *DB) WriterLock() *WriterLock { return &WriterLock{db: db} }

// TryLock implements data.Locker.
func (w *WriterLock) TryLock(ctx context.Context) (data.HeldLock, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, lockTimeout)
	defer cancel()
	conn, err := w.db.Pool.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("database writer lock: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, $2)", lockClass, writerLockKey).Scan(&ok); err != nil {
		// The lock may or may not have been taken: end the session.
		conn.Conn().Close(context.Background())
		conn.Release()
		return nil, false, fmt.Errorf("database writer lock: %w", err)
	}
	if !ok {
		conn.Release()
		if w.busy != nil {
			w.busy()
		}
		return nil, false, nil
	}
	if w.hold != nil {
		w.hold()
	}
	return &heldLock{conn: conn}, true, nil
}

// heldLock is a taken WriterLock: the connection whose session holds it.
type heldLock struct {
	conn *pgxpool.Conn
	done bool
}

// Check asks the session holding the lock whether it still does: a
// session that ended (a restart of the database, a broken connection) has
// lost it.
func (h *heldLock) Check() error {
	if h.done {
		return errors.New("the lock was released")
	}
	ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
	defer cancel()
	var held bool
	err := h.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
		WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND objsubid = 2
		AND pid = pg_backend_pid() AND granted)`, lockClass, writerLockKey).Scan(&held)
	if err != nil {
		return fmt.Errorf("database writer lock: cannot confirm it is still held: %w", err)
	}
	if !held {
		return errors.New("database writer lock: no longer held by this session")
	}
	return nil
}

// Unlock releases the lock and returns the connection to the pool. When the
// release fails, the connection is closed, which releases the lock too.
func (h *heldLock) Unlock() error {
	if h.done {
		return nil
	}
	h.done = true
	ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
	defer cancel()
	var released bool
	err := h.conn.QueryRow(ctx, "SELECT pg_advisory_unlock($1, $2)", lockClass, writerLockKey).Scan(&released)
	if err != nil || !released {
		h.conn.Conn().Close(context.Background())
	}
	h.conn.Release()
	if err != nil {
		return fmt.Errorf("database writer lock: release: %w (the connection was closed, which releases it)", err)
	}
	return nil
}
