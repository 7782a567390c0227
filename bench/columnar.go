package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"worklog/data"
	"worklog/export/api"
)

// cursorPage is C's page: the default ordering (date desc), 100 rows.
const cursorPage = 100

// cursorDepth is the page C compares with the first.
const cursorDepth = 1000

// cursors measures page 1 and page 1,000 (limit 100, date desc) reached by
// cursor, and page 1,000 by offset beside them (issue 15): a keyset page
// should cost what the first costs, an offset page grows with its depth.
func (b *bench) cursors(ctx context.Context, srv *server) error {
	first := srv.base + api.ExportPath + "?" + url.Values{"limit": {strconv.Itoa(cursorPage)}}.Encode()
	// Walk to page 1,000 once to get its cursor.
	u := first
	for page := 1; page < cursorDepth; page++ {
		next, err := b.nextCursor(ctx, u)
		if err != nil {
			return fmt.Errorf("page %d: %w", page, err)
		}
		u = srv.base + api.ExportPath + "?" + url.Values{"limit": {strconv.Itoa(cursorPage)}, "cursor": {next}}.Encode()
	}
	deep := u
	offset := srv.base + api.ExportPath + "?" + url.Values{"limit": {strconv.Itoa(cursorPage)},
		"offset": {strconv.Itoa((cursorDepth - 1) * cursorPage)}}.Encode()
	b.logf("C: reached page %d by cursor", cursorDepth)

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
	}
	one := newStat("s", p1)
	byCursor := newStat("s", pc)
	b.res.add(line{ID: "C", What: fmt.Sprintf("page %d by cursor (limit %d, date desc, no filter)", cursorDepth, cursorPage),
		Ours: byCursor, Baseline: "page 1", Base: one, Target: "≤ 1.2×", Met: verdict(byCursor.Median <= 1.2*one.Median)})
	b.res.add(line{ID: "C", What: fmt.Sprintf("page %d by offset %d, for comparison", cursorDepth, (cursorDepth-1)*cursorPage),
		Ours: newStat("s", po), Baseline: "page 1", Base: one})
	return nil
}

// nextCursor requests u and returns its X-Next-Cursor.
func (b *bench) nextCursor(ctx context.Context, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if _, err := drain(resp.Body); err != nil {
		return "", err
	}
	next := resp.Header.Get("X-Next-Cursor")
	if resp.StatusCode != http.StatusOK || next == "" {
		return "", fmt.Errorf("status %d, X-Next-Cursor %q", resp.StatusCode, next)
	}
	return next, nil
}

// parquet measures the newest 300,000 rows as Parquet through `worklog
// export` at level none (all 35 columns, as DuckDB writes them) against
// DuckDB's own COPY … TO … (FORMAT parquet, COMPRESSION zstd) of the same
// query (issue 15). Ours is the command's wall time, start-up included;
// DuckDB's is its statement's own time.
func (b *bench) parquet(ctx context.Context, store string, files []data.PartFile) error {
	var cutoff string
	scan := data.ScanSQL(files) + " AS t"
	q := "SELECT strftime(" + data.QuoteIdent(data.DateField) + ", '%Y-%m-%d %H:%M:%S') FROM " + scan + storeOrder + " LIMIT 1 OFFSET " + strconv.Itoa(exportRows)
	if err := b.db.QueryRowContext(ctx, q).Scan(&cutoff); err != nil {
		return fmt.Errorf("find cutoff: %w", err)
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
	sel := "SELECT " + columns() + " FROM " + scan + " WHERE " + data.QuoteIdent(data.DateField) + " > TIMESTAMP " + data.QuoteString(cutoff) + storeOrder
	copyStmt := "COPY (" + sel + ") TO " + data.QuoteString(theirs) + " (FORMAT parquet, COMPRESSION zstd)"

	var o, d, orss, drss []float64
	for rep := 0; rep < b.cfg.reps; rep++ {
		steps := []func() error{
			func() error {
				cmd := exec.CommandContext(ctx, b.bin, "export", "--data", store, "--privacy-level", "none", "--format", "parquet", "--out", ours, "--query", v.Encode())
				res, err := runProc(ctx, cmd)
				if err != nil {
					return err
				}
				o, orss = append(o, res.wall.Seconds()), append(orss, mb(res.peakRSS))
				b.logf("PQ rep %d ours: %.2f s, peak RSS %.0f MB", rep+1, res.wall.Seconds(), mb(res.peakRSS))
				return nil
			},
			func() error {
				t, peak, err := duckdbChild(ctx, copyStmt)
				if err != nil {
					return err
				}
				d, drss = append(d, t), append(drss, mb(peak))
				b.logf("PQ rep %d DuckDB COPY: %.2f s, peak RSS %.0f MB", rep+1, t, mb(peak))
				return nil
			},
		}
		if rep%2 == 1 {
			steps[0], steps[1] = steps[1], steps[0]
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return fmt.Errorf("PQ: %w", err)
			}
		}
	}
	var sizes [2]int64
	for i, p := range []string{ours, theirs} {
		if fi, err := os.Stat(p); err == nil {
			sizes[i] = fi.Size()
		}
	}
	ourStat := newStat("s", o)
	ds := newStat("s", d)
	b.res.add(line{ID: "PQ", What: "newest 300k as Parquet (zstd), level none, `worklog export`",
		Ours: ourStat, Baseline: "DuckDB COPY … (FORMAT parquet, zstd), same query", Base: ds, Target: "≤ 1.0×", Met: verdict(ourStat.Median <= ds.Median),
		Note: fmt.Sprintf("files %.0f MB (ours) and %.0f MB (DuckDB)", mb(sizes[0]), mb(sizes[1]))})
	b.res.add(line{ID: "PQ", What: "peak RSS of the Parquet export (process)", Ours: newStat("MB", orss), Baseline: "DuckDB COPY process", Base: newStat("MB", drss)})
	return nil
}
