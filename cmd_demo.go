package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"worklog/data"
	"worklog/ingest"
	"worklog/ingest/demo"
	"worklog/internal/audit"
)

// runDemo runs 'worklog demo': synthetic events from demo.Generate, fed
// through an in-memory pipe into the same ingest path as 'worklog ingest'.
func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	dataDir := dataDirFlag(fs)
	rows := fs.Int("rows", 100000, "number of events to generate")
	seed := fs.Int64("seed", 1, "seed of the synthetic data; the same seed gives the same events")
	auditPath := auditLogFlag(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: worklog demo [flags]\n\n"+
			"Writes realistic synthetic events into the store (ids 1..rows: running it\n"+
			"again with the same flags changes nothing).\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := parseArgs(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: 2, err: err}
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("demo: unexpected argument %q", fs.Arg(0))}
	}
	if *rows < 0 {
		return &exitError{code: 2, err: fmt.Errorf("demo: --rows must be >= 0, got %d", *rows)}
	}
	store, err := openStore(*dataDir, data.StoreOptions{}, nil)
	if err != nil {
		return fmt.Errorf("demo: open store: %w", err)
	}
	defer store.Close()
	if err := keyWithFirstData(*dataDir, store); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	al, err := openAudit(*dataDir, *auditPath)
	if err != nil {
		return err
	}
	defer al.Close()

	pr, pw := io.Pipe()
	genDone := make(chan error, 1)
	go func() {
		err := demo.Generate(ctx, pw, demo.Options{Rows: *rows, Seed: *seed})
		pw.CloseWithError(err)
		genDone <- err
	}()
	bar := newProgress(-1, "generating and ingesting")
	sum, err := ingest.Run(ctx, store, []ingest.Input{{Name: "demo", R: pr}}, ingest.Options{Progress: bar.set})
	bar.finish()
	// Unblock the generator if the ingest stopped reading early.
	pr.CloseWithError(errors.New("ingest stopped"))
	if gerr := <-genDone; err == nil && gerr != nil {
		err = gerr
	}
	e := audit.Entry{Sub: audit.CLISubject, Action: audit.ActionIngest, Rows: sum.Changed(), Outcome: audit.OutcomeOK,
		Params: map[string][]string{"inputs": {"demo"}, "rows": {fmt.Sprint(*rows)}, "seed": {fmt.Sprint(*seed)}}}
	if err != nil {
		e.Outcome, e.Error = audit.OutcomeFailed, "ingest_failed"
	}
	if aerr := al.Append(e); aerr != nil {
		return errors.Join(reportIngest(sum, err, false, nil), aerr)
	}
	return reportIngest(sum, err, false, nil)
}
