//go:build linux && cgo

package query

/*
#include <stddef.h>

// DuckDB's own jemalloc, which the Linux builds of duckdb-go-bindings link
// in under the duckdb_je_ prefix, and glibc's malloc_trim. Both weak: a
// build of DuckDB without jemalloc, or a C library without malloc_trim,
// leaves the name null and that half of the hand-back is skipped.
extern int duckdb_je_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen) __attribute__((weak));
extern int malloc_trim(size_t pad) __attribute__((weak));

// worklog_hand_back purges every jemalloc arena (4096 is MALLCTL_ARENAS_ALL)
// and returns the C heap's free pages to the OS.
static void worklog_hand_back(void) {
	if (duckdb_je_mallctl) {
		duckdb_je_mallctl("arena.4096.purge", NULL, NULL, NULL, 0);
	}
	if (malloc_trim) {
		malloc_trim(0);
	}
}

static int worklog_hand_back_parts(void) {
	return (duckdb_je_mallctl ? 1 : 0) | (malloc_trim ? 2 : 0);
}
*/
import "C"

import (
	"bytes"
	"os"
	"strconv"
	"sync"
)

// handingBack is held while a hand-back runs: each purges every arena and
// the whole C heap, so an export whose chunk ends while another's hand-back
// runs skips its own instead of queueing behind it.
var handingBack sync.Mutex

// handBackParts reports which allocators handBack reaches: DuckDB's
// jemalloc, glibc's malloc.
func handBackParts() (jemalloc, malloc bool) {
	p := C.worklog_hand_back_parts()
	return p&1 != 0, p&2 != 0
}

// handBack returns the memory DuckDB's allocator and the C heap hold free
// to the OS, at once. Both keep what a query freed for the next one:
// jemalloc for a second (its decay), glibc's malloc in its per-thread
// arenas until they are trimmed, which only happens at the top of a heap.
// A chunked export frees a whole chunk's query memory (jemalloc)
// and its Arrow buffers (DuckDB allocates those with malloc) chunk after
// chunk; left to the allocators, 300k rows of one day at level none
// peaked at 390-460 MB of which 110-130 MB was free jemalloc pages and as
// much again free malloc pages.
func handBack() {
	if !handingBack.TryLock() {
		return
	}
	defer handingBack.Unlock()
	C.worklog_hand_back()
}

// residentBytes is the process's resident set size now: the second field
// of /proc/self/statm, in pages. One small read, cheap beside a chunk.
func residentBytes() (int64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * int64(os.Getpagesize()), true
}
