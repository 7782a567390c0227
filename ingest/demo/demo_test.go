package demo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"worklog/data"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// generate runs Generate into memory.
func generate(t testing.TB, opts Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Generate(context.Background(), &buf, opts); err != nil {
		t.Fatalf("Generate(%+v): %v", opts, err)
	}
	return buf.Bytes()
}

// record is one decoded line: its keys in order and the values by key.
// Numbers stay json.Number, lists become []string.
type record struct {
	keys []string
	vals map[string]any
}

// decodeLine decodes one NDJSON line token by token, so that key order and
// raw number syntax are visible.
func decodeLine(line []byte) (record, error) {
	rec := record{vals: map[string]any{}}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return rec, fmt.Errorf("want object, got %v (%v)", tok, err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return rec, err
		}
		key := tok.(string)
		tok, err = dec.Token()
		if err != nil {
			return rec, fmt.Errorf("%s: %w", key, err)
		}
		if tok == json.Delim('[') {
			list := []string{}
			for dec.More() {
				el, err := dec.Token()
				if err != nil {
					return rec, fmt.Errorf("%s: %w", key, err)
				}
				s, ok := el.(string)
				if !ok {
					return rec, fmt.Errorf("%s: list element %v is not a string", key, el)
				}
				list = append(list, s)
			}
			if _, err := dec.Token(); err != nil {
				return rec, fmt.Errorf("%s: %w", key, err)
			}
			tok = list
		} else if d, ok := tok.(json.Delim); ok {
			return rec, fmt.Errorf("%s: unexpected %v", key, d)
		}
		if _, dup := rec.vals[key]; dup {
			return rec, fmt.Errorf("duplicate key %s", key)
		}
		rec.keys = append(rec.keys, key)
		rec.vals[key] = tok
	}
	if _, err := dec.Token(); err != nil {
		return rec, err
	}
	if dec.More() {
		return rec, errors.New("trailing data after the object")
	}
	return rec, nil
}

// str returns a string field, "" when null.
func (r record) str(k string) string { s, _ := r.vals[k].(string); return s }

// int returns an integer field and whether it is set.
func (r record) int(k string) (int64, bool) {
	n, ok := r.vals[k].(json.Number)
	if !ok {
		return 0, false
	}
	v, err := n.Int64()
	return v, err == nil
}

// list returns a list field.
func (r record) list(k string) []string { l, _ := r.vals[k].([]string); return l }

// checkCatalogue checks one record against the catalogue: every field in
// order, types by kind, required fields, enums and ranges.
func checkCatalogue(rec record) error {
	fields := data.Fields()
	if len(rec.keys) != len(fields) {
		return fmt.Errorf("%d keys, want %d", len(rec.keys), len(fields))
	}
	for i, f := range fields {
		if rec.keys[i] != f.Name {
			return fmt.Errorf("key %d is %q, want %q", i, rec.keys[i], f.Name)
		}
		v := rec.vals[f.Name]
		if v == nil {
			if f.Required {
				return fmt.Errorf("%s: required but null", f.Name)
			}
			continue
		}
		switch f.Kind {
		case data.KindTimestamp:
			s, ok := v.(string)
			if _, err := time.Parse(data.TimestampLayout, s); !ok || err != nil {
				return fmt.Errorf("%s: %v is no timestamp", f.Name, v)
			}
		case data.KindInt, data.KindFlag:
			n, ok := v.(json.Number)
			i, err := n.Int64()
			if !ok || err != nil {
				return fmt.Errorf("%s: %v is no integer", f.Name, v)
			}
			if f.Kind == data.KindFlag && i != 0 && i != 1 {
				return fmt.Errorf("%s: flag is %d", f.Name, i)
			}
			if f.HasRange && (i < f.Min || i > f.Max) {
				return fmt.Errorf("%s: %d outside %d..%d", f.Name, i, f.Min, f.Max)
			}
		case data.KindFloat:
			n, ok := v.(json.Number)
			if _, err := n.Float64(); !ok || err != nil {
				return fmt.Errorf("%s: %v is no number", f.Name, v)
			}
		case data.KindString:
			if _, ok := v.(string); !ok {
				return fmt.Errorf("%s: %v is no string", f.Name, v)
			}
		case data.KindEnum:
			if s, ok := v.(string); !ok || !f.AllowsEnum(s) {
				return fmt.Errorf("%s: %v not in %v", f.Name, v, f.Enum)
			}
		case data.KindList:
			if _, ok := v.([]string); !ok {
				return fmt.Errorf("%s: %v is no list", f.Name, v)
			}
		}
	}
	return nil
}

// pendingFields are only set on status actions.
var pendingFields = []string{"statusActionDetail", "pendingDueBy", "pendingSeconds", "netPendingSeconds", "firstPendingAt"}

// checkSemantics checks what the catalogue cannot express: the relations
// between fields that a user of the data relies on.
func checkSemantics(rec record) error {
	action := rec.str("action")
	for _, k := range pendingFields {
		if rec.vals[k] != nil && action != "statusAction" {
			return fmt.Errorf("%s set on %s", k, action)
		}
	}
	if action == "statusAction" && rec.vals["statusActionDetail"] == nil {
		return errors.New("statusAction without statusActionDetail")
	}
	if p, ok := rec.int("pendingSeconds"); ok {
		if n, _ := rec.int("netPendingSeconds"); n < 0 || n > p {
			return fmt.Errorf("netPendingSeconds %d outside 0..pendingSeconds %d", n, p)
		}
	}

	raw := rec.str("rawData")
	if len(raw) < 500 || len(raw) > 1000 {
		return fmt.Errorf("rawData is %d bytes, want 500..1000", len(raw))
	}
	var payload struct {
		TicketID int64  `json:"ticketId"`
		Subject  string `json:"subject"`
		Body     string `json:"body"`
		Customer struct {
			Name string `json:"name"`
		} `json:"customer"`
	}
	if err := json.Unmarshal([]byte(raw), &payload); err != nil {
		return fmt.Errorf("rawData: %w", err)
	}
	if id, _ := rec.int("ticketId"); payload.TicketID != id || payload.Subject == "" || payload.Body == "" || payload.Customer.Name == "" {
		return fmt.Errorf("rawData lacks ticket %d's subject, body or customer: %s", id, raw)
	}

	tags := rec.list("tags")
	if len(tags) == 0 {
		if rec.vals["topic"] != nil || rec.vals["allTags"] != nil {
			return errors.New("topic or allTags without tags")
		}
	} else {
		if rec.str("allTags") != strings.Join(tags, ", ") {
			return fmt.Errorf("allTags %q != tags %q", rec.str("allTags"), tags)
		}
		if rec.str("topic") != tags[0] || len(tags) > 1 && rec.str("subTopic") != tags[1] {
			return fmt.Errorf("topic/subTopic %q/%q disagree with tags %q", rec.str("topic"), rec.str("subTopic"), tags)
		}
	}

	if action == "autoProcessAction" {
		if rec.vals["aiAgent"] == nil {
			return errors.New("autoProcessAction without aiAgent")
		}
	} else if rec.vals["userId"] == nil {
		return fmt.Errorf("%s without a user", action)
	}
	if name := rec.str("name"); name != "" {
		first, last, _ := strings.Cut(name, " ")
		if want := strings.ToLower(first + "." + last + "@example.com"); rec.str("email") != want {
			return fmt.Errorf("email %q, want %q for %q", rec.str("email"), want, name)
		}
	}
	if v := rec.vals["textAssistanceAccuracy"]; v != nil {
		f, _ := v.(json.Number).Float64()
		if f < 0 || f > 1 {
			return fmt.Errorf("textAssistanceAccuracy %v outside 0..1", f)
		}
	}
	if d, _ := rec.int("duration"); d <= 0 {
		return fmt.Errorf("duration %d", d)
	}
	return nil
}

// TestGenerateValidates checks every line of a mid-sized data set against
// the catalogue and the relations between fields, and that ids ascend and
// dates stay inside the 13 months before End.
func TestGenerateValidates(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"default end", Options{Rows: 20000, Seed: 7}},
		{"given end in another zone", Options{Rows: 3000, Seed: 8, End: time.Date(2024, 3, 1, 12, 30, 0, 0, time.FixedZone("X", 5*3600))}},
		{"few rows", Options{Rows: 5, Seed: 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := generate(t, tt.opts)
			end := tt.opts.End
			if end.IsZero() {
				end = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
			}
			hi := end.Format(data.TimestampLayout)
			lo := end.AddDate(0, -13, 0).Format(data.TimestampLayout)[:13] // whole hour
			sc := bufio.NewScanner(bytes.NewReader(out))
			sc.Buffer(nil, 1<<20)
			n, prevDate := 0, ""
			for sc.Scan() {
				n++
				rec, err := decodeLine(sc.Bytes())
				if err == nil {
					err = checkCatalogue(rec)
				}
				if err == nil {
					err = checkSemantics(rec)
				}
				if err != nil {
					t.Fatalf("line %d: %v\n%s", n, err, sc.Bytes())
				}
				if id, _ := rec.int("userWorklogId"); id != int64(n) {
					t.Fatalf("line %d: userWorklogId %d", n, id)
				}
				date := rec.str("date")
				if date < prevDate || date < lo || date >= hi {
					t.Fatalf("line %d: date %s after %s, want ascending in [%s, %s)", n, date, prevDate, lo, hi)
				}
				prevDate = date
			}
			if err := sc.Err(); err != nil {
				t.Fatal(err)
			}
			if n != tt.opts.Rows {
				t.Fatalf("%d lines, want %d", n, tt.opts.Rows)
			}
		})
	}
}

// TestGenerateDeterministic checks that a seed fixes the output and another
// seed changes it.
func TestGenerateDeterministic(t *testing.T) {
	a := generate(t, Options{Rows: 3000, Seed: 1})
	b := generate(t, Options{Rows: 3000, Seed: 1})
	c := generate(t, Options{Rows: 3000, Seed: 2})
	if !bytes.Equal(a, b) {
		t.Fatal("same seed gave different output")
	}
	if bytes.Equal(a, c) {
		t.Fatal("different seeds gave the same output")
	}
	// Differences must reach the content, not only a field or two.
	la, lc := bytes.SplitN(a, []byte("\n"), 2)[0], bytes.SplitN(c, []byte("\n"), 2)[0]
	ra, _ := decodeLine(la)
	rc, _ := decodeLine(lc)
	if ra.str("rawData") == rc.str("rawData") && ra.str("date") == rc.str("date") {
		t.Fatalf("first events of seeds 1 and 2 look alike:\n%s\n%s", la, lc)
	}
}

// TestGenerateGolden pins the exact output of a small data set, so that any
// change to what users get shows up in review. Run with -update to accept.
func TestGenerateGolden(t *testing.T) {
	got := generate(t, Options{Rows: 6, Seed: 42})
	path := filepath.Join("testdata", "seed42_rows6.ndjson")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("output differs from %s (run with -update to accept):\n%s", path, got)
	}
}

// TestGenerateDistribution checks that a data set looks like a real desk:
// every action and channel, ~200 agents with stable identities, tickets with
// several events, 13 months of history weighted to office hours, and every
// field filled somewhere.
func TestGenerateDistribution(t *testing.T) {
	const rows = 60000
	out := generate(t, Options{Rows: rows, Seed: 3})
	count := map[string]map[string]int{}
	inc := func(field, v string) {
		if count[field] == nil {
			count[field] = map[string]int{}
		}
		count[field][v]++
	}
	identity := map[int64]string{}
	nonNull := map[string]int{}
	var weekday, weekend, office, negSLA, posSLA int
	for i, line := range bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n")) {
		rec, err := decodeLine(line)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		for k, v := range rec.vals {
			if v != nil {
				nonNull[k]++
			}
		}
		inc("action", rec.str("action"))
		inc("channel", rec.str("channel"))
		inc("status", rec.str("status"))
		inc("month", rec.str("date")[:7])
		inc("ticketId", string(rec.vals["ticketId"].(json.Number)))
		inc("aiAutomationLevel", string(rec.vals["aiAutomationLevel"].(json.Number)))
		if uid, ok := rec.int("userId"); ok {
			who := rec.str("name") + "|" + rec.str("email")
			if prev, seen := identity[uid]; seen && prev != who {
				t.Fatalf("userId %d is %q and %q", uid, prev, who)
			}
			identity[uid] = who
		}
		d, _ := time.Parse(data.TimestampLayout, rec.str("date"))
		if wd := d.Weekday(); wd == time.Saturday || wd == time.Sunday {
			weekend++
		} else {
			weekday++
			if h := d.Hour(); h >= 8 && h < 18 {
				office++
			}
		}
		if v, ok := rec.int("netSecondsClosedAfterSLA"); ok {
			if v < 0 {
				negSLA++
			} else {
				posSLA++
			}
		}
	}

	for _, f := range data.Fields() {
		if nonNull[f.Name] == 0 {
			t.Errorf("field %s is null in every event", f.Name)
		}
		if f.Kind == data.KindEnum {
			for _, v := range f.Enum {
				if count[f.Name][v] == 0 {
					t.Errorf("%s %q never occurs", f.Name, v)
				}
			}
		}
	}
	if n := count["channel"][""]; n == 0 || n > rows/20 {
		t.Errorf("%d events without channel, want a few", n)
	}
	for _, s := range []string{"open", "active", "pending", "closed"} {
		if count["status"][s] == 0 {
			t.Errorf("status %q never occurs", s)
		}
	}
	for l := 0; l <= 5; l++ {
		if count["aiAutomationLevel"][strconv.Itoa(l)] == 0 {
			t.Errorf("aiAutomationLevel %d never occurs", l)
		}
	}
	if n := len(identity); n < 190 || n > agentCount {
		t.Errorf("%d distinct agents, want ~%d", n, agentCount)
	}
	if n := len(count["month"]); n != 13 {
		t.Errorf("events in %d months, want 13: %v", n, count["month"])
	}
	tickets := len(count["ticketId"])
	multi := 0
	for _, c := range count["ticketId"] {
		if c >= 3 {
			multi++
		}
	}
	if tickets > rows/2 || multi < tickets/10 {
		t.Errorf("%d tickets for %d events, %d with 3+ events: want tickets reused", tickets, rows, multi)
	}
	// Per day, a weekday sees several times the events of a weekend day;
	// most weekday events fall in office hours.
	if perWeekday, perWeekendDay := float64(weekday)/5, float64(weekend)/2; perWeekday < 2.5*perWeekendDay {
		t.Errorf("%.0f events per weekday vs %.0f per weekend day", perWeekday, perWeekendDay)
	}
	if float64(office) < 0.7*float64(weekday) {
		t.Errorf("%d of %d weekday events in office hours", office, weekday)
	}
	if negSLA == 0 || posSLA == 0 {
		t.Errorf("netSecondsClosedAfterSLA: %d negative, %d non-negative; want both", negSLA, posSLA)
	}
}

// TestGenerateEdgeCases covers empty output, bad options, cancellation and
// a failing writer.
func TestGenerateEdgeCases(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		w       io.Writer
		opts    Options
		wantErr error  // matched with errors.Is
		wantMsg string // substring of the error
	}{
		{name: "zero rows", ctx: context.Background(), w: &bytes.Buffer{}, opts: Options{}},
		{name: "negative rows", ctx: context.Background(), w: &bytes.Buffer{}, opts: Options{Rows: -1}, wantMsg: "rows must be >= 0"},
		{name: "cancelled", ctx: cancelled, w: &bytes.Buffer{}, opts: Options{Rows: 10}, wantErr: context.Canceled},
		{name: "write fails", ctx: context.Background(), w: failWriter{}, opts: Options{Rows: 1000}, wantErr: errDiskFull, wantMsg: "write demo events"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Generate(tt.ctx, tt.w, tt.opts)
			if tt.wantErr == nil && tt.wantMsg == "" {
				if err != nil {
					t.Fatal(err)
				}
				if b := tt.w.(*bytes.Buffer); b.Len() != 0 {
					t.Fatalf("wrote %d bytes", b.Len())
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q lacks %q", err, tt.wantMsg)
			}
		})
	}
}

// TestGenerateCancelMidway checks that a cancelled run stops early and
// leaves only whole lines.
func TestGenerateCancelMidway(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	w := &cancelAfter{limit: 1 << 20, cancel: cancel}
	err := Generate(ctx, w, Options{Rows: 1_000_000, Seed: 1})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if w.buf.Len() > 8<<20 {
		t.Errorf("wrote %d bytes after cancellation at 1 MiB", w.buf.Len())
	}
	if !bytes.HasSuffix(w.buf.Bytes(), []byte("\n")) {
		t.Error("output does not end with a whole line")
	}
}

// TestGenerateMemoryFlat checks that allocation does not grow with the
// number of events: ten times the events allocate about the same.
func TestGenerateMemoryFlat(t *testing.T) {
	alloc := func(rows int) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if err := Generate(context.Background(), io.Discard, Options{Rows: rows, Seed: 5}); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	small, large := alloc(20000), alloc(200000)
	// The ticket pool grows with the data set up to a cap; everything else
	// is allocated once.
	pool := uint64(poolSize(200000)-poolSize(20000)) * (rawSlot + uint64(unsafe.Sizeof(ticket{})))
	if large > small+pool+64<<10 {
		t.Errorf("200k events allocated %d bytes, 20k events %d: allocation grows with events", large, small)
	}
	t.Logf("allocated: 20k events %d B, 200k events %d B", small, large)
}

// errDiskFull is what failWriter fails with.
var errDiskFull = errors.New("disk full")

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errDiskFull }

// cancelAfter collects output and cancels once limit bytes arrived.
type cancelAfter struct {
	buf    bytes.Buffer
	limit  int
	cancel context.CancelFunc
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	if c.buf.Len() >= c.limit {
		c.cancel()
	}
	return c.buf.Write(p)
}

// countWriter counts bytes and discards them.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// BenchmarkGenerate generates b.N events into a discarding writer and
// reports events per second and bytes per event. Use e.g.
// -benchtime=1000000x for a million events.
func BenchmarkGenerate(b *testing.B) {
	var w countWriter
	b.ReportAllocs()
	cpu0, cpuOK := processCPU()
	b.ResetTimer()
	if err := Generate(context.Background(), &w, Options{Rows: b.N, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.SetBytes(w.n / int64(max(b.N, 1)))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	// Events per CPU-second: what one core achieves, even when other
	// processes share the machine and stretch the wall time.
	if cpu1, ok := processCPU(); cpuOK && ok && cpu1 > cpu0 {
		b.ReportMetric(float64(b.N)/(cpu1-cpu0).Seconds(), "events/cpu-s")
	}
}

// ExampleGenerate writes three events and reads back their keys.
func ExampleGenerate() {
	var buf bytes.Buffer
	if err := Generate(context.Background(), &buf, Options{Rows: 3, Seed: 1}); err != nil {
		fmt.Println(err)
		return
	}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(ev["userWorklogId"], len(ev), "fields")
	}
	// Output:
	// 1 35 fields
	// 2 35 fields
	// 3 35 fields
}
