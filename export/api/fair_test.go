package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"

	"worklog/export/api/auth"
	"worklog/privacy"
)

// shareResult is what a flooding request got.
type shareResult struct {
	status     int
	code       string
	retryAfter string
}

// getAsync requests the export endpoint in the background and sends what
// it got to out.
func getAsync(env *testEnv, token, q string, out chan<- shareResult) {
	go func() {
		req, _ := http.NewRequest(http.MethodGet, env.url+ExportPath+"?"+q, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- shareResult{}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var e struct{ Error APIError }
		json.Unmarshal(body, &e)
		out <- shareResult{resp.StatusCode, e.Error.Code, resp.Header.Get("Retry-After")}
	}()
}

// TestOneUserCannotStarveOthers: user A floods the export endpoint with
// more requests than the pool has slots; its requests are held in place in
// their slots (a hook, not a slow query). A gets its share and 429 with
// Retry-After beyond it, at once; user B is still answered, for pages,
// exports and analytics.
func TestOneUserCannotStarveOthers(t *testing.T) {
	tests := []struct {
		name, q string
		pool    int // the pool's size at its default
		share   int // A's share at its default
		metric  string
	}{
		{"pages", "limit=1", DefaultMaxPages, DefaultQueriesPerUser, poolQueries},
		{"exports", "format=csv", DefaultMaxSyncExports, DefaultExportsPerUser, poolExports},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, privacy.None, nil, readFixture(t))
			release := make(chan struct{})
			held := make(chan struct{}, 64)
			env.srv.beforeExport = func(ctx context.Context) {
				if cl, _ := ctx.Value(claimsKey).(*auth.Claims); cl != nil && cl.Subject == "A" {
					held <- struct{}{}
					<-release
				}
			}
			var once sync.Once
			unblock := func() { once.Do(func() { close(release) }) }
			t.Cleanup(unblock)

			a, b := env.token("A", ""), env.token("B", "")
			flood := tc.pool + 2 // more than the whole pool
			results := make(chan shareResult, flood)
			for range flood {
				getAsync(env, a, tc.q, results)
			}
			// Every request of A beyond its share is refused at once; a
			// hold beyond the share means A took more than its share.
			for holds, refused := 0, 0; holds < tc.share || refused < flood-tc.share; {
				select {
				case <-held:
					if holds++; holds > tc.share {
						t.Fatalf("user A holds %d slots, its share is %d", holds, tc.share)
					}
				case r := <-results:
					if r.status != http.StatusTooManyRequests || r.code != "too_many_user_requests" || r.retryAfter == "" {
						t.Fatalf("A's request beyond its share: %+v", r)
					}
					refused++
				}
			}
			// B is served while A holds its share.
			if resp, body := env.get(b, tc.q); resp.StatusCode != http.StatusOK {
				t.Errorf("user B while A floods: %d %s", resp.StatusCode, body)
			}
			if tc.name == "pages" {
				// Analytics queries count in the same share: A has none
				// left, B is answered.
				q := "measures[]=count"
				if resp, body := env.getPath(AnalyticsPath, a, q); resp.StatusCode != http.StatusTooManyRequests || !json.Valid(body) {
					t.Errorf("A's analytics query beyond its share: %d %s", resp.StatusCode, body)
				}
				if resp, body := env.getPath(AnalyticsPath, b, q); resp.StatusCode != http.StatusOK {
					t.Errorf("B's analytics query while A floods: %d %s", resp.StatusCode, body)
				}
			}
			unblock()
			for range tc.share {
				if r := <-results; r.status != http.StatusOK {
					t.Errorf("A's held request: %+v", r)
				}
			}
			if v := metricValue(t, env, `worklog_user_share_refused_total{pool="`+tc.metric+`"}`); int(v) < flood-tc.share {
				t.Errorf("refused counter %v, want at least %d", v, flood-tc.share)
			}
			// Its share is A's again once its requests ended.
			if resp, body := env.get(a, tc.q); resp.StatusCode != http.StatusOK {
				t.Errorf("A after its requests ended: %d %s", resp.StatusCode, body)
			}
		})
	}
}
