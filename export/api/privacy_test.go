package api

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"worklog/data"
	"worklog/export"
	"worklog/export/api/auth"
	"worklog/ingest/demo"
	"worklog/privacy"

	"github.com/xuri/excelize/v2"
)

// demoDump returns n generated events as NDJSON: realistic names, e-mail
// addresses and rawData payloads to look for in the output.
func demoDump(t *testing.T, n int) string {
	t.Helper()
	return demoDumpSeed(t, n, 7)
}

// demoDumpSeed is demoDump with another data set.
func demoDumpSeed(t *testing.T, n int, seed int64) string {
	t.Helper()
	var b bytes.Buffer
	if err := demo.Generate(context.Background(), &b, demo.Options{Rows: n, Seed: seed}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// privacyCase is one row of SPEC §6's matrix as a request sees it.
type privacyCase struct {
	name   string
	level  privacy.Level
	perms  []string
	hidden map[string]bool // fields absent from the output
	pseudo bool            // name pseudonymized, date cut to the day
}

var privacyCases = []privacyCase{
	{"none", privacy.None, nil, map[string]bool{}, false},
	{"partial without viewEmail", privacy.Partial, nil, map[string]bool{"email": true}, false},
	{"partial with viewEmail", privacy.Partial, []string{privacy.PermViewEmail}, map[string]bool{}, false},
	{"pseudonymized", privacy.Pseudonymized, []string{privacy.PermViewEmail},
		map[string]bool{"email": true, "ticketId": true, "conversationId": true, "userId": true, "rawData": true}, true},
}

// table is an export parsed back into a header and string cells.
type table struct {
	header []string
	rows   [][]string
}

func (tb table) col(name string) int {
	for i, h := range tb.header {
		if h == name {
			return i
		}
	}
	return -1
}

// parseExport parses a body of any format with a real parser.
func parseExport(t *testing.T, format string, body []byte) table {
	t.Helper()
	switch format {
	case "json":
		rows := decodeRows(t, body)
		var tb table
		if len(rows) > 0 {
			tb.header = rows[0].keys
		}
		for _, r := range rows {
			if strings.Join(r.keys, ",") != strings.Join(tb.header, ",") {
				t.Fatalf("json rows have different keys: %v vs %v", r.keys, tb.header)
			}
			cells := make([]string, len(r.keys))
			for i, k := range r.keys {
				if r.values[k] != nil {
					cells[i] = norm(r.values[k])
				}
			}
			tb.rows = append(tb.rows, cells)
		}
		return tb
	case "ndjson":
		return parseExport(t, "json", []byte("["+strings.ReplaceAll(strings.TrimSuffix(string(body), "\n"), "\n", ",")+"]"))
	case "parquet", "arrow":
		return readColumnar(t, format, body).table
	case "csv":
		recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		return table{header: recs[0], rows: recs[1:]}
	default:
		f, err := excelize.OpenReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		recs, err := f.GetRows(export.DefaultSheetName)
		if err != nil {
			t.Fatal(err)
		}
		return table{header: recs[0], rows: recs[1:]}
	}
}

// plainBytes is what a scan for leaked data must look at: the body itself,
// or for XLSX every part of the zip container, decompressed.
func plainBytes(t *testing.T, format string, body []byte) []byte {
	if format == "parquet" {
		// zstd-compressed: look at every value read back.
		var all bytes.Buffer
		tb := readColumnar(t, format, body)
		for _, r := range tb.rows {
			all.WriteString(strings.Join(r, "\x00"))
		}
		return all.Bytes()
	}
	if format != "xlsx" {
		return body
	}
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	var all bytes.Buffer
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(&all, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	return all.Bytes()
}

var (
	pseudonymRE = regexp.MustCompile(`^Agent-[0-9a-f]{10}$`)
	dayRE       = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	dateTimeRE  = regexp.MustCompile(`^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$`)
)

// TestPrivacyMatrix checks SPEC §6 for each level × format: which columns
// exist, how date and name look, and (pseudonymized) that no real name,
// e-mail address or rawData text is anywhere in the response bytes.
func TestPrivacyMatrix(t *testing.T) {
	dump := demoDump(t, 400)
	var secrets []string // real names, e-mails and rawData payloads
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(dump), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"name", "email", "rawData"} {
			if s, ok := ev[k].(string); ok && !seen[s] {
				seen[s] = true
				secrets = append(secrets, s)
			}
		}
	}
	for _, pc := range privacyCases {
		env := newTestEnv(t, pc.level, nil, dump)
		tok := env.token("analyst", "analyst@example.org", pc.perms...)
		var want []string
		for _, f := range data.Fields() {
			if !pc.hidden[f.Name] {
				want = append(want, f.Name)
			}
		}
		for _, format := range export.FormatNames() {
			t.Run(pc.name+"/"+format, func(t *testing.T) {
				resp, body := env.get(tok, "limit=1000&format="+format)
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
				tb := parseExport(t, format, body)
				if strings.Join(tb.header, ",") != strings.Join(want, ",") {
					t.Fatalf("columns\n got %v\nwant %v", tb.header, want)
				}
				if len(tb.rows) != 400 {
					t.Fatalf("%d rows, want 400", len(tb.rows))
				}
				dateCol, nameCol := tb.col("date"), tb.col("name")
				for _, r := range tb.rows {
					if pc.pseudo {
						if !dayRE.MatchString(r[dateCol]) {
							t.Fatalf("date %q, want YYYY-MM-DD", r[dateCol])
						}
						if nameCol < len(r) && r[nameCol] != "" && !pseudonymRE.MatchString(r[nameCol]) {
							t.Fatalf("name %q, want Agent-<10 hex>", r[nameCol])
						}
					} else if !dateTimeRE.MatchString(r[dateCol]) {
						t.Fatalf("date %q, want YYYY-MM-DD HH:MM:SS", r[dateCol])
					}
				}
				if pc.pseudo {
					plain := plainBytes(t, format, body)
					for _, s := range secrets {
						if len(s) >= 4 && bytes.Contains(plain, []byte(s)) {
							t.Fatalf("response contains %.60q", s)
						}
					}
				}
			})
		}
	}
}

// TestHiddenFieldsCannotBeFiltered: a filter or ordering must never reveal
// what the output hides.
func TestHiddenFieldsCannotBeFiltered(t *testing.T) {
	dump := demoDump(t, 50)
	tests := []struct {
		level   privacy.Level
		perms   []string
		q       string
		refused bool
	}{
		{privacy.Pseudonymized, nil, "filters[0][key]=email&filters[0][comparator]=equals&filters[0][value]=a@example.com", true},
		{privacy.Pseudonymized, nil, "filters[0][key]=name&filters[0][comparator]=startsWith&filters[0][value]=A", true},
		{privacy.Pseudonymized, nil, "filters[0][key]=userId&filters[0][comparator]=isNull", true},
		{privacy.Pseudonymized, nil, "filters[0][key]=rawData&filters[0][comparator]=contains&filters[0][value]=x", true},
		{privacy.Pseudonymized, nil, "orderByField=name", true},
		{privacy.Pseudonymized, nil, "orderByField=ticketId", true},
		{privacy.Pseudonymized, nil, "filters[0][key]=date&filters[0][comparator]=gte&filters[0][value]=2026-01-01", false},
		{privacy.Pseudonymized, nil, "orderByField=date", false},
		{privacy.Partial, nil, "filters[0][key]=email&filters[0][comparator]=isNotNull", true},
		{privacy.Partial, []string{privacy.PermViewEmail}, "filters[0][key]=email&filters[0][comparator]=isNotNull", false},
		{privacy.Partial, nil, "orderByField=name", false},
		{privacy.None, nil, "filters[0][key]=email&filters[0][comparator]=isNotNull", false},
	}
	envs := map[privacy.Level]*testEnv{}
	for _, tc := range tests {
		env := envs[tc.level]
		if env == nil {
			env = newTestEnv(t, tc.level, nil, dump)
			envs[tc.level] = env
		}
		resp, body := env.get(env.token("analyst", "", tc.perms...), "limit=5&"+tc.q)
		if tc.refused {
			if resp.StatusCode != 400 || !bytes.Contains(body, []byte(`"code":"field_not_available"`)) {
				t.Errorf("%s %s: status %d %s, want 400 field_not_available", tc.level, tc.q, resp.StatusCode, body)
			}
			if resp.Header.Get("X-Total-Count") != "" {
				t.Errorf("%s %s: refused request carries X-Total-Count", tc.level, tc.q)
			}
		} else if resp.StatusCode != 200 {
			t.Errorf("%s %s: status %d %s", tc.level, tc.q, resp.StatusCode, body)
		}
	}
}

// TestPseudonymsStable: the same user gets the same pseudonym on every row,
// across requests and across a server restart (a new server reading the same
// key from the data directory); different users get different pseudonyms.
func TestPseudonymsStable(t *testing.T) {
	dump := demoDump(t, 300)
	env := newTestEnv(t, privacy.None, nil, dump)
	// Real identities by userWorklogId, from an unrestricted export.
	_, body := env.get(env.token("admin", ""), "limit=1000")
	realUser := map[string]string{}
	for _, r := range decodeRows(t, body) {
		uid := norm(r.values["userId"])
		if r.values["userId"] == nil {
			uid = "name:" + norm(r.values["name"])
		}
		if r.values["name"] == nil && r.values["userId"] == nil {
			continue
		}
		realUser[norm(r.values["userWorklogId"])] = uid
	}

	pseudonymsOf := func() map[string]string {
		// A fresh server over the same store, its key read again from the
		// data directory: what a restart does.
		key, err := privacy.LoadOrCreateKey(env.store.DataDir(), "")
		if err != nil {
			t.Fatal(err)
		}
		srv, err := NewServer(Config{Verifier: mustHMAC(t), PrivacyLevel: privacy.Pseudonymized, PseudonymKey: key}, env.engine)
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(srv.Handler())
		defer hs.Close()
		e2 := *env
		e2.url = hs.URL
		_, body := e2.get(env.token("analyst", ""), "limit=1000")
		out := map[string]string{}
		for _, r := range decodeRows(t, body) {
			if r.values["name"] != nil {
				out[norm(r.values["userWorklogId"])] = r.values["name"].(string)
			}
		}
		return out
	}
	first, second := pseudonymsOf(), pseudonymsOf()
	if len(first) < 150 {
		t.Fatalf("only %d pseudonymized names", len(first))
	}
	byUser := map[string]string{}
	users := map[string]string{}
	for id, p := range first {
		if second[id] != p {
			t.Fatalf("row %s: pseudonym %s then %s after restart", id, p, second[id])
		}
		u := realUser[id]
		if prev, ok := byUser[u]; ok && prev != p {
			t.Fatalf("user %s has pseudonyms %s and %s", u, prev, p)
		}
		byUser[u] = p
		if other, ok := users[p]; ok && other != u {
			t.Fatalf("users %s and %s share pseudonym %s", u, other, p)
		}
		users[p] = u
	}
	if len(byUser) < 20 {
		t.Errorf("only %d distinct users in the sample", len(byUser))
	}
}

// TestTokenCannotLowerLevel: a token may ask for a stricter level, never a
// laxer one.
func TestTokenCannotLowerLevel(t *testing.T) {
	dump := demoDump(t, 20)
	claimToken := func(env *testEnv, level string) string {
		tok, err := signClaims(env.secret, map[string]any{"sub": "u", "reportingPrivacyLevel": level})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	strict := newTestEnv(t, privacy.Pseudonymized, nil, dump)
	_, body := strict.get(claimToken(strict, "none"), "limit=5")
	if rows := decodeRows(t, body); len(rows) == 0 || rows[0].values["email"] != nil || rows[0].values["rawData"] != nil {
		t.Errorf("token claim none lowered pseudonymized: %s", body)
	}
	lax := newTestEnv(t, privacy.None, nil, dump)
	_, body = lax.get(claimToken(lax, "pseudonymized"), "limit=5")
	rows := decodeRows(t, body)
	if len(rows) == 0 || !pseudonymRE.MatchString(rows[0].values["name"].(string)) || rows[0].values["email"] != nil {
		t.Errorf("token claim pseudonymized not applied: %s", body)
	}
}

func mustHMAC(t *testing.T) *auth.Verifier {
	v, err := auth.NewHMACVerifier(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
