package api

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"worklog/data"
	"worklog/export"
	"worklog/export/api/auth"
	"worklog/internal/jsontest"
	"worklog/internal/storetest"
	"worklog/privacy"
	"worklog/query"

	"github.com/golang-jwt/jwt/v5"
	"github.com/xuri/excelize/v2"
)

// fixturePath is the query package's fixture: the reference's example event
// plus 32 varied rows over four months.
const fixturePath = "../../query/testdata/events.ndjson"

// testSecret is the HS256 secret of the test servers.
var testSecret = []byte("test-secret-0123456789abcdef")

// signClaims signs arbitrary claims with HS256, adding an exp an hour ahead.
func signClaims(secret []byte, claims map[string]any) (string, error) {
	mc := jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		mc[k] = v
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, mc).SignedString(secret)
}

// testEnv is a real server over a real store on loopback.
type testEnv struct {
	t      *testing.T
	url    string
	secret []byte
	store  *data.Store
	engine *query.Engine
	key    []byte
	srv    *Server
}

// backend is a real store in a temporary data directory with its DuckDB
// engine and pseudonym key: what a server or a job runner sits on.
type backend struct {
	dir    string
	store  *data.Store
	engine *query.Engine
	key    []byte
}

// newBackend ingests the NDJSON dumps, one commit each, into a fresh store.
func newBackend(t *testing.T, dumps ...string) backend {
	t.Helper()
	b := storetest.New(t, dumps...)
	return backend{dir: b.Dir, store: b.Store, engine: b.Engine, key: b.Key}
}

// serve starts cfg's server over b's engine on loopback.
func (b backend) serve(t *testing.T, cfg Config) *testEnv {
	t.Helper()
	srv, err := NewServer(cfg, b.engine)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &testEnv{t: t, url: hs.URL, secret: testSecret, store: b.store, engine: b.engine, key: b.key, srv: srv}
}

// newTestEnv ingests the NDJSON dumps into a fresh store and serves it.
func newTestEnv(t *testing.T, level privacy.Level, mutate func(*Config), dumps ...string) *testEnv {
	t.Helper()
	b := newBackend(t, dumps...)
	cfg := Config{Verifier: mustHMAC(t), PrivacyLevel: level, PseudonymKey: b.key, DefaultFormat: export.FormatJSON, CSVFormulaGuard: true, Store: b.store}
	if mutate != nil {
		mutate(&cfg)
	}
	return b.serve(t, cfg)
}

func readFixture(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (e *testEnv) token(sub, email string, perms ...string) string {
	tok, err := auth.MintHS256(e.secret, auth.TokenRequest{Subject: sub, Email: email, Permissions: perms, TTL: time.Hour})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// get requests the export endpoint with the raw query string q.
func (e *testEnv) get(token, q string, header ...string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.url+ExportPath+"?"+q, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	tr := &http.Transport{DisableCompression: true}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("read body: %v", err)
	}
	return resp, body
}

// ordered is a decoded JSON object that keeps its key order.
type ordered struct {
	keys   []string
	values map[string]any
}

func decodeRows(t *testing.T, body []byte) []ordered {
	t.Helper()
	keys, objs := jsontest.DecodeOrdered(t, body)
	out := make([]ordered, len(objs))
	for i := range objs {
		out[i] = ordered{keys: keys[i], values: objs[i]}
	}
	return out
}

// decodeObject decodes one JSON object, keeping its key order.
func decodeObject(t *testing.T, raw []byte) ordered {
	t.Helper()
	rows := decodeRows(t, append(append([]byte("["), raw...), ']'))
	return rows[0]
}

// norm renders a decoded JSON value for comparison: numbers by value, so
// 1.0 and 1 are equal.
func norm(v any) string {
	if n, ok := v.(json.Number); ok {
		if f, err := strconv.ParseFloat(string(n), 64); err == nil {
			return strconv.FormatFloat(f, 'f', -1, 64)
		}
	}
	if v == nil {
		return "<null>"
	}
	return fmt.Sprint(v)
}

// referenceStyleList writes a list the way the reference does: ["a", "b"].
func referenceStyleList(items []any) string {
	parts := make([]string, len(items))
	for i, it := range items {
		b, _ := json.Marshal(it)
		parts[i] = string(b)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// fixtureRows decodes the fixture into the values an export must show at
// privacy level none: lists as reference-style strings, null lists as "[]".
func fixtureRows(t *testing.T) []ordered {
	t.Helper()
	var rows []ordered
	for _, line := range strings.Split(strings.TrimSpace(readFixture(t)), "\n") {
		o := decodeObject(t, []byte(line))
		for _, f := range data.Fields() {
			if f.Kind != data.KindList {
				continue
			}
			switch v := o.values[f.Name].(type) {
			case []any:
				o.values[f.Name] = referenceStyleList(v)
			case nil:
				o.values[f.Name] = "[]"
			}
		}
		rows = append(rows, o)
	}
	return rows
}

func idOf(o ordered) int64 {
	n, _ := o.values["userWorklogId"].(json.Number).Int64()
	return n
}

func fieldNames(t *testing.T) []string {
	var names []string
	for _, f := range data.Fields() {
		names = append(names, f.Name)
	}
	return names
}

func TestReferenceExampleRequest(t *testing.T) {
	env := newTestEnv(t, privacy.None, nil, readFixture(t))
	// The example request of the reference document, verbatim.
	q := "limit=1&offset=0&orderByField=duration&orderByDirection=asc&format=json&filters[0][key]=date&filters[0][comparator]=between&filters[0][from]=2024-05-10&filters[0][to]=2024-05-11&filters[1][key]=action&filters[1][comparator]=in&filters[1][values][]=writeAction&filters[1][values][]=statusAction"
	resp, body := env.get(env.token("u1", "u1@example.com"), q)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
	if got := resp.Header.Get("X-Total-Count"); got != "4" {
		t.Errorf("X-Total-Count = %q, want 4", got)
	}
	// The reference's example event, as the reference prints it.
	const want = `{"date": "2024-05-10 14:52:37", "name": "Jane Doe", "ticketId": 233, "conversationId": null, "userId": 1, "action": "writeAction", "duration": 206, "durationAfterWork": 0, "reOpened": 0, "status": "active", "aiAgent": null, "topic": "Billing", "subTopic": "Payment reminder", "allTags": "Billing, Payment reminder", "tags": "[\"Billing\", \"Payment reminder\"]", "channel": "email", "department": "Customer care", "teams": "[\"Customer care\"]", "email": "jane@example.com", "rawData": "{...}", "aiAutomationLevel": 3, "customerIdentifiedCorrectly": 1, "tagsIdentifiedCorrectly": 1, "textAssistanceAccuracy": null, "aiAgentsUsed": "[]", "skippedTicket": 0, "netSecondsClosedAfterSLA": -3600, "closingDateForSLA": "2024-05-13 16:15:00", "statusActionDetail": null, "pendingDueBy": null, "pendingSeconds": null, "netPendingSeconds": null, "firstPendingAt": null, "userWorklogId": 1, "timesSetToOpen": 0}`
	rows := decodeRows(t, body)
	if len(rows) != 1 {
		t.Fatalf("got %d rows, want 1", len(rows))
	}
	wantRow := decodeObject(t, []byte(want))
	if strings.Join(rows[0].keys, ",") != strings.Join(wantRow.keys, ",") {
		t.Errorf("keys\n got %v\nwant %v", rows[0].keys, wantRow.keys)
	}
	for _, k := range wantRow.keys {
		if norm(rows[0].values[k]) != norm(wantRow.values[k]) {
			t.Errorf("%s = %#v, want %#v", k, rows[0].values[k], wantRow.values[k])
		}
	}
}

// wholeExport requests every row ordered by date desc and checks each format
// against the fixture, parsed back with a real parser.
func TestFormatsEqualFixture(t *testing.T) {
	env := newTestEnv(t, privacy.None, nil, readFixture(t))
	tok := env.token("u1", "")
	want := fixtureRows(t)
	sort.Slice(want, func(i, j int) bool {
		di, dj := want[i].values["date"].(string), want[j].values["date"].(string)
		if di != dj {
			return di > dj
		}
		return idOf(want[i]) > idOf(want[j])
	})
	names := fieldNames(t)

	resp, body := env.get(tok, "format=json")
	if resp.StatusCode != 200 {
		t.Fatalf("json: %d %s", resp.StatusCode, body)
	}
	got := decodeRows(t, body)
	if len(got) != len(want) || resp.Header.Get("X-Total-Count") != strconv.Itoa(len(want)) {
		t.Fatalf("json: %d rows, X-Total-Count %s, want %d", len(got), resp.Header.Get("X-Total-Count"), len(want))
	}
	for i := range want {
		if strings.Join(got[i].keys, ",") != strings.Join(names, ",") {
			t.Fatalf("row %d keys %v", i, got[i].keys)
		}
		for _, k := range names {
			if norm(got[i].values[k]) != norm(want[i].values[k]) {
				t.Errorf("json row %d (id %d) %s = %#v, want %#v", i, idOf(want[i]), k, got[i].values[k], want[i].values[k])
			}
		}
	}

	// CSV and XLSX cells are the JSON values as text: null empty, numbers as
	// written, strings as they are (CSV: formula guard).
	cell := func(v any, guard bool) string {
		switch v := v.(type) {
		case nil:
			return ""
		case string:
			if guard && v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
				return "'" + v
			}
			return v
		default:
			return norm(v)
		}
	}

	resp, body = env.get(tok, "format=csv")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Fatalf("csv: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment; filename=") || !strings.Contains(cd, ".csv") {
		t.Errorf("csv Content-Disposition = %q", cd)
	}
	if bytes.Contains(body, []byte("\r\n")) {
		t.Error("csv has CRLF line ends, want LF")
	}
	records, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("csv parse: %v", err)
	}
	if strings.Join(records[0], ",") != strings.Join(names, ",") || len(records) != len(want)+1 {
		t.Fatalf("csv header %v, %d records", records[0], len(records))
	}
	for i := range want {
		for j, k := range names {
			if w := cell(want[i].values[k], true); records[i+1][j] != w {
				t.Errorf("csv row %d %s = %q, want %q", i, k, records[i+1][j], w)
			}
		}
	}

	// XLSX is synchronous up to 1,000 rows; the fixture has 33.
	resp, body = env.get(tok, "format=xlsx")
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "spreadsheetml") {
		t.Fatalf("xlsx: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	f, err := excelize.OpenReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("xlsx open: %v", err)
	}
	defer f.Close()
	xrows, err := f.GetRows("reporting_worklog")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(xrows[0], ",") != strings.Join(names, ",") || len(xrows) != len(want)+1 {
		t.Fatalf("xlsx header %v, %d rows", xrows[0], len(xrows))
	}
	for i := range want {
		for j, k := range names {
			var got string
			if j < len(xrows[i+1]) {
				got = xrows[i+1][j]
			}
			if w := cell(want[i].values[k], false); got != w {
				t.Errorf("xlsx row %d %s = %q, want %q", i, k, got, w)
			}
		}
	}
}

func TestPaginationOverHTTP(t *testing.T) {
	env := newTestEnv(t, privacy.None, nil, readFixture(t))
	tok := env.token("u1", "")
	for _, order := range []string{"orderByField=date&orderByDirection=desc", "orderByField=name&orderByDirection=asc", "orderByField=textAssistanceAccuracy&orderByDirection=desc"} {
		_, body := env.get(tok, order)
		var all []int64
		for _, r := range decodeRows(t, body) {
			all = append(all, idOf(r))
		}
		var paged []int64
		for off := 0; ; off += 7 {
			resp, body := env.get(tok, fmt.Sprintf("%s&limit=7&offset=%d", order, off))
			if resp.Header.Get("X-Total-Count") != strconv.Itoa(len(all)) {
				t.Fatalf("%s offset %d: X-Total-Count %s, want %d", order, off, resp.Header.Get("X-Total-Count"), len(all))
			}
			page := decodeRows(t, body)
			for _, r := range page {
				paged = append(paged, idOf(r))
			}
			if len(page) < 7 {
				break
			}
		}
		if fmt.Sprint(paged) != fmt.Sprint(all) {
			t.Errorf("%s: pages %v\nwhole %v", order, paged, all)
		}
	}
}

func TestBadParametersName(t *testing.T) {
	env := newTestEnv(t, privacy.None, nil, readFixture(t))
	tok := env.token("u1", "")
	tests := []struct{ q, param string }{
		{"format=pdf", "format"},
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"limit=abc", "limit"},
		{"offset=-1", "offset"},
		{"orderByField=nope", "orderByField"},
		{"orderByField=date%3B%20DROP%20TABLE%20x", "orderByField"},
		{"orderByDirection=up", "orderByDirection"},
		{"filters[0][key]=nope&filters[0][comparator]=equals&filters[0][value]=1", "filters[0][key]"},
		{"filters[1][key]=duration&filters[1][comparator]=like&filters[1][value]=1", "filters[1][comparator]"},
		{"filters[0][key]=duration&filters[0][comparator]=equals&filters[0][value]=abc", "filters[0][value]"},
		{"filters[0][key]=date&filters[0][comparator]=between&filters[0][from]=yesterday&filters[0][to]=2024-01-01", "filters[0][from]"},
		{"filters[0][key]=action&filters[0][comparator]=in&filters[0][values][]=dance", "filters[0][values][]"},
	}
	for _, tc := range tests {
		resp, body := env.get(tok, tc.q)
		var e struct {
			Error struct{ Code, Message, Param string }
		}
		if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != 400 {
			t.Errorf("%s: status %d body %s", tc.q, resp.StatusCode, body)
			continue
		}
		if !strings.HasPrefix(e.Error.Param, tc.param) || e.Error.Message == "" || e.Error.Code == "" {
			t.Errorf("%s: error %+v, want param %s", tc.q, e.Error, tc.param)
		}
	}
	// Injection in a value is matched literally, and the server still answers.
	resp, body := env.get(tok, "filters[0][key]=name&filters[0][comparator]=equals&filters[0][value]="+url.QueryEscape("x' OR '1'='1"))
	if resp.StatusCode != 200 || resp.Header.Get("X-Total-Count") != "0" || strings.TrimSpace(string(body)) != "[]" {
		t.Errorf("injection value: %d %s %s", resp.StatusCode, resp.Header.Get("X-Total-Count"), body)
	}
	resp, _ = env.get(tok, "filters[0][key]=name&filters[0][comparator]=equals&filters[0][value]="+url.QueryEscape("O'Brien"))
	if resp.Header.Get("X-Total-Count") != "1" {
		t.Errorf("O'Brien: X-Total-Count %s, want 1", resp.Header.Get("X-Total-Count"))
	}
	resp, _ = env.get(tok, "")
	if resp.StatusCode != 200 || resp.Header.Get("X-Total-Count") != "33" {
		t.Errorf("after injection attempts: %d, X-Total-Count %s", resp.StatusCode, resp.Header.Get("X-Total-Count"))
	}
}

func TestTokensRefused(t *testing.T) {
	env := newTestEnv(t, privacy.None, nil, readFixture(t))
	now := time.Now()
	signed := func(m jwt.SigningMethod, key any, c jwt.MapClaims) string {
		t.Helper()
		s, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := map[string]string{
		"missing":         "",
		"garbage":         "garbage",
		"wrong signature": signed(jwt.SigningMethodHS256, []byte("some-other-secret-123456"), jwt.MapClaims{"sub": "u", "exp": now.Add(time.Hour).Unix()}),
		"expired":         signed(jwt.SigningMethodHS256, env.secret, jwt.MapClaims{"sub": "u", "exp": now.Add(-time.Hour).Unix()}),
		"no exp":          signed(jwt.SigningMethodHS256, env.secret, jwt.MapClaims{"sub": "u"}),
		"alg none":        signed(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "u", "exp": now.Add(time.Hour).Unix()}),
	}
	for name, tok := range tests {
		resp, body := env.get(tok, "limit=1")
		if resp.StatusCode != http.StatusUnauthorized || !bytes.Contains(body, []byte(`"code":"unauthorized"`)) {
			t.Errorf("%s: status %d body %s", name, resp.StatusCode, body)
		}
		if bytes.Contains(body, []byte("Jane")) {
			t.Errorf("%s: body leaks data", name)
		}
	}
	// A raw Authorization header without "Bearer".
	req, _ := http.NewRequest("GET", env.url+ExportPath, nil)
	req.Header.Set("Authorization", env.token("u", ""))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("token without Bearer: %d", resp.StatusCode)
	}
}

func TestGzipAndLimits(t *testing.T) {
	env := newTestEnv(t, privacy.None, func(c *Config) { c.SyncLimitRows = 10; c.SyncLimitXLSX = 5 }, readFixture(t))
	tok := env.token("u1", "")
	resp, body := env.get(tok, "limit=10", "Accept-Encoding", "gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding = %q", resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(decodeRows(t, plain)); n != 10 {
		t.Errorf("gzip body has %d rows", n)
	}
	// Above the synchronous limit, without limit: never a truncated export.
	for _, q := range []string{"format=json", "format=xlsx"} {
		resp, body := env.get(tok, q)
		if resp.StatusCode == http.StatusOK {
			t.Errorf("%s above the sync limit answered 200 with %d bytes", q, len(body))
		}
	}
	// A page is never above the limit.
	if resp, _ := env.get(tok, "format=xlsx&limit=100"); resp.StatusCode != 200 {
		t.Errorf("xlsx page: %d", resp.StatusCode)
	}
}
