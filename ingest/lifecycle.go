package ingest

// Retention and erasure (SPEC §12) live here, beside the ingest, because
// they are the same kind of store transaction: take the writer lock
// (Store.Begin), write the new content of each month they change as new
// parts (Txn.Replace, Txn.NewPart) and swap the manifest once (Txn.Commit).
// They share the ingest's DuckDB settings and part format (zstd, 16k-row
// row groups, sorted by date then userWorklogId), so a rewritten month is
// indistinguishable from an ingested one.
//
// Cost. Only the files that hold a changed event are rewritten, each into
// one new part with DuckDB COPY in the file's own order (one thread,
// insertion order kept: no sort). The other files of a changed month are
// carried over unchanged, as hard links where the file system allows (a
// byte copy otherwise), because a commit replaces a month as a whole. Which
// files hold a user is found from the narrow userId column alone; which
// hold events past the retention from the date column of the boundary
// month alone; months wholly past the retention are dropped without reading
// them.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"worklog/data"
)

// ForgetMode says how Forget erases a user.
type ForgetMode string

// The erasure modes of SPEC §12.
const (
	// Anonymize keeps the user's events for the statistics but sets name,
	// email, userId and rawData to null.
	Anonymize ForgetMode = "anonymize"
	// Delete removes the user's events.
	Delete ForgetMode = "delete"
)

// ParseForgetMode parses "anonymize" (also the empty string) or "delete".
func ParseForgetMode(s string) (ForgetMode, error) {
	switch ForgetMode(s) {
	case "", Anonymize:
		return Anonymize, nil
	case Delete:
		return Delete, nil
	}
	return "", fmt.Errorf("mode: want anonymize or delete, got %q", s)
}

// anonymizedFields are the fields Anonymize clears: the ones that identify
// the person (SPEC §12). Every other field keeps its value.
var anonymizedFields = map[string]bool{"name": true, "email": true, "userId": true, "rawData": true}

// userField is the column that identifies the user to forget.
const userField = "userId"

// Change reports what a Forget or Prune did. Its JSON is the answer of
// SPEC §12: {"events":N,"months":M}.
type Change struct {
	// Events counts the events anonymized or deleted.
	Events int64 `json:"events"`
	// Months counts the partitions rewritten or dropped.
	Months int `json:"months"`
	// Snapshot is the store state afterwards (the base state when nothing
	// changed and nothing was committed).
	Snapshot data.Snapshot `json:"-"`
	// CommittedAt is when the change became visible; zero when nothing
	// changed.
	CommittedAt time.Time `json:"-"`
}

// LifecycleOptions tune Forget and Prune.
type LifecycleOptions struct {
	// TempDir is where DuckDB may spill; default <data>/tmp. The run's own
	// directory there is removed afterwards.
	TempDir string
	// beforeCommit, when set (tests), runs after the new parts are written
	// and before the commit; an error abandons the transaction.
	beforeCommit func() error
}

// Forget erases user userID from the store as one transaction (SPEC §12):
// under Anonymize their events keep every field but name, email, userId and
// rawData, which become null; under Delete the events are removed. Both are
// idempotent: a second call finds no event of the user and commits nothing.
// Forget waits for the store's write lock. An error with a non-zero
// CommittedAt (data.ErrCommitDurabilityUnknown) means the change is in
// force all the same.
func Forget(ctx context.Context, store *data.Store, userID int64, mode ForgetMode, opts LifecycleOptions) (Change, error) {
	if mode != Anonymize && mode != Delete {
		return Change{}, fmt.Errorf("forget: unknown mode %q", mode)
	}
	id := strconv.FormatInt(userID, 10)
	match := data.QuoteIdent(userField) + " = " + id
	return rewriteStore(ctx, store, opts, "forget", func(ctx context.Context, conn *sql.Conn, base data.Snapshot) (storePlan, error) {
		counts, err := countPerFile(ctx, conn, base.Files, match)
		if err != nil {
			return storePlan{}, fmt.Errorf("find the user's events: %w", err)
		}
		p := storePlan{months: map[string]bool{}, files: map[string]fileAction{}}
		for path, n := range counts {
			p.files[path] = rewriteFile
			p.events += n
		}
		for _, f := range base.Files {
			if counts[f.Path] > 0 {
				p.months[f.Month] = true
			}
		}
		if mode == Delete {
			p.sql = func(scan string) string {
				return "SELECT * FROM " + scan + " WHERE " + data.QuoteIdent(userField) + " IS DISTINCT FROM " + id
			}
			return p, nil
		}
		cols := make([]string, 0, len(data.Fields()))
		for _, f := range data.Fields() {
			c := data.QuoteIdent(f.Name)
			if anonymizedFields[f.Name] {
				cols = append(cols, "CASE WHEN "+match+" THEN NULL ELSE "+c+" END AS "+c)
			} else {
				cols = append(cols, c)
			}
		}
		p.sql = func(scan string) string { return "SELECT " + strings.Join(cols, ", ") + " FROM " + scan }
		return p, nil
	})
}

// Prune deletes every event whose date is before cutoff, as one transaction
// (SPEC §12 retention). cutoff is a naive wall-clock time, compared with the
// stored dates as they are. Months that end before cutoff are dropped
// without being read; in the month of cutoff only the files that hold older
// events are rewritten. Pruning again with the same cutoff commits nothing.
func Prune(ctx context.Context, store *data.Store, cutoff time.Time, opts LifecycleOptions) (Change, error) {
	boundary := cutoff.Format("2006-01")
	lit := "TIMESTAMP " + data.QuoteString(cutoff.Format("2006-01-02 15:04:05.999999"))
	return rewriteStore(ctx, store, opts, "prune", func(ctx context.Context, conn *sql.Conn, base data.Snapshot) (storePlan, error) {
		p := storePlan{months: map[string]bool{}, files: map[string]fileAction{}}
		var edge []data.PartFile
		for _, f := range base.Files {
			switch {
			case f.Month < boundary:
				p.months[f.Month] = true
				p.files[f.Path] = dropFile
				p.events += f.Rows
			case f.Month == boundary:
				edge = append(edge, f)
			}
		}
		counts, err := countPerFile(ctx, conn, edge, data.QuoteIdent(data.DateField)+" < "+lit)
		if err != nil {
			return storePlan{}, fmt.Errorf("find events past the retention: %w", err)
		}
		for _, f := range edge {
			switch n := counts[f.Path]; {
			case n == 0:
			case n == f.Rows:
				p.months[f.Month] = true
				p.files[f.Path] = dropFile
				p.events += n
			default:
				p.months[f.Month] = true
				p.files[f.Path] = rewriteFile
				p.events += n
			}
		}
		p.sql = func(scan string) string {
			return "SELECT * FROM " + scan + " WHERE " + data.QuoteIdent(data.DateField) + " >= " + lit
		}
		return p, nil
	})
}

// fileAction is what a rewrite does with one committed file of a changed
// month; files it does not name are carried over.
type fileAction int

const (
	keepFile fileAction = iota
	rewriteFile
	dropFile
)

// storePlan is the outcome of looking at the store: the months to change,
// what happens to their files, the events changed, and the SELECT that
// turns one file's rows (the table expression scan) into its new rows, in
// the same order.
type storePlan struct {
	months map[string]bool
	files  map[string]fileAction
	events int64
	sql    func(scan string) string
}

// lifecycleWorkPrefix names the work directories of Forget and Prune.
const lifecycleWorkPrefix = "worklog-lifecycle-"

// rewriteStore runs one rewrite transaction: lock, plan (on the locked base
// state), write the changed months, commit.
func rewriteStore(ctx context.Context, store *data.Store, opts LifecycleOptions, what string,
	plan func(context.Context, *sql.Conn, data.Snapshot) (storePlan, error)) (Change, error) {
	txn, err := store.Begin(ctx, true)
	if err != nil {
		return Change{}, fmt.Errorf("%s: %w", what, err)
	}
	defer txn.Rollback()
	base := txn.Base()
	if len(base.Files) == 0 {
		return Change{Snapshot: base}, nil
	}

	tmpRoot := opts.TempDir
	if tmpRoot == "" {
		tmpRoot = filepath.Join(store.DataDir(), "tmp")
	}
	if err := os.MkdirAll(tmpRoot, 0o750); err != nil {
		return Change{}, fmt.Errorf("%s: create temp dir: %w", what, err)
	}
	// We hold the lock, so an earlier work directory is a crash leftover.
	if old, _ := filepath.Glob(filepath.Join(tmpRoot, lifecycleWorkPrefix+"*")); len(old) > 0 {
		for _, d := range old {
			os.RemoveAll(d)
		}
	}
	work, err := os.MkdirTemp(tmpRoot, lifecycleWorkPrefix)
	if err != nil {
		return Change{}, fmt.Errorf("%s: create work dir: %w", what, err)
	}
	defer os.RemoveAll(work)

	db, err := sql.Open("duckdb", "")
	if err != nil {
		return Change{}, fmt.Errorf("%s: open duckdb: %w", what, err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return Change{}, fmt.Errorf("%s: connect duckdb: %w", what, err)
	}
	defer conn.Close()
	// One thread with insertion order kept: a rewritten file comes out in
	// the order of the file it replaces, which is the store's order, with
	// no sort.
	for _, set := range append(duckSettings(filepath.Join(work, "duckdb")), "SET preserve_insertion_order = true") {
		if _, err := conn.ExecContext(ctx, set); err != nil {
			return Change{}, fmt.Errorf("%s: configure duckdb: %w", what, err)
		}
	}

	p, err := plan(ctx, conn, base)
	if err != nil {
		return Change{}, fmt.Errorf("%s: %w", what, err)
	}
	if len(p.months) == 0 {
		return Change{Snapshot: base}, nil
	}
	months := make([]string, 0, len(p.months))
	for m := range p.months {
		months = append(months, m)
	}
	sort.Strings(months)
	for _, m := range months {
		txn.Replace(m)
		// Snapshot order is the month's date order; NewPart keeps the order
		// in which parts are asked for.
		for _, f := range base.FilesIn(func(month string) bool { return month == m }) {
			if err := ctx.Err(); err != nil {
				return Change{}, fmt.Errorf("%s: %w", what, err)
			}
			switch p.files[f.Path] {
			case dropFile:
				continue
			case keepFile:
				part, err := txn.NewPart(m)
				if err != nil {
					return Change{}, fmt.Errorf("%s: %w", what, err)
				}
				if err := carryOver(f.Path, part); err != nil {
					return Change{}, fmt.Errorf("%s: carry over %s: %w", what, filepath.Base(f.Path), err)
				}
			case rewriteFile:
				part, err := txn.NewPart(m)
				if err != nil {
					return Change{}, fmt.Errorf("%s: %w", what, err)
				}
				q := "COPY (" + p.sql(data.ScanSQL([]data.PartFile{f})) + ") TO " + data.QuoteString(part) +
					fmt.Sprintf(" (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE %d)", storeRowGroup)
				if _, err := conn.ExecContext(ctx, q); err != nil {
					return Change{}, fmt.Errorf("%s: rewrite month %s: %w", what, m, err)
				}
			}
		}
	}
	if opts.beforeCommit != nil {
		if err := opts.beforeCommit(); err != nil {
			return Change{}, fmt.Errorf("%s: %w", what, err)
		}
	}
	snap, err := txn.Commit()
	if errors.Is(err, data.ErrCommitDurabilityUnknown) {
		// In force, though a power loss may undo it: report the change
		// with the error, so that the caller still erases what the old
		// state leaked into (export files).
		return Change{Events: p.events, Months: len(months), Snapshot: snap, CommittedAt: time.Now().UTC()}, fmt.Errorf("%s: %w", what, err)
	}
	if err != nil {
		return Change{}, fmt.Errorf("%s: %w", what, err)
	}
	return Change{Events: p.events, Months: len(months), Snapshot: snap, CommittedAt: time.Now().UTC()}, nil
}

// countPerFile counts, per file, the rows for which the SQL condition cond
// holds. DuckDB reads only the columns cond names (and skips row groups by
// their statistics), so for a condition on userId or date it reads a narrow
// column, not the events.
func countPerFile(ctx context.Context, conn *sql.Conn, files []data.PartFile, cond string) (map[string]int64, error) {
	out := map[string]int64{}
	if len(files) == 0 {
		return out, nil
	}
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Path
	}
	rows, err := conn.QueryContext(ctx, "SELECT filename, count(*) FROM read_parquet("+pathList(paths)+
		", filename = true, hive_partitioning = false) WHERE "+cond+" GROUP BY filename")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var p string
		var n int64
		if err := rows.Scan(&p, &n); err != nil {
			return nil, err
		}
		out[p] = n
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for p := range out {
		if !containsPath(paths, p) {
			return nil, fmt.Errorf("duckdb reported file %q, which the snapshot does not list", p)
		}
	}
	return out, nil
}

func containsPath(paths []string, p string) bool {
	for _, q := range paths {
		if q == p {
			return true
		}
	}
	return false
}

// carryOver puts the committed file src, unchanged, at the new part's
// temporary path dst: a hard link (no bytes written; committed parts are
// never modified, so sharing the inode is safe), else a copy.
func carryOver(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	return copyToNew(src, dst)
}
