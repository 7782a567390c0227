package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"worklog/data"
	"worklog/data/iceberg"
	"worklog/ingest"
)

// timedPublisher is the Iceberg table with the time of its publishes
// added up.
type timedPublisher struct {
	*iceberg.Table
	mu    sync.Mutex
	spent time.Duration
}

func (p *timedPublisher) Publish(ctx context.Context, snap data.Snapshot) error {
	start := time.Now()
	err := p.Table.Publish(ctx, snap)
	p.mu.Lock()
	p.spent += time.Since(start)
	p.mu.Unlock()
	return err
}

// publishCost measures I: what publishing each commit as an Iceberg snapshot
// adds to an ingest of the whole dump into an empty store (issue 20: at
// most 10 %). Both ingests run in this process through ingest.Run, the
// path `worklog ingest` takes, one with the store's Iceberg table as its
// publisher and one without, alternating which goes first.
func (b *bench) publishCost(ctx context.Context, dump string) error {
	var with, without, publish []float64
	for rep := 0; rep < b.cfg.reps; rep++ {
		run := func(publishing bool) error {
			dir := filepath.Join(b.cfg.work, "i-store")
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			var pub *timedPublisher
			opts := data.StoreOptions{}
			if publishing {
				tbl, err := iceberg.New(filepath.Join(dir, "worklog"), iceberg.Options{})
				if err != nil {
					return err
				}
				pub = &timedPublisher{Table: tbl}
				opts.Publisher = pub
			}
			f, err := os.Open(dump)
			if err != nil {
				return err
			}
			defer f.Close()
			start := time.Now()
			st, err := data.Open(dir, opts)
			if err != nil {
				return err
			}
			defer st.Close()
			sum, err := ingest.Run(ctx, st, []ingest.Input{{Name: filepath.Base(dump), R: f}}, ingest.Options{})
			if err != nil {
				return fmt.Errorf("ingest: %w", err)
			}
			took := time.Since(start).Seconds()
			if publishing {
				with = append(with, took)
				publish = append(publish, pub.spent.Seconds())
				if n := st.PublishFailures(); n > 0 {
					return fmt.Errorf("%d publish failures", n)
				}
				b.logf("I rep %d ingest with Iceberg publish: %.1f s (publish %.2f s), %d new", rep+1, took, pub.spent.Seconds(), sum.New)
			} else {
				without = append(without, took)
				b.logf("I rep %d ingest without publish: %.1f s, %d new", rep+1, took, sum.New)
			}
			return nil
		}
		order := []bool{false, true}
		if rep%2 == 1 {
			slices.Reverse(order)
		}
		for _, publishing := range order {
			if err := run(publishing); err != nil {
				return err
			}
		}
	}
	l := line{ID: "I", What: "ingest into an empty store, publishing the Iceberg snapshot", Ours: newStat("s", with),
		Baseline: "the same ingest without publishing", Base: newStat("s", without), Target: "≤ 1.10×"}
	b.res.add(l)
	last := &b.res.Lines[len(b.res.Lines)-1]
	last.Met = verdict(last.Ratio > 0 && last.Ratio <= 1.10)
	b.res.add(line{ID: "I", What: "of which the publish itself (manifests, metadata, expiry)", Ours: newStat("s", publish)})
	return nil
}
