//go:build !linux || !cgo

package query

// handBack does nothing where DuckDB allocates with the platform's
// allocator alone (see handback_linux.go).
func handBack() {}

// handBackParts reports that handBack reaches no allocator.
func handBackParts() (jemalloc, malloc bool) { return false, false }
