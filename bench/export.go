package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"worklog/data"
	"worklog/export/api"
	"worklog/ingest/demo"
	"worklog/internal/fsutil"
)

// storeOrder is the newest-first order of P1's baselines.
var storeOrder = " ORDER BY " + data.QuoteIdent(data.DateField) + " DESC, " + data.QuoteIdent(data.KeyField) + " DESC"

// cutoff is the date of the 300,001st newest row of files: P1's filter is
// `date > cutoff`, which leaves (at most, with ties) the newest 300,000.
func (b *bench) cutoff(ctx context.Context, files []data.PartFile) (string, error) {
	var cutoff string
	q := "SELECT strftime(" + data.QuoteIdent(data.DateField) + ", '%Y-%m-%d %H:%M:%S') FROM " + data.ScanSQL(files) + " AS t" + storeOrder + " LIMIT 1 OFFSET " + strconv.Itoa(exportRows)
	if err := b.db.QueryRowContext(ctx, q).Scan(&cutoff); err != nil {
		return "", fmt.Errorf("find cutoff: %w", err)
	}
	return cutoff, nil
}

// p1 measures the synchronous export of the newest 300,000 rows over HTTP
// like for like (issue 18): a server of its own at privacy level none, so
// that our export has all 35 columns with rawData, as DuckDB's COPY of the
// same filter (B2) and of the top-N (B) have. The same request at the
// shared server's level, pseudonymized (no rawData, fewer columns, dates
// by day), is timed beside it and labelled as such: it is not a like for
// like figure. The level-none server's peak RSS is its VmHWM after every
// P1 request.
func (b *bench) p1(ctx context.Context, pseudo *server, store string, files []data.PartFile) error {
	cutoff, err := b.cutoff(ctx, files)
	if err != nil {
		return err
	}
	b.logf("P1: cutoff date %s", cutoff)
	none, stop, err := b.serveLevelNone(ctx, store, "-none")
	if err != nil {
		return err
	}
	defer stop()
	scan := data.ScanSQL(files) + " AS t"
	out := filepath.Join(b.cfg.work, "copy.out")
	defer os.Remove(out)
	b2 := "SELECT " + columns() + " FROM " + scan + " WHERE " + data.QuoteIdent(data.DateField) + " > TIMESTAMP " + data.QuoteString(cutoff) + storeOrder
	topN := "SELECT " + columns() + " FROM " + scan + storeOrder + " LIMIT " + strconv.Itoa(exportRows)

	type series struct{ ours, pseudo, b2, b, b2rss, brss, ocpu, b2cpu []float64 }
	by := map[string]*series{}
	rows := map[string]int64{}
	bytes := map[string]int64{}
	for rep := 0; rep < b.cfg.reps; rep++ {
		for _, format := range b.cfg.formats {
			s := by[format]
			if s == nil {
				s = &series{}
				by[format] = s
			}
			ours := func(name string, srv *server, secs, cpu *[]float64) error {
				cpu0, _ := procCPU(srv.cmd.Process.Pid)
				r, err := b.fetch(ctx, exportURL(srv.base, format, cutoff))
				if err != nil {
					return err
				}
				if cpu1, err := procCPU(srv.cmd.Process.Pid); err == nil && cpu != nil {
					*cpu = append(*cpu, (cpu1 - cpu0).Seconds())
				}
				if r.code != http.StatusOK {
					return fmt.Errorf("export %s (%s): status %d", format, name, r.code)
				}
				rows[name], bytes[name+format] = r.total, r.bytes
				*secs = append(*secs, r.dur.Seconds())
				b.logf("P1 rep %d %s ours (%s): %.2f s, %d rows, %.0f MB", rep+1, format, name, r.dur.Seconds(), r.total, mb(r.bytes))
				return nil
			}
			base := func(name, sel string, secs, rss, cpu *[]float64) error {
				t, res, err := duckdbChildProc(ctx, copyTo(sel, format, out))
				if err != nil {
					return fmt.Errorf("%s %s: %w", name, format, err)
				}
				peak := res.peakRSS
				*secs, *rss = append(*secs, t), append(*rss, mb(peak))
				if cpu != nil {
					*cpu = append(*cpu, res.cpu.Seconds())
				}
				b.logf("P1 rep %d %s %s: %.2f s, peak RSS %.0f MB", rep+1, format, name, t, mb(peak))
				return nil
			}
			steps := []func() error{
				func() error { return ours("none", none, &s.ours, &s.ocpu) },
				func() error { return base("B2", b2, &s.b2, &s.b2rss, &s.b2cpu) },
				func() error { return base("B", topN, &s.b, &s.brss, nil) },
				func() error { return ours("pseudonymized", pseudo, &s.pseudo, nil) },
			}
			if rep%2 == 1 {
				slices.Reverse(steps)
			}
			for _, step := range steps {
				if err := step(); err != nil {
					return err
				}
			}
		}
	}
	hwm, err := vmHWM(none.cmd.Process.Pid)
	if err != nil {
		return fmt.Errorf("server peak RSS: %w", err)
	}
	for _, format := range b.cfg.formats {
		s := by[format]
		ours, b2s, bs := newStat("s", s.ours), newStat("s", s.b2), newStat("s", s.b)
		what := fmt.Sprintf("export newest 300k, %s, level none, over HTTP", strings.ToUpper(format))
		b.res.add(line{ID: "P1", What: what, Ours: ours, Baseline: "B2: DuckDB COPY, same filter, 35 columns", Base: b2s,
			Target: "≤ 0.75×", Met: verdict(ours.Median <= 0.75*b2s.Median)})
		b.res.add(line{ID: "P1", What: what, Ours: ours, Baseline: "B: DuckDB COPY, top-N LIMIT 300000", Base: bs,
			Target: "≤ 0.5×", Met: verdict(ours.Median <= 0.5*bs.Median)})
		b.res.add(line{ID: "P1", What: fmt.Sprintf("CPU time (user + system) of the same, %s", strings.ToUpper(format)), Ours: newStat("s", s.ocpu),
			Baseline: "B2 COPY process", Base: newStat("s", s.b2cpu),
			Note: "the server's CPU time during each request (/proc/<pid>/stat) against the whole COPY process's; steadier than wall time when other processes share the cores"})
		b.res.add(line{ID: "P1", What: fmt.Sprintf("the same at level pseudonymized (no rawData; not like for like), %s", strings.ToUpper(format)),
			Ours: newStat("s", s.pseudo), Baseline: "B2: DuckDB COPY, same filter, 35 columns", Base: b2s})
		b.res.add(line{ID: "P1", What: fmt.Sprintf("peak RSS, %s (ours: level-none server VmHWM)", strings.ToUpper(format)),
			Ours: newStat("MB", []float64{mb(hwm)}), Baseline: "B2 COPY process", Base: newStat("MB", s.b2rss),
			Target: "≤ 300 MB", Met: verdict(mb(hwm) <= 300)})
	}
	b.res.note("P1: our request is filters[0] date gt %q, ordered by date desc. At level none it returns %d rows with all 35 columns (%.0f MB of CSV, %.0f MB of JSON), as B2 and B do (%d rows). At level pseudonymized the server compares and orders by the date part and omits rawData and the personal columns: %d rows, %.0f MB of CSV, %.0f MB of JSON.",
		cutoff, rows["none"], mb(bytes["nonecsv"]), mb(bytes["nonejson"]), exportRows, rows["pseudonymized"], mb(bytes["pseudonymizedcsv"]), mb(bytes["pseudonymizedjson"]))
	return nil
}

// serveLevelNone starts a level-none server over a copy of the store at
// store (named store+suffix): a second server cannot share the running
// one's data directory (its job store is locked), so it gets a copy whose
// parts are hard links to the same files. stop stops the server and
// removes the copy.
func (b *bench) serveLevelNone(ctx context.Context, store, suffix string) (srv *server, stop func(), err error) {
	dir := store + suffix
	if err := linkStore(store, dir); err != nil {
		return nil, nil, fmt.Errorf("copy store for the level-none server: %w", err)
	}
	srv, err = b.serve(ctx, dir, "--privacy-level", "none")
	if err != nil {
		return nil, nil, errors.Join(err, os.RemoveAll(dir))
	}
	return srv, func() {
		srv.stop()
		// A copy left behind is named in the next run's error.
		_ = os.RemoveAll(dir)
	}, nil
}

// linkStore makes dst a copy of the store at src that a second server can
// open while one runs over src: copyStore's hard links and copies, without
// src's running state (its job store, locks, reader leases, spool).
func linkStore(src, dst string) error {
	if err := copyStore(src, dst); err != nil {
		return err
	}
	for _, p := range []string{"jobs.db", "audit.log.lock", "tmp", "exports", filepath.Join("worklog", "_readers"), filepath.Join("worklog", "_lock")} {
		if err := os.RemoveAll(filepath.Join(dst, p)); err != nil {
			return err
		}
	}
	return nil
}

// procCPU is a running process's CPU time so far (user + system, all
// threads), from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields count from the
	// closing parenthesis: utime and stime are fields 14 and 15.
	rest := string(b[bytes.LastIndexByte(b, ')')+1:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	// Linux reports clock ticks of USER_HZ, 100 per second on every
	// architecture Go supports.
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// copyTo is DuckDB's COPY of sel to out as CSV (with a header) or as a JSON
// array, the shapes of our CSV and JSON exports.
func copyTo(sel, format, out string) string {
	opts := "FORMAT csv, HEADER"
	if format == "json" {
		opts = "FORMAT json, ARRAY true"
	}
	return "COPY (" + sel + ") TO " + data.QuoteString(out) + " (" + opts + ")"
}

// busyDayRows is the size of the busy-day store: one day as large as P1's
// export.
const busyDayRows = exportRows

// busyDay (BD) measures the export of a store whose events all fall on one
// day (300,000 events) at level none, JSON and CSV, from a server of its
// own: the one day cannot be read as chunks of whole days, so this is
// where memory would grow with the day. It reports the export's time, the
// server's CPU time during it and the server's peak RSS.
func (b *bench) busyDay(ctx context.Context) error {
	dump, err := b.busyDayDump(ctx)
	if err != nil {
		return err
	}
	store := filepath.Join(b.cfg.work, fmt.Sprintf("store-busyday-%d", busyDayRows))
	if err := b.ensureStore(ctx, dump, store); err != nil {
		return err
	}
	srv, err := b.serve(ctx, store, "--privacy-level", "none")
	if err != nil {
		return err
	}
	defer srv.stop()
	v := url.Values{"orderByField": {data.DateField}, "orderByDirection": {"desc"}}
	secs, cpu := map[string][]float64{}, map[string][]float64{}
	var rows int64
	for rep := 0; rep < b.cfg.reps; rep++ {
		for _, format := range b.cfg.formats {
			v.Set("format", format)
			cpu0, err := procCPU(srv.cmd.Process.Pid)
			if err != nil {
				return fmt.Errorf("server CPU time: %w", err)
			}
			r, err := b.fetch(ctx, srv.base+api.ExportPath+"?"+v.Encode())
			if err != nil {
				return err
			}
			if r.code != http.StatusOK {
				return fmt.Errorf("busy day export %s: status %d", format, r.code)
			}
			cpu1, err := procCPU(srv.cmd.Process.Pid)
			if err != nil {
				return fmt.Errorf("server CPU time: %w", err)
			}
			rows = r.total
			secs[format] = append(secs[format], r.dur.Seconds())
			cpu[format] = append(cpu[format], (cpu1 - cpu0).Seconds())
			b.logf("BD rep %d %s: %.2f s, CPU %.2f s, %d rows, %.0f MB", rep+1, format, r.dur.Seconds(), (cpu1 - cpu0).Seconds(), r.total, mb(r.bytes))
		}
	}
	hwm, err := vmHWM(srv.cmd.Process.Pid)
	if err != nil {
		return fmt.Errorf("server peak RSS: %w", err)
	}
	for _, format := range b.cfg.formats {
		b.res.add(line{ID: "BD", What: fmt.Sprintf("busy day: all %d events of one day, %s, level none, over HTTP", rows, strings.ToUpper(format)),
			Ours: newStat("s", secs[format])})
		b.res.add(line{ID: "BD", What: fmt.Sprintf("busy day: CPU time (user + system) of the server during the same, %s", strings.ToUpper(format)),
			Ours: newStat("s", cpu[format])})
	}
	b.res.add(line{ID: "BD", What: "busy day: server peak RSS (VmHWM after every export)", Ours: newStat("MB", []float64{mb(hwm)}),
		Target: "≤ 300 MB", Met: verdict(mb(hwm) <= 300)})
	return nil
}

// busyDayDump writes (or reuses) the busy day's NDJSON: the demo
// generator's events (seed 2) with every date moved onto one day, spread
// evenly over its seconds, in order.
func (b *bench) busyDayDump(ctx context.Context) (string, error) {
	path := filepath.Join(b.cfg.work, fmt.Sprintf("events-busyday-%d.ndjson", busyDayRows))
	if _, err := os.Stat(path); err == nil {
		b.logf("reusing %s", path)
		return path, nil
	}
	b.logf("generating %d events of one day into %s", busyDayRows, path)
	day := time.Date(2026, 10, 15, 0, 0, 0, 0, time.UTC)
	err := fsutil.WriteAtomic(path, 0o644, func(w io.Writer) error {
		dw := &oneDayWriter{w: w, day: day, step: 24 * time.Hour / busyDayRows}
		if err := demo.Generate(ctx, dw, demo.Options{Rows: busyDayRows, Seed: 2}); err != nil {
			return err
		}
		return dw.close()
	})
	if err != nil {
		return "", fmt.Errorf("generate busy-day dump: %w", err)
	}
	return path, nil
}

// oneDayWriter rewrites the date of every NDJSON line passing through: the
// demo generator starts each line with `{"date":"YYYY-MM-DD HH:MM:SS"`;
// line n gets day + n×step.
type oneDayWriter struct {
	w     io.Writer
	day   time.Time
	step  time.Duration
	n     int
	carry []byte // an unfinished line
}

// datePrefix is how every line of the demo generator starts.
const datePrefix = `{"date":"`

func (d *oneDayWriter) Write(p []byte) (int, error) {
	buf := append(d.carry, p...)
	end := bytes.LastIndexByte(buf, '\n') + 1
	for rest := buf[:end]; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		ln := rest[:i]
		if !bytes.HasPrefix(ln, []byte(datePrefix)) || len(ln) < len(datePrefix)+len(data.TimestampLayout) {
			return 0, fmt.Errorf("line %d does not start with a date: %.40q", d.n+1, ln)
		}
		at := d.day.Add(time.Duration(d.n) * d.step)
		copy(ln[len(datePrefix):], at.Format(data.TimestampLayout))
		d.n++
		rest = rest[i+1:]
	}
	if _, err := d.w.Write(buf[:end]); err != nil {
		return 0, err
	}
	d.carry = append(d.carry[:0], buf[end:]...)
	return len(p), nil
}

func (d *oneDayWriter) close() error {
	if len(d.carry) > 0 {
		return fmt.Errorf("busy-day dump ends inside a line")
	}
	return nil
}
