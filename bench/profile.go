package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"worklog/data"
	"worklog/export"
	"worklog/privacy"
	"worklog/query"
)

// profileExport runs P1's export in this process at the privacy level of
// --profile-level (default none, the like-for-like level), stage by stage,
// so that the time of each stage shows: DuckDB's batches alone, then with
// the privacy transform, then the whole pipeline into io.Discard under a
// CPU profile written to profPath and an allocation profile beside it
// (-alloc.pprof). Only Go's own CPU time is in the profile; DuckDB's worker
// threads show up in `perf top -p`, not in pprof.
func (b *bench) profileExport(ctx context.Context, store, format, profPath string) error {
	st, err := data.Open(store, data.StoreOptions{})
	if err != nil {
		return err
	}
	defer st.Close()
	eng, err := query.NewEngine(st, query.EngineOptions{MemoryLimit: "1GB", TempDirectory: filepath.Join(b.cfg.work, "duckdb-tmp")})
	if err != nil {
		return err
	}
	defer eng.Close()
	snap, err := eng.Snapshot()
	if err != nil {
		return err
	}
	cutoff, err := b.cutoff(ctx, snap.Files)
	if err != nil {
		return err
	}
	level, err := privacy.ParseLevel(b.cfg.profileLevel)
	if err != nil {
		return err
	}
	pol, err := privacy.NewPolicy(level, nil, make([]byte, 32))
	if err != nil {
		return err
	}
	u, _ := url.Parse(exportURL("", format, cutoff))
	plan, err := query.Parse(u.Query(), export.PlanOptions(pol, "json"))
	if err != nil {
		return err
	}
	plan.Unread = pol.Unread() // as export.Run sets it
	stage := func(name string, transform bool) error {
		start, cpu0 := time.Now(), processCPU()
		rr, err := eng.Records(ctx, snap, plan)
		if err != nil {
			return err
		}
		defer rr.Release()
		first := time.Duration(0)
		var n int64
		for rr.Next() {
			if first == 0 {
				first = time.Since(start)
			}
			rec := rr.RecordBatch()
			n += rec.NumRows()
			if transform {
				out, err := pol.Transform(rec)
				if err != nil {
					return err
				}
				out.Release()
			}
		}
		if err := rr.Err(); err != nil {
			return err
		}
		b.logf("%s: %d rows in %.2f s, CPU %.2f s (first batch after %.2f s)", name, n, time.Since(start).Seconds(), (processCPU() - cpu0).Seconds(), first.Seconds())
		return nil
	}
	if err := stage("records", false); err != nil {
		return err
	}
	if err := stage("records + privacy", true); err != nil {
		return err
	}
	f, err := os.Create(profPath)
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.MemProfileRate = 64 << 10
	runtime.GC()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	start, cpu0 := time.Now(), processCPU()
	ff, _ := export.ParseFormat(format)
	rows, err := export.Run(ctx, export.Request{Engine: eng, Snapshot: snap, Plan: plan, Policy: pol, Format: ff}, io.Discard, nil)
	pprof.StopCPUProfile()
	if err != nil {
		return err
	}
	b.logf("records + privacy + %s: %d rows in %.2f s, CPU %.2f s; CPU profile in %s", format, rows, time.Since(start).Seconds(), (processCPU() - cpu0).Seconds(), profPath)
	allocPath := strings.TrimSuffix(profPath, ".pprof") + "-alloc.pprof"
	af, err := os.Create(allocPath)
	if err != nil {
		return err
	}
	defer af.Close()
	if err := pprof.Lookup("allocs").WriteTo(af, 0); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "inspect with: go tool pprof -top %s; go tool pprof -sample_index=alloc_space -top %s\n", profPath, allocPath)
	return nil
}

// processCPU is this process's CPU time (user + system, all threads, so
// DuckDB's too): steadier than the wall clock on a shared machine.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
