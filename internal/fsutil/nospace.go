package fsutil

import (
	"errors"
	"strings"
	"syscall"
)

// ErrNoSpace is the sentinel for "the disk is full": syscall.ENOSPC
// itself, so that errors.Is finds it in an *os.PathError of Go's own
// writes wrapped anywhere up the chain. Test errors with IsNoSpace, which
// also knows the C libraries' form.
var ErrNoSpace error = syscall.ENOSPC

// noSpaceText is strerror(ENOSPC) as C libraries print it (DuckDB among
// them) and, lowercased, as Go's syscall.Errno says it.
const noSpaceText = "no space left on device"

// IsNoSpace reports whether err says the disk is full: an ENOSPC from a Go
// write (wrapped with %w anywhere up the chain), or an error of a C library
// that carries only strerror's text. DuckDB is one: when a COPY, a Parquet
// write or a spill to its temp directory finds the disk full it raises an
// "IO Error: Could not write file ...: No space left on device" with no
// errno a Go caller could test, and without this it would be answered as
// an unknown fault (500) instead of 507.
func IsNoSpace(err error) bool {
	if err == nil {
		return false
	}
	return errors.Is(err, ErrNoSpace) || strings.Contains(strings.ToLower(err.Error()), noSpaceText)
}
