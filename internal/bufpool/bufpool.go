// Package bufpool is a memory.Allocator for arrow-go that keeps the
// buffers freed to it for its next allocations. Go's allocator makes each
// buffer anew, zeroes it, lets the kernel fault its pages in and leaves it
// to the collector; a pass that allocates and frees buffers of a few sizes
// over and over (the gathered batches of a chunked export, a Parquet
// writer's pages) spends much of its CPU time on that.
//
// A buffer handed out may come back only through Free, which arrow-go calls
// when the last reference to the buffer is released; whoever holds a batch
// built on such buffers must copy what it keeps of it before releasing it,
// as the Arrow contract says.
package bufpool

import (
	"math/bits"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Pool keeps freed buffers by power-of-two capacity, at most a set number of
// bytes; the rest goes to the garbage collector. It is safe for concurrent
// use.
type Pool struct {
	mu     sync.Mutex
	free   [64][][]byte // by size class: capacity 1<<class
	pooled int          // bytes held in free
	max    int
}

var _ memory.Allocator = (*Pool)(nil)

// New returns a pool that keeps at most maxBytes of freed buffers.
func New(maxBytes int) *Pool { return &Pool{max: maxBytes} }

// sizeClass is the power of two that holds n bytes.
func sizeClass(n int) int { return bits.Len(uint(n - 1)) }

// Allocate returns size zeroed bytes, as arrow-go's allocators do.
func (p *Pool) Allocate(size int) []byte {
	b, reused := p.get(size)
	if reused {
		clear(b)
	}
	return b
}

// Get returns size bytes that may hold what an earlier user left in them,
// for a caller that overwrites every byte (it spares the zeroing).
func (p *Pool) Get(size int) []byte {
	b, _ := p.get(size)
	return b
}

// get returns size bytes, a freed buffer's (reused) or new zeroed ones.
func (p *Pool) get(size int) (b []byte, reused bool) {
	if size <= 0 {
		return []byte{}, false
	}
	c := sizeClass(size)
	p.mu.Lock()
	if n := len(p.free[c]); n > 0 {
		b = p.free[c][n-1]
		p.free[c] = p.free[c][:n-1]
		p.pooled -= cap(b)
		p.mu.Unlock()
		return b[:size], true
	}
	p.mu.Unlock()
	return make([]byte, size, 1<<c), false
}

// Reallocate grows or shrinks b to size, keeping its contents; new bytes
// are zero.
func (p *Pool) Reallocate(size int, b []byte) []byte {
	if size <= cap(b) {
		old := len(b)
		b = b[:size]
		if size > old {
			clear(b[old:])
		}
		return b
	}
	n := p.Allocate(size)
	copy(n, b)
	p.Free(b)
	return n
}

// Free keeps b for a later allocation of its size class while the pool
// holds less than its bound; otherwise the garbage collector takes it.
func (p *Pool) Free(b []byte) {
	c := cap(b)
	if c == 0 || c&(c-1) != 0 {
		return // not one of the pool's
	}
	p.mu.Lock()
	if p.pooled+c <= p.max {
		p.free[sizeClass(c)] = append(p.free[sizeClass(c)], b[:0])
		p.pooled += c
	}
	p.mu.Unlock()
}

// Pooled is the number of bytes the pool keeps.
func (p *Pool) Pooled() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pooled
}
