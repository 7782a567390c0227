package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"worklog/data"
)

// duckIngestSQL is DuckDB's own ingest of an NDJSON dump into one Parquet
// file, with the catalogue's column types (as P2 runs it). codec "" keeps
// DuckDB's default codec (snappy); "zstd" is the store's codec.
func duckIngestSQL(dump, out, codec string) string {
	var cols []string
	for _, f := range data.Fields() {
		cols = append(cols, data.QuoteString(f.Name)+": "+data.QuoteString(f.Kind.SQLType()))
	}
	opts := "FORMAT parquet"
	if codec != "" {
		opts += ", COMPRESSION " + codec
	}
	return "COPY (SELECT * FROM read_json(" + data.QuoteString(dump) +
		", format = 'newline_delimited', columns = {" + strings.Join(cols, ", ") + "})) TO " +
		data.QuoteString(out) + " (" + opts + ")"
}

// ingestHead measures ID: `worklog ingest` of the NDJSON dump into an empty
// store against DuckDB's read_json → Parquet COPY of the same dump, in
// child processes, alternating, reps times: events per second of wall
// time, CPU time (user + system of the whole process: steadier than wall
// time on a shared machine) and peak RSS. DuckDB's COPY runs twice: with
// its default codec (snappy: the target's baseline) and with zstd, the
// store's codec (like for like). With --rows-ingest-large N it
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

// ingestPair runs ours and DuckDB's ingest of dump (rows events), the
// latter with its default codec and with zstd, reps times, rotating which
// goes first, and adds ID's lines.
func (b *bench) ingestPair(ctx context.Context, dump string, rows, reps int) error {
	dir := filepath.Join(b.cfg.work, "i-store")
	out := filepath.Join(b.cfg.work, "i-duckdb.parquet")
	defer os.RemoveAll(dir)
	defer os.Remove(out)
	// Whichever side reads the dump first would otherwise pay for reading
	// it from disk (a 10M dump is 16.7 GB): both start from the page cache.
	if err := readThrough(dump); err != nil {
		return fmt.Errorf("ID: warm the page cache: %w", err)
	}
	n := float64(rows)
	var ours, oursCPU, oursRSS []float64
	// DuckDB's COPY with its default codec, then with zstd.
	var base, baseCPU, baseRSS, sizes [2][]float64
	defaultCodec := "default codec"
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
		duckdb := func(k int, codec string) func() error {
			return func() error {
				secs, res, err := duckdbChildProc(ctx, duckIngestSQL(dump, out, codec))
				if err != nil {
					return err
				}
				if k == 0 && rep == 0 {
					// Name the default codec as DuckDB wrote it.
					var c string
					if err := b.db.QueryRowContext(ctx, "SELECT string_agg(DISTINCT compression, ', ') FROM parquet_metadata("+data.QuoteString(out)+")").Scan(&c); err == nil {
						defaultCodec = "default codec " + c
					}
				}
				if fi, err := os.Stat(out); err == nil {
					sizes[k] = append(sizes[k], mb(fi.Size()))
				}
				os.Remove(out)
				base[k], baseCPU[k], baseRSS[k] = append(base[k], n/secs), append(baseCPU[k], res.cpu.Seconds()), append(baseRSS[k], mb(res.peakRSS))
				name := "default codec"
				if codec != "" {
					name = codec
				}
				b.logf("ID %s rep %d DuckDB COPY (%s): %.1f s, CPU %.1f s, peak RSS %.0f MB", humanRows(rows), rep+1, name, secs, res.cpu.Seconds(), mb(res.peakRSS))
				return nil
			}
		}
		steps := []func() error{worklog, duckdb(0, ""), duckdb(1, "zstd")}
		// Each of the three goes first, second and third in turn.
		for range rep % len(steps) {
			steps = append(steps[1:], steps[0])
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return fmt.Errorf("ID: %w", err)
			}
		}
	}
	what := humanRows(rows) + " NDJSON into an empty store"
	storeMB := 0.0
	if files, err := storeFiles(dir); err == nil {
		for _, f := range files {
			if fi, err := os.Stat(f.Path); err == nil {
				storeMB += mb(fi.Size())
			}
		}
	}
	baseline := [2]string{"DuckDB read_json → Parquet COPY, " + defaultCodec, "DuckDB read_json → Parquet COPY, zstd (the store's codec)"}
	speed := line{ID: "ID", What: "ingest " + what, Ours: newStat("ev/s", ours),
		Baseline: baseline[0], Base: newStat("ev/s", base[0]), Target: "≥ 1.0×"}
	speed.Met = verdict(speed.Ours.Median >= speed.Base.Median)
	b.res.add(speed)
	b.res.add(line{ID: "ID", What: "ingest " + what + ", like for like codec", Ours: newStat("ev/s", ours),
		Baseline: baseline[1], Base: newStat("ev/s", base[1]),
		Note: fmt.Sprintf("files: ours %.0f MB (zstd), DuckDB %.0f MB (%s), %.0f MB (zstd)", storeMB, medianOf(sizes[0]), defaultCodec, medianOf(sizes[1]))})
	for k := range base {
		b.res.add(line{ID: "ID", What: "CPU time (user + system) of the ingest of " + what, Ours: newStat("s", oursCPU),
			Baseline: baseline[k], Base: newStat("s", baseCPU[k])})
	}
	peak := slices.Max(oursRSS)
	b.res.add(line{ID: "ID", What: "peak RSS of the ingest of " + what + " (max)", Ours: newStat("MB", []float64{peak}),
		Baseline: "DuckDB COPY process, " + defaultCodec, Base: newStat("MB", baseRSS[0]), Target: "≤ 512 MB", Met: verdict(peak <= 512)})
	return nil
}

// medianOf is the median of xs, 0 when there are none.
func medianOf(xs []float64) float64 {
	if st := newStat("", xs); st != nil {
		return st.Median
	}
	return 0
}

// readThrough reads the file at path once, so that its pages are in the
// page cache (as far as memory allows) before it is timed.
func readThrough(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return err
}
