package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"worklog/data"
	"worklog/export"
	"worklog/export/api"
	"worklog/privacy"
	"worklog/query"
)

// drain reads r to the end and counts the bytes.
func drain(r io.Reader) (int64, error) {
	return io.Copy(io.Discard, r)
}

// columns is the 35 catalogue columns, quoted, in export order.
func columns() string {
	var names []string
	for _, f := range data.Fields() {
		names = append(names, data.QuoteIdent(f.Name))
	}
	return strings.Join(names, ", ")
}

// fetched is one HTTP request's outcome.
type fetched struct {
	code  int
	bytes int64
	total int64
	dur   time.Duration
}

// fetch GETs u with the bench token and reads the whole body.
func (b *bench) fetch(ctx context.Context, u string) (fetched, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fetched{}, err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return fetched{}, err
	}
	defer resp.Body.Close()
	n, err := drain(resp.Body)
	total, _ := strconv.ParseInt(resp.Header.Get("X-Total-Count"), 10, 64)
	return fetched{code: resp.StatusCode, bytes: n, total: total, dur: time.Since(start)}, err
}

// p2 measures ingest of the dump into an empty store and again as an upsert
// of the same dump, against DuckDB's read_json → Parquet COPY.
func (b *bench) p2(ctx context.Context, dump, store string) error {
	var cols []string
	for _, f := range data.Fields() {
		cols = append(cols, data.QuoteString(f.Name)+": "+data.QuoteString(f.Kind.SQLType()))
	}
	out := filepath.Join(b.cfg.work, "duckdb.parquet")
	defer os.Remove(out)
	duck := "COPY (SELECT * FROM read_json(" + data.QuoteString(dump) +
		", format = 'newline_delimited', columns = {" + strings.Join(cols, ", ") + "})) TO " +
		data.QuoteString(out) + " (FORMAT parquet)"
	rows := float64(b.cfg.rows)
	var empty, upsert, base, rss, baseRSS []float64
	failed := make([]error, 2)
	for rep := 0; rep < b.cfg.reps; rep++ {
		dir := filepath.Join(b.cfg.work, "p2-store")
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		ours := func() error {
			for i, series := range []*[]float64{&empty, &upsert} {
				res, err := b.ingest(ctx, dump, dir)
				if err != nil {
					// A failed ingest is a result to report, not a reason
					// to skip the other measurements.
					failed[i] = err
					b.logf("P2 rep %d ours %s: %v", rep+1, []string{"empty", "upsert"}[i], err)
					continue
				}
				*series = append(*series, rows/res.wall.Seconds())
				rss = append(rss, mb(res.peakRSS))
				b.logf("P2 rep %d ours %s: %.1f s, peak RSS %.0f MB", rep+1, []string{"empty", "upsert"}[i], res.wall.Seconds(), mb(res.peakRSS))
			}
			return nil
		}
		duckdb := func() error {
			t, peak, err := duckdbChild(ctx, duck)
			if err != nil {
				return err
			}
			base, baseRSS = append(base, rows/t), append(baseRSS, mb(peak))
			b.logf("P2 rep %d DuckDB: %.1f s, peak RSS %.0f MB", rep+1, t, mb(peak))
			return nil
		}
		steps := []func() error{ours, duckdb}
		if rep%2 == 1 {
			slices.Reverse(steps)
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
		if rep == b.cfg.reps-1 {
			if _, err := os.Stat(store); os.IsNotExist(err) {
				if err := os.Rename(dir, store); err != nil {
					return err
				}
				continue
			}
		}
		os.RemoveAll(dir)
	}
	bs := newStat("ev/s", base)
	for i, l := range []struct {
		what string
		s    []float64
	}{{"ingest 1M NDJSON into an empty store", empty}, {"ingest the same dump again (upsert)", upsert}} {
		st := newStat("ev/s", l.s)
		l := line{ID: "P2", What: strings.Replace(l.what, "1M", humanRows(b.cfg.rows), 1), Ours: st,
			Baseline: "DuckDB read_json → Parquet COPY", Base: bs, Target: "≥ 1.0×", Met: "no"}
		if st != nil && bs != nil {
			l.Met = verdict(st.Median >= bs.Median)
		}
		if err := failed[i]; err != nil {
			l.Note = "failed: " + firstLine(err.Error())
		}
		b.res.add(l)
	}
	peak := 0.0
	if len(rss) > 0 {
		peak = slices.Max(rss)
	}
	b.res.add(line{ID: "P2", What: "ingest peak RSS (max of both)", Ours: newStat("MB", []float64{peak}),
		Baseline: "DuckDB COPY process", Base: newStat("MB", baseRSS), Target: "≤ 512 MB", Met: verdict(peak <= 512)})
	return nil
}

func humanRows(n int) string {
	if n%1000000 == 0 {
		return strconv.Itoa(n/1000000) + "M"
	}
	return strconv.Itoa(n)
}

// pageValues is P3's page: limit 100, date between two days, action in two
// values, ordered by duration.
func pageValues(day time.Time, offset int) url.Values {
	v := url.Values{}
	v.Set("limit", "100")
	if offset > 0 {
		v.Set("offset", strconv.Itoa(offset))
	}
	v.Set("orderByField", "duration")
	v.Set("orderByDirection", "asc")
	v.Set("filters[0][key]", "date")
	v.Set("filters[0][comparator]", "between")
	v.Set("filters[0][from]", day.Format(data.DateLayout))
	v.Set("filters[0][to]", day.AddDate(0, 0, 1).Format(data.DateLayout))
	v.Set("filters[1][key]", "action")
	v.Set("filters[1][comparator]", "in")
	v["filters[1][values][]"] = []string{"writeAction", "statusAction"}
	return v
}

// pageDay is a day in the middle of the store's history.
func (b *bench) pageDay(ctx context.Context, files []data.PartFile) (time.Time, error) {
	var day time.Time
	q := "SELECT CAST(quantile_disc(" + data.QuoteIdent(data.DateField) + ", 0.5) AS DATE) FROM " + data.ScanSQL(files) + " AS t"
	if err := b.db.QueryRowContext(ctx, q).Scan(&day); err != nil {
		return day, fmt.Errorf("find page day: %w", err)
	}
	return day, nil
}

// pageRuns is how many pages one repetition of P3 times, after a warm-up.
const pageRuns = 10

// pages times pageRuns requests of v at the server.
func (b *bench) pages(ctx context.Context, srv *server, v url.Values) ([]float64, error) {
	u := srv.base + api.ExportPath + "?" + v.Encode()
	var out []float64
	for i := -1; i < pageRuns; i++ {
		r, err := b.fetch(ctx, u)
		if err != nil {
			return nil, err
		}
		if r.code != http.StatusOK {
			return nil, fmt.Errorf("page: status %d", r.code)
		}
		if i >= 0 {
			out = append(out, r.dur.Seconds())
		}
	}
	return out, nil
}

// p3 measures a filtered page over HTTP against the same statement run bare
// in DuckDB (in this process, warm, like the server), and optionally the
// same page on a larger store.
func (b *bench) p3(ctx context.Context, srv *server, files []data.PartFile, store string) error {
	day, err := b.pageDay(ctx, files)
	if err != nil {
		return err
	}
	v := pageValues(day, 0)
	// The same plan the server builds: the server's privacy level decides
	// which fields may be used and that dates compare by day.
	pol, err := privacy.NewPolicy(privacy.Pseudonymized, nil, make([]byte, 32))
	if err != nil {
		return err
	}
	plan, err := query.Parse(v, export.PlanOptions(pol, "json"))
	if err != nil {
		return err
	}
	plan.Unread = pol.Unread() // as export.Run sets it
	q, args := plan.SelectSQL(data.Snapshot{Files: files})
	bare := func() ([]float64, error) {
		var out []float64
		for i := -1; i < pageRuns; i++ {
			start := time.Now()
			rows, err := b.db.QueryContext(ctx, q, args...)
			if err != nil {
				return nil, fmt.Errorf("bare page: %w", err)
			}
			n, err := scanAll(rows)
			if err != nil {
				return nil, err
			}
			if n == 0 {
				return nil, fmt.Errorf("bare page: no rows")
			}
			if i >= 0 {
				out = append(out, time.Since(start).Seconds())
			}
		}
		return out, nil
	}
	var ours, base []float64
	for rep := 0; rep < b.cfg.reps; rep++ {
		o, err := b.pages(ctx, srv, v)
		if err != nil {
			return err
		}
		bb, err := bare()
		if err != nil {
			return err
		}
		ours, base = append(ours, o...), append(base, bb...)
	}
	os1 := newStat("s", ours)
	bs := newStat("s", base)
	b.res.add(line{ID: "P3", What: "filtered page (limit 100, 2 days, 2 actions, by duration) over HTTP",
		Ours: os1, Baseline: "same statement bare in DuckDB", Base: bs, Target: "≤ 1.5×", Met: verdict(os1.Median <= 1.5*bs.Median)})
	b.logf("P3: ours %s, bare %s", os1, bs)

	if b.cfg.largeRows <= 0 {
		b.res.note("P3: the %s-event store was skipped (--rows-large 0); run with --rows-large 10000000 for the 10M/1M figure.", "10M")
		return nil
	}
	dump, err := b.dump(ctx, b.cfg.largeRows)
	if err != nil {
		return err
	}
	large := filepath.Join(b.cfg.work, fmt.Sprintf("store-%d", b.cfg.largeRows))
	if err := b.ensureStore(ctx, dump, large); err != nil {
		return err
	}
	lsrv, err := b.serve(ctx, large)
	if err != nil {
		return err
	}
	defer lsrv.stop()
	var big []float64
	for rep := 0; rep < b.cfg.reps; rep++ {
		o, err := b.pages(ctx, lsrv, v)
		if err != nil {
			return err
		}
		big = append(big, o...)
	}
	bigStat := newStat("s", big)
	b.res.add(line{ID: "P3", What: fmt.Sprintf("the same page on a %s-event store", humanRows(b.cfg.largeRows)),
		Ours: bigStat, Baseline: fmt.Sprintf("the page on the %s store", humanRows(b.cfg.rows)), Base: os1,
		Target: "≤ 1.2×", Met: verdict(bigStat.Median <= 1.2*os1.Median)})
	return nil
}

// scanAll reads every row of rows and returns the count.
func scanAll(rows interface {
	Columns() ([]string, error)
	Next() bool
	Scan(...any) error
	Err() error
	Close() error
}) (int, error) {
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

// p4 measures page latency from concurrent clients while one 300k export
// runs, against the same clients and pages with no export running.
func (b *bench) p4(ctx context.Context, srv *server, files []data.PartFile) error {
	day, err := b.pageDay(ctx, files)
	if err != nil {
		return err
	}
	cutoff, err := b.cutoff(ctx, files)
	if err != nil {
		return err
	}
	urls := make([]string, b.cfg.clients)
	for i := range urls {
		urls[i] = srv.base + api.ExportPath + "?" + pageValues(day.AddDate(0, 0, -i), (i%5)*100).Encode()
	}
	const minPages = 5
	var p50l, p99l, p50u, p99u []float64
	errs := map[string]int{}
	var exportSecs []float64
	requests := 0
	for rep := 0; rep < max(b.cfg.p4Reps, 1); rep++ {
		// Loaded: every client fetches pages until the export has ended.
		var exportDone atomic.Bool
		exportErr := make(chan error, 1)
		go func() {
			r, err := b.fetch(ctx, exportURL(srv.base, "csv", cutoff))
			if err == nil && r.code != http.StatusOK {
				err = fmt.Errorf("export: status %d", r.code)
			}
			exportSecs = append(exportSecs, r.dur.Seconds())
			exportDone.Store(true)
			exportErr <- err
		}()
		counts := make([]int, len(urls))
		loaded := b.clients(ctx, urls, func(i, n int) bool { return n < minPages || !exportDone.Load() }, counts, errs)
		if err := <-exportErr; err != nil {
			return err
		}
		// Unloaded: the same clients fetch the same number of pages.
		unloaded := b.clients(ctx, urls, func(i, n int) bool { return n < counts[i] }, nil, errs)
		requests += 2 * sum(counts)
		p50l, p99l = append(p50l, percentile(loaded, 0.50)), append(p99l, percentile(loaded, 0.99))
		p50u, p99u = append(p50u, percentile(unloaded, 0.50)), append(p99u, percentile(unloaded, 0.99))
		b.logf("P4 rep %d: %d pages loaded p50 %.0f ms p99 %.0f ms; unloaded p50 %.0f ms p99 %.0f ms; export %.1f s",
			rep+1, len(loaded), 1000*p50l[rep], 1000*p99l[rep], 1000*p50u[rep], 1000*p99u[rep], exportSecs[rep])
	}
	l99, u99 := newStat("s", p99l), newStat("s", p99u)
	b.res.add(line{ID: "P4", What: fmt.Sprintf("page p50, %d clients during a 300k CSV export", b.cfg.clients),
		Ours: newStat("s", p50l), Baseline: "same pages, no export", Base: newStat("s", p50u)})
	b.res.add(line{ID: "P4", What: fmt.Sprintf("page p99, %d clients during a 300k CSV export", b.cfg.clients),
		Ours: l99, Baseline: "same pages, no export", Base: u99, Target: "≤ 3×", Met: verdict(l99.Median <= 3*u99.Median)})
	nerr := 0
	for _, n := range errs {
		nerr += n
	}
	note := fmt.Sprintf("the export under load took %s; %d page requests", newStat("s", exportSecs), requests)
	if nerr > 0 {
		note += fmt.Sprintf("; failures by status: %v", errs)
	}
	b.res.add(line{ID: "P4", What: "failed page requests (non-200 or transport)",
		Ours: newStat("n", []float64{float64(nerr)}), Target: "0", Met: verdict(nerr == 0), Note: note})
	return nil
}

// clients runs one goroutine per URL, each fetching its URL while more(i, n)
// holds (n: pages fetched so far), and returns the latency of every
// answered page in seconds. counts, when non-nil, receives each client's
// request count; errs counts failures by status code or "transport".
func (b *bench) clients(ctx context.Context, urls []string, more func(i, n int) bool, counts []int, errs map[string]int) []float64 {
	var mu sync.Mutex
	var lat []float64
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Go(func() {
			n := 0
			for more(i, n) && ctx.Err() == nil {
				r, err := b.fetch(ctx, u)
				mu.Lock()
				switch {
				case err != nil:
					errs["transport"]++
				case r.code != http.StatusOK:
					errs[strconv.Itoa(r.code)]++
				default:
					// Only answered pages count: a refusal is fast and
					// would flatter the latency.
					lat = append(lat, r.dur.Seconds())
				}
				mu.Unlock()
				n++
			}
			if counts != nil {
				counts[i] = n
			}
		})
	}
	wg.Wait()
	return lat
}

// percentile is the nearest-rank percentile of xs.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(i, 0)]
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// xlsx times P1's export written as XLSX by `worklog export` (the path a
// background job takes: same plan, same privacy, same encoder), once: the
// issue asks whether excelize is fast enough for jobs of 100k+ rows.
func (b *bench) xlsx(ctx context.Context, store string, files []data.PartFile) error {
	cutoff, err := b.cutoff(ctx, files)
	if err != nil {
		return err
	}
	u, err := url.Parse(exportURL("", "xlsx", cutoff))
	if err != nil {
		return err
	}
	v := u.Query()
	v.Del("format")
	out := filepath.Join(b.cfg.work, "export.xlsx")
	defer os.Remove(out)
	cmd := exec.CommandContext(ctx, b.bin, "export", "--data", store, "--format", "xlsx", "--out", out, "--query", v.Encode())
	res, err := runProc(ctx, cmd)
	if err != nil {
		return err
	}
	fi, err := os.Stat(out)
	if err != nil {
		return err
	}
	b.logf("XLSX: %.1f s, %.0f MB file, peak RSS %.0f MB", res.wall.Seconds(), mb(fi.Size()), mb(res.peakRSS))
	b.res.add(line{ID: "X", What: "newest 300k as XLSX via `worklog export` (a background job's path), 1 run",
		Ours: newStat("s", []float64{res.wall.Seconds()}), Baseline: "peak RSS",
		Base: newStat("MB", []float64{mb(res.peakRSS)}),
		Note: fmt.Sprintf("about %.0f rows/s, %.0f MB file; no DuckDB baseline (DuckDB writes no XLSX without the excel extension)", float64(exportRows)/res.wall.Seconds(), mb(fi.Size()))})
	return nil
}
