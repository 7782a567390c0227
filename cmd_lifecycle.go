package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"worklog/data"
	"worklog/export/api"
	"worklog/export/jobs"
	"worklog/ingest"
	"worklog/internal/audit"
	"worklog/query"
)

// auditLogFlag defines the --audit-log setting every command that reads or
// changes the store shares.
func auditLogFlag(fs *flag.FlagSet) *string {
	return stringSetting(fs, "audit-log", "WORKLOG_AUDIT_LOG", "", "audit trail, one JSON line per export, ingest, prune and forget (default <data>/audit.log); rotate it by renaming")
}

// openAudit opens the audit trail: the --audit-log path, else
// <data>/audit.log.
func openAudit(dataDir, path string) (*audit.Log, error) {
	if path == "" {
		path = filepath.Join(dataDir, audit.FileName)
	}
	l, err := audit.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--audit-log: %w", err)
	}
	return l, nil
}

// retentionDaysFlag defines --retention-days (SPEC §12).
func retentionDaysFlag(fs *flag.FlagSet) *string {
	return stringSetting(fs, "retention-days", "WORKLOG_RETENTION_DAYS", "0", "delete events whose date is older than this many days (0: keep forever)")
}

// parseRetentionDays parses --retention-days: 0 (off) or a positive count.
func parseRetentionDays(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("--retention-days: expected a number of days (0 keeps events forever), got %q", v)
	}
	return n, nil
}

// retentionCutoff is the oldest date kept with days of retention at now:
// stored dates are naive UTC wall times (SPEC §4), so is the cutoff.
func retentionCutoff(now time.Time, days int) time.Time {
	return now.UTC().Add(-time.Duration(days) * 24 * time.Hour)
}

// printChange writes the summary of SPEC §12 on stdout.
func printChange(ch ingest.Change) error {
	b, err := json.Marshal(ch)
	if err != nil {
		return err
	}
	_, err = fmt.Println(string(b))
	return err
}

// runPrune runs 'worklog prune': retention on demand.
func runPrune(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("prune", flag.ContinueOnError)
	dataDir := dataDirFlag(fs)
	days := retentionDaysFlag(fs)
	auditPath := auditLogFlag(fs)
	snapRetention := snapshotRetentionFlag(fs)
	dbURL := databaseURLFlag(fs)
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("prune: unexpected argument %q", fs.Arg(0))}
	}
	n, err := parseRetentionDays(*days)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if n == 0 {
		return &exitError{code: 2, err: errors.New("prune: --retention-days N (N > 0) is required")}
	}
	shared, err := openShared(ctx, databaseURL(dbURL), nil)
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	defer shared.close()
	al, err := shared.openAudit(*dataDir, *auditPath)
	if err != nil {
		return err
	}
	defer al.Close()
	store, err := openStore(*dataDir, shared.storeOptions(data.StoreOptions{}), snapRetention)
	if err != nil {
		return fmt.Errorf("prune: open store: %w", err)
	}
	defer store.Close()
	ch, err := prune(ctx, store, n, al, audit.CLISubject)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "pruned %d events older than %s (%d months)\n", ch.Events, retentionCutoff(time.Now(), n).Format(data.TimestampLayout), ch.Months)
	return printChange(ch)
}

// prune deletes the events older than days and records it in the trail.
func prune(ctx context.Context, store *data.Store, days int, al *audit.Log, sub string) (ingest.Change, error) {
	cutoff := retentionCutoff(time.Now(), days)
	ch, err := ingest.Prune(ctx, store, cutoff, ingest.LifecycleOptions{})
	e := audit.Entry{Sub: sub, Action: audit.ActionPrune, Rows: ch.Events, Outcome: audit.OutcomeOK,
		Params: map[string][]string{"retentionDays": {strconv.Itoa(days)}, "cutoff": {cutoff.Format(data.TimestampLayout)}}}
	if err != nil {
		e.Outcome, e.Error = audit.OutcomeFailed, "prune_failed"
	}
	if aerr := al.Append(e); aerr != nil {
		return ch, errors.Join(err, aerr)
	}
	return ch, err
}

// runRetention prunes at once and then every interval until ctx ends: the
// retention of 'worklog serve'. Each run is logged, counted in metrics and
// recorded in the audit trail.
func runRetention(ctx context.Context, store *data.Store, days int, interval time.Duration, al *audit.Log, log *slog.Logger, m *api.Metrics) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		start := time.Now()
		ch, err := prune(ctx, store, days, al, "retention")
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			m.RetentionRuns.WithLabelValues("failed").Inc()
			log.Error("retention failed", "retention_days", days, "err", err)
		default:
			m.RetentionRuns.WithLabelValues("ok").Inc()
			m.RetentionDeleted.Add(float64(ch.Events))
			log.Info("retention", "retention_days", days, "deleted", ch.Events, "months", ch.Months,
				"generation", ch.Snapshot.Generation, "duration_ms", time.Since(start).Milliseconds())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// runForget runs 'worklog forget': the erasure of one user (SPEC §12).
func runForget(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("forget", flag.ContinueOnError)
	dataDir := dataDirFlag(fs)
	userID := fs.String("user-id", "", "the userId to erase (required)")
	mode := fs.String("mode", string(ingest.Anonymize), "anonymize: set name, email, userId and rawData to null, keeping the events; delete: remove the events")
	auditPath := auditLogFlag(fs)
	snapRetention := snapshotRetentionFlag(fs)
	dbURL := databaseURLFlag(fs)
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("forget: unexpected argument %q", fs.Arg(0))}
	}
	id, err := strconv.ParseInt(*userID, 10, 64)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("forget: --user-id: expected an integer userId, got %q", *userID)}
	}
	m, err := ingest.ParseForgetMode(*mode)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("forget: --%w", err)}
	}
	shared, err := openShared(ctx, databaseURL(dbURL), nil, jobs.Migrations...)
	if err != nil {
		return fmt.Errorf("forget: %w", err)
	}
	defer shared.close()
	al, err := shared.openAudit(*dataDir, *auditPath)
	if err != nil {
		return err
	}
	defer al.Close()
	store, err := openStore(*dataDir, shared.storeOptions(data.StoreOptions{}), snapRetention)
	if err != nil {
		return fmt.Errorf("forget: open store: %w", err)
	}
	defer store.Close()
	// The export files of background jobs may hold the user too. Their job
	// store is held by a running server; then the erasure must go through
	// it, or those files would survive. Checked before anything changes.
	engine, err := query.NewEngine(store, query.EngineOptions{TempDirectory: filepath.Join(*dataDir, "tmp", "duckdb")})
	if err != nil {
		return fmt.Errorf("forget: start DuckDB: %w", err)
	}
	defer engine.Close()
	// The runner is not started: it runs no export, so the pseudonym key
	// it requires is never used.
	// With --database-url the jobs are in the database, shared with the
	// running replicas: the erasure reaches them there.
	runner, err := jobs.Open(jobs.Config{DataDir: *dataDir, Engine: engine, PseudonymKey: make([]byte, 32), Paths: api.JobPaths{}, DB: shared.db})
	if err != nil {
		return fmt.Errorf("forget: %w; while 'worklog serve' runs on this data directory, erase through POST %s, which also deletes its export files", err, api.ForgetPath)
	}
	defer runner.Close()

	params := map[string][]string{"userId": {strconv.FormatInt(id, 10)}, "mode": {string(m)}}
	ch, err := ingest.Forget(ctx, store, id, m, ingest.LifecycleOptions{})
	e := audit.Entry{Sub: audit.CLISubject, Action: audit.ActionForget, Params: params, Rows: ch.Events, Outcome: audit.OutcomeOK}
	if err != nil {
		e.Outcome, e.Error = audit.OutcomeFailed, "forget_failed"
	}
	if ch.Events > 0 && !ch.CommittedAt.IsZero() {
		// Committed (even when its durability is in doubt): older export
		// files are stale.
		n, eerr := runner.EraseBefore(ch.CommittedAt)
		if eerr != nil {
			err = errors.Join(err, fmt.Errorf("forget: the store is erased, but not every export file: %w", eerr))
		}
		if n > 0 {
			fmt.Fprintf(os.Stderr, "deleted the files of %d finished export job(s) made before the erasure\n", n)
		}
	}
	if aerr := al.Append(e); aerr != nil {
		return errors.Join(err, aerr)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "forgot userId %d (%s): %d events in %d months\n", id, m, ch.Events, ch.Months)
	return printChange(ch)
}
