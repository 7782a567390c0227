package api

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"worklog/export"
	"worklog/privacy"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/xuri/excelize/v2"
)

// analyticsExtraPath adds rows without userId, without agent and over a
// year boundary to the export fixture.
const analyticsExtraPath = "../../query/testdata/analytics_extra.ndjson"

// newAnalyticsEnv serves both fixtures at a level.
func newAnalyticsEnv(t *testing.T, level privacy.Level, mutate func(*Config)) *testEnv {
	t.Helper()
	extra, err := os.ReadFile(analyticsExtraPath)
	if err != nil {
		t.Fatal(err)
	}
	return newTestEnv(t, level, mutate, readFixture(t), string(extra))
}

// analytics requests the analytics endpoint with the raw query string q.
func (e *testEnv) analytics(token, q string, header ...string) (*http.Response, []byte) {
	e.t.Helper()
	return e.getPath(AnalyticsPath, token, q, header...)
}

// getPath requests path with the raw query string q.
func (e *testEnv) getPath(path, token, q string, header ...string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.url+path+"?"+q, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		e.t.Fatal(err)
	}
	return resp, buf.Bytes()
}

// The SPEC §10 example: weekly volume and AHT per channel in May 2024.
const mayByWeekAndChannel = "groupBy[]=date:week&groupBy[]=channel&measures[]=count&measures[]=avg(duration)" +
	"&filters[0][key]=date&filters[0][comparator]=between&filters[0][from]=2024-05-01&filters[0][to]=2024-05-31"

func TestAnalyticsExample(t *testing.T) {
	env := newAnalyticsEnv(t, privacy.Pseudonymized, nil)
	tok := env.token("u1", "u1@example.com")
	resp, body := env.analytics(tok, mayByWeekAndChannel)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	// May 2024 in the fixture: the week of Monday 2024-05-06 holds
	// 05-09 (email, 2), 05-10 (email 206, chat 5, chat 400), 05-11 (phone
	// 300, system null), 05-12 (walkIn 1); nothing else is in May.
	want := `[{"date:week":"2024-05-06","channel":"chat","count":2,"avg(duration)":202.5},` +
		`{"date:week":"2024-05-06","channel":"email","count":2,"avg(duration)":104},` +
		`{"date:week":"2024-05-06","channel":"phone","count":1,"avg(duration)":300},` +
		`{"date:week":"2024-05-06","channel":"walkIn","count":1,"avg(duration)":1},` +
		`{"date:week":"2024-05-06","channel":null,"count":1,"avg(duration)":null}]`
	if got := strings.ReplaceAll(string(body), "\n", ""); got != want {
		t.Errorf("body\n%s\nwant\n%s", got, want)
	}
	if got := resp.Header.Get("X-Total-Count"); got != "5" {
		t.Errorf("X-Total-Count %q, want 5", got)
	}
	if resp.Header.Get("X-Suppressed-Groups") != "" {
		t.Error("X-Suppressed-Groups without --min-group-agents")
	}

	// The same groups as CSV and XLSX, named as in the request.
	resp, body = env.analytics(tok, mayByWeekAndChannel+"&format=csv")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment; filename=") {
		t.Fatalf("csv: %d %v", resp.StatusCode, resp.Header)
	}
	recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 6 || strings.Join(recs[0], ",") != "date:week,channel,count,avg(duration)" ||
		strings.Join(recs[1], ",") != "2024-05-06,chat,2,202.5" || strings.Join(recs[5], ",") != "2024-05-06,,1," {
		t.Errorf("csv %q", recs)
	}
	resp, body = env.analytics(tok, mayByWeekAndChannel+"&format=xlsx")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != export.FormatXLSX.ContentType() {
		t.Fatalf("xlsx: %d %s", resp.StatusCode, body)
	}
	f, err := excelize.OpenReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := f.GetRows(export.AnalyticsSheetName)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 6 || strings.Join(rows[0], ",") != "date:week,channel,count,avg(duration)" || rows[1][2] != "2" || rows[1][3] != "202.5" {
		t.Errorf("xlsx rows %q", rows)
	}
}

func TestAnalyticsOrderingAndPaging(t *testing.T) {
	env := newAnalyticsEnv(t, privacy.None, nil)
	tok := env.token("u1", "")
	all := decodeRows(t, mustOK(t, env, tok, "groupBy[]=date:day&measures[]=count&orderByField=count&orderByDirection=desc&limit=10000"))
	for i := 1; i < len(all); i++ {
		a, b := num(all[i-1].values["count"]), num(all[i].values["count"])
		if a < b || a == b && all[i-1].values["date:day"].(string) >= all[i].values["date:day"].(string) {
			t.Errorf("rows %d, %d out of order: %v %v", i-1, i, all[i-1].values, all[i].values)
		}
	}
	resp, body := env.analytics(tok, "groupBy[]=date:day&measures[]=count&orderByField=count&orderByDirection=desc&limit=4&offset=2")
	page := decodeRows(t, body)
	if resp.Header.Get("X-Total-Count") != strconv.Itoa(len(all)) || len(page) != 4 {
		t.Fatalf("X-Total-Count %s (want %d), %d rows", resp.Header.Get("X-Total-Count"), len(all), len(page))
	}
	for i := range page {
		if page[i].values["date:day"] != all[i+2].values["date:day"] {
			t.Errorf("page row %d = %v, want %v", i, page[i].values, all[i+2].values)
		}
	}
	resp, body = env.analytics(tok, "groupBy[]=date:day&measures[]=count&offset=1000")
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "[]" || resp.Header.Get("X-Total-Count") != strconv.Itoa(len(all)) {
		t.Errorf("past the end: %d %q %s", resp.StatusCode, body, resp.Header.Get("X-Total-Count"))
	}
}

func mustOK(t *testing.T, env *testEnv, tok, q string) []byte {
	t.Helper()
	resp, body := env.analytics(tok, q)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", q, resp.StatusCode, body)
	}
	return body
}

func num(v any) float64 {
	f, _ := strconv.ParseFloat(string(v.(json.Number)), 64)
	return f
}

func TestAnalyticsRefusals(t *testing.T) {
	type refusal struct {
		query, param, code string
	}
	tests := []struct {
		level    privacy.Level
		minGroup int
		refused  []refusal
		allowed  []string
	}{
		{privacy.None, 5, nil, []string{
			"groupBy[]=name&measures[]=count", "groupBy[]=date:hour&measures[]=tickets&measures[]=agents",
			"measures[]=count&filters[0][key]=email&filters[0][comparator]=isNull"}},
		{privacy.Partial, 0, []refusal{
			{"measures[]=count&filters[0][key]=email&filters[0][comparator]=isNull", "filters[0][key]", "field_not_available"},
		}, []string{"groupBy[]=name&measures[]=count", "groupBy[]=date:hour&measures[]=count",
			"measures[]=count&filters[0][key]=userId&filters[0][comparator]=equals&filters[0][value]=1"}},
		{privacy.Partial, 5, []refusal{
			{"groupBy[]=channel&groupBy[]=name&measures[]=count", "groupBy[1]", "field_not_available"},
		}, []string{"groupBy[]=channel&measures[]=count&measures[]=agents"}},
		{privacy.Pseudonymized, 0, []refusal{
			{"groupBy[]=date:hour&measures[]=count", "groupBy[0]", "field_not_available"},
			{"measures[]=count&filters[0][key]=name&filters[0][comparator]=equals&filters[0][value]=Zoe", "filters[0][key]", "field_not_available"},
			{"measures[]=count&filters[0][key]=ticketId&filters[0][comparator]=isNull", "filters[0][key]", "field_not_available"},
		}, []string{"groupBy[]=name&measures[]=count", "groupBy[]=date:day&measures[]=tickets&measures[]=agents",
			"measures[]=count&filters[0][key]=date&filters[0][comparator]=equals&filters[0][value]=2024-05-10"}},
		{privacy.Pseudonymized, 2, []refusal{
			{"groupBy[]=name&measures[]=count", "groupBy[0]", "field_not_available"},
		}, nil},
	}
	for _, tt := range tests {
		env := newAnalyticsEnv(t, tt.level, func(c *Config) { c.MinGroupAgents = tt.minGroup })
		tok := env.token("u1", "")
		for _, r := range tt.refused {
			resp, body := env.analytics(tok, r.query)
			var e struct{ Error APIError }
			_ = json.Unmarshal(body, &e)
			if resp.StatusCode != 400 || e.Error.Param != r.param || e.Error.Code != r.code {
				t.Errorf("%s/%d %s: %d %s, want 400 %s %s", tt.level, tt.minGroup, r.query, resp.StatusCode, body, r.code, r.param)
			}
		}
		for _, q := range tt.allowed {
			if resp, body := env.analytics(tok, q); resp.StatusCode != 200 {
				t.Errorf("%s/%d %s: %d %s", tt.level, tt.minGroup, q, resp.StatusCode, body)
			}
		}
	}
}

func TestAnalyticsBadParameters(t *testing.T) {
	env := newAnalyticsEnv(t, privacy.None, nil)
	tok := env.token("u1", "")
	for q, param := range map[string]string{
		"groupBy[]=channel&groupBy[]=nope&measures[]=count": "groupBy[1]",
		"measures[]=avg(topic)":                             "measures[0]",
		"groupBy[]=channel":                                 "measures[0]",
		"measures[]=count&limit=10001":                      "limit",
		"measures[]=count&orderByField=avg(duration)":       "orderByField",
		"measures[]=count&filter[0][key]=date":              "filter[0][key]",
		"measures[]=count&format=pdf":                       "format",
	} {
		resp, body := env.analytics(tok, q)
		var e struct{ Error APIError }
		_ = json.Unmarshal(body, &e)
		if resp.StatusCode != 400 || e.Error.Param != param {
			t.Errorf("%s: %d %s, want 400 naming %s", q, resp.StatusCode, body, param)
		}
	}
	if resp, _ := env.analytics("", "measures[]=count"); resp.StatusCode != 401 {
		t.Errorf("no token: %d", resp.StatusCode)
	}
}

// TestAnalyticsAgentPseudonyms checks that grouping by name at level
// pseudonymized gives, per agent, the pseudonym the export shows and the
// number of events the export has under it.
func TestAnalyticsAgentPseudonyms(t *testing.T) {
	env := newAnalyticsEnv(t, privacy.Pseudonymized, nil)
	tok := env.token("u1", "")
	want := map[string]int{}
	for _, r := range decodeRows(t, mustExport(t, env, tok)) {
		name, _ := r.values["name"].(string)
		want[name]++ // "" stands for null
	}
	got := map[string]int{}
	rows := decodeRows(t, mustOK(t, env, tok, "groupBy[]=name&measures[]=count&measures[]=agents&limit=10000"))
	var labels []string
	for _, r := range rows {
		if strings.Join(r.keys, ",") != "name,count,agents" {
			t.Fatalf("keys %v: the userId column must not show", r.keys)
		}
		name, _ := r.values["name"].(string)
		got[name] += int(num(r.values["count"]))
		if name != "" {
			labels = append(labels, name)
			if !strings.HasPrefix(name, "Agent-") || num(r.values["agents"]) != 1 {
				t.Errorf("group %v: want a pseudonym of one agent", r.values)
			}
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d agent groups, the export shows %d pseudonyms", len(got), len(want))
	}
	for name, n := range want {
		if got[name] != n {
			t.Errorf("pseudonym %q: %d events in analytics, %d in the export", name, got[name], n)
		}
	}
	if !sort.StringsAreSorted(labels) {
		t.Errorf("agent groups not ordered by their label: %v", labels)
	}
}

func mustExport(t *testing.T, env *testEnv, tok string) []byte {
	t.Helper()
	resp, body := env.get(tok, "format=json")
	if resp.StatusCode != 200 {
		t.Fatalf("export: %d %s", resp.StatusCode, body)
	}
	return body
}

func TestAnalyticsSuppression(t *testing.T) {
	env := newAnalyticsEnv(t, privacy.Pseudonymized, func(c *Config) { c.MinGroupAgents = 3 })
	tok := env.token("u1", "")
	resp, body := env.analytics(tok, "groupBy[]=teams&measures[]=count&measures[]=agents")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	rows := decodeRows(t, body)
	for _, r := range rows {
		if num(r.values["agents"]) < 3 {
			t.Errorf("group %v has fewer than 3 agents", r.values)
		}
	}
	// Open, the same groups number kept + suppressed.
	open := newAnalyticsEnv(t, privacy.None, nil)
	all := decodeRows(t, mustOK(t, open, open.token("u1", ""), "groupBy[]=teams&measures[]=count&measures[]=agents"))
	small := 0
	for _, r := range all {
		if num(r.values["agents"]) < 3 {
			small++
		}
	}
	if small == 0 {
		t.Fatal("the fixture has no small group")
	}
	if resp.Header.Get("X-Suppressed-Groups") != strconv.Itoa(small) || resp.Header.Get("X-Total-Count") != strconv.Itoa(len(all)-small) || len(rows) != len(all)-small {
		t.Errorf("X-Suppressed-Groups %s, X-Total-Count %s, %d rows; want %d, %d", resp.Header.Get("X-Suppressed-Groups"),
			resp.Header.Get("X-Total-Count"), len(rows), small, len(all)-small)
	}
	// Everything suppressed: an empty page still counts.
	resp, body = env.analytics(tok, "groupBy[]=channel&measures[]=count&filters[0][key]=channel&filters[0][comparator]=equals&filters[0][value]=letter")
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "[]" || resp.Header.Get("X-Suppressed-Groups") != "1" || resp.Header.Get("X-Total-Count") != "0" {
		t.Errorf("all suppressed: %d %q %v", resp.StatusCode, body, resp.Header)
	}
}

// TestAnalyticsEveryFormat reads the groups back in every export format,
// the Arrow stream with arrow-go, and checks the Accept negotiation.
func TestAnalyticsEveryFormat(t *testing.T) {
	env := newAnalyticsEnv(t, privacy.Pseudonymized, nil)
	tok := env.token("u1", "")
	for _, f := range export.Formats() {
		resp, body := env.analytics(tok, mayByWeekAndChannel+"&format="+string(f))
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != f.ContentType() || len(body) == 0 {
			t.Errorf("%s: %d %s %q", f, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		resp2, body2 := env.analytics(tok, mayByWeekAndChannel, "Accept", f.ContentType())
		// Only the text formats are compared byte for byte: two runs of one
		// query may cut Arrow batches differently (DuckDB scans in
		// parallel) and leave other bytes under null slots, and XLSX and
		// Parquet files hold more than the values.
		binary := f == export.FormatXLSX || f == export.FormatParquet || f == export.FormatArrow
		if resp2.StatusCode != 200 || resp2.Header.Get("Content-Type") != f.ContentType() || (!binary && !bytes.Equal(body, body2)) {
			t.Errorf("Accept %s: %d %s", f.ContentType(), resp2.StatusCode, resp2.Header.Get("Content-Type"))
		}
		if f != "arrow" {
			continue
		}
		r, err := ipc.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("arrow: %v", err)
		}
		var names []string
		for _, fl := range r.Schema().Fields() {
			names = append(names, fl.Name)
		}
		n := 0
		for r.Next() {
			n += int(r.RecordBatch().NumRows())
		}
		r.Release()
		if strings.Join(names, ",") != "date:week,channel,count,avg(duration)" || n != 5 {
			t.Errorf("arrow: columns %v, %d rows", names, n)
		}
	}
}
