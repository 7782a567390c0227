package ingest

import (
	"errors"
	"runtime"
	"runtime/debug"
)

// mappedFile is an input file mapped into memory (mapFile): data() is its
// content from the offset it was mapped at.
type mappedFile struct {
	all     []byte // the whole mapping, from the file's start
	start   int    // the input's first byte in all
	dropped int    // bytes of all taken out of the resident set
}

// data is the input's content.
func (m *mappedFile) data() []byte { return m.all[m.start:] }

// errInputChanged ends an input whose mapped file shrank while it was
// read: a read of the pages beyond its new end faults.
var errInputChanged = errors.New("the input file changed (shrank) while it was read")

// onFault makes a memory fault in the calling goroutine a panic (a mapped
// input file that shrinks would otherwise crash the process with SIGBUS)
// when on is set, and returns the function that restores the goroutine's
// setting.
func onFault(on bool) (restore func()) {
	if !on {
		return func() {}
	}
	old := debug.SetPanicOnFault(true)
	return func() { debug.SetPanicOnFault(old) }
}

// recoverFault, deferred, calls fault when the goroutine panics with a
// memory fault (see onFault): the mapped input shrank. Any other panic
// goes on.
func recoverFault(fault func()) {
	p := recover()
	if p == nil {
		return
	}
	if re, ok := p.(runtime.Error); ok {
		if _, isFault := re.(interface{ Addr() uintptr }); isFault {
			fault()
			return
		}
	}
	panic(p)
}
