package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"worklog/export"
	"worklog/internal/audit"
	"worklog/internal/fsutil"
	"worklog/query"
)

// runExport runs 'worklog export': the endpoint's parameters as flags, the
// same plan, privacy transform and encoders, written atomically to a file.
func runExport(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	dataDir := dataDirFlag(fs)
	priv := addPrivacySettings(fs)
	out := fs.String("out", "", "output file (required; '-' for stdout)")
	format := fs.String("format", "", strings.Join(export.FormatNames(), ", ")+" (default: from the --out extension, e.g. out.parquet, else json)")
	limit := fs.String("limit", "", "at most this many rows (1–1000, a page); default: all")
	offset := fs.String("offset", "", "skip this many rows")
	cursor := fs.String("cursor", "", "continue right after the page that printed this cursor (with --limit and the same filters and ordering, without --offset); the endpoint's X-Next-Cursor works too")
	cursorOut := fs.String("cursor-out", "", "on a page (--limit) with more rows after it, write the next page's cursor to this file ('-': standard output); after the last page the file is empty")
	orderBy := fs.String("order-by-field", "", "field to order by (default date)")
	orderDir := fs.String("order-by-direction", "", "asc or desc (default desc)")
	rawQuery := fs.String("query", "", "the endpoint's query string, e.g. 'filters[0][key]=action&filters[0][comparator]=in&filters[0][values][]=readAction'")
	formulaGuard := fs.Bool("csv-formula-guard", true, "prefix CSV strings starting with = + - @ tab or CR by '")
	bom := fs.Bool("bom", false, "start a CSV with a UTF-8 byte-order mark, which Excel on Windows needs to read names like Günther")
	var filters, perms multiFlag
	fs.Var(&filters, "filter", "a filter FIELD:COMPARATOR[:OPERAND] (repeatable); between takes FROM..TO, in and notIn take values separated by '|', e.g. 'date:between:2024-05-10..2024-05-11', 'action:in:readAction|writeAction'")
	fs.Var(&perms, "permission", "permission of the reader (repeatable), e.g. reporting.viewEmail")
	auditPath := auditLogFlag(fs)
	dbURL := databaseURLFlag(fs)
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("export: unexpected argument %q", fs.Arg(0))
	}
	if *out == "" {
		return errors.New("export: --out is required")
	}
	if *cursorOut == "-" && *out == "-" {
		return errors.New("export: --cursor-out - and --out - would share standard output; name a file for one of them")
	}
	values, err := url.ParseQuery(*rawQuery)
	if err != nil {
		return fmt.Errorf("--query: %w", err)
	}
	if *format == "" && *out != "-" && !values.Has("format") {
		f, ok := export.FormatOfFileName(*out)
		if ext := filepath.Ext(*out); !ok && ext != "" {
			// Writing JSON into report.pdf helps nobody.
			return fmt.Errorf("--out %s: unknown extension %s; name the file .%s, or give --format", *out, ext, strings.Join(export.FormatNames(), ", ."))
		}
		if ok {
			*format = string(f)
		}
	}
	for name, v := range map[string]string{"format": *format, "limit": *limit, "offset": *offset, "cursor": *cursor, "orderByField": *orderBy, "orderByDirection": *orderDir} {
		if v != "" {
			values.Set(name, v)
		}
	}
	if *bom {
		values.Set("bom", "true")
	}
	if err := addFilterFlags(values, filters); err != nil {
		return err
	}

	// With replicas on a database, this reader's lease, its audit line and
	// (for pages) its cursor key are the replicas' shared ones.
	rd, err := openCLIReader(ctx, "export", *dataDir, databaseURL(dbURL), priv, perms)
	if err != nil {
		return err
	}
	defer rd.close()
	spool, err := export.OpenSpool(*dataDir)
	if spool == nil {
		return err
	}
	defer spool.Close()
	pol := rd.policy
	opts := export.PlanOptions(pol, export.FormatJSON)
	if values.Has("limit") || values.Has("cursor") {
		// Pages have cursors, sealed under the server's key in the data
		// directory: a cursor of 'worklog export' continues over HTTP and
		// the endpoint's X-Next-Cursor continues here.
		if opts.CursorKey, err = rd.shared.cursorKey(ctx, *dataDir); err != nil {
			return err
		}
	}
	plan, err := query.Parse(values, opts)
	if err != nil {
		return err
	}
	if *cursorOut != "" && plan.Limit == 0 {
		return errors.New("export: --cursor-out needs --limit: only a page has a next page")
	}
	f, err := export.ParseFormat(plan.Format)
	if err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	// One export, then the process exits: DuckDB may keep what it frees.
	// An encoder that works on a core of its own (Parquet) leaves DuckDB
	// the other cores: DuckDB's workers contending with it for the same
	// cores cost CPU time and gain no wall time (300k rows as Parquet at
	// level none on 2 shared cores, medians of 5: CPU 2.88 s against
	// 3.16 s, wall 3.5 s against 3.8 s).
	threads := 0
	if n := export.EncoderCores(f); n > 0 {
		threads = max(1, runtime.NumCPU()-n)
	}
	if err := rd.start(*auditPath, true, threads); err != nil {
		return err
	}
	req := export.Request{Engine: rd.engine, Snapshot: rd.snap, Plan: plan, Policy: pol, Format: f,
		Options: export.EncoderOptions{CSVFormulaGuard: *formulaGuard, CSVBOM: plan.BOM != nil && *plan.BOM, TempDir: spool.Dir()}}
	// On a page, the next page's cursor when more rows follow, as the
	// endpoint's X-Next-Cursor.
	var next string
	var cursorErr error
	if plan.Limit > 0 {
		req.Next = func(last query.Position) {
			next, cursorErr = query.EncodeCursor(opts.CursorKey, plan, last)
		}
	}
	rows, err := export.WriteFile(ctx, req, *out, fsutil.CommandOutput())
	if err == nil {
		err = cursorErr
	}
	err = rd.record(audit.Entry{Action: audit.ActionCLIExport, Params: audit.Params(values), Rows: rows}, err, "export_failed", *out)
	if err != nil {
		return err
	}
	if *cursorOut != "" {
		if err := writeCursor(*cursorOut, next); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "exported %d rows to %s\n", rows, *out)
	switch {
	case next != "":
		fmt.Fprintf(os.Stderr, "more rows follow; the next page: --cursor %s\n", next)
	case plan.Limit > 0:
		fmt.Fprintln(os.Stderr, "this was the last page")
	}
	return nil
}

// writeCursor writes the next page's cursor for --cursor-out as one line,
// to standard output for "-"; after the last page (cursor "") the file is
// empty, so a script loops until it reads nothing.
func writeCursor(path, cursor string) error {
	line := ""
	if cursor != "" {
		line = cursor + "\n"
	}
	if path == "-" {
		_, err := os.Stdout.WriteString(line)
		return err
	}
	if err := fsutil.WriteFile(path, []byte(line), 0o666, fsutil.CommandOutput()); err != nil {
		return fmt.Errorf("--cursor-out: %w", err)
	}
	return nil
}

// addFilterFlags turns --filter FIELD:COMPARATOR[:OPERAND] flags into the
// endpoint's filters[i][...] parameters, numbered after any from --query.
func addFilterFlags(values url.Values, filters []string) error {
	next := 0
	for k := range values {
		if rest, ok := strings.CutPrefix(k, "filters["); ok {
			if i, _, ok := strings.Cut(rest, "]"); ok {
				if n, err := strconv.Atoi(i); err == nil && n >= next {
					next = n + 1
				}
			}
		}
	}
	for _, spec := range filters {
		field, rest, ok1 := strings.Cut(spec, ":")
		comparator, operand, hasOperand := strings.Cut(rest, ":")
		if !ok1 || field == "" || comparator == "" {
			return fmt.Errorf("--filter %q: expected FIELD:COMPARATOR[:OPERAND]", spec)
		}
		p := fmt.Sprintf("filters[%d]", next)
		next++
		values.Set(p+"[key]", field)
		values.Set(p+"[comparator]", comparator)
		if !hasOperand {
			continue
		}
		switch comparator {
		case "between":
			from, to, ok := strings.Cut(operand, "..")
			if !ok {
				return fmt.Errorf("--filter %q: between takes FROM..TO", spec)
			}
			values.Set(p+"[from]", from)
			values.Set(p+"[to]", to)
		case "in", "notIn":
			for _, v := range strings.Split(operand, "|") {
				values.Add(p+"[values][]", v)
			}
		default:
			values.Set(p+"[value]", operand)
		}
	}
	return nil
}
