package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"worklog/export"
	"worklog/internal/audit"
	"worklog/internal/fsutil"
	"worklog/query"
)

// minGroupAgentsFlag defines --min-group-agents (SPEC §9, §10), shared by
// serve and analytics.
func minGroupAgentsFlag(fs *flag.FlagSet) *string {
	return stringSetting(fs, "min-group-agents", "WORKLOG_MIN_GROUP_AGENTS", "0",
		"at levels partiallyPseudonymized and pseudonymized, leave out analytics groups of fewer distinct agents, and refuse grouping by name (0 or 1: off)")
}

// parseMinGroupAgents parses --min-group-agents: a count ≥ 0.
func parseMinGroupAgents(v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("--min-group-agents: expected a number of agents ≥ 0, got %q", v)
	}
	return n, nil
}

// runAnalytics runs 'worklog analytics': the analytics endpoint's
// parameters as flags, the same plan, privacy rules and encoders, written
// to standard output or atomically to a file.
func runAnalytics(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("analytics", flag.ContinueOnError)
	dataDir := dataDirFlag(fs)
	priv := addPrivacySettings(fs)
	minGroup := minGroupAgentsFlag(fs)
	out := fs.String("out", "-", "output file ('-': standard output)")
	format := fs.String("format", "", strings.Join(export.FormatNames(), ", ")+" (default: from the --out extension, else json)")
	limit := fs.String("limit", "", fmt.Sprintf("groups to return, 1–%d (default %d)", query.MaxGroupLimit, query.DefaultGroupLimit))
	offset := fs.String("offset", "", "groups to skip")
	orderBy := fs.String("order-by-field", "", "a --group-by entry or a --measure, as written (default: the dimensions in order)")
	orderDir := fs.String("order-by-direction", "", "asc or desc (default asc)")
	rawQuery := fs.String("query", "", "the endpoint's query string, e.g. 'groupBy[]=date:week&measures[]=count'")
	formulaGuard := fs.Bool("csv-formula-guard", true, "prefix CSV strings starting with = + - @ tab or CR by '")
	var groupBy, measures, filters, perms multiFlag
	fs.Var(&groupBy, "group-by", "a dimension (repeatable, in order, at most 4): "+strings.Join(query.DimensionNames(), ", "))
	fs.Var(&measures, "measure", "a measure (repeatable, in order): count, tickets, agents, slaMetRate, sum(F), avg(F), min(F), max(F), p50(F), p90(F), p95(F) of a numeric field, rate(F) of a 0/1 field")
	fs.Var(&filters, "filter", "a filter FIELD:COMPARATOR[:OPERAND] (repeatable), as for 'worklog export'")
	fs.Var(&perms, "permission", "permission of the reader (repeatable), e.g. reporting.viewEmail")
	auditPath := auditLogFlag(fs)
	dbURL := databaseURLFlag(fs)
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("analytics: unexpected argument %q", fs.Arg(0))
	}
	minAgents, err := parseMinGroupAgents(*minGroup)
	if err != nil {
		return err
	}
	values, err := url.ParseQuery(*rawQuery)
	if err != nil {
		return fmt.Errorf("--query: %w", err)
	}
	if *format == "" && *out != "-" {
		if f, ok := export.FormatOfFileName(*out); ok {
			*format = string(f)
		}
	}
	for name, v := range map[string]string{"format": *format, "limit": *limit, "offset": *offset, "orderByField": *orderBy, "orderByDirection": *orderDir} {
		if v != "" {
			values.Set(name, v)
		}
	}
	for _, g := range groupBy {
		values.Add("groupBy[]", g)
	}
	for _, m := range measures {
		values.Add("measures[]", m)
	}
	if err := addFilterFlags(values, filters); err != nil {
		return err
	}

	// With replicas on a database, this reader's lease and its audit line
	// are the replicas' shared ones.
	rd, err := openCLIReader(ctx, "analytics", *dataDir, databaseURL(dbURL), priv, perms)
	if err != nil {
		return err
	}
	defer rd.close()
	pol := rd.policy
	plan, err := query.ParseAggregate(values, export.AggregateOptions(pol, export.FormatJSON, minAgents))
	if err != nil {
		return err
	}
	f, err := export.ParseFormat(plan.Format)
	if err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	if err := rd.start(*auditPath, false, 0); err != nil {
		return err
	}
	req := export.AggregateRequest{Engine: rd.engine, Snapshot: rd.snap, Plan: plan, Policy: pol, Format: f,
		Options: export.EncoderOptions{CSVFormulaGuard: *formulaGuard}}
	rows, res, err := export.WriteAggregateFile(ctx, req, *out, fsutil.CommandOutput())
	err = rd.record(audit.Entry{Action: audit.ActionAnalytics, Params: audit.Params(values), Rows: rows}, err, "analytics_failed", *out)
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("%d of %d groups", rows, res.Total)
	if plan.MinGroupAgents > 1 {
		msg += fmt.Sprintf(", %d suppressed (fewer than %d agents)", res.Suppressed, plan.MinGroupAgents)
	}
	if *out != "-" {
		msg += " to " + *out
	}
	fmt.Fprintln(os.Stderr, msg)
	return nil
}
