package api

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"worklog/export"
	"worklog/export/jobs"
	"worklog/privacy"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/xuri/excelize/v2"
)

// screenshotDir, when set, receives the README's screenshots of the page
// (go test -tags duckdb_arrow ./export/api -run TestWebDemo -args -screenshots=$PWD/docs).
var screenshotDir = flag.String("screenshots", "", "write the web page screenshots (PNG) into this directory")

// browserPage is one tab of Debian's chromium, driven headless over the
// DevTools protocol, with the console messages it logged.
type browserPage struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// newBrowserPage starts chromium with a fresh profile. Without chromium the
// test is skipped, except under CI=true, where it fails: CI installs it.
func newBrowserPage(t *testing.T) *browserPage {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the browser tests need chromium (Debian package chromium), and CI=true: .ci/run installs it")
		}
		t.Skip("skipping the browser test: it needs chromium (Debian package chromium: apt-get install chromium)")
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(cancelTab)
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(cancelTimeout)
	p := &browserPage{t: t, ctx: ctx}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.console = append(p.console, m)
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *browserPage) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, actions...); err != nil {
		p.t.Fatal(err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](p *browserPage, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// callJS is a call of the JavaScript function fn with args, as an expression.
func callJS(fn string, args ...any) string {
	parts := make([]string, len(args))
	for i, a := range args {
		b, _ := json.Marshal(a)
		parts[i] = string(b)
	}
	return "(" + fn + ")(" + strings.Join(parts, ", ") + ")"
}

// waitJS waits, on every DOM change, until the function (a JavaScript
// function of args) returns a truthy value, and returns it.
func waitJS[T any](p *browserPage, fn string, args ...any) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Poll[T](callJS(fn, args...), chromedp.WithPollingMutation(),
		chromedp.WithPollingTimeout(time.Minute)))
	if err != nil {
		p.t.Fatalf("wait for %s: %v", callJS(fn, args...), err)
	}
	return v
}

// controlJS finds the control of a visible label, by the label's text,
// inside the fieldset whose legend is scope (or anywhere when scope is
// empty), and returns its id.
const controlJS = `(scope, label) => {
	let root = document;
	if (scope) {
		root = [...document.querySelectorAll('fieldset')].find(f => f.querySelector(':scope > legend')?.textContent.trim() === scope);
		if (!root) return '';
	}
	const l = [...root.querySelectorAll('label')].find(l => l.textContent.trim() === label && l.checkVisibility());
	return l && l.control ? l.control.id : '';
}`

// control returns the id of the control labelled label (in fieldset scope).
func (p *browserPage) control(scope, label string) string {
	p.t.Helper()
	return waitJS[string](p, controlJS, scope, label)
}

// fill types text into the text field labelled label.
func (p *browserPage) fill(scope, label, text string) {
	p.t.Helper()
	id := p.control(scope, label)
	eval[chromedp.Void](p, callJS(`(id) => { document.getElementById(id).value = ''; }`, id))
	p.do(chromedp.SendKeys(chromedp.ID(id), text))
}

// choose selects the options with these values in the select labelled
// label, as a user's pick does: the page sees a change event.
func (p *browserPage) choose(scope, label string, values ...string) {
	p.t.Helper()
	id := p.control(scope, label)
	if values == nil {
		values = []string{} // none chosen, not null
	}
	p.do(chromedp.Focus(chromedp.ID(id)))
	ok := eval[bool](p, callJS(`(id, values) => {
		const s = document.getElementById(id);
		if (s.multiple) for (const o of s.options) o.selected = values.includes(o.value);
		else s.value = values[0];
		const found = [...s.selectedOptions].filter(o => values.includes(o.value)).length;
		s.dispatchEvent(new Event('input', {bubbles: true}));
		s.dispatchEvent(new Event('change', {bubbles: true}));
		return found === values.length;
	}`, id, values))
	if !ok {
		opts := eval[string](p, callJS(`(id) => document.getElementById(id).outerHTML`, id))
		p.t.Fatalf("%s %s: cannot choose %v in %s", scope, label, values, opts)
	}
}

// click clicks the visible button with this text.
func (p *browserPage) click(text string) {
	p.t.Helper()
	p.do(chromedp.Click(fmt.Sprintf(`//button[normalize-space(.)=%q]`, text)))
}

// download runs trigger and returns the bytes of the download it starts.
func (p *browserPage) download(dir string, trigger func()) []byte {
	p.t.Helper()
	progress := chromedp.Events(p.ctx, browser.DownloadProgress)
	trigger()
	for ev, err := range progress {
		if err != nil {
			p.t.Fatalf("download: %v", err)
		}
		switch ev.State {
		case browser.DownloadProgressStateCompleted:
			b, err := os.ReadFile(filepath.Join(dir, ev.GUID))
			if err != nil {
				p.t.Fatal(err)
			}
			return b
		case browser.DownloadProgressStateCanceled:
			p.t.Fatal("download canceled")
		}
	}
	p.t.Fatal("no download")
	return nil
}

// allowDownloads makes the browser save downloads into dir, named by GUID.
func (p *browserPage) allowDownloads(dir string) {
	p.t.Helper()
	p.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		yes := true
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: &yes})
		return err
	}))
}

// tableJS reads the preview table: the header row, then the rows.
const tableJS = `[...document.querySelectorAll('#preview-table tr')].map(tr => [...tr.cells].map(c => c.textContent))`

// consoleErrors are the console's errors and exceptions, except the
// network log lines of the API's 400 and 401 answers that the test provoked.
func (p *browserPage) consoleErrors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, m := range p.console {
		if m.Type != chromedp.ConsoleError && m.Type != chromedp.ConsoleException {
			continue
		}
		if m.Source == "network" && ((strings.Contains(m.URL, ExportPath) || strings.Contains(m.URL, AnalyticsPath)) && strings.Contains(m.Text, "status of 400") ||
			strings.Contains(m.URL, CatalogPath) && strings.Contains(m.Text, "status of 401")) {
			continue // the bad filter value and the bad token the test typed
		}
		out = append(out, fmt.Sprintf("%s %s: %s (%s)", m.Type, m.Source, m.Text, m.URL))
	}
	return out
}

// cellText renders a JSON value as the preview table shows it.
func cellText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return string(v)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// sameCell compares a table cell with the API's value; numbers by value,
// since JavaScript and Go may spell a float differently.
func sameCell(cell string, v any) bool {
	if n, ok := v.(json.Number); ok {
		want, err1 := strconv.ParseFloat(string(n), 64)
		got, err2 := strconv.ParseFloat(cell, 64)
		return err1 == nil && err2 == nil && want == got
	}
	return cell == cellText(v)
}

// checkTable compares the preview table with a page of the API.
func checkTable(t *testing.T, table [][]string, page []ordered) {
	t.Helper()
	if len(table) != len(page)+1 {
		t.Fatalf("the table has %d rows, the API page %d", len(table)-1, len(page))
	}
	for i, row := range page {
		if strings.Join(table[0], ",") != strings.Join(row.keys, ",") {
			t.Fatalf("table columns %v\nAPI keys      %v", table[0], row.keys)
		}
		for j, k := range row.keys {
			if !sameCell(table[i+1][j], row.values[k]) {
				t.Errorf("row %d %s: table %q, API %v", i, k, table[i+1][j], row.values[k])
			}
		}
	}
}

// webEnv is a real server with a job runner over generated demo events,
// with a small XLSX limit, so an XLSX download becomes a job.
func newWebEnv(t *testing.T, level privacy.Level, rows int, mutate func(*Config)) (*testEnv, string) {
	t.Helper()
	dump := demoDump(t, rows)
	b := newBackend(t, dump)
	runner, err := jobs.Open(jobs.Config{DataDir: b.dir, Engine: b.engine, PseudonymKey: b.key, Paths: JobPaths{},
		PublicURL: "http://127.0.0.1", RetryBackoff: 20 * time.Millisecond, SweepInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { runner.Close() })
	runner.Start(context.Background())
	cfg := Config{Verifier: mustHMAC(t), PrivacyLevel: level, PseudonymKey: b.key, DefaultFormat: export.FormatJSON,
		CSVFormulaGuard: true, SyncLimitXLSX: 5, Jobs: runner, Store: b.store}
	if mutate != nil {
		mutate(&cfg)
	}
	return b.serve(t, cfg), dump
}

// TestWebPage drives the page in chromium: sign in with a token, build a
// filter, compare the preview with the API's first page, page forward,
// download a CSV byte for byte, run an XLSX as a background job, see an API
// error next to its control; under pseudonymized no omitted field shows;
// the token stays out of storage and URL; no console errors; the CSP holds.
func TestWebPage(t *testing.T) {
	p := newBrowserPage(t)
	env, dump := newWebEnv(t, privacy.Pseudonymized, 3000, nil)
	tok := env.token("lead", "lead@service.test")
	dl := t.TempDir()

	resp, err := chromedp.Run(p.ctx, chromedp.NavigateResponse(env.url+"/"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(resp.Headers["Content-Security-Policy"]); got != ContentSecurityPolicy {
		t.Errorf("the page's CSP header is %q", got)
	}
	p.allowDownloads(dl)

	// A token the server refuses: the reason appears next to the Token field.
	// The form works from the keyboard: Enter in the field signs in.
	p.fill("", "Token", "not-a-token\r")
	refused := waitJS[string](p, `() => document.getElementById('token-error')?.textContent`)
	if !strings.Contains(refused, "not accepted") {
		t.Errorf("a refused token shows %q", refused)
	}

	// Sign in: the first page of everything appears with its total.
	p.fill("", "Token", tok+"\r")
	total := waitJS[string](p, `() => document.getElementById('total').dataset.total`)
	r, _ := env.get(tok, "limit=1")
	if total != r.Header.Get("X-Total-Count") {
		t.Errorf("total shown %s, API %s", total, r.Header.Get("X-Total-Count"))
	}
	privacyText := eval[string](p, `document.getElementById('privacy').textContent`)
	if !strings.Contains(privacyText, "Privacy level in force: pseudonymized") || !strings.Contains(privacyText, "5 fields are omitted") {
		t.Errorf("privacy line: %q", privacyText)
	}

	// Build a filter: duration ≥ 300 and channel in (chat, phone), by duration ascending.
	p.click("Add filter")
	p.choose("Filter 1", "Field", "duration")
	p.choose("Filter 1", "Comparator", "gte")
	p.fill("Filter 1", "Value", "300")
	p.click("Add filter")
	p.choose("Filter 2", "Field", "channel")
	p.choose("Filter 2", "Comparator", "in")
	p.choose("Filter 2", "Values", "chat", "phone")
	p.choose("", "Order by", "duration")
	p.choose("", "Direction", "asc")
	p.click("Show preview")
	q := url.Values{
		"filters[0][key]": {"duration"}, "filters[0][comparator]": {"gte"}, "filters[0][value]": {"300"},
		"filters[1][key]": {"channel"}, "filters[1][comparator]": {"in"}, "filters[1][values][]": {"chat", "phone"},
		"orderByField": {"duration"}, "orderByDirection": {"asc"},
	}
	first, firstBody := env.get(tok, q.Encode()+"&limit=25")
	if first.StatusCode != http.StatusOK {
		t.Fatalf("API page: %d %s", first.StatusCode, firstBody)
	}
	want := first.Header.Get("X-Total-Count")
	n, _ := strconv.Atoi(want)
	if n <= 50 {
		t.Fatalf("the filter matches %d rows; the test needs more than two pages", n)
	}
	waitJS[bool](p, `(want) => document.getElementById('total').dataset.total === want`, want)
	checkTable(t, eval[[][]string](p, tableJS), decodeRows(t, firstBody))
	if info := eval[string](p, `document.getElementById('page-info').textContent`); info != "Rows 1–25 of "+fmtThousands(n) {
		t.Errorf("page info %q", info)
	}

	// Page forward.
	p.click("Next page")
	waitJS[bool](p, `() => document.getElementById('page-info').textContent.startsWith('Rows 26–50')`)
	_, second := env.get(tok, q.Encode()+"&limit=25&offset=25")
	checkTable(t, eval[[][]string](p, tableJS), decodeRows(t, second))

	// Download CSV: the bytes of the API's CSV for the same query.
	csvBytes := p.download(dl, func() { p.click("Download CSV") })
	apiCSV, apiCSVBody := env.get(tok, q.Encode()+"&format=csv")
	if apiCSV.StatusCode != http.StatusOK || !bytes.Equal(csvBytes, apiCSVBody) {
		t.Errorf("downloaded CSV (%d bytes) differs from the API's (%d, %d bytes)", len(csvBytes), apiCSV.StatusCode, len(apiCSVBody))
	}
	waitJS[bool](p, `() => document.querySelector('#download-status li.done')?.textContent.includes('CSV: downloaded')`)

	// XLSX over the synchronous limit: a background job the page follows,
	// then offers; the file is the job's.
	p.click("Download XLSX")
	jobID := waitJS[string](p, `() => { const li = document.querySelector('#download-status li[data-status="done"]'); return li && li.dataset.job; }`)
	xlsx := p.download(dl, func() { p.click("Download XLSX file") })
	jr, jobFile := env.getRaw(tok, JobPaths{}.File(jobID))
	if jr.StatusCode != http.StatusOK || !bytes.Equal(xlsx, jobFile) {
		t.Errorf("downloaded XLSX (%d bytes) differs from the job's file (%d, %d bytes)", len(xlsx), jr.StatusCode, len(jobFile))
	}
	book, err := excelize.OpenReader(bytes.NewReader(xlsx))
	if err != nil {
		t.Fatal(err)
	}
	sheetRows, err := book.GetRows(book.GetSheetName(0))
	if err != nil || len(sheetRows) != n+1 {
		t.Errorf("the XLSX has %d rows (%v), want %d and a header", len(sheetRows), err, n)
	}

	// An API error, in words, next to the control that caused it.
	p.fill("Filter 1", "Value", "abc")
	p.click("Show preview")
	valueID := p.control("Filter 1", "Value")
	msg := waitJS[string](p, `(id) => document.getElementById(id + '-error')?.textContent`, valueID)
	er, erBody := env.get(tok, strings.Replace(q.Encode(), "filters%5B0%5D%5Bvalue%5D=300", "filters%5B0%5D%5Bvalue%5D=abc", 1)+"&limit=25")
	var apiErr struct{ Error APIError }
	if err := json.Unmarshal(erBody, &apiErr); err != nil || er.StatusCode != http.StatusBadRequest || apiErr.Error.Param != "filters[0][value]" {
		t.Fatalf("API error: %d %s", er.StatusCode, erBody)
	}
	if msg != apiErr.Error.Message {
		t.Errorf("error shown %q, API says %q", msg, apiErr.Error.Message)
	}
	placed := eval[bool](p, fmt.Sprintf(`(() => { const c = document.getElementById(%q); return c.getAttribute('aria-invalid') === 'true' &&
		c.nextElementSibling === document.getElementById(%q + '-error') && c.getAttribute('aria-describedby').includes(%q + '-error'); })()`, valueID, valueID, valueID))
	if !placed {
		t.Error("the error is not next to the Value control of Filter 1, or not tied to it")
	}

	// Privacy: no omitted field is named (columns, field choices, ordering),
	// and no value of one appears anywhere in the page.
	names := eval[[]string](p, `[...document.querySelectorAll('#preview-table th, select[id$="-key"] option, #order-field option')].map(e => e.textContent.trim())`)
	if len(names) < 30 {
		t.Fatalf("found only %d field names in the page", len(names))
	}
	for _, name := range names {
		if privacyCases[3].hidden[name] {
			t.Errorf("the page names the omitted field %s", name)
		}
	}
	html := eval[string](p, `document.documentElement.outerHTML`)
	emails := regexp.MustCompile(`"email":"([^"]+)"`).FindAllStringSubmatch(dump, -1)
	if len(emails) == 0 {
		t.Fatal("the demo dump has no e-mail addresses to look for")
	}
	for _, m := range emails {
		if strings.Contains(html, m[1]) {
			t.Fatalf("the page shows the e-mail %s, which level pseudonymized omits", m[1])
		}
	}

	// The token stays in the tab's memory: not in storage, cookies or URL.
	where := eval[string](p, `JSON.stringify([localStorage.length, Object.values(sessionStorage).join(' '), document.cookie, location.href])`)
	if strings.Contains(where, tok) || !strings.HasPrefix(where, "[0,") {
		t.Errorf("the token is kept somewhere: %s", where)
	}

	if errs := p.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
	}
	// The CSP is in force: an injected inline script does not run.
	ran := eval[bool](p, `(() => { const s = document.createElement('script'); s.textContent = 'window.inlineRan = true'; document.body.append(s); return window.inlineRan === true; })()`)
	if ran {
		t.Error("an inline script ran: the Content-Security-Policy is not in force")
	}
}

// fmtThousands writes n with comma thousands separators, as the page does.
func fmtThousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// TestWebDemo opens the page as 'serve --demo' on loopback serves it: the
// demo token filled in, the first page of 50,000 demo events shown. It logs
// the first render time from the browser's performance timing and, with
// -screenshots DIR, writes the README screenshot.
func TestWebDemo(t *testing.T) {
	p := newBrowserPage(t)
	var demoToken string
	env, _ := newWebEnv(t, privacy.Pseudonymized, 50000, func(c *Config) {
		tok, err := signClaims(testSecret, map[string]any{"sub": "demo", "email": "demo@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		c.DemoToken, demoToken = tok, tok
	})
	p.do(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(env.url+"/"))
	total := waitJS[string](p, `() => document.getElementById('total').dataset.total`)
	if total != "50000" {
		t.Errorf("total %s, want 50000", total)
	}
	if v := eval[string](p, `document.getElementById('token').value`); v != demoToken {
		t.Error("the demo token was not filled in")
	}
	ms := eval[float64](p, `performance.getEntriesByName('worklog-first-preview')[0].startTime`)
	t.Logf("first render of the export view (navigation start to the first preview rendered, 50,000 events): %.0f ms", ms)
	if errs := p.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
	}
	if *screenshotDir != "" {
		p.click("Add filter")
		p.choose("Filter 1", "Field", "channel")
		p.choose("Filter 1", "Comparator", "in")
		p.choose("Filter 1", "Values", "chat", "email")
		p.click("Show preview")
		waitJS[bool](p, `() => document.getElementById('total').dataset.total !== '50000'`)
		png, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(*screenshotDir, "web-export.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		// The analytics view: weekly volume and handling time per channel.
		p.click("Remove")
		p.click("Analytics")
		p.choose("", "Time bucket", "date:week")
		p.choose("", "Dimension", "channel")
		p.choose("", "Measures", "count", "avg(duration)")
		p.click("Show chart")
		waitJS[bool](p, `() => document.querySelectorAll('#charts figure').length === 2`)
		p.do(chromedp.EmulateViewport(1280, 1100))
		png, err = chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(*screenshotDir, "web-analytics.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		p.click("Export")
	}
	// A narrow window: the page does not scroll sideways; the table scrolls
	// inside its own box.
	p.do(chromedp.EmulateViewport(390, 800))
	if w := eval[[]int](p, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`); w[0] > w[1] {
		t.Errorf("at 390 px the page is %d px wide", w[0])
	}
}

// TestWebAnalytics drives the analytics view: the same filters, a time
// bucket, a dimension and measures; the table equals the endpoint's answer,
// the chart has a series per top value and one for the rest, its axis is in
// the measure's unit, and an API error shows next to its control.
func TestWebAnalytics(t *testing.T) {
	p := newBrowserPage(t)
	env, _ := newWebEnv(t, privacy.Pseudonymized, 3000, nil)
	tok := env.token("lead", "lead@service.test")
	p.do(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(env.url+"/"))
	p.fill("", "Token", tok+"\r")
	waitJS[string](p, `() => document.getElementById('total').dataset.total`)

	p.click("Analytics")
	p.click("Add filter")
	p.choose("Filter 1", "Field", "action")
	p.choose("Filter 1", "Comparator", "notEquals")
	p.fill("Filter 1", "Value", "readAction")
	p.choose("", "Time bucket", "date:week")
	p.choose("", "Dimension", "channel")
	p.choose("", "Measures", "count", "avg(duration)")
	p.choose("", "Series", "3")
	p.click("Show chart")
	total := waitJS[string](p, `() => document.getElementById('groups-total').dataset.total`)

	filter := "&filters[0][key]=action&filters[0][comparator]=notEquals&filters[0][value]=readAction"
	resp, body := env.getRaw(tok, AnalyticsPath+"?groupBy[0]=date:week&groupBy[1]=channel&measures[0]=count&measures[1]="+url.QueryEscape("avg(duration)")+"&limit=10000"+filter)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("analytics: %d %s", resp.StatusCode, body)
	}
	if total != resp.Header.Get("X-Total-Count") {
		t.Errorf("groups shown %s, API %s", total, resp.Header.Get("X-Total-Count"))
	}
	groups := decodeRows(t, body)
	table := eval[[][]string](p, `[...document.querySelectorAll('#groups-table tr')].map((tr, i) => [...tr.cells].map(c => i === 0 ? c.dataset.key : (c.dataset.value ?? '')))`)
	if len(table) != len(groups)+1 {
		t.Fatalf("the table has %d groups, the API %d", len(table)-1, len(groups))
	}
	for i, g := range groups {
		if strings.Join(table[0], ",") != strings.Join(g.keys, ",") {
			t.Fatalf("table columns %v, API keys %v", table[0], g.keys)
		}
		for j, k := range g.keys {
			if !sameCell(table[i+1][j], g.values[k]) {
				t.Errorf("group %d %s: table %q, API %v", i, k, table[i+1][j], g.values[k])
			}
		}
	}

	// The chart: the three channels with most events, then "other".
	resp, body = env.getRaw(tok, AnalyticsPath+"?groupBy[0]=channel&measures[0]=count&orderByField=count&orderByDirection=desc"+filter)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("analytics: %d %s", resp.StatusCode, body)
	}
	var want []string
	for i, g := range decodeRows(t, body) {
		if i == 3 {
			want = append(want, "other")
			break
		}
		name := cellText(g.values["channel"])
		if name == "" {
			name = "(none)"
		}
		want = append(want, name)
	}
	for _, m := range []string{"count", "avg(duration)"} {
		series := eval[[]string](p, callJS(`(m) => [...document.querySelectorAll('figure[data-measure="' + m + '"] g.series')].map(g => g.dataset.series)`, m))
		if strings.Join(series, ",") != strings.Join(want, ",") {
			t.Errorf("%s: series %v, want %v", m, series, want)
		}
	}
	ticks := eval[[]string](p, `[...document.querySelectorAll('figure[data-measure="avg(duration)"] text.tick.y')].map(t => t.textContent)`)
	for _, tick := range ticks {
		if !regexp.MustCompile(`^\d+:\d\d$`).MatchString(tick) {
			t.Errorf("avg(duration) axis tick %q is not m:ss", tick)
		}
	}
	if len(ticks) < 2 {
		t.Errorf("avg(duration) axis has %d ticks: %s", len(ticks), eval[string](p, `document.getElementById('charts').innerHTML`))
	}

	// An API error next to its control: no measure chosen.
	p.choose("", "Measures")
	p.click("Show chart")
	measuresID := p.control("", "Measures")
	msg := waitJS[string](p, `(id) => document.getElementById(id + '-error')?.textContent`, measuresID)
	if !strings.Contains(msg, "measure") {
		t.Errorf("the error next to Measures says %q", msg)
	}
	if errs := p.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}
