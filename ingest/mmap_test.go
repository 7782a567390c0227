package ingest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"worklog/data"
)

// TestMappedFile ingests NDJSON files, which Run maps into memory, and the
// same files read (noMap): the same summary or the same error, the same
// progress at the end, and stores of the same content (the read ingest of
// the file into the mapped ingest's store changes nothing). The files
// cross blocks, start after a byte order mark or where the file was
// positioned, end without a line end, and hold lines longer than a block
// (under and over the record limit) and an invalid record.
func TestMappedFile(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("inputs are mapped on Linux only")
	}
	dump := string(demoDump(t, 1500, 7))
	const limit = 1 << 20
	long := func(id, size int) string {
		return `{"date":"2025-10-01 00:00:00","action":"readAction","userWorklogId":` + strconv.Itoa(id) + `,"rawData":"` + strings.Repeat("x", size) + `"}`
	}
	cases := []struct {
		name, prefix, text string
		skip               int64 // bytes before the input, which the file is positioned after
		opts               Options
		wantErr            bool
	}{
		{name: "demo dump", text: dump},
		{name: "after a byte order mark and a skipped prefix", prefix: "JUNK\xef\xbb\xbf", skip: 4, text: dump},
		{name: "no line end at the end", text: strings.TrimSuffix(dump, "\n")},
		{name: "a line longer than a block", text: ev1 + "\n" + long(900000001, 3*blockSize/2) + "\n" + ev2 + "\n", opts: Options{MaxRecordBytes: limit}},
		{name: "a last line longer than a block", text: ev1 + "\n" + long(900000001, 3*blockSize/2), opts: Options{MaxRecordBytes: limit}},
		{name: "a line over the limit", text: ev1 + "\n\n" + long(900000001, 2*limit) + "\n" + ev2 + "\n", opts: Options{MaxRecordBytes: limit}, wantErr: true},
		{name: "a last line over the limit", text: ev1 + "\n" + long(900000001, 2*limit), opts: Options{MaxRecordBytes: limit}, wantErr: true},
		{name: "a record limit under a block", text: dump, opts: Options{MaxRecordBytes: 4096}},
		{name: "a line longer than a block over a limit under a block", text: ev1 + "\n" + long(900000001, 3*blockSize/2) + "\n", opts: Options{MaxRecordBytes: 4096}, wantErr: true},
		{name: "a last line longer than a block over a limit under a block", text: ev1 + "\n" + long(900000001, 3*blockSize/2), opts: Options{MaxRecordBytes: 4096}, wantErr: true},
		{name: "a line over a limit under a block", text: ev1 + "\n" + long(900000001, 5000) + "\n" + ev2, opts: Options{MaxRecordBytes: 4096}, wantErr: true},
		{name: "an invalid record", text: dump[:len(dump)/2] + `{"date":"bad"}` + "\n" + dump[len(dump)/2:], wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "dump.ndjson")
			if err := os.WriteFile(path, []byte(tc.prefix+tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			maps := 0
			run := func(st *data.Store, noMap bool) (Summary, int64, error) {
				f, err := os.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if _, err := f.Seek(tc.skip, 0); err != nil {
					t.Fatal(err)
				}
				var progress int64
				opts := tc.opts
				opts.noMap = noMap
				opts.hooks = &testHooks{mapped: func() { maps++ }}
				opts.Progress = func(n int64) { progress = n }
				sum, err := Run(context.Background(), st, []Input{{Name: "dump", R: f}}, opts)
				return sum, progress, err
			}
			mapped, read := openStore(t), openStore(t)
			sumM, progM, errM := run(mapped, false)
			sumR, progR, errR := run(read, true)
			if maps != 1 {
				t.Errorf("the file was mapped %d times, want once (the mapped run)", maps)
			}
			if (errM == nil) != !tc.wantErr || (errR == nil) != !tc.wantErr {
				t.Fatalf("errors: mapped %v, read %v; want an error: %v", errM, errR, tc.wantErr)
			}
			if errM != nil && errM.Error() != errR.Error() {
				t.Errorf("mapped: %v\nread:   %v", errM, errR)
			}
			if sumM.New != sumR.New || sumM.Rejected != sumR.Rejected || sumM.UnknownKeys != sumR.UnknownKeys {
				t.Errorf("mapped %s, read %s", sumM, sumR)
			}
			if want := int64(len(tc.prefix+tc.text)) - tc.skip; !tc.wantErr && (progM != want || progR != want) {
				t.Errorf("progress at the end: mapped %d, read %d, want %d", progM, progR, want)
			}
			if tc.wantErr {
				return
			}
			again, _, err := run(mapped, true)
			if err != nil || again.Changed() != 0 || again.Unchanged != sumM.Ingested() {
				t.Errorf("reading the file into the mapped ingest's store: %s, %v", again, err)
			}
		})
	}
}

// TestMappedFileShrinks truncates a mapped input file after Run mapped it,
// and when a part's goroutine is about to write the first rows, whose
// values point into the mapping: reading the pages past its new end faults,
// which ends the ingest with the InputError of a file that shrank, instead
// of crashing, and commits nothing.
func TestMappedFileShrinks(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("inputs are mapped on Linux only")
	}
	for _, tc := range []struct {
		name  string
		hooks func(truncate func()) *testHooks
	}{
		{"once mapped", func(truncate func()) *testHooks { return &testHooks{mapped: truncate} }},
		{"while a part's goroutine writes", func(truncate func()) *testHooks {
			return &testHooks{write: func() error { truncate(); return nil }}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := demoDumpFile(t, 500, 7)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var truncated atomic.Bool
			hooks := tc.hooks(func() {
				if !truncated.Swap(true) {
					if err := os.Truncate(path, 100); err != nil {
						t.Error(err)
					}
				}
			})
			st := openStore(t)
			_, err = Run(context.Background(), st, []Input{{Name: "dump", R: f}}, Options{hooks: hooks})
			var ie *InputError
			if !errors.As(err, &ie) || !errors.Is(err, errInputChanged) || ie.Source != "dump" {
				t.Fatalf("Run: %v, want an *InputError of errInputChanged", err)
			}
			if !truncated.Load() {
				t.Fatal("the file was not truncated")
			}
			snap, err := st.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if len(snap.Files) != 0 {
				t.Errorf("committed %d files", len(snap.Files))
			}
		})
	}
}
