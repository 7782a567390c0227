package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"worklog/data"
)

// duckIngestSQL is DuckDB's own ingest of an NDJSON dump into one Parquet
// file, with the catalogue's column types (as P2 runs it).
func duckIngestSQL(dump, out string) string {
	var cols []string
	for _, f := range data.Fields() {
		cols = append(cols, data.QuoteString(f.Name)+": "+data.QuoteString(f.Kind.SQLType()))
	}
	return "COPY (SELECT * FROM read_json(" + data.QuoteString(dump) +
		", format = 'newline_delimited', columns = {" + strings.Join(cols, ", ") + "})) TO " +
		data.QuoteString(out) + " (FORMAT parquet)"
}

// ingestHead measures ID: `worklog ingest` of the NDJSON dump into an empty
// store against DuckDB's read_json → Parquet COPY of the same dump, in
// child processes, alternating, reps times: events per second of wall
// time, CPU time (user + system of the whole process: steadier than wall
// time on a shared machine) and peak RSS. With --rows-ingest-large N it
// then runs both once on a dump of N events, whose store and Parquet file
// it removes afterwards.
func (b *bench) ingestHead(ctx context.Context, dump string) error {
	if err := b.ingestPair(ctx, dump, b.cfg.rows, b.cfg.reps); err != nil {
		return err
	}
	if b.cfg.ingestLarge > 0 {
		large, err := b.dump(ctx, b.cfg.ingestLarge)
		if err != nil {
			return err
		}
		if err := b.ingestPair(ctx, large, b.cfg.ingestLarge, 1); err != nil {
			return err
		}
	}
	return nil
}

// ingestPair runs ours and DuckDB's ingest of dump (rows events) reps
// times, alternating which goes first, and adds ID's lines.
func (b *bench) ingestPair(ctx context.Context, dump string, rows, reps int) error {
	dir := filepath.Join(b.cfg.work, "i-store")
	out := filepath.Join(b.cfg.work, "i-duckdb.parquet")
	defer os.RemoveAll(dir)
	defer os.Remove(out)
	n := float64(rows)
	var ours, base, oursCPU, baseCPU, oursRSS, baseRSS []float64
	for rep := range reps {
		worklog := func() error {
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
			res, err := b.ingest(ctx, dump, dir)
			if err != nil {
				return err
			}
			ours, oursCPU, oursRSS = append(ours, n/res.wall.Seconds()), append(oursCPU, res.cpu.Seconds()), append(oursRSS, mb(res.peakRSS))
			b.logf("ID %s rep %d worklog ingest: %.1f s, CPU %.1f s, peak RSS %.0f MB", humanRows(rows), rep+1, res.wall.Seconds(), res.cpu.Seconds(), mb(res.peakRSS))
			return nil
		}
		duckdb := func() error {
			secs, res, err := duckdbChildProc(ctx, duckIngestSQL(dump, out))
			if err != nil {
				return err
			}
			os.Remove(out)
			base, baseCPU, baseRSS = append(base, n/secs), append(baseCPU, res.cpu.Seconds()), append(baseRSS, mb(res.peakRSS))
			b.logf("ID %s rep %d DuckDB COPY: %.1f s, CPU %.1f s, peak RSS %.0f MB", humanRows(rows), rep+1, secs, res.cpu.Seconds(), mb(res.peakRSS))
			return nil
		}
		steps := []func() error{worklog, duckdb}
		if rep%2 == 1 {
			slices.Reverse(steps)
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return fmt.Errorf("ID: %w", err)
			}
		}
	}
	what := humanRows(rows) + " NDJSON into an empty store"
	speed := line{ID: "ID", What: "ingest " + what, Ours: newStat("ev/s", ours),
		Baseline: "DuckDB read_json → Parquet COPY", Base: newStat("ev/s", base), Target: "≥ 1.0×"}
	speed.Met = verdict(speed.Ours.Median >= speed.Base.Median)
	b.res.add(speed)
	b.res.add(line{ID: "ID", What: "CPU time (user + system) of the ingest of " + what, Ours: newStat("s", oursCPU),
		Baseline: "DuckDB COPY process", Base: newStat("s", baseCPU)})
	peak := slices.Max(oursRSS)
	b.res.add(line{ID: "ID", What: "peak RSS of the ingest of " + what + " (max)", Ours: newStat("MB", []float64{peak}),
		Baseline: "DuckDB COPY process", Base: newStat("MB", baseRSS), Target: "≤ 512 MB", Met: verdict(peak <= 512)})
	return nil
}
