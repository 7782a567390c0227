package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"worklog/data"
	"worklog/privacy"
	"worklog/query"
)

// getRaw requests a path of the test server, with a token when one is given.
func (e *testEnv) getRaw(token, path string, header ...string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.url+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
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

// TestPageAssets checks that the page and its assets are served without a
// token, with the strict CSP, the right types and revalidation by ETag.
func TestPageAssets(t *testing.T) {
	env := newTestEnv(t, privacy.Pseudonymized, nil)
	tests := []struct {
		path, contentType, contains string
	}{
		{"/", "text/html", `<label for="token">Token</label>`},
		{"/ui/app.js", "text/javascript", "'use strict'"},
		{"/ui/app.css", "text/css", "font:"},
		{"/ui/icon.svg", "image/svg+xml", "<svg"},
	}
	for _, tt := range tests {
		resp, body := env.getRaw("", tt.path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", tt.path, resp.StatusCode, body)
		}
		if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, tt.contentType) {
			t.Errorf("%s: Content-Type %q, want %s", tt.path, got, tt.contentType)
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != ContentSecurityPolicy {
			t.Errorf("%s: CSP %q", tt.path, got)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", tt.path, got)
		}
		if !strings.Contains(string(body), tt.contains) {
			t.Errorf("%s: body lacks %q", tt.path, tt.contains)
		}
		etag := resp.Header.Get("ETag")
		resp, _ = env.getRaw("", tt.path, "If-None-Match", etag)
		if etag == "" || resp.StatusCode != http.StatusNotModified {
			t.Errorf("%s: revalidation with ETag %q answered %d, want 304", tt.path, etag, resp.StatusCode)
		}
	}
	for _, p := range []string{"/ui/nope.js", "/ui/.hidden", "/ui/web/app.js", "/index.html"} {
		if resp, body := env.getRaw("", p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d %s, want 404", p, resp.StatusCode, body)
		}
	}
	// The CSP allows no inline script and no other origin.
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "http:", "https:", "*", "data:"} {
		if strings.Contains(ContentSecurityPolicy, bad) {
			t.Errorf("CSP allows %s", bad)
		}
	}
	// Nothing the page loads comes from elsewhere, and it has no inline script.
	_, page := env.getRaw("", "/")
	for _, bad := range []string{"http://", "https://", "<script>", "style=", "onclick", "onload"} {
		if strings.Contains(string(page), bad) {
			t.Errorf("the page contains %q", bad)
		}
	}
}

// TestUIConfigDemoToken checks that the demo token reaches only a loopback
// client that named the server by a loopback host.
func TestUIConfigDemoToken(t *testing.T) {
	withDemo := newTestEnv(t, privacy.Pseudonymized, func(c *Config) { c.DemoToken = "demo-token" })
	without := newTestEnv(t, privacy.Pseudonymized, nil)
	tests := []struct {
		env  *testEnv
		host string
		want string
	}{
		{withDemo, "", "demo-token"}, // the test server's own 127.0.0.1:port
		{withDemo, "localhost:8080", "demo-token"},
		{withDemo, "[::1]:8080", "demo-token"},
		{withDemo, "attacker.example:8080", ""}, // DNS rebinding
		{withDemo, "127.0.0.1.attacker.example", ""},
		{without, "", ""},
	}
	for _, tt := range tests {
		var hdr []string
		if tt.host != "" {
			hdr = []string{"Host", tt.host}
		}
		resp, body := tt.env.getRaw("", UIConfigPath, hdr...)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", tt.host, resp.StatusCode, body)
		}
		var cfg UIConfig
		if err := json.Unmarshal(body, &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.DemoToken != tt.want {
			t.Errorf("host %q: demo token %q, want %q", tt.host, cfg.DemoToken, tt.want)
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("host %q: Cache-Control %q", tt.host, resp.Header.Get("Cache-Control"))
		}
	}
	if isLoopbackHost("10.0.0.1:80") || !isLoopbackHost("127.0.0.2:80") || !isLoopbackHost("LOCALHOST") {
		t.Error("isLoopbackHost")
	}
}

// TestCatalog checks the catalogue route against the data catalogue, the
// privacy policy and the query parser at every level: the fields present are
// the ones the export shows, each filterable field accepts each listed
// comparator, and omitted fields are counted, never named.
func TestCatalog(t *testing.T) {
	fixture := readFixture(t)
	for _, pc := range privacyCases {
		t.Run(pc.name, func(t *testing.T) {
			env := newTestEnv(t, pc.level, nil, fixture)
			tok := env.token("u1", "u1@example.com", pc.perms...)
			resp, _ := env.getRaw("", CatalogPath)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("without token: %d", resp.StatusCode)
			}
			resp, body := env.getRaw(tok, CatalogPath)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			var cat Catalog
			if err := json.Unmarshal(body, &cat); err != nil {
				t.Fatal(err)
			}
			if cat.PrivacyLevel != pc.level {
				t.Errorf("level %s, want %s", cat.PrivacyLevel, pc.level)
			}
			for hidden := range pc.hidden {
				if strings.Contains(string(body), `"name":"`+hidden+`"`) {
					t.Errorf("the catalogue names the omitted field %s", hidden)
				}
			}
			if cat.OmittedFields != len(pc.hidden) {
				t.Errorf("omittedFields %d, want %d", cat.OmittedFields, len(pc.hidden))
			}
			// The fields are the columns of the export, in order.
			_, page := env.get(tok, "limit=1")
			want := decodeRows(t, page)[0].keys
			var got []string
			for _, f := range cat.Fields {
				got = append(got, f.Name)
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("catalogue fields %v\nexport keys      %v", got, want)
			}
			ops := map[string][]string{}
			for _, c := range cat.Comparators {
				ops[c.Name] = c.Operands
			}
			for _, f := range cat.Fields {
				df, _ := data.Lookup(f.Name)
				if f.Kind != kindNames[df.Kind] || len(f.Enum) != len(df.Enum) {
					t.Errorf("%s: kind %s enum %v", f.Name, f.Kind, f.Enum)
				}
				wantPseudo := pc.pseudo && df.Privacy == data.PrivacyName
				if (f.Treatment == privacy.TreatPseudonym) != wantPseudo {
					t.Errorf("%s: treatment %s", f.Name, f.Treatment)
				}
				// Sorting and filtering are exactly what the endpoint accepts.
				resp, _ := env.get(tok, "limit=1&orderByField="+f.Name)
				if (resp.StatusCode == http.StatusOK) != f.Sortable {
					t.Errorf("%s: sortable %t, but ordering answers %d", f.Name, f.Sortable, resp.StatusCode)
				}
				if !f.Filterable {
					resp, _ := env.get(tok, "limit=1&filters[0][key]="+f.Name+"&filters[0][comparator]=isNull")
					if resp.StatusCode != http.StatusBadRequest {
						t.Errorf("%s: not filterable, but a filter answers %d", f.Name, resp.StatusCode)
					}
					continue
				}
				if pc.level != privacy.None {
					continue // the comparators of a kind are the same at every level: checked once
				}
				for _, c := range f.Comparators {
					q := "limit=1&filters[0][key]=" + f.Name + "&filters[0][comparator]=" + c
					for _, op := range ops[c] {
						v := sampleOperand(df)
						if df.Kind == data.KindList && (c == query.Equals || c == query.NotEquals) {
							v = "%5B%22Billing%22%5D" // the whole list: ["Billing"]
						}
						if op == "values" {
							q += "&filters[0][values][]=" + v
						} else {
							q += "&filters[0][" + op + "]=" + v
						}
					}
					if resp, body := env.get(tok, q); resp.StatusCode != http.StatusOK {
						t.Errorf("%s %s: %d %s", f.Name, c, resp.StatusCode, body)
					}
				}
			}
			// Analytics: each time bucket, dimension and measure listed is one
			// the endpoint accepts, and none reads an omitted field.
			a := cat.Analytics
			if a == nil || len(a.TimeBuckets) == 0 || len(a.Dimensions) == 0 || len(a.Measures) == 0 {
				t.Fatalf("analytics: %+v", a)
			}
			if hasHour := slices.Contains(a.TimeBuckets, "date:hour"); hasHour == pc.pseudo {
				t.Errorf("date:hour offered %t at %s", hasHour, pc.level)
			}
			var groupBys, measures []string
			for _, d := range a.Dimensions {
				groupBys = append(groupBys, d.Name)
			}
			groupBys = append(groupBys, a.TimeBuckets...)
			for _, m := range a.Measures {
				measures = append(measures, m.Name)
				if wantUnit := map[string]string{"count": "count", "avg(duration)": data.UnitSeconds, "rate(reOpened)": "ratio",
					"slaMetRate": "ratio", "avg(aiAutomationLevel)": ""}; wantUnit[m.Name] != m.Unit && wantUnit[m.Name] != "" {
					t.Errorf("%s: unit %q", m.Name, m.Unit)
				}
			}
			for hidden := range pc.hidden {
				for _, name := range append(slices.Clone(groupBys), measures...) {
					if name == hidden || strings.Contains(name, "("+hidden+")") {
						t.Errorf("analytics offers %s, which reads the omitted field %s", name, hidden)
					}
				}
			}
			for _, g := range groupBys {
				if resp, body := env.getRaw(tok, AnalyticsPath+"?groupBy[]="+url.QueryEscape(g)+"&measures[]=count&limit=1"); resp.StatusCode != http.StatusOK {
					t.Errorf("groupBy %s: %d %s", g, resp.StatusCode, body)
				}
			}
			for _, m := range measures {
				if resp, body := env.getRaw(tok, AnalyticsPath+"?measures[]="+url.QueryEscape(m)); resp.StatusCode != http.StatusOK {
					t.Errorf("measure %s: %d %s", m, resp.StatusCode, body)
				}
			}
			if len(cat.Comparators) != len(query.ComparatorDocs()) || cat.MaxLimit != query.MaxLimit {
				t.Errorf("comparators %d, maxLimit %d", len(cat.Comparators), cat.MaxLimit)
			}
		})
	}
}

// sampleOperand is a valid operand for a field, URL-encoded.
func sampleOperand(f data.Field) string {
	switch f.Kind {
	case data.KindTimestamp:
		return "2024-05-01"
	case data.KindEnum:
		return f.Enum[0]
	case data.KindFlag, data.KindInt, data.KindFloat:
		return "1"
	case data.KindList:
		return "Billing"
	}
	return "x"
}
