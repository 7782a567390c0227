package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"

	"worklog/data"
)

// forget measures F: `worklog forget` of the agent with the most events
// (anonymize), against `worklog ingest` of that agent's own events, which
// rewrites the same months: the cost of an erasure beside the cost of the
// ingest it most resembles. Each run works on a fresh copy of the store.
func (b *bench) forget(ctx context.Context, store string, files []data.PartFile) error {
	var user int64
	var events int64
	if err := b.db.QueryRowContext(ctx, `SELECT "userId", count(*) FROM `+data.ScanSQL(files)+
		` WHERE "userId" IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1`).Scan(&user, &events); err != nil {
		return fmt.Errorf("pick an agent: %w", err)
	}
	uid := strconv.FormatInt(user, 10)
	agentDump := filepath.Join(b.cfg.work, "agent-"+uid+".json")
	if _, err := runProc(ctx, exec.CommandContext(ctx, b.bin, "export", "--data", store, "--privacy-level", "none",
		"--format", "json", "--out", agentDump, "--filter", "userId:equals:"+uid)); err != nil {
		return fmt.Errorf("export the agent's events: %w", err)
	}
	defer os.Remove(agentDump)
	work := filepath.Join(b.cfg.work, "f-store")
	defer os.RemoveAll(work)
	var ours, base, oursRSS, baseRSS []float64
	for rep := 0; rep < b.cfg.reps; rep++ {
		run := func(what string, series, rss *[]float64, args ...string) error {
			if err := copyStore(store, work); err != nil {
				return err
			}
			res, err := runProc(ctx, exec.CommandContext(ctx, b.bin, args...))
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			*series, *rss = append(*series, res.wall.Seconds()), append(*rss, mb(res.peakRSS))
			b.logf("F rep %d %s: %.1f s, peak RSS %.0f MB", rep+1, what, res.wall.Seconds(), mb(res.peakRSS))
			return nil
		}
		steps := []func() error{
			func() error { return run("forget", &ours, &oursRSS, "forget", "--data", work, "--user-id", uid) },
			func() error { return run("ingest", &base, &baseRSS, "ingest", "--data", work, agentDump) },
		}
		if rep%2 == 1 {
			slices.Reverse(steps)
		}
		for _, s := range steps {
			if err := s(); err != nil {
				return err
			}
		}
	}
	what := fmt.Sprintf("forget one agent (userId %s, %d events)", uid, events)
	b.res.add(line{ID: "F", What: what, Ours: newStat("s", ours), Baseline: "worklog ingest of the agent's events (same months)", Base: newStat("s", base)})
	b.res.add(line{ID: "F", What: "forget peak RSS", Ours: newStat("MB", oursRSS), Baseline: "that ingest", Base: newStat("MB", baseRSS)})
	return nil
}

// copyStore replaces dst with a copy of the data directory src: part files
// as hard links (nothing modifies a committed part), the rest copied.
func copyStore(src, dst string) error {
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if filepath.Ext(p) == ".parquet" {
			return os.Link(p, target)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}
