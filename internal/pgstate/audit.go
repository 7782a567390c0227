package pgstate

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"

	"worklog/internal/audit"
)

// auditLockKey is the advisory lock (worklog's class, object 3) that orders
// the appends to the audit trail.
const auditLockKey = 3

// Audit is the audit trail in the table worklog_audit, shared by every
// replica (audit.Backend): the lines of audit's file format, numbered by
// seq, each chained to the line before by its prev. An append takes a
// transaction-level advisory lock, reads the last line and inserts the next
// in one transaction, so concurrent appenders of any process form one
// chain; the commit makes it durable before Append returns.
type Audit struct{ db *DB }

var _ audit.Backend = Audit{}

// Audit returns the shared trail; audit.NewShared(db.Audit()) is the
// *audit.Log that the commands and the server write to.
func (db *DB) Audit() Audit { return Audit{db: db} }

// Where implements audit.Backend.
func (Audit) Where() string { return "PostgreSQL table worklog_audit" }

// Append implements audit.Backend.
func (a Audit) Append(encode func(prev string) ([]byte, error)) error {
	ctx, cancel := context.WithTimeout(context.Background(), lockTimeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, a.db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", lockClass, auditLockKey); err != nil {
			return err
		}
		var seq int64
		var last string
		err := tx.QueryRow(ctx, "SELECT seq, line FROM worklog_audit ORDER BY seq DESC LIMIT 1").Scan(&seq, &last)
		prev := ""
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return err
		default:
			prev = audit.Hash([]byte(last))
		}
		line, err := encode(prev)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "INSERT INTO worklog_audit (seq, line) VALUES ($1, $2)", seq+1, string(line))
		return err
	})
	if err != nil {
		return fmt.Errorf("audit trail (database): %w", err)
	}
	return nil
}

// WriteTo writes the whole trail to w in audit's file format, one line
// each, in order: what audit.Verify checks.
func (a Audit) WriteTo(ctx context.Context, w io.Writer) (int64, error) {
	rows, err := a.db.Pool.Query(ctx, "SELECT line FROM worklog_audit ORDER BY seq")
	if err != nil {
		return 0, fmt.Errorf("audit trail (database): %w", err)
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return n, fmt.Errorf("audit trail (database): %w", err)
		}
		m, err := io.WriteString(w, line+"\n")
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, rows.Err()
}
