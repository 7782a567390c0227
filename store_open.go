package main

import (
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"worklog/data"
	"worklog/data/iceberg"
)

// snapshotRetentionFlag defines --snapshot-retention, shared by the
// commands that change the store (serve, ingest, prune, forget).
func snapshotRetentionFlag(fs *flag.FlagSet) *string {
	return stringSetting(fs, "snapshot-retention", "WORKLOG_SNAPSHOT_RETENTION", "24h",
		"how long a snapshot of the Iceberg table (<data>/worklog/metadata) stays readable after a newer one replaced it; its Parquet files are kept that long")
}

// parseSnapshotRetention parses --snapshot-retention; nil (a command
// without the setting) means the default.
func parseSnapshotRetention(v *string) (time.Duration, error) {
	if v == nil {
		return iceberg.DefaultSnapshotRetention, nil
	}
	d, err := time.ParseDuration(*v)
	if err != nil || d <= 0 {
		return 0, &exitError{code: 2, err: fmt.Errorf("--snapshot-retention: expected a positive duration such as 24h, got %q", *v)}
	}
	return d, nil
}

// openStore opens the store of dataDir with its Iceberg table as the
// publisher: every command opens it so, because every open may sweep
// retired files, and only the table knows which of them a retained
// snapshot still lists. retention is the --snapshot-retention setting, or
// nil for commands that do not take it.
func openStore(dataDir string, opts data.StoreOptions, retention *string) (*data.Store, error) {
	keep, err := parseSnapshotRetention(retention)
	if err != nil {
		return nil, err
	}
	tbl, err := iceberg.New(filepath.Join(dataDir, "worklog"), iceberg.Options{SnapshotRetention: keep, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	opts.Publisher = tbl
	return data.Open(dataDir, opts)
}
