package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"worklog/ingest"
	"worklog/privacy"
)

// extraEvents returns n demo events of another seed, renumbered from
// firstID so that they are new rows: what an ingest between two pages adds,
// spread over the same dates and values as the store's.
func extraEvents(t *testing.T, n int, firstID int64) []string {
	t.Helper()
	var out []string
	for i, line := range strings.Split(strings.TrimSpace(demoDumpSeed(t, n, 99)), "\n") {
		var ev map[string]any
		d := json.NewDecoder(strings.NewReader(line))
		d.UseNumber()
		if err := d.Decode(&ev); err != nil {
			t.Fatal(err)
		}
		ev["userWorklogId"] = firstID + int64(i)
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// pageIDs returns the userWorklogIds of a JSON page in order.
func pageIDs(t *testing.T, body []byte) []int64 {
	t.Helper()
	var ids []int64
	for _, r := range decodeRows(t, body) {
		ids = append(ids, idOf(r))
	}
	return ids
}

// getURL requests a path-and-query of the server, as a Link header names it.
func (e *testEnv) getURL(token, target string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.url+target, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, body
}

// TestCursorWalkWhileIngesting follows X-Next-Cursor (and, every other page,
// the Link rel="next") through every page of several orderings while an
// ingest commits new rows between pages. The oracle is the whole export
// after the last page: the pages must visit rows in its order, each at most
// once, every row that existed before the walk, and of the rows inserted
// during the walk exactly those that sort after the page the walk had
// reached when they were inserted.
func TestCursorWalkWhileIngesting(t *testing.T) {
	const rows, limit = 64, 8
	dump := demoDump(t, rows)
	orderings := []struct {
		level privacy.Level
		query string
	}{
		{privacy.None, "orderByField=date&orderByDirection=desc"},
		{privacy.None, "orderByField=date&orderByDirection=asc"},
		{privacy.None, "orderByField=textAssistanceAccuracy&orderByDirection=asc"},
		{privacy.None, "orderByField=textAssistanceAccuracy&orderByDirection=desc"},
		{privacy.None, "orderByField=pendingDueBy&orderByDirection=asc"},
		{privacy.None, "orderByField=name&orderByDirection=asc"},
		{privacy.None, "orderByField=tags&orderByDirection=desc"},
		{privacy.None, "orderByField=userWorklogId&orderByDirection=asc"},
		{privacy.None, "orderByField=duration&orderByDirection=desc&filters[0][key]=action&filters[0][comparator]=in&filters[0][values][]=readAction&filters[0][values][]=writeAction"},
		{privacy.Pseudonymized, "orderByField=date&orderByDirection=desc"},
	}
	for n, o := range orderings {
		t.Run(string(o.level)+"/"+o.query, func(t *testing.T) {
			env := newTestEnv(t, o.level, nil, dump)
			tok := env.token("u1", "")
			extra := extraEvents(t, 40, 1_000_000+int64(n)*1000)
			type insert struct {
				ids       []int64
				afterPage int64 // the last id visited when they were inserted
			}
			var (
				visited []int64
				inserts []insert
			)
			resp, body := env.get(tok, o.query+fmt.Sprintf("&limit=%d", limit))
			for page := 1; ; page++ {
				if resp.StatusCode != 200 {
					t.Fatalf("page %d: %d %s", page, resp.StatusCode, body)
				}
				ids := pageIDs(t, body)
				visited = append(visited, ids...)
				next := resp.Header.Get("X-Next-Cursor")
				link := resp.Header.Get("Link")
				if next == "" {
					if link != "" {
						t.Errorf("last page has Link %q", link)
					}
					break
				}
				if len(ids) != limit || page > 200 {
					t.Fatalf("page %d has %d rows and a next cursor", page, len(ids))
				}
				// An ingest commits between this page and the next.
				if len(extra) > 0 {
					batch := extra[:2]
					extra = extra[2:]
					if _, err := ingest.Run(context.Background(), env.store, []ingest.Input{{Name: "between", R: strings.NewReader(strings.Join(batch, "\n"))}}, ingest.Options{}); err != nil {
						t.Fatal(err)
					}
					var ins insert
					for _, l := range batch {
						var ev struct{ UserWorklogID int64 }
						_ = json.Unmarshal([]byte(l), &ev)
						ins.ids = append(ins.ids, ev.UserWorklogID)
					}
					ins.afterPage = ids[len(ids)-1]
					inserts = append(inserts, ins)
				}
				if page%2 == 0 {
					target, ok := strings.CutPrefix(link, "<")
					target, rel, ok2 := strings.Cut(target, ">")
					if !ok || !ok2 || strings.TrimSpace(rel) != `; rel="next"` {
						t.Fatalf("Link %q", link)
					}
					u, err := url.Parse(target)
					if err != nil || u.Query().Get("cursor") != next || u.Query().Has("offset") {
						t.Fatalf("Link %q does not carry the cursor", link)
					}
					resp, body = env.getURL(tok, target)
				} else {
					resp, body = env.get(tok, o.query+fmt.Sprintf("&limit=%d&cursor=%s", limit, url.QueryEscape(next)))
				}
			}

			_, all := env.get(tok, o.query)
			final := pageIDs(t, all)
			pos := map[int64]int{}
			for i, id := range final {
				pos[id] = i
			}
			seen := map[int64]bool{}
			for i, id := range visited {
				if seen[id] {
					t.Fatalf("row %d visited twice", id)
				}
				seen[id] = true
				if i > 0 && pos[id] <= pos[visited[i-1]] {
					t.Fatalf("row %d after row %d: out of order", id, visited[i-1])
				}
			}
			inserted := map[int64]bool{}
			for _, ins := range inserts {
				for _, id := range ins.ids {
					inserted[id] = true
					_, matches := pos[id]
					ahead := matches && pos[id] > pos[ins.afterPage]
					if ahead != seen[id] {
						t.Errorf("row %d inserted after row %d: visited %v, sorts after the cursor %v", id, ins.afterPage, seen[id], ahead)
					}
				}
			}
			for _, id := range final {
				if !inserted[id] && !seen[id] {
					t.Errorf("row %d, there before the walk, never visited", id)
				}
			}
			if len(inserts) == 0 {
				t.Fatal("no ingest between pages")
			}
		})
	}
}

// TestCursorRefusedOverHTTP checks that a tampered cursor, or one sent with
// other filters, another ordering or offset, is refused naming cursor.
func TestCursorRefusedOverHTTP(t *testing.T) {
	env := newTestEnv(t, privacy.None, nil, readFixture(t))
	tok := env.token("u1", "")
	const q = "orderByField=duration&filters[0][key]=duration&filters[0][comparator]=gte&filters[0][value]=0&limit=2"
	resp, _ := env.get(tok, q)
	c := resp.Header.Get("X-Next-Cursor")
	if c == "" {
		t.Fatal("no X-Next-Cursor on the first page")
	}
	tampered := []byte(c)
	tampered[3] ^= 1
	for name, query := range map[string]string{
		"tampered":         q + "&cursor=" + url.QueryEscape(string(tampered)),
		"another filter":   strings.Replace(q, "value]=0", "value]=1", 1) + "&cursor=" + url.QueryEscape(c),
		"another ordering": q + "&orderByDirection=asc&cursor=" + url.QueryEscape(c),
		"with offset":      q + "&offset=2&cursor=" + url.QueryEscape(c),
		"without limit":    strings.TrimSuffix(q, "&limit=2") + "&cursor=" + url.QueryEscape(c),
	} {
		resp, body := env.get(tok, query)
		if resp.StatusCode != 400 || !bytes.Contains(body, []byte(`"param":"cursor"`)) {
			t.Errorf("%s: %d %s, want 400 naming cursor", name, resp.StatusCode, body)
		}
	}
	if resp, body := env.get(tok, q+"&cursor="+url.QueryEscape(c)); resp.StatusCode != 200 {
		t.Errorf("the cursor itself: %d %s", resp.StatusCode, body)
	}
}
