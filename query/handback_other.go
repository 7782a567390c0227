//go:build !linux || !cgo

package query

// handBack does nothing where DuckDB allocates with the platform's
// allocator alone (see handback_linux.go).
func handBack() {}

// handBackParts reports that handBack reaches no allocator.
func handBackParts() (jemalloc, malloc bool) { return false, false }

// residentBytes reports that the resident size is unknown here.
func residentBytes() (int64, bool) { return 0, false }
