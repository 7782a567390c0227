//go:build !linux

package ingest

import "os"

// mapFile maps nothing outside Linux (where the syscall package has no
// madvise to keep the mapped pages out of the resident set): inputs are
// read.
func mapFile(*os.File) *mappedFile { return nil }

func (m *mappedFile) drop(int) {}

func (m *mappedFile) unmap() {}
