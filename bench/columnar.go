package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"worklog/data"
	"worklog/export"
	"worklog/export/api"
	"worklog/query"
)

// cursorPage is C's page: the default ordering (date desc), 100 rows.
const cursorPage = 100

// cursorDepth is the page C compares with the first.
const cursorDepth = 1000

// cursors measures page 1 and page 1,000 (limit 100, date desc) reached by
// cursor, and page 1,000 by offset beside them (issue 15): a keyset page
// should cost what the first costs, an offset page grows with its depth.
//
// Walking 999 pages to reach the cursor would take as long as 999 first
// pages, so the harness makes the cursor the server would hand out at page
// 999: the position of that page's last row, found by DuckDB, sealed with
// the store's cursor key. The server runs at its default level,
// pseudonymized, where date orders by its day. That the cursor is right is
// checked: its page starts with the row the offset page starts with.
func (b *bench) cursors(ctx context.Context, srv *server, store string, files []data.PartFile) error {
	key, err := export.LoadOrCreateCursorKey(store)
	if err != nil {
		return err
	}
	values := url.Values{"limit": {strconv.Itoa(cursorPage)}}
	plan, err := query.Parse(values, query.Options{Formats: export.FormatNames(), DefaultFormat: string(export.FormatJSON), DayPrecisionDate: true, CursorKey: key})
	if err != nil {
		return err
	}
	var day time.Time
	var id int64
	date, uid := data.QuoteIdent(data.DateField), data.QuoteIdent(data.KeyField)
	q := "SELECT CAST(" + date + " AS DATE), " + uid + " FROM " + data.ScanSQL(files) + " AS t ORDER BY CAST(" + date + " AS DATE) DESC, " + uid +
		" DESC LIMIT 1 OFFSET " + strconv.Itoa((cursorDepth-1)*cursorPage-1)
	if err := b.db.QueryRowContext(ctx, q).Scan(&day, &id); err != nil {
		return fmt.Errorf("find page %d's position: %w", cursorDepth-1, err)
	}
	c, err := query.EncodeCursor(key, plan, query.Position{Key: time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC), ID: id})
	if err != nil {
		return err
	}
	first := srv.base + api.ExportPath + "?" + values.Encode()
	deep := srv.base + api.ExportPath + "?" + url.Values{"limit": {strconv.Itoa(cursorPage)}, "cursor": {c}}.Encode()
	offset := srv.base + api.ExportPath + "?" + url.Values{"limit": {strconv.Itoa(cursorPage)},
		"offset": {strconv.Itoa((cursorDepth - 1) * cursorPage)}}.Encode()
	a, err := b.firstID(ctx, deep)
	if err != nil {
		return err
	}
	o, err := b.firstID(ctx, offset)
	if err != nil {
		return err
	}
	if a != o {
		return fmt.Errorf("page %d by cursor starts with row %d, by offset with row %d", cursorDepth, a, o)
	}

	var p1, pc, po []float64
	for rep := 0; rep < b.cfg.reps; rep++ {
		for _, s := range []struct {
			u   string
			out *[]float64
		}{{first, &p1}, {deep, &pc}, {offset, &po}} {
			for i := -1; i < pageRuns; i++ {
				r, err := b.fetch(ctx, s.u)
				if err != nil {
					return err
				}
				if r.code != http.StatusOK {
					return fmt.Errorf("page: status %d", r.code)
				}
				if i >= 0 {
					*s.out = append(*s.out, r.dur.Seconds())
				}
			}
		}
		b.logf("C rep %d: page 1 %.3f s, page %d by cursor %.3f s, by offset %.3f s", rep+1, newStat("s", p1).Median, cursorDepth, newStat("s", pc).Median, newStat("s", po).Median)
	}
	one := newStat("s", p1)
	byCursor := newStat("s", pc)
	b.res.add(line{ID: "C", What: fmt.Sprintf("page %d by cursor (limit %d, date desc, no filter)", cursorDepth, cursorPage),
		Ours: byCursor, Baseline: "page 1", Base: one, Target: "≤ 1.2×", Met: verdict(byCursor.Median <= 1.2*one.Median)})
	b.res.add(line{ID: "C", What: fmt.Sprintf("page %d by offset %d, for comparison", cursorDepth, (cursorDepth-1)*cursorPage),
		Ours: newStat("s", po), Baseline: "page 1", Base: one})
	return nil
}

// firstID requests a JSON page and returns its first row's userWorklogId.
func (b *bench) firstID(ctx context.Context, u string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var rows []struct {
		UserWorklogID int64 `json:"userWorklogId"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rows); err != nil || len(rows) == 0 {
		return 0, fmt.Errorf("page %s: status %d, %d rows, %v", u, resp.StatusCode, len(rows), err)
	}
	return rows[0].UserWorklogID, nil
}

// parquet measures the newest 300,000 rows as Parquet at level none (all
// 35 columns, as DuckDB writes them) against DuckDB's own COPY … TO …
// (FORMAT parquet, COMPRESSION zstd) of the same query (issue 15), like for
// like two ways: the export over HTTP from a running level-none server (no
// start-up on either side) against the COPY statement's own time, and the
// whole `worklog export` process (start-up, opening the store, writing the
// file, exit) against the whole process that runs the COPY (start-up,
// opening DuckDB, the statement, exit).
func (b *bench) parquet(ctx context.Context, store string, files []data.PartFile) error {
	cutoff, err := b.cutoff(ctx, files)
	if err != nil {
		return err
	}
	pu, err := url.Parse(exportURL("", "parquet", cutoff))
	if err != nil {
		return err
	}
	v := pu.Query()
	v.Del("format")
	ours := filepath.Join(b.cfg.work, "export.parquet")
	theirs := filepath.Join(b.cfg.work, "copy.parquet")
	defer os.Remove(ours)
	defer os.Remove(theirs)
	sel := "SELECT " + columns() + " FROM " + data.ScanSQL(files) + " AS t WHERE " + data.QuoteIdent(data.DateField) + " > TIMESTAMP " + data.QuoteString(cutoff) + storeOrder
	copyStmt := "COPY (" + sel + ") TO " + data.QuoteString(theirs) + " (FORMAT parquet, COMPRESSION zstd)"
	// DuckDB's COPY with its own defaults: its default codec is not zstd
	// (it is snappy, read back from the file below), which is cheaper to
	// write and makes a file about three times larger.
	theirsDefault := filepath.Join(b.cfg.work, "copy-default.parquet")
	defer os.Remove(theirsDefault)
	copyDefault := "COPY (" + sel + ") TO " + data.QuoteString(theirsDefault) + " (FORMAT parquet)"

	srv, stop, err := b.serveLevelNone(ctx, store, "-pq-none")
	if err != nil {
		return fmt.Errorf("PQ: %w", err)
	}
	defer stop()
	httpURL := exportURL(srv.base, "parquet", cutoff)

	var o, d, orss, drss, ocpu, dcpu, dd, ddcpu, h, hcpu, dproc []float64
	var hbytes int64
	for rep := 0; rep < b.cfg.reps; rep++ {
		steps := []func() error{
			func() error {
				cpu0, _ := procCPU(srv.cmd.Process.Pid)
				r, err := b.fetch(ctx, httpURL)
				if err != nil {
					return err
				}
				if r.code != http.StatusOK {
					return fmt.Errorf("export over HTTP: status %d", r.code)
				}
				cpu1, err := procCPU(srv.cmd.Process.Pid)
				if err != nil {
					return err
				}
				h, hcpu, hbytes = append(h, r.dur.Seconds()), append(hcpu, (cpu1-cpu0).Seconds()), r.bytes
				b.logf("PQ rep %d ours over HTTP: %.2f s (server CPU %.2f s), %d rows, %.1f MB", rep+1, r.dur.Seconds(), (cpu1 - cpu0).Seconds(), r.total, mb(r.bytes))
				return nil
			},
			func() error {
				cmd := exec.CommandContext(ctx, b.bin, "export", "--data", store, "--privacy-level", "none", "--format", "parquet", "--out", ours, "--query", v.Encode())
				res, err := runProc(ctx, cmd)
				if err != nil {
					return err
				}
				o, orss, ocpu = append(o, res.wall.Seconds()), append(orss, mb(res.peakRSS)), append(ocpu, res.cpu.Seconds())
				b.logf("PQ rep %d ours: %.2f s (CPU %.2f s), peak RSS %.0f MB", rep+1, res.wall.Seconds(), res.cpu.Seconds(), mb(res.peakRSS))
				return nil
			},
			func() error {
				t, res, err := duckdbChildProc(ctx, copyStmt)
				if err != nil {
					return err
				}
				d, drss, dcpu, dproc = append(d, t), append(drss, mb(res.peakRSS)), append(dcpu, res.cpu.Seconds()), append(dproc, res.wall.Seconds())
				b.logf("PQ rep %d DuckDB COPY: %.2f s (process %.2f s, CPU %.2f s), peak RSS %.0f MB", rep+1, t, res.wall.Seconds(), res.cpu.Seconds(), mb(res.peakRSS))
				return nil
			},
		}
		steps = append(steps, func() error {
			t, res, err := duckdbChildProc(ctx, copyDefault)
			if err != nil {
				return err
			}
			dd, ddcpu = append(dd, t), append(ddcpu, res.cpu.Seconds())
			b.logf("PQ rep %d DuckDB COPY, default codec: %.2f s (process CPU %.2f s), peak RSS %.0f MB", rep+1, t, res.cpu.Seconds(), mb(res.peakRSS))
			return nil
		})
		if rep%2 == 1 {
			slices.Reverse(steps)
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return fmt.Errorf("PQ: %w", err)
			}
		}
	}
	// The same rows: DuckDB reads both files back; their row counts and
	// the sums of their rows' hashes (which do not depend on the order)
	// must agree.
	digest := func(p string) (string, error) {
		var n int64
		var sum string
		err := b.db.QueryRowContext(ctx, "SELECT count(*), CAST(sum(hash(t)::HUGEINT) AS VARCHAR) FROM read_parquet("+data.QuoteString(p)+") AS t").Scan(&n, &sum)
		return fmt.Sprintf("%d rows, hash sum %s", n, sum), err
	}
	od, err := digest(ours)
	if err != nil {
		return fmt.Errorf("PQ: read our file back: %w", err)
	}
	td, err := digest(theirs)
	if err != nil {
		return fmt.Errorf("PQ: read COPY's file back: %w", err)
	}
	if od != td {
		return fmt.Errorf("PQ: our file has %s, COPY's %s", od, td)
	}
	b.logf("PQ: our file and COPY's hold the same rows (%s)", od)
	var sizes [3]int64
	for i, p := range []string{ours, theirs, theirsDefault} {
		if fi, err := os.Stat(p); err == nil {
			sizes[i] = fi.Size()
		}
	}
	ourStat, httpStat := newStat("s", o), newStat("s", h)
	ds, dprocStat := newStat("s", d), newStat("s", dproc)
	b.res.add(line{ID: "PQ", What: "newest 300k as Parquet (zstd), level none, over HTTP",
		Ours: httpStat, Baseline: "DuckDB COPY … (FORMAT parquet, zstd), same query: the statement", Base: ds, Target: "≤ 1.0×", Met: verdict(httpStat.Median <= ds.Median),
		Note: fmt.Sprintf("a running level-none server, the whole response read (%.1f MB); files %.1f MB (ours, zstd level %d) and %.1f MB (DuckDB, zstd at its default level 3)", mb(hbytes), mb(sizes[0]), export.ParquetZstdLevel, mb(sizes[1]))})
	b.res.add(line{ID: "PQ", What: "the same as a whole `worklog export --out` process (start-up, store opened, file written, exit)",
		Ours: ourStat, Baseline: "the whole process that opens DuckDB and runs the COPY", Base: dprocStat, Target: "≤ 1.0×", Met: verdict(ourStat.Median <= dprocStat.Median)})
	b.res.add(line{ID: "PQ", What: "server CPU time during the HTTP export", Ours: newStat("s", hcpu),
		Baseline: "DuckDB COPY process", Base: newStat("s", dcpu), Note: "/proc/<pid>/stat of the server around each request against the whole COPY process's getrusage"})
	ourCPU, theirCPU := newStat("s", ocpu), newStat("s", dcpu)
	b.res.add(line{ID: "PQ", What: "CPU time (user + system) of the `worklog export` process", Ours: ourCPU,
		Baseline: "DuckDB COPY process", Base: theirCPU, Target: "≤ 1.0×", Met: verdict(ourCPU.Median <= theirCPU.Median),
		Note: "steadier than wall time when other processes share the cores"})
	var codec string
	if err := b.db.QueryRowContext(ctx, "SELECT string_agg(DISTINCT compression, ', ') FROM parquet_metadata("+data.QuoteString(theirsDefault)+")").Scan(&codec); err != nil {
		return fmt.Errorf("codec of DuckDB's default COPY: %w", err)
	}
	b.res.add(line{ID: "PQ", What: "CPU time of ours (zstd) against DuckDB's COPY with its default codec", Ours: ourCPU,
		Baseline: "DuckDB COPY … (FORMAT parquet), default codec " + codec, Base: newStat("s", ddcpu),
		Note: fmt.Sprintf("DuckDB's default codec is %s: its wall time %s, its file %.0f MB against %.0f MB with zstd; our encoder writes zstd only (issue 15), so like for like is the zstd line", codec, newStat("s", dd), mb(sizes[2]), mb(sizes[1]))})
	b.res.add(line{ID: "PQ", What: "peak RSS of the Parquet export (process)", Ours: newStat("MB", orss), Baseline: "DuckDB COPY process", Base: newStat("MB", drss)})
	hwm, err := vmHWM(srv.cmd.Process.Pid)
	if err != nil {
		return fmt.Errorf("PQ: server peak RSS: %w", err)
	}
	b.res.add(line{ID: "PQ", What: "peak RSS of the level-none server over the HTTP exports (VmHWM)", Ours: newStat("MB", []float64{mb(hwm)}), Baseline: "DuckDB COPY process", Base: newStat("MB", drss)})
	return nil
}
