package ingest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"worklog/ingest/demo"
)

// TestPartWritersEnd ingests a dump cut into many parts, each written by a
// goroutine of its own, and ends the ingest with a write error of a part's
// goroutine or a cancellation at a given write: Run returns that error,
// commits nothing, and no part's goroutine outlives it (nor did one hang
// on the rows of the others). A whole ingest leaves none running either.
func TestPartWritersEnd(t *testing.T) {
	path := demoDumpFile(t, 3000, 3)
	errDisk := errors.New("disk full")
	lim := mergeLimits{partRows: 200, idBucketRows: defaultIDBucketRows}
	for _, tc := range []struct {
		name    string
		failAt  int64 // the write that fails (0: none)
		cancel  bool  // the write at failAt cancels the ingest instead
		noMap   bool
		wantErr error
	}{
		{name: "whole ingest"},
		{name: "whole ingest, read", noMap: true},
		{name: "first write fails", failAt: 1, wantErr: errDisk},
		{name: "a later write fails", failAt: 9, wantErr: errDisk},
		{name: "a later write fails, read", failAt: 9, noMap: true, wantErr: errDisk},
		{name: "cancelled at a write", failAt: 5, cancel: true, wantErr: context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var writes atomic.Int64
			hooks := &testHooks{write: func() error {
				if writes.Add(1) != tc.failAt {
					return nil
				}
				if tc.cancel {
					cancel()
					return nil
				}
				return errDisk
			}}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st := openStore(t)
			sum, err := runWith(ctx, st, []Input{{Name: "dump", R: f}}, Options{noMap: tc.noMap, hooks: hooks}, lim)
			if tc.wantErr == nil && (err != nil || sum.New != 3000) {
				t.Fatalf("Run: %s, %v", sum, err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Run: %v, want %v", err, tc.wantErr)
			}
			if n := hooks.writers.Load(); n != 0 {
				t.Errorf("%d parts' goroutines still running after Run", n)
			}
			if tc.wantErr == nil {
				if writes.Load() < 15 {
					t.Errorf("%d runs written: want the dump cut into more parts", writes.Load())
				}
				return
			}
			if snap, _ := st.Snapshot(); snap.Generation != 0 || len(snap.Files) != 0 {
				t.Errorf("committed generation %d, %d files", snap.Generation, len(snap.Files))
			}
		})
	}
}

// TestGoroutinePanics panics in one of Run's goroutines (a part's writer,
// a parse worker): Run panics again with the same value, on the goroutine
// that called it, once the other goroutines have stopped, instead of the
// process crashing; nothing is committed and no part's goroutine outlives
// it.
func TestGoroutinePanics(t *testing.T) {
	dump := demoDump(t, 2000, 5)
	errBoom := errors.New("boom")
	for _, tc := range []struct {
		name  string
		at    int64 // the call of the hook that panics
		hooks func(call func()) *testHooks
	}{
		{"a part's goroutine", 4, func(call func()) *testHooks {
			return &testHooks{write: func() error { call(); return nil }}
		}},
		{"a parse worker", 2, func(call func()) *testHooks { return &testHooks{parse: call} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int64
			hooks := tc.hooks(func() {
				if calls.Add(1) == tc.at {
					panic(errBoom)
				}
			})
			st := openStore(t)
			func() {
				defer func() {
					if p := recover(); p != errBoom {
						t.Errorf("recovered %v, want the goroutine's panic", p)
					}
				}()
				runWith(context.Background(), st, []Input{{Name: "dump", R: bytes.NewReader(dump)}}, Options{hooks: hooks},
					mergeLimits{partRows: 200, idBucketRows: defaultIDBucketRows})
				t.Error("Run returned")
			}()
			if calls.Load() < tc.at {
				t.Fatalf("the hook was called %d times: the dump should take more than %d", calls.Load(), tc.at-1)
			}
			if n := hooks.writers.Load(); n != 0 {
				t.Errorf("%d parts' goroutines still running after Run", n)
			}
			if snap, _ := st.Snapshot(); len(snap.Files) != 0 {
				t.Errorf("committed %d files", len(snap.Files))
			}
		})
	}
}

// demoDump returns rows demo events of seed as NDJSON.
func demoDump(t *testing.T, rows int, seed int64) []byte {
	t.Helper()
	var dump bytes.Buffer
	if err := demo.Generate(context.Background(), &dump, demo.Options{Rows: rows, Seed: seed}); err != nil {
		t.Fatal(err)
	}
	return dump.Bytes()
}

// demoDumpFile writes demoDump's events to a file of the test's own and
// returns its path.
func demoDumpFile(t *testing.T, rows int, seed int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dump.ndjson")
	if err := os.WriteFile(path, demoDump(t, rows, seed), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
