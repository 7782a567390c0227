package export

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
)

// rowFunc appends row i of the batch that rd reads to dst: the one
// rendering of a row, used by the serial and the parallel path alike.
// scratch is the caller's own scratch buffer (CSV's list text). rd and
// scratch belong to one goroutine; a rowFunc must not touch the encoder's
// state, since several goroutines call it at once on different rows.
type rowFunc func(dst []byte, rd []reader, scratch *[]byte, i int) []byte

// maxEncodeWorkers bounds the goroutines that encode one batch, whatever
// GOMAXPROCS says: each holds blocks in flight.
const maxEncodeWorkers = 8

// blockBytes is the encoded size a parallel block aims at: big enough that
// handing a block between goroutines costs little beside encoding it,
// small enough that the blocks in flight stay a few hundred KB.
const blockBytes = flushAt

// maxBlockRows bounds a block's rows while the size of a row is unknown or
// tiny.
const maxBlockRows = 4096

// firstBlockRows is a block's rows before any row was measured.
const firstBlockRows = 16

// encodeWorkers is how many goroutines encode a batch of a whole export:
// one per core the runtime may use. On one core there is nothing to gain
// and the rows are encoded on the caller's goroutine.
func encodeWorkers() int {
	return min(runtime.GOMAXPROCS(0), maxEncodeWorkers)
}

// writeRows encodes the n rows of rec with row, in order, into the sink.
//
// A sink writing behind (a whole export; see Run) encodes consecutive
// blocks of rows on encodeWorkers goroutines into buffers of their own and
// hands the buffers to the writer goroutine in row order: the bytes are
// those of the serial path, which a single core, a page or a writer of its
// own (no writeBehind) takes. At most 2×workers blocks are in flight; a
// block aims at blockBytes, measured from the rows encoded so far. The
// goroutines end before writeRows returns; a panic on one of them is
// raised again on the caller's, once all of them have ended. Both paths
// leave the sink's buffer empty (flushed).
func (s *sink) writeRows(rec arrow.RecordBatch, rd []reader, scratch *[]byte, row rowFunc) error {
	n := int(rec.NumRows())
	workers := encodeWorkers()
	if s.behind == nil || workers < 2 || n <= s.blockRows() {
		for i := 0; i < n; i++ {
			s.buf = row(s.buf, rd, scratch, i)
			if err := s.maybeFlush(); err != nil {
				return err
			}
		}
		return s.flush()
	}
	// What is buffered (a header, JSON's "[") goes first.
	if err := s.flush(); err != nil {
		return err
	}
	return s.parallelRows(rec, n, workers, row)
}

// blockRows is the rows of the next parallel block: blockBytes over the
// mean encoded row so far.
func (s *sink) blockRows() int {
	if s.encRows == 0 {
		return firstBlockRows
	}
	per := max(s.encBytes/s.encRows, 1)
	return int(min(max(int64(blockBytes)/per, 1), maxBlockRows))
}

// block is one range of rows encoded by a worker; res carries its buffer
// back to the caller.
type block struct {
	lo, hi int
	buf    []byte
	res    chan []byte
}

// parallelRows is writeRows' parallel path.
func (s *sink) parallelRows(rec arrow.RecordBatch, n, workers int, row rowFunc) (err error) {
	depth := 2 * workers
	ring := make([]block, depth)
	for i := range ring {
		ring[i].res = make(chan []byte, 1)
	}
	jobs := make(chan *block, depth)
	var (
		wg       sync.WaitGroup
		panicked atomic.Pointer[any]
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every worker reads the batch through readers of its own: a
			// list reader keeps scratch bytes.
			rd := make([]reader, rec.NumCols())
			for c := range rd {
				rd[c] = newReader(rec.Column(c))
			}
			var scratch []byte
			for b := range jobs {
				b.res <- encodeBlock(b, rd, &scratch, row, &panicked)
			}
		}()
	}
	defer func() {
		// Every worker ends before the batch (which the caller releases
		// after Write) goes; then a worker's panic becomes the caller's.
		close(jobs)
		wg.Wait()
		if p := panicked.Load(); p != nil {
			panic(*p)
		}
	}()
	next := 0          // first row not yet given to a block
	var head, tail int // blocks dispatched, blocks handed off
	for next < n || tail < head {
		for next < n && head-tail < depth {
			b := &ring[head%depth]
			b.lo, b.hi = next, min(next+s.blockRows(), n)
			b.buf = s.behind.spare(cap(s.buf))
			next = b.hi
			head++
			jobs <- b
		}
		b := &ring[tail%depth]
		buf := <-b.res
		tail++
		if panicked.Load() != nil {
			return fmt.Errorf("encode rows: a worker panicked")
		}
		s.encRows += int64(b.hi - b.lo)
		s.encBytes += int64(len(buf))
		if err := s.behind.send(buf); err != nil {
			// The remaining blocks finish (their bytes are dropped) before
			// the deferred wait returns.
			return err
		}
	}
	return nil
}

// encodeBlock encodes b's rows into b's buffer and returns it. A panic is
// recorded (the first one) instead of ending the worker, so that the caller,
// waiting for this block, always gets it back.
func encodeBlock(b *block, rd []reader, scratch *[]byte, row rowFunc, panicked *atomic.Pointer[any]) (buf []byte) {
	buf = b.buf
	defer func() {
		if p := recover(); p != nil {
			panicked.CompareAndSwap(nil, &p)
		}
	}()
	for i := b.lo; i < b.hi; i++ {
		buf = row(buf, rd, scratch, i)
	}
	return buf
}
