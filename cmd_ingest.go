package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"worklog/data"
	"worklog/ingest"
	"worklog/internal/audit"
	"worklog/internal/fsutil"
)

// runIngest runs 'worklog ingest': it loads dumps into the store, prints the
// closing summary on stdout, and exits 1 without committing anything when a
// record is invalid under --on-error fail.
func runIngest(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	dataDir := dataDirFlag(fs)
	onError := fs.String("on-error", "fail", "what to do with invalid records: fail (commit nothing) or skip")
	rejectsPath := fs.String("rejects", "", "under --on-error skip, write rejected records to this NDJSON file")
	auditPath := auditLogFlag(fs)
	sizes := addIngestLimitSettings(fs)
	snapRetention := snapshotRetentionFlag(fs)
	dbURL := databaseURLFlag(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: worklog ingest [flags] FILE... | -\n\n"+
			"Loads event dumps (NDJSON, JSON array or CSV with a header; gzip or zstd\n"+
			"compressed) into the store. '-' reads standard input.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := parseArgs(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: 2, err: err}
	}
	mode, err := ingest.ParseOnError(*onError)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	maxRecord, maxDecompressed, err := sizes.resolve()
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	names := fs.Args()
	if len(names) == 0 {
		fs.Usage()
		return &exitError{code: 2, err: errors.New("ingest: no input (give files, or - for standard input)")}
	}
	var inputs []ingest.Input
	var total int64
	for _, name := range names {
		if name == "-" {
			inputs = append(inputs, ingest.Input{Name: "-", R: os.Stdin})
			total = -1
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil && total >= 0 {
			total += st.Size()
		}
		inputs = append(inputs, ingest.Input{Name: name, R: f})
	}

	shared, err := openShared(ctx, databaseURL(dbURL), nil)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	defer shared.close()
	store, err := openStore(*dataDir, shared.storeOptions(data.StoreOptions{}), snapRetention)
	if err != nil {
		return fmt.Errorf("ingest: open store: %w", err)
	}
	defer store.Close()
	if err := keyWithFirstData(*dataDir, store); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	al, err := shared.openAudit(*dataDir, *auditPath)
	if err != nil {
		return err
	}
	defer al.Close()

	opts := ingest.Options{OnError: mode, MaxRecordBytes: maxRecord, MaxDecompressedBytes: maxDecompressed}
	var rejects *fsutil.File
	if *rejectsPath != "" {
		if rejects, err = fsutil.Create(*rejectsPath, 0o666, fsutil.CommandOutput()); err != nil {
			return fmt.Errorf("ingest: rejects file: %w", err)
		}
		defer rejects.Abort()
		opts.Rejects = rejects
	}
	// Without a rejects file, the first reasons are shown (SPEC §8:
	// a summary that says "3 rejected" should also say why).
	var skipped []*ingest.RecordError
	if mode == ingest.Skip && rejects == nil {
		opts.OnReject = func(e *ingest.RecordError) {
			if len(skipped) < maxShownRejects {
				skipped = append(skipped, e)
			}
		}
	}
	bar := newProgress(total, "ingesting")
	opts.Progress = bar.set
	sum, err := ingest.Run(ctx, store, inputs, opts)
	bar.finish()
	if err == nil {
		printRejects(skipped, sum.Rejected, len(inputs) > 1)
	}
	// The trail names the inputs and the mode, never a record (an error
	// message may quote one, so only its kind is recorded).
	e := audit.Entry{Sub: audit.CLISubject, Action: audit.ActionIngest, Rows: sum.Changed(), Outcome: audit.OutcomeOK,
		Params: map[string][]string{"onError": {*onError}, "inputs": names}}
	var ve *ingest.ValidationError
	switch {
	case errors.As(err, &ve):
		e.Outcome, e.Error = audit.OutcomeInvalid, "invalid_records"
	case err != nil:
		e.Outcome, e.Error = audit.OutcomeFailed, "ingest_failed"
	}
	if aerr := al.Append(e); aerr != nil {
		return errors.Join(reportIngest(sum, err, len(inputs) > 1, rejects), aerr)
	}
	return reportIngest(sum, err, len(inputs) > 1, rejects)
}

// maxShownRejects is how many rejected records 'ingest --on-error skip'
// explains on stderr when no --rejects file takes them all.
const maxShownRejects = 10

// printRejects explains records skipped under --on-error skip without
// --rejects: the first reasons as the errors read (prefixed with the file
// name when several files are given), then how many more there were and
// how to get them all.
func printRejects(shown []*ingest.RecordError, count int64, many bool) {
	for _, e := range shown {
		if many {
			fmt.Fprintf(os.Stderr, "%s: %v\n", e.Source, e)
		} else {
			fmt.Fprintln(os.Stderr, e)
		}
	}
	if more := count - int64(len(shown)); more > 0 {
		fmt.Fprintf(os.Stderr, "... and %d more rejected record(s); --rejects FILE writes every rejected record with its reason\n", more)
	}
}

// reportIngest prints the outcome of an ingest and turns it into the
// command's error: the first record errors and exit code 1 under fail.
func reportIngest(sum ingest.Summary, err error, many bool, rejects *fsutil.File) error {
	var ve *ingest.ValidationError
	if errors.As(err, &ve) {
		for _, e := range ve.Errors {
			if many {
				fmt.Fprintf(os.Stderr, "%s: %v\n", e.Source, e)
			} else {
				fmt.Fprintln(os.Stderr, e)
			}
		}
		if more := ve.Count - int64(len(ve.Errors)); more > 0 {
			fmt.Fprintf(os.Stderr, "... and %d more invalid record(s)\n", more)
		}
		fmt.Println(sum)
		return &exitError{code: 1, err: fmt.Errorf("ingest: %d invalid record(s), nothing committed (use --on-error skip to load the valid ones)", ve.Count)}
	}
	var le *ingest.LimitError
	if errors.As(err, &le) {
		return fmt.Errorf("ingest: %w; nothing was committed (%s raises the limit)", err, le.Setting("--max-record-bytes", "--max-decompressed-bytes"))
	}
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	if rejects != nil {
		if err := rejects.Commit(); err != nil {
			return fmt.Errorf("ingest: rejects file: %w", err)
		}
	}
	if sum.UnknownKeys > 0 {
		fmt.Fprintf(os.Stderr, "note: %d unknown key(s) ignored\n", sum.UnknownKeys)
	}
	fmt.Println(sum)
	return nil
}

// ingestLimitSettings are the input-size limits, shared by 'ingest' and
// 'serve' (HTTP ingest).
type ingestLimitSettings struct {
	maxRecord, maxDecompressed *string
}

func addIngestLimitSettings(fs *flag.FlagSet) ingestLimitSettings {
	return ingestLimitSettings{
		maxRecord: stringSetting(fs, "max-record-bytes", "WORKLOG_MAX_RECORD_BYTES", "4MiB",
			"longest record of an ingest: NDJSON line, JSON array element or CSV row (bytes, or with KiB/MiB/GiB); a longer one refuses the ingest"),
		maxDecompressed: stringSetting(fs, "max-decompressed-bytes", "WORKLOG_MAX_DECOMPRESSED_BYTES", "4GiB",
			"most bytes a gzip or zstd ingest input may expand to, counted as read; beyond it the ingest is refused"),
	}
}

func (s ingestLimitSettings) resolve() (record, decompressed int64, err error) {
	if record, err = parseByteSize(*s.maxRecord); err != nil {
		return 0, 0, fmt.Errorf("--max-record-bytes: %w", err)
	}
	if decompressed, err = parseByteSize(*s.maxDecompressed); err != nil {
		return 0, 0, fmt.Errorf("--max-decompressed-bytes: %w", err)
	}
	return record, decompressed, nil
}

// progress draws a byte progress bar on stderr when it is a terminal, and
// nothing otherwise.
type progress struct{ bar *progressbar.ProgressBar }

// newProgress makes a bar for total bytes; total < 0 draws a spinner.
func newProgress(total int64, what string) *progress {
	if !term.IsTerminal(int(os.Stderr.Fd())) {
		return &progress{}
	}
	return &progress{bar: progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSpinnerType(14),
	)}
}

func (p *progress) set(n int64) {
	if p.bar != nil {
		p.bar.Set64(n)
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
		p.bar.Clear()
	}
}
