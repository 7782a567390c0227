package export

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// writeBehindDepth is the most encoded buffers (about flushAt bytes each)
// queued for the writer goroutine. A full queue makes the encoder wait, so
// memory stays at a few buffers however fast the encoder runs ahead of
// the client.
const writeBehindDepth = 8

// writeBehind writes an export's encoded bytes to the underlying writer
// on a goroutine of its own, in order, so that writing (a socket's send,
// gzip, a file's write) runs on one core while the next rows are encoded
// on the other: a 300k-row export at level none spends a tenth of its CPU
// time in the socket's write. The encoder hands its filled buffer over and
// continues in a recycled one (handoff): nothing is copied. Functions
// queued with after run on the writer goroutine once the bytes queued
// before them are written (the HTTP handler's flush after each batch).
//
// The first error (a failed write, or one returned by a queued function)
// is sticky: later handoffs return it, what is still queued is dropped,
// and close returns it. handoff and after are called from one goroutine;
// close or abort ends the writer goroutine and waits for it, so that the
// caller owns the underlying writer again when they return.
type writeBehind struct {
	w     io.Writer
	queue chan writeOp
	free  chan []byte
	done  chan struct{}
	stop  atomic.Bool // abort: drop what is queued
	once  sync.Once   // closes queue

	mu  sync.Mutex
	err error
	// panicked is what a queued function or the writer panicked with; close
	// and abort panic with it again on the caller's goroutine (a handler's
	// panic stays the handler's, for net/http to recover).
	panicked any
}

// writeOp is one queued step: bytes to write, or a function to run.
type writeOp struct {
	buf []byte
	fn  func() error
}

// newWriteBehind starts the writer goroutine over w.
func newWriteBehind(w io.Writer) *writeBehind {
	wb := &writeBehind{w: w, queue: make(chan writeOp, writeBehindDepth),
		free: make(chan []byte, writeBehindDepth+2), done: make(chan struct{})}
	go wb.run()
	return wb
}

// run is the writer goroutine.
func (wb *writeBehind) run() {
	defer close(wb.done)
	defer func() {
		if p := recover(); p != nil {
			wb.panicked = p
			wb.fail(fmt.Errorf("write behind: panic: %v", p))
			for range wb.queue {
				// Drop what is queued, so the encoder never waits on a full
				// queue, until close or abort.
			}
		}
	}()
	for op := range wb.queue {
		if !wb.stop.Load() && wb.failed() == nil {
			var err error
			if op.fn != nil {
				err = op.fn()
			} else if _, werr := wb.w.Write(op.buf); werr != nil {
				err = fmt.Errorf("write: %w", werr)
			}
			if err != nil {
				wb.fail(err)
			}
		}
		if op.buf != nil {
			select {
			case wb.free <- op.buf[:0]:
			default:
			}
		}
	}
}

func (wb *writeBehind) fail(err error) {
	wb.mu.Lock()
	defer wb.mu.Unlock()
	if wb.err == nil {
		wb.err = err
	}
}

// failed returns the sticky error, if any.
func (wb *writeBehind) failed() error {
	wb.mu.Lock()
	defer wb.mu.Unlock()
	return wb.err
}

// handoff queues buf to be written and returns an empty buffer to
// continue in: a recycled one, or a new one of buf's capacity. It waits
// while the queue is full, and returns the sticky error instead of
// queueing once there is one.
func (wb *writeBehind) handoff(buf []byte) ([]byte, error) {
	if len(buf) == 0 {
		return buf, wb.failed()
	}
	if err := wb.send(buf); err != nil {
		return buf[:0], err
	}
	return wb.spare(cap(buf)), nil
}

// send queues buf, or returns the sticky error.
func (wb *writeBehind) send(buf []byte) error {
	if err := wb.failed(); err != nil {
		return err
	}
	wb.queue <- writeOp{buf: buf}
	return nil
}

// spare returns an empty buffer: a recycled one, else a new one of
// capacity n.
func (wb *writeBehind) spare(n int) []byte {
	select {
	case b := <-wb.free:
		return b
	default:
		return make([]byte, 0, n)
	}
}

// after queues fn to run once everything queued before it is written, and
// returns the sticky error so far.
func (wb *writeBehind) after(fn func() error) error {
	if err := wb.failed(); err != nil {
		return err
	}
	wb.queue <- writeOp{fn: fn}
	return nil
}

// close writes what is queued, ends the writer goroutine and returns the
// sticky error.
func (wb *writeBehind) close() error {
	wb.once.Do(func() { close(wb.queue) })
	<-wb.done
	wb.repanic()
	return wb.failed()
}

// repanic panics with what the writer goroutine panicked with, if it did.
func (wb *writeBehind) repanic() {
	if p := wb.panicked; p != nil {
		wb.panicked = nil
		panic(p)
	}
}

// abort drops what is queued (a write in progress finishes), ends the
// writer goroutine and waits for it. It may follow close.
func (wb *writeBehind) abort() {
	wb.stop.Store(true)
	wb.once.Do(func() { close(wb.queue) })
	<-wb.done
	wb.repanic()
}
