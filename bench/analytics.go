package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"worklog/data"
	"worklog/export/api"
)

// analyticsQuery is one analytics measurement: the request our server
// answers and the GROUP BY a user would write by hand in DuckDB over the
// same Parquet files for the same groups.
type analyticsQuery struct {
	what  string
	query url.Values
	bare  string // DuckDB statement; %s is the scan, then the bounds as ? arguments
	// plain, when set, is a cheaper statement that gives other groups
	// (SPEC's semantics left out), reported beside bare with no target:
	// what those semantics cost.
	plain     string
	plainWhat string
	from      string
	to        string // exclusive upper bound of the bare statement
}

// analyticsQueries builds the three queries of issue 13 over the last year
// (and the last month) of the store, ending at its newest day.
func analyticsQueries(newest time.Time) []analyticsQuery {
	end := newest.AddDate(0, 0, 1).Format(data.DateLayout) // exclusive
	last := newest.Format(data.DateLayout)
	yearFrom := newest.AddDate(-1, 0, 1).Format(data.DateLayout)
	monthFrom := newest.AddDate(0, -1, 1).Format(data.DateLayout)
	between := func(v url.Values, from string) url.Values {
		v.Set("filters[0][key]", "date")
		v.Set("filters[0][comparator]", "between")
		v.Set("filters[0][from]", from)
		v.Set("filters[0][to]", last)
		v.Set("limit", "10000")
		v.Set("format", "json")
		return v
	}
	return []analyticsQuery{
		{what: "AHT and count per topic per week, one year",
			query: between(url.Values{"groupBy[]": {"date:week", "topic"}, "measures[]": {"count", "avg(duration)"}}, yearFrom),
			bare: `SELECT CAST(date_trunc('week', "date") AS DATE) AS w, topic, count(*), avg(duration) FROM %s
				WHERE "date" >= CAST(? AS TIMESTAMP) AND "date" < CAST(? AS TIMESTAMP) GROUP BY w, topic ORDER BY w, topic`,
			from: yearFrom, to: end},
		{what: "p90(duration) per channel per day, one month",
			query: between(url.Values{"groupBy[]": {"date:day", "channel"}, "measures[]": {"p90(duration)"}}, monthFrom),
			bare: `SELECT CAST("date" AS DATE) AS d, channel, quantile_cont(duration, 0.9) FROM %s
				WHERE "date" >= CAST(? AS TIMESTAMP) AND "date" < CAST(? AS TIMESTAMP) GROUP BY d, channel ORDER BY d, channel`,
			from: monthFrom, to: end},
		// SPEC §10: an event counts once per distinct element of a list, and
		// an event with an empty list counts in the null group. The bare
		// statement does the same (the same 14 groups); the plain unnest,
		// which does neither (13 groups), is reported beside it.
		{what: "slaMetRate per team (list field), one year",
			query: between(url.Values{"groupBy[]": {"teams"}, "measures[]": {"slaMetRate"}}, yearFrom),
			bare: `SELECT team, avg(CASE WHEN netSecondsClosedAfterSLA <= 0 THEN 1.0 WHEN netSecondsClosedAfterSLA > 0 THEN 0.0 END)
				FROM (SELECT unnest(CASE WHEN len(teams) = 0 THEN [NULL] ELSE list_distinct(teams) END) AS team, netSecondsClosedAfterSLA FROM %s
				      WHERE "date" >= CAST(? AS TIMESTAMP) AND "date" < CAST(? AS TIMESTAMP)) GROUP BY team ORDER BY team NULLS LAST`,
			plain: `SELECT team, avg(CASE WHEN netSecondsClosedAfterSLA <= 0 THEN 1.0 WHEN netSecondsClosedAfterSLA > 0 THEN 0.0 END)
				FROM (SELECT unnest(teams) AS team, netSecondsClosedAfterSLA FROM %s
				      WHERE "date" >= CAST(? AS TIMESTAMP) AND "date" < CAST(? AS TIMESTAMP)) GROUP BY team ORDER BY team`,
			plainWhat: "plain unnest: no list_distinct, no null group",
			from:      yearFrom, to: end},
	}
}

// analytics measures the three analytics queries over HTTP (the server at
// level pseudonymized, so the privacy transform is included) against the
// hand-written GROUP BY run bare in DuckDB in this process (warm, like the
// server), alternating repetition by repetition; then concurrent clients
// against the same requests one at a time.
func (b *bench) analytics(ctx context.Context, srv *server, files []data.PartFile) error {
	scan := data.ScanSQL(files) + " AS t"
	var newest time.Time
	if err := b.db.QueryRowContext(ctx, `SELECT max("date") FROM `+scan).Scan(&newest); err != nil {
		return fmt.Errorf("newest date: %w", err)
	}
	queries := analyticsQueries(newest)
	const runs = 5 // per repetition, after one warm-up
	for _, aq := range queries {
		u := srv.base + api.AnalyticsPath + "?" + aq.query.Encode()
		bareSQL := fmt.Sprintf(aq.bare, scan)
		var ours, base, plain []float64
		var groups int64
		bareGroups := 0
		timeBare := func(stmt string, into *[]float64) (int, error) {
			n := 0
			for i := -1; i < runs; i++ {
				start := time.Now()
				rows, err := b.db.QueryContext(ctx, stmt, aq.from, aq.to)
				if err != nil {
					return 0, fmt.Errorf("bare %q: %w", aq.what, err)
				}
				if n, err = scanAll(rows); err != nil {
					return 0, err
				}
				if i >= 0 {
					*into = append(*into, time.Since(start).Seconds())
				}
			}
			return n, nil
		}
		for rep := 0; rep < b.cfg.reps; rep++ {
			for i := -1; i < runs; i++ {
				r, err := b.fetch(ctx, u)
				if err != nil {
					return err
				}
				if r.code != http.StatusOK {
					return fmt.Errorf("analytics %q: status %d", aq.what, r.code)
				}
				groups = r.total
				if i >= 0 {
					ours = append(ours, r.dur.Seconds())
				}
			}
			n, err := timeBare(bareSQL, &base)
			if err != nil {
				return err
			}
			bareGroups = n
			if aq.plain != "" {
				if _, err := timeBare(fmt.Sprintf(aq.plain, scan), &plain); err != nil {
					return err
				}
			}
		}
		if int64(bareGroups) != groups {
			b.res.note("A %s: %d groups from the server, %d from DuckDB", aq.what, groups, bareGroups)
		}
		os1, bs := newStat("s", ours), newStat("s", base)
		b.res.add(line{ID: "A", What: aq.what + " (" + strconv.FormatInt(groups, 10) + " groups) over HTTP, level pseudonymized",
			Ours: os1, Baseline: "hand-written GROUP BY bare in DuckDB", Base: bs, Target: "≤ 1.2×", Met: verdict(os1.Median <= 1.2*bs.Median)})
		b.logf("A %s: ours %s, bare %s", aq.what, os1, bs)
		if aq.plain != "" {
			ps := newStat("s", plain)
			b.res.add(line{ID: "A", What: aq.what + " over HTTP, level pseudonymized", Ours: os1,
				Baseline: aq.plainWhat, Base: ps})
			b.logf("A %s: ours %s, %s %s", aq.what, os1, aq.plainWhat, ps)
		}
	}

	// Concurrency: every client asks the three queries in turn, first the
	// same three (a team opening one dashboard: the server runs each
	// statement once for the requests that ask for it at the same time),
	// then each client its own date range (nothing to share).
	errs := map[string]int{}
	same := make([]string, b.cfg.clients)
	distinct := make([]string, b.cfg.clients)
	for i := range same {
		aq := queries[i%len(queries)]
		same[i] = srv.base + api.AnalyticsPath + "?" + aq.query.Encode()
		v := maps.Clone(aq.query) // Set replaces the slice: aq.query keeps its own
		v.Set("filters[0][to]", newest.AddDate(0, 0, -i).Format(data.DateLayout))
		distinct[i] = srv.base + api.AnalyticsPath + "?" + v.Encode()
	}
	b.analyticsUnderLoad(ctx, same, fmt.Sprintf("the same %d requests", len(queries)), 3, errs)
	b.analyticsUnderLoad(ctx, distinct, "each its own date range", 0, errs)
	nerr := 0
	for _, n := range errs {
		nerr += n
	}
	b.res.add(line{ID: "A", What: "failed analytics requests (non-200 or transport)",
		Ours: newStat("n", []float64{float64(nerr)}), Target: "0", Met: verdict(nerr == 0)})
	return nil
}

// analyticsUnderLoad measures the clients asking urls (3 requests each) all
// at once against the same requests one client at a time, and reports the
// p50 and p99 of both; target, when positive, is the p99 ratio's bound.
func (b *bench) analyticsUnderLoad(ctx context.Context, urls []string, what string, target float64, errs map[string]int) {
	const perClient = 3
	var p99l, p99u, p50l, p50u []float64
	for rep := 0; rep < b.cfg.reps; rep++ {
		loaded := b.clients(ctx, urls, func(i, n int) bool { return n < perClient }, nil, errs)
		// Unloaded: the same requests, one client at a time.
		var unloaded []float64
		for i := range urls {
			unloaded = append(unloaded, b.clients(ctx, urls[i:i+1], func(_, n int) bool { return n < perClient }, nil, errs)...)
		}
		p50l, p99l = append(p50l, percentile(loaded, 0.5)), append(p99l, percentile(loaded, 0.99))
		p50u, p99u = append(p50u, percentile(unloaded, 0.5)), append(p99u, percentile(unloaded, 0.99))
	}
	l99, u99 := newStat("s", p99l), newStat("s", p99u)
	b.res.add(line{ID: "A", What: fmt.Sprintf("analytics p50, %d concurrent clients, %s", len(urls), what),
		Ours: newStat("s", p50l), Baseline: "same requests one at a time", Base: newStat("s", p50u)})
	l := line{ID: "A", What: fmt.Sprintf("analytics p99, %d concurrent clients, %s", len(urls), what),
		Ours: l99, Baseline: "same requests one at a time", Base: u99}
	if target > 0 {
		l.Target, l.Met = fmt.Sprintf("≤ %g×", target), verdict(l99.Median <= target*u99.Median)
	}
	b.res.add(l)
	b.logf("A %d clients, %s: p99 %s, one at a time %s", len(urls), what, l99, u99)
}
