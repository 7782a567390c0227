// Command bench measures worklog's export and ingest paths against DuckDB's
// own statements on the same data, in one run (issue 7, measurements P1–P4).
//
//	go run -tags duckdb_arrow ./bench --rows 1000000
//
// It generates a deterministic NDJSON dump with the demo generator, builds
// the worklog binary, ingests the dump through `worklog ingest`, starts
// `worklog serve` as a child process (privacy level pseudonymized, the
// server default) and then alternates our path and DuckDB's on the same
// files, repetition by repetition. DuckDB's statements run in child
// processes of this harness (the harness re-executes itself), so that every
// peak RSS reported is the peak of one process doing one job: from
// getrusage for processes that exit, from /proc/<pid>/status VmHWM for the
// server.
//
// It prints a table of medians, min–max and ratios, and with --json writes
// the same figures as JSON.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// config is the harness's command line.
type config struct {
	rows      int
	largeRows int
	reps      int
	clients   int
	p4Reps    int
	work      string
	jsonOut   string
	profile   string
	// profileLevel is the privacy level of --profile's export.
	profileLevel string
	formats      []string
	skip         map[string]bool
	// ingestLarge is the events of ID's second, single run (0: none).
	ingestLarge int
}

func main() {
	if childMain() {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var cfg config
	fs.IntVar(&cfg.rows, "rows", 1000000, "events in the measured store")
	fs.IntVar(&cfg.largeRows, "rows-large", 0, "events in a second store for P3's scaling figure (e.g. 10000000; 0 skips it)")
	fs.IntVar(&cfg.ingestLarge, "rows-ingest-large", 0, "events of a second dump that ID ingests once each way (e.g. 10000000; 0 skips it)")
	fs.IntVar(&cfg.reps, "reps", 3, "repetitions of every measurement (A/B alternating)")
	fs.IntVar(&cfg.clients, "clients", 20, "concurrent page clients in P4")
	fs.IntVar(&cfg.p4Reps, "p4-reps", 1, "repetitions of P4 (each one lasts as long as an export under page load; its p50/p99 come from hundreds of pages)")
	fs.StringVar(&cfg.work, "work", "", "work directory, kept and reused between runs (default: a temporary directory, removed)")
	fs.StringVar(&cfg.jsonOut, "json", "", "also write the results as JSON to this file")
	only := fs.String("only", "P1,BD,P2,P3,P4,X,C,PQ,F,A,L,I,ID,R", "measurements to run, comma-separated (BD: a store of one busy day of 300,000 events exported at level none; X: XLSX via worklog export, once; C: page 1,000 by cursor; PQ: Parquet export against DuckDB's COPY; F: forget one agent against an ingest of its events; A: analytics; L: hostile clients, a zstd bomb and stalled readers, on a server of their own; I: ingest with and without the Iceberg publish; ID: ingest into an empty store against DuckDB's read_json COPY, with CPU time; R: P4's load against two replicas on a private PostgreSQL, against one)")
	fs.StringVar(&cfg.profile, "profile", "", "instead of measuring: run P1's export in-process stage by stage and write a CPU profile to this file")
	profFormats := fs.String("profile-formats", "csv,json", "formats --profile runs, comma-separated (e.g. parquet)")
	fs.StringVar(&cfg.profileLevel, "profile-level", "none", "privacy level of --profile's export: none (all 35 columns, as P1's head-to-head), partiallyPseudonymized or pseudonymized")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.reps < 1 {
		return fmt.Errorf("--reps must be at least 1, got %d", cfg.reps)
	}
	cfg.formats = []string{"csv", "json"}
	if cfg.profile != "" {
		cfg.formats = nil
		for _, f := range strings.Split(*profFormats, ",") {
			if f = strings.TrimSpace(f); f != "" {
				cfg.formats = append(cfg.formats, f)
			}
		}
	}
	cfg.skip = map[string]bool{"P1": true, "BD": true, "P2": true, "P3": true, "P4": true, "X": true, "C": true, "PQ": true, "F": true, "A": true, "L": true, "I": true, "ID": true, "R": true}
	for _, m := range splitList(*only) {
		delete(cfg.skip, m)
	}
	if cfg.rows < 310000 && (!cfg.skip["P1"] || !cfg.skip["P4"] || !cfg.skip["R"]) {
		return fmt.Errorf("--rows must be at least 310000 (P1 exports the newest 300,000), got %d", cfg.rows)
	}

	keep := cfg.work != ""
	if !keep {
		dir, err := os.MkdirTemp("", "worklog-bench-")
		if err != nil {
			return fmt.Errorf("create work dir: %w", err)
		}
		cfg.work = dir
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(cfg.work, 0o755); err != nil {
		return fmt.Errorf("create work dir: %w", err)
	}
	abs, err := filepath.Abs(cfg.work)
	if err != nil {
		return err
	}
	cfg.work = abs

	start := time.Now()
	b := &bench{cfg: cfg, res: &results{
		Date:    time.Now().UTC().Format(time.RFC3339),
		Machine: machine(),
		Rows:    cfg.rows,
		Reps:    cfg.reps,
	}}
	err = b.run(ctx)
	b.res.Elapsed = time.Since(start).Round(time.Second).String()
	b.res.print(os.Stdout)
	if cfg.jsonOut != "" {
		if jerr := b.res.writeJSON(cfg.jsonOut); jerr != nil {
			err = errors.Join(err, jerr)
		}
	}
	return err
}

// machine describes the host for the report.
func machine() string {
	return fmt.Sprintf("%s/%s, %d CPUs, %s, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel(), memTotal())
}
