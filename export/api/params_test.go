package api

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"worklog/privacy"
)

// TestUnknownParametersRefused checks SPEC §4 on every registered route: a
// query parameter the route does not know is refused with 400 naming it,
// and access_token is refused everywhere, before authentication.
func TestUnknownParametersRefused(t *testing.T) {
	env := newTestEnv(t, privacy.None, nil, readFixture(t))
	tok := env.token("u1", "")
	do := func(method, path, query string) (int, string, string) {
		t.Helper()
		req, err := http.NewRequest(method, env.url+path+"?"+query, strings.NewReader(""))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var e struct {
			Error struct{ Code, Param, Message string }
		}
		_ = json.Unmarshal(body, &e)
		return resp.StatusCode, e.Error.Param, e.Error.Code
	}
	routes := env.srv.Routes()
	if len(routes) < 7 {
		t.Fatalf("%d routes", len(routes))
	}
	for _, r := range routes {
		path := strings.ReplaceAll(r.Path, ":id", "nosuchjob")
		for _, q := range []string{"bogus=1", "access_token=abc", "zzz=1&access_token=abc"} {
			want := strings.SplitN(q, "=", 2)[0]
			if strings.Contains(q, "access_token") {
				want = "access_token"
			}
			status, param, code := do(r.Method, path, q)
			if status != 400 || param != want || code != "unknown_parameter" {
				t.Errorf("%s %s?%s: %d param %q code %q, want 400 naming %s", r.Method, r.Path, q, status, param, code, want)
			}
		}
	}
	// Misspellings on the export are named, and known parameters still pass.
	for q, want := range map[string]string{
		"filter[0][key]=date&filter[0][comparator]=isNull": "filter[0][comparator]",
		"orderbyfield=duration":                            "orderbyfield",
		"limit=5&Offset=5":                                 "Offset",
		"limit=5&_=1700000000":                             "_",
	} {
		if status, param, _ := do(http.MethodGet, ExportPath, q); status != 400 || param != want {
			t.Errorf("%s: %d param %q, want 400 naming %s", q, status, param, want)
		}
	}
	if status, _, _ := do(http.MethodGet, ExportPath, "limit=5&offset=5&format=csv&orderByField=duration&orderByDirection=asc&filters[0][key]=duration&filters[0][comparator]=isNotNull"); status != 200 {
		t.Errorf("known parameters: %d", status)
	}
	if status, _, _ := do(http.MethodGet, HealthzPath, ""); status != 200 {
		t.Errorf("healthz without parameters: %d", status)
	}
}
