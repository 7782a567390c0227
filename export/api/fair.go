package api

import (
	"fmt"
	"net/http"
	"sync"

	"github.com/labstack/echo/v4"
)

// Defaults of the per-user shares of the query pools (Config fields left
// zero).
const (
	// DefaultExportsPerUser is how many of the DefaultMaxSyncExports
	// synchronous exports one user may run at once: half, so that one user
	// never holds them all.
	DefaultExportsPerUser = 2
	// DefaultQueriesPerUser is how many pages and analytics queries one
	// user may have running or waiting at once, together: a quarter of
	// DefaultMaxPages.
	DefaultQueriesPerUser = 4
)

// The pools a user's share is counted in, as the pool label of
// worklog_user_share_refused_total shows them.
const (
	poolExports = "exports"
	poolQueries = "queries"
)

// userShare bounds how many requests of one pool a single user (token sub)
// has in flight at once. The pools themselves bound all users together
// (--max-sync-exports, --max-pages, MaxAnalytics); without a share, one
// client that opens enough connections holds every slot and every place in
// the page queue, and everyone else waits and gets 429. With it, that
// client gets 429 beyond its share while the others are still served.
// A request counts from before it waits for a pool slot until it ends, so
// one user cannot fill the queue either.
type userShare struct {
	pool string
	max  int
	mu   sync.Mutex
	held map[string]int // only users with requests in flight: bounded by the pool and the connections
}

func newUserShare(pool string, max int) *userShare {
	return &userShare{pool: pool, max: max, held: map[string]int{}}
}

// take counts one more request of sub; it reports false, counting nothing,
// when sub already has max in flight. release undoes a successful take.
func (u *userShare) take(sub string) (release func(), ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.held[sub] >= u.max {
		return nil, false
	}
	u.held[sub]++
	return sync.OnceFunc(func() {
		u.mu.Lock()
		defer u.mu.Unlock()
		if u.held[sub]--; u.held[sub] <= 0 {
			delete(u.held, sub)
		}
	}), true
}

// takeShare takes a place in the caller's share of pool u, or answers 429
// with Retry-After naming the share: the caller is asked to wait for its
// own requests, and the other users' requests still find free slots.
func (s *Server) takeShare(c echo.Context, u *userShare, what string, retryAfter int) (func(), error) {
	release, ok := u.take(claimsOf(c).Subject)
	if !ok {
		s.metrics.UserShareRefused.WithLabelValues(u.pool).Inc()
		return nil, &APIError{Status: http.StatusTooManyRequests, Code: "too_many_user_requests", RetryAfter: retryAfter,
			Message: fmt.Sprintf("you have %d %s running or waiting, the most one user may have at once; retry when one has finished", u.max, what)}
	}
	return release, nil
}
