package query

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"worklog/data"
)

// pageText runs p through e and returns its groups, one line per group
// (each value as Arrow prints it), and the total. Safe to call from any
// goroutine: it reports failures as errors.
func pageText(ctx context.Context, e *Engine, snap data.Snapshot, p *AggregatePlan) ([]string, int64, error) {
	res, err := e.Aggregate(ctx, snap, p)
	if err != nil {
		return nil, 0, err
	}
	defer res.Records.Release()
	var out []string
	for res.Records.Next() {
		rec := res.Records.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			var vals []string
			for c := 0; c < int(rec.NumCols()); c++ {
				vals = append(vals, rec.Column(c).ValueStr(i))
			}
			out = append(out, strings.Join(vals, "|"))
		}
	}
	return out, res.Total, res.Records.Err()
}

// flightPlan parses an analytics query of the fixture.
func flightPlan(t *testing.T, query string) *AggregatePlan {
	t.Helper()
	v, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseAggregate(v, AggregateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// blockFirstRun makes the first aggregate statement of e wait, once it has
// started, until the returned release is called; started is closed when it
// starts. Later statements run at once. runs counts them all.
func blockFirstRun(e *Engine) (started <-chan struct{}, release func(), runs *atomic.Int64) {
	s, r := make(chan struct{}), make(chan struct{})
	runs = new(atomic.Int64)
	e.onAggregateRun = func() {
		if runs.Add(1) == 1 {
			close(s)
			<-r
		}
	}
	var once sync.Once
	return s, func() { once.Do(func() { close(r) }) }, runs
}

// joined returns a channel closed once n requests wait for one running
// statement of e.
func joined(e *Engine, n int) <-chan struct{} {
	c := make(chan struct{})
	e.aggregates.onJoin = func(waiters int) {
		if waiters == n {
			close(c)
		}
	}
	return c
}

// Requests for the same statement while it runs share it: DuckDB runs it
// once, and every request gets every group, each its own reader.
func TestAggregateSharedWhileRunning(t *testing.T) {
	snap := aggFixtureStore(t)
	e := newEngine(t, snap)
	const query = "groupBy[]=teams&groupBy[]=channel&measures[]=count&measures[]=avg(duration)"
	want, wantTotal, err := pageText(context.Background(), e, snap, flightPlan(t, query))
	if err != nil || len(want) == 0 {
		t.Fatalf("the plain run: %d groups, %v", len(want), err)
	}

	started, release, runs := blockFirstRun(e)
	defer release()
	const n = 6
	all := joined(e, n)
	type result struct {
		rows  []string
		total int64
		err   error
	}
	results := make(chan result, n)
	ask := func(p *AggregatePlan) {
		rows, total, err := pageText(context.Background(), e, snap, p)
		results <- result{rows, total, err}
	}
	go ask(flightPlan(t, query))
	<-started
	for range n - 1 {
		go ask(flightPlan(t, query))
	}
	select {
	case <-all:
	case r := <-results:
		t.Fatalf("a request finished (%v) while the statement it asked for was still running", r.err)
	}
	release()
	for range n {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		if !slices.Equal(r.rows, want) || r.total != wantTotal {
			t.Errorf("a shared page: %d groups (total %d), want %d (total %d)\ngot  %v\nwant %v", len(r.rows), r.total, len(want), wantTotal, r.rows, want)
		}
	}
	if got := runs.Load(); got != 1 {
		t.Errorf("%d requests ran the statement %d times, want once", n, got)
	}
}

// A request that leaves (its client went away) does not fail the others
// waiting for the same statement: it runs on, for them.
func TestAggregateFirstRequestLeaves(t *testing.T) {
	snap := aggFixtureStore(t)
	e := newEngine(t, snap)
	const query = "groupBy[]=topic&measures[]=count"
	want, _, err := pageText(context.Background(), e, snap, flightPlan(t, query))
	if err != nil {
		t.Fatal(err)
	}
	started, release, runs := blockFirstRun(e)
	defer release()
	all := joined(e, 2)

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	p1, p2 := flightPlan(t, query), flightPlan(t, query)
	go func() {
		_, _, err := pageText(ctx, e, snap, p1)
		first <- err
	}()
	<-started
	second := make(chan []string, 1)
	secondErr := make(chan error, 1)
	go func() {
		rows, _, err := pageText(context.Background(), e, snap, p2)
		second <- rows
		secondErr <- err
	}()
	select {
	case <-all:
	case <-second:
		t.Fatal("the second request finished while the statement it asked for was still running")
	}
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("the request that left: %v, want context.Canceled", err)
	}
	release()
	rows := <-second
	if err := <-secondErr; err != nil {
		t.Fatalf("the request that stayed: %v", err)
	}
	if !slices.Equal(rows, want) {
		t.Errorf("the request that stayed got %v, want %v", rows, want)
	}
	if got := runs.Load(); got != 1 {
		t.Errorf("the statement ran %d times, want once", got)
	}
}

// When every request waiting for a statement has left, the statement is
// cancelled and forgotten: the next request for it runs it anew (and does
// not wait for the abandoned one).
func TestAggregateAbandonedStatement(t *testing.T) {
	snap := aggFixtureStore(t)
	e := newEngine(t, snap)
	const query = "groupBy[]=channel&measures[]=count"
	started, release, runs := blockFirstRun(e)
	defer release()

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	p1 := flightPlan(t, query)
	go func() {
		_, _, err := pageText(ctx, e, snap, p1)
		first <- err
	}()
	<-started
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("the request that left: %v, want context.Canceled", err)
	}
	// The abandoned statement still waits in the hook: a request that
	// joined it would wait too.
	stale := joined(e, 1)
	type result struct {
		rows []string
		err  error
	}
	next := make(chan result, 1)
	p2 := flightPlan(t, query)
	go func() {
		rows, _, err := pageText(context.Background(), e, snap, p2)
		next <- result{rows, err}
	}()
	var r result
	select {
	case <-stale:
		t.Fatal("the next request joined the abandoned statement")
	case r = <-next:
	}
	if r.err != nil || len(r.rows) == 0 {
		t.Fatalf("the next request: %d groups, %v", len(r.rows), r.err)
	}
	if got := runs.Load(); got != 2 {
		t.Errorf("the statement ran %d times, want twice (the abandoned one and the next)", got)
	}
}

// Different statements never share: another page of the same groups runs
// while the first statement is still running.
func TestAggregateDifferentStatementsRunApart(t *testing.T) {
	snap := aggFixtureStore(t)
	e := newEngine(t, snap)
	started, release, runs := blockFirstRun(e)
	defer release()
	first := make(chan error, 1)
	p1 := flightPlan(t, "groupBy[]=channel&measures[]=count&limit=2")
	go func() {
		_, _, err := pageText(context.Background(), e, snap, p1)
		first <- err
	}()
	<-started
	rows, _, err := pageText(context.Background(), e, snap, flightPlan(t, "groupBy[]=channel&measures[]=count&limit=3"))
	if err != nil || len(rows) != 3 {
		t.Fatalf("the other page: %d groups, %v; want 3", len(rows), err)
	}
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if got := runs.Load(); got != 2 {
		t.Errorf("two statements ran %d times, want twice", got)
	}
}

// A statement that panics fails the requests waiting for it with an error
// and leaves the process running; the next request runs it anew.
func TestAggregatePanicFailsItsRequests(t *testing.T) {
	snap := aggFixtureStore(t)
	e := newEngine(t, snap)
	var runs atomic.Int64
	e.onAggregateRun = func() {
		if runs.Add(1) == 1 {
			panic("boom")
		}
	}
	_, _, err := pageText(context.Background(), e, snap, flightPlan(t, "groupBy[]=channel&measures[]=count"))
	if err == nil || !strings.Contains(err.Error(), "panicked: boom") {
		t.Fatalf("the request of a statement that panicked: %v", err)
	}
	rows, _, err := pageText(context.Background(), e, snap, flightPlan(t, "groupBy[]=channel&measures[]=count"))
	if err != nil || len(rows) == 0 {
		t.Fatalf("the next request: %d groups, %v", len(rows), err)
	}
}
