package query

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
)

// aggregatePage is the page of groups one aggregate statement returned,
// shared read-only by every request that asked for it while it ran. Its
// batches live until the last of those requests has taken its own
// references (see flights.do).
type aggregatePage struct {
	schema            *arrow.Schema
	batches           []arrow.RecordBatch
	total, suppressed int64
}

// release drops the page's own references to its batches.
func (p *aggregatePage) release() {
	for _, b := range p.batches {
		b.Release()
	}
}

// flights coalesces identical aggregate statements that run at once: the
// first request runs the statement, the requests that ask for the same one
// while it runs wait for its page instead of running it again. A dashboard
// opened by a team at once asks the same few questions; on two cores, 20
// such requests ran 12× slower at the 99th percentile than one at a time,
// each a CPU-bound query competing with the others.
//
// Only statements that are running are shared: a request that comes after
// one finished runs its own, so nothing is cached and every answer is of
// the snapshot its request holds (the statement names the snapshot's
// files, so requests on different snapshots never share).
type flights struct {
	mu sync.Mutex
	m  map[string]*flight // by flightKey; mu
	// onJoin, when set (tests), is called under mu whenever a request
	// joins a running statement, with the number now waiting for it.
	onJoin func(waiters int)
}

// flight is one statement running for waiters requests.
type flight struct {
	done chan struct{} // closed once page or err is set
	// Set before done is closed.
	page *aggregatePage
	err  error
	// The requests still waiting for the page, or still to take their
	// references to it (mu). When the last one leaves before the statement
	// ends, the statement is cancelled.
	waiters  int
	finished bool // mu
	cancel   context.CancelFunc
}

// flightKey is the identity of a statement: its text and its arguments,
// each with its type.
func flightKey(sqlText string, args []any) string {
	var b strings.Builder
	b.WriteString(sqlText)
	for _, a := range args {
		fmt.Fprintf(&b, "\x00%T\x00%v", a, a)
	}
	return b.String()
}

// do gets the page of the statement named key, running it with run unless
// the same statement is already running, and calls use with the page while
// it is held (use takes its own references). It returns the statement's
// error, use's, or ctx's when the request leaves first. run gets a context
// of its own, cancelled when every request waiting for it has gone, so
// that one client who leaves does not fail the others.
func (fs *flights) do(ctx context.Context, key string, run func(context.Context) (*aggregatePage, error), use func(*aggregatePage) error) error {
	fs.mu.Lock()
	f, ok := fs.m[key]
	if ok {
		f.waiters++
		if fs.onJoin != nil {
			fs.onJoin(f.waiters)
		}
	} else {
		runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), waiters: 1, cancel: cancel}
		if fs.m == nil {
			fs.m = map[string]*flight{}
		}
		fs.m[key] = f
		go fs.run(runCtx, key, f, run)
	}
	fs.mu.Unlock()

	select {
	case <-f.done:
		var err error
		if f.err != nil {
			err = f.err
		} else {
			err = use(f.page)
		}
		fs.leave(key, f)
		return err
	case <-ctx.Done():
		fs.leave(key, f)
		return ctx.Err()
	}
}

// run runs the statement of f and hands its page to the requests still
// waiting; with none left, it releases the page itself. A panic of run
// fails the statement's requests, as it failed its one request when each
// ran its own statement on its handler's goroutine (where net/http
// recovers it); on this goroutine it would end the process.
func (fs *flights) run(ctx context.Context, key string, f *flight, run func(context.Context) (*aggregatePage, error)) {
	page, err := func() (page *aggregatePage, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("aggregate statement panicked: %v", r)
			}
		}()
		return run(ctx)
	}()
	f.cancel()
	fs.mu.Lock()
	if fs.m[key] == f {
		delete(fs.m, key)
	}
	f.page, f.err, f.finished = page, err, true
	orphan := f.waiters == 0
	fs.mu.Unlock()
	close(f.done)
	if orphan && page != nil {
		page.release()
	}
}

// leave ends one request's wait for f. The last request to leave a
// finished statement releases its page; the last to leave a running one
// cancels it, and the next request for it runs it anew.
func (fs *flights) leave(key string, f *flight) {
	fs.mu.Lock()
	f.waiters--
	last := f.waiters == 0
	finished := f.finished
	if last && !finished {
		if fs.m[key] == f {
			delete(fs.m, key)
		}
		f.cancel()
	}
	fs.mu.Unlock()
	if last && finished && f.page != nil {
		f.page.release()
	}
}
