//go:build linux && cgo

package query

import "testing"

// On Linux the hand-back must reach both allocators: DuckDB's jemalloc
// (linked into the duckdb-go bindings for Linux) and glibc's malloc. A
// bindings version without jemalloc, or a C library without malloc_trim,
// would make the hand-back silently do nothing for that half.
func TestHandBackReachesBothAllocators(t *testing.T) {
	je, malloc := handBackParts()
	if !je {
		t.Error("duckdb_je_mallctl is not linked: DuckDB's freed memory would not be handed back")
	}
	if !malloc {
		t.Error("malloc_trim is not linked: the C heap's free pages would not be handed back")
	}
	handBack() // and it runs
}

// A hand-back while another runs is skipped, not queued: the running one
// purges every arena anyway.
func TestHandBackSkipsWhileOneRuns(t *testing.T) {
	handingBack.Lock()
	done := make(chan struct{})
	go func() {
		handBack()
		close(done)
	}()
	<-done // returns although the lock is held
	handingBack.Unlock()
}

// The resident size that decides a chunk's hand-back is read from
// /proc/self/statm: a test process holds some megabytes, far from zero
// and far from a terabyte.
func TestResidentBytes(t *testing.T) {
	rss, ok := residentBytes()
	if !ok {
		t.Fatal("resident size unknown")
	}
	if rss < 1<<20 || rss > 1<<40 {
		t.Errorf("resident size %d bytes", rss)
	}
}
