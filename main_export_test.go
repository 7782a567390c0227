package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestAddFilterFlags(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		filters []string
		want    string // url.Values.Encode() of the result
		wantErr bool
	}{
		{name: "equals", filters: []string{"department:equals:Customer care"},
			want: "filters%5B0%5D%5Bcomparator%5D=equals&filters%5B0%5D%5Bkey%5D=department&filters%5B0%5D%5Bvalue%5D=Customer+care"},
		{name: "timestamp value keeps its colons", filters: []string{"date:gte:2024-05-10 08:00:00"},
			want: "filters%5B0%5D%5Bcomparator%5D=gte&filters%5B0%5D%5Bkey%5D=date&filters%5B0%5D%5Bvalue%5D=2024-05-10+08%3A00%3A00"},
		{name: "between", filters: []string{"date:between:2024-05-10..2024-05-11"},
			want: "filters%5B0%5D%5Bcomparator%5D=between&filters%5B0%5D%5Bfrom%5D=2024-05-10&filters%5B0%5D%5Bkey%5D=date&filters%5B0%5D%5Bto%5D=2024-05-11"},
		{name: "in", filters: []string{"action:in:readAction|writeAction"},
			want: "filters%5B0%5D%5Bcomparator%5D=in&filters%5B0%5D%5Bkey%5D=action&filters%5B0%5D%5Bvalues%5D%5B%5D=readAction&filters%5B0%5D%5Bvalues%5D%5B%5D=writeAction"},
		{name: "no operand", filters: []string{"channel:isNull"},
			want: "filters%5B0%5D%5Bcomparator%5D=isNull&filters%5B0%5D%5Bkey%5D=channel"},
		{name: "numbered after --query", query: "filters[4][key]=channel&filters[4][comparator]=isNull", filters: []string{"duration:gt:10"},
			want: "filters%5B4%5D%5Bcomparator%5D=isNull&filters%5B4%5D%5Bkey%5D=channel&filters%5B5%5D%5Bcomparator%5D=gt&filters%5B5%5D%5Bkey%5D=duration&filters%5B5%5D%5Bvalue%5D=10"},
		{name: "missing comparator", filters: []string{"duration"}, wantErr: true},
		{name: "between without ..", filters: []string{"date:between:2024-05-10"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			values, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			err = addFilterFlags(values, tc.filters)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error; values %v", values)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := values.Encode(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestExportCommandFormats checks that 'worklog export' writes every format,
// chosen by --format or by the extension of --out.
func TestExportCommandFormats(t *testing.T) {
	dir := t.TempDir()
	var dump strings.Builder
	for i := 1; i <= 25; i++ {
		dump.WriteString(event(i, 5, 1+i%28, i, 10) + "\n")
	}
	in := writeFile(t, t.TempDir(), "dump.ndjson", dump.String())
	if _, stderr, code := worklog(t, nil, "ingest", "--data", dir, in); code != 0 {
		t.Fatalf("ingest: %s", stderr)
	}
	out := t.TempDir()
	tests := []struct {
		args   []string
		file   string
		starts []byte
	}{
		{[]string{"--out", filepath.Join(out, "a.ndjson")}, "a.ndjson", []byte(`{"date":`)},
		{[]string{"--out", filepath.Join(out, "a.parquet")}, "a.parquet", []byte("PAR1")},
		{[]string{"--out", filepath.Join(out, "a.arrow")}, "a.arrow", []byte{0xff, 0xff, 0xff, 0xff}},
		{[]string{"--format", "parquet", "--out", filepath.Join(out, "b.bin")}, "b.bin", []byte("PAR1")},
		{[]string{"--format", "NDJSON", "--out", filepath.Join(out, "c.json")}, "c.json", []byte(`{"date":`)},
		{[]string{"--out", filepath.Join(out, "plain.csv")}, "plain.csv", []byte("date,")},
		{[]string{"--bom", "--out", filepath.Join(out, "excel.csv")}, "excel.csv", []byte("\xef\xbb\xbfdate,")},
		{[]string{"--query", "bom=true", "--out", filepath.Join(out, "q.csv")}, "q.csv", []byte("\xef\xbb\xbfdate,")},
	}
	for _, tc := range tests {
		args := append([]string{"export", "--data", dir, "--privacy-level", "none"}, tc.args...)
		if _, stderr, code := worklog(t, nil, args...); code != 0 {
			t.Fatalf("%v: %s", tc.args, stderr)
		}
		b, err := os.ReadFile(filepath.Join(out, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, tc.starts) {
			t.Errorf("%v: file starts %q, want %q", tc.args, b[:min(len(b), 8)], tc.starts)
		}
		if bytes.HasPrefix(tc.starts, []byte("PAR1")) && !bytes.HasSuffix(b, []byte("PAR1")) {
			t.Errorf("%v: no Parquet footer", tc.args)
		}
		if tc.starts[0] == '{' && bytes.Count(b, []byte("\n")) != 25 {
			t.Errorf("%v: %d lines, want 25", tc.args, bytes.Count(b, []byte("\n")))
		}
	}
	if _, stderr, code := worklog(t, nil, "export", "--data", dir, "--format", "pdf", "--out", filepath.Join(out, "x")); code == 0 || !strings.Contains(stderr, "parquet") {
		t.Errorf("--format pdf: exit %d, %s; want an error listing the formats", code, stderr)
	}
}

// TestExportFileMode: what a user asks a command for (export --out,
// analytics --out, ingest --rejects) gets the usual mode of a command's
// output, 0666 less the umask, while what worklog keeps under <data> stays
// private whatever the umask.
func TestExportFileMode(t *testing.T) {
	dir := t.TempDir()
	in := writeFile(t, t.TempDir(), "dump.ndjson", event(1, 5, 1, 10, 0)+"\n"+event(2, 5, 2, 20, 0)+"\n"+`{"date":"2024-05-03 10:00:00"}`+"\n")
	out := t.TempDir()
	// umask runs the command under a shell that sets the umask first.
	umask := func(mask string, args ...string) {
		t.Helper()
		cmd := exec.Command("sh", append([]string{"-c", `umask "$0" && exec "$@"`, mask, worklogBin(t)}, args...)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("umask %s worklog %v: %v\n%s", mask, args, err, b)
		}
	}
	umask("000", "ingest", "--data", dir, "--on-error", "skip", "--rejects", filepath.Join(out, "rejects-000.ndjson"), in)
	tests := []struct {
		mask, file string
		args       []string
		want       os.FileMode
	}{
		{"022", "week.csv", []string{"export", "--data", dir, "--privacy-level", "none", "--out"}, 0o644},
		{"027", "week.parquet", []string{"export", "--data", dir, "--privacy-level", "none", "--out"}, 0o640},
		{"002", "groups.json", []string{"analytics", "--data", dir, "--measure", "count", "--out"}, 0o664},
		{"022", "rejects.ndjson", []string{"ingest", "--data", dir, "--on-error", "skip", in, "--rejects"}, 0o644},
	}
	for _, tc := range tests {
		path := filepath.Join(out, tc.file)
		umask(tc.mask, append(tc.args, path)...)
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != tc.want {
			t.Errorf("umask %s %s: mode %o, want %o", tc.mask, tc.file, got, tc.want)
		}
	}
	if st, err := os.Stat(filepath.Join(out, "rejects-000.ndjson")); err != nil || st.Mode().Perm() != 0o666 {
		t.Errorf("rejects under umask 000: %v %v, want 0666", st.Mode(), err)
	}
	// Under umask 000, nothing worklog keeps is readable by others (the
	// data directory itself is the test's).
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		info, err := d.Info()
		if err == nil && info.Mode().Perm()&0o007 != 0 {
			t.Errorf("%s: mode %o is open to others", p, info.Mode().Perm())
		}
		return nil
	})
}

// TestExportCursorPages walks every page of several orderings through
// 'worklog export --limit N --cursor C --cursor-out FILE' and checks that
// the pages hold every row once, in the order of the whole export.
func TestExportCursorPages(t *testing.T) {
	dir := t.TempDir()
	channels := []string{`"chat"`, `null`, `"email"`, `"phone"`}
	var dump strings.Builder
	for i := 1; i <= 40; i++ {
		// Durations and channels repeat, and a quarter of the channels are
		// null: ties and nulls must neither drop nor repeat a row.
		fmt.Fprintf(&dump, `{"date":"2024-05-%02d 1%d:00:00","action":"readAction","userWorklogId":%d,"duration":%d,"channel":%s}`+"\n",
			1+i%9, i%7, i, i%5, channels[i%4])
	}
	in := writeFile(t, t.TempDir(), "dump.ndjson", dump.String())
	if _, stderr, code := worklog(t, nil, "ingest", "--data", dir, in); code != 0 {
		t.Fatalf("ingest: %s", stderr)
	}
	out := t.TempDir()
	ids := func(path string) []int64 {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var rows []struct{ UserWorklogID int64 }
		if err := json.Unmarshal(b, &rows); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var got []int64
		for _, r := range rows {
			got = append(got, r.UserWorklogID)
		}
		return got
	}
	for _, order := range [][]string{
		nil, // date desc
		{"--order-by-field", "duration", "--order-by-direction", "asc"},
		{"--order-by-field", "channel", "--order-by-direction", "desc"},
		{"--order-by-field", "channel", "--order-by-direction", "asc", "--filter", "duration:gte:1"},
	} {
		t.Run(strings.Join(order, " "), func(t *testing.T) {
			base := append([]string{"export", "--data", dir, "--privacy-level", "none"}, order...)
			whole := filepath.Join(out, "whole.json")
			if _, stderr, code := worklog(t, nil, append(base, "--out", whole)...); code != 0 {
				t.Fatalf("whole export: %s", stderr)
			}
			want := ids(whole)
			var got []int64
			cursorFile := filepath.Join(out, "cursor.txt")
			cursor := ""
			for page := 1; ; page++ {
				if page > 10 {
					t.Fatalf("more than 10 pages of 7 for %d rows", len(want))
				}
				args := append(append([]string{}, base...), "--limit", "7", "--out", filepath.Join(out, "page.json"), "--cursor-out", cursorFile)
				if cursor != "" {
					args = append(args, "--cursor", cursor)
				}
				_, stderr, code := worklog(t, nil, args...)
				if code != 0 {
					t.Fatalf("page %d: %s", page, stderr)
				}
				got = append(got, ids(filepath.Join(out, "page.json"))...)
				b, err := os.ReadFile(cursorFile)
				if err != nil {
					t.Fatal(err)
				}
				cursor = strings.TrimSuffix(string(b), "\n")
				if (cursor == "") != strings.Contains(stderr, "this was the last page") {
					t.Errorf("page %d: cursor %q, stderr %q", page, cursor, stderr)
				}
				if cursor != "" && !strings.Contains(stderr, "--cursor "+cursor) {
					t.Errorf("page %d: stderr does not name the next cursor: %q", page, stderr)
				}
				if cursor == "" {
					break
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("pages hold\n%v\nthe whole export\n%v", got, want)
			}
		})
	}
	t.Run("refusals", func(t *testing.T) {
		first := filepath.Join(out, "first.txt")
		if _, stderr, code := worklog(t, nil, "export", "--data", dir, "--limit", "5", "--out", filepath.Join(out, "p.json"), "--cursor-out", first); code != 0 {
			t.Fatal(stderr)
		}
		b, _ := os.ReadFile(first)
		c := strings.TrimSpace(string(b))
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--limit", "5", "--cursor", c, "--order-by-field", "duration"}, "other filters or another ordering"},
			{[]string{"--limit", "5", "--cursor", "x" + c[1:]}, "cursor"},
			{[]string{"--limit", "5", "--cursor", c, "--offset", "5"}, "not both"},
			{[]string{"--cursor", c}, "limit"},
			{[]string{"--cursor-out", first}, "--cursor-out needs --limit"},
		} {
			args := append([]string{"export", "--data", dir, "--out", filepath.Join(out, "r.json")}, tc.args...)
			if _, stderr, code := worklog(t, nil, args...); code == 0 || !strings.Contains(stderr, tc.want) {
				t.Errorf("%v: exit %d, stderr %q; want an error saying %q", tc.args, code, stderr, tc.want)
			}
		}
	})
}
