package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"worklog/data"
	"worklog/internal/audit"
	"worklog/privacy"
	"worklog/query"
)

// cliReader is what 'worklog export' and 'worklog analytics' read through:
// the store (with --database-url, under the replicas' reader leases), the
// reader's privacy policy, then a DuckDB engine over a pinned snapshot and
// the audit trail. Opened in two steps, so that a bad parameter is refused
// before DuckDB starts: open, then start once the plan is parsed.
type cliReader struct {
	dataDir string
	shared  *sharedState
	scratch string // DuckDB's spill goes in scratch/duckdb
	store   *data.Store
	policy  *privacy.Policy

	engine *query.Engine
	snap   data.Snapshot
	audit  *audit.Log
}

// openCLIReader opens the shared state of dbURL (none when empty), the
// store and the policy of priv and perms; cmd prefixes its errors.
func openCLIReader(ctx context.Context, cmd, dataDir, dbURL string, priv privacySettings, perms []string) (_ *cliReader, err error) {
	r := &cliReader{dataDir: dataDir}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if r.shared, err = openShared(ctx, dbURL, nil); err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	if r.scratch, err = r.shared.scratchDir(ctx, dataDir, slog.Default()); err != nil {
		return nil, err
	}
	if r.store, err = openStore(dataDir, r.shared.storeOptions(data.StoreOptions{}), nil); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	hasData, err := storeHasData(r.store)
	if err != nil {
		return nil, err
	}
	level, key, err := priv.resolve(dataDir, hasData)
	if err != nil {
		return nil, err
	}
	if r.policy, err = privacy.NewPolicy(level, perms, key); err != nil {
		return nil, err
	}
	return r, nil
}

// start starts DuckDB over the store, pins the snapshot to read and opens
// the audit trail (auditPath: --audit-log). keepFreed: the command runs
// one query and exits, so DuckDB may keep what it frees. threads is
// DuckDB's worker threads (0: one per core).
func (r *cliReader) start(auditPath string, keepFreed bool, threads int) (err error) {
	if r.engine, err = query.NewEngine(r.store, query.EngineOptions{TempDirectory: filepath.Join(r.scratch, "duckdb"), KeepFreedMemory: keepFreed, Threads: threads}); err != nil {
		return fmt.Errorf("start DuckDB: %w", err)
	}
	if r.snap, err = r.engine.Acquire(); err != nil {
		return err
	}
	r.audit, err = r.shared.openAudit(r.dataDir, auditPath)
	return err
}

// record appends e to the audit trail, failed with code when err is not
// nil, and returns err. Without its audit line no result file stays: a
// failed append removes out (unless it is standard output).
func (r *cliReader) record(e audit.Entry, err error, code, out string) error {
	e.Sub, e.Level, e.Outcome = audit.CLISubject, string(r.policy.Level()), audit.OutcomeOK
	if err != nil {
		e.Outcome, e.Error = audit.OutcomeFailed, code
	}
	if aerr := r.audit.Append(e); aerr != nil {
		if err == nil && out != "-" {
			os.Remove(out)
		}
		return errors.Join(err, aerr)
	}
	return err
}

// close releases what open and start took, in reverse order.
func (r *cliReader) close() {
	if r.audit != nil {
		r.audit.Close()
	}
	if r.engine != nil {
		r.snap.Release()
		r.engine.Close()
	}
	if r.store != nil {
		r.store.Close()
	}
	if r.shared != nil {
		r.shared.close()
	}
}
