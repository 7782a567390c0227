package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"worklog/data"
	"worklog/export/api"
	"worklog/internal/pgtest"
)

// replicas is measurement R: P4's load (cfg.clients page clients while one
// 300k CSV export runs) against one `worklog serve` on a shared PostgreSQL,
// then against two replicas over the same data directory and database,
// the page clients split between them and the export on the first. It
// reports pages answered per second while the export runs, and the pages'
// p50 and p99. Without PostgreSQL's programs (Debian's postgresql) it is
// skipped with a note saying so.
//
// Both replicas run on this machine: they share its cores, so the figure
// says what a second process costs or gains here, not what a second
// machine would.
func (b *bench) replicas(ctx context.Context, store string, files []data.PartFile) error {
	binDir, err := pgtest.FindBin()
	if err != nil {
		b.logf("R skipped: %v", err)
		b.res.note("R (two replicas against one) skipped: no PostgreSQL (%v); install Debian's %s", err, pgtest.Package)
		return nil
	}
	pg, err := pgtest.Start(binDir)
	if err != nil {
		return fmt.Errorf("start PostgreSQL: %w", err)
	}
	defer pg.Stop()
	dbURL := pg.URL("postgres")

	day, err := b.pageDay(ctx, files)
	if err != nil {
		return err
	}
	cutoff, err := b.cutoff(ctx, files)
	if err != nil {
		return err
	}
	// The page clients share the bench's token, as in P4: one user's
	// share of the query pool is raised to hold them all.
	args := []string{"--database-url", dbURL, "--queries-per-user", strconv.Itoa(b.cfg.clients)}
	a, err := b.serveReplica(ctx, store, "A", args...)
	if err != nil {
		return err
	}
	defer a.stop()

	type figures struct{ rate, p50, p99, exportSecs []float64 }
	var one, two figures
	measure := func(servers []*server, f *figures) error {
		urls := make([]string, b.cfg.clients)
		for i := range urls {
			urls[i] = servers[i%len(servers)].base + api.ExportPath + "?" + pageValues(day.AddDate(0, 0, -i), (i%5)*100).Encode()
		}
		var exportDone atomic.Bool
		exportErr := make(chan error, 1)
		start := time.Now()
		go func() {
			r, err := b.fetch(ctx, exportURL(servers[0].base, "csv", cutoff))
			if err == nil && r.code != http.StatusOK {
				err = fmt.Errorf("export: status %d", r.code)
			}
			f.exportSecs = append(f.exportSecs, r.dur.Seconds())
			exportDone.Store(true)
			exportErr <- err
		}()
		errs := map[string]int{}
		lat := b.clients(ctx, urls, func(_, n int) bool { return n < 5 || !exportDone.Load() }, nil, errs)
		wall := time.Since(start).Seconds()
		if err := <-exportErr; err != nil {
			return err
		}
		if len(errs) > 0 {
			return fmt.Errorf("failed page requests: %v", errs)
		}
		f.rate = append(f.rate, float64(len(lat))/wall)
		f.p50, f.p99 = append(f.p50, percentile(lat, 0.50)), append(f.p99, percentile(lat, 0.99))
		b.logf("R, %d replica(s): %d pages in %.1f s (%.1f/s), p50 %.0f ms p99 %.0f ms; export %.1f s",
			len(servers), len(lat), wall, f.rate[len(f.rate)-1], 1000*f.p50[len(f.p50)-1], 1000*f.p99[len(f.p99)-1], f.exportSecs[len(f.exportSecs)-1])
		return nil
	}
	// Warm both processes' caches the same way before any figure counts.
	if _, err := b.fetch(ctx, a.base+api.ExportPath+"?"+pageValues(day, 0).Encode()); err != nil {
		return err
	}
	bsrv, err := b.serveReplica(ctx, store, "B", args...)
	if err != nil {
		return err
	}
	defer bsrv.stop()
	if _, err := b.fetch(ctx, bsrv.base+api.ExportPath+"?"+pageValues(day, 0).Encode()); err != nil {
		return err
	}
	// Alternate one and two replicas, repetition by repetition (B idles
	// while one replica is measured).
	for rep := 0; rep < max(b.cfg.p4Reps, 1); rep++ {
		if err := measure([]*server{a}, &one); err != nil {
			return err
		}
		if err := measure([]*server{a, bsrv}, &two); err != nil {
			return err
		}
	}
	what := func(s string) string {
		return fmt.Sprintf("%s, %d page clients during a 300k CSV export, two replicas", s, b.cfg.clients)
	}
	b.res.add(line{ID: "R", What: what("pages answered per second"), Ours: newStat("/s", two.rate), Baseline: "one replica", Base: newStat("/s", one.rate)})
	b.res.add(line{ID: "R", What: what("page p50"), Ours: newStat("s", two.p50), Baseline: "one replica", Base: newStat("s", one.p50)})
	b.res.add(line{ID: "R", What: what("page p99"), Ours: newStat("s", two.p99), Baseline: "one replica", Base: newStat("s", one.p99)})
	b.res.note("R: the export took %s with one replica, %s with two; both replicas run on this machine's %d cores and share one PostgreSQL",
		newStat("s", one.exportSecs), newStat("s", two.exportSecs), runtime.NumCPU())
	return nil
}

// serveReplica starts `worklog serve` over the store at dir like serve,
// with its log in serve-replica-<name>.log: replicas share the data
// directory.
func (b *bench) serveReplica(ctx context.Context, dir, name string, extra ...string) (*server, error) {
	logf, err := os.Create(filepath.Join(b.cfg.work, "serve-replica-"+name+".log"))
	if err != nil {
		return nil, err
	}
	return b.start(ctx, dir, "replica "+name, logf, extra...)
}
