package export

import (
	"math/bits"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// bufferPool is the memory.Allocator of one Parquet encoder: the buffers
// the writer frees (pages, level and index buffers, the dictionaries'
// growing builders) are kept, by power-of-two size, for its next
// allocations, up to maxPooled bytes. arrow-go's Go allocator instead
// makes every buffer anew: most of the encoder's allocations are such
// buffers, freed again within the batch or the row group, and each new one
// is zeroed, faulted in by the kernel and collected (300k rows: ~0.3 GB).
//
// It is used by the writer's goroutine and by Close, one at a time, but
// arrow-go gives no such promise, so it locks.
type bufferPool struct {
	mu     sync.Mutex
	free   [64][][]byte // by size class: capacity 1<<class
	pooled int          // bytes held in free
}

var _ memory.Allocator = (*bufferPool)(nil)

// maxPooled bounds the bytes a pool keeps: a few row groups' worth of
// pages and indices, and the largest dictionary builders.
const maxPooled = 32 << 20

// sizeClass is the power of two that holds n bytes.
func sizeClass(n int) int { return bits.Len(uint(n - 1)) }

// Allocate returns size zeroed bytes, as arrow-go's allocators do.
func (p *bufferPool) Allocate(size int) []byte {
	if size <= 0 {
		return []byte{}
	}
	c := sizeClass(size)
	p.mu.Lock()
	if n := len(p.free[c]); n > 0 {
		b := p.free[c][n-1]
		p.free[c] = p.free[c][:n-1]
		p.pooled -= cap(b)
		p.mu.Unlock()
		b = b[:size]
		clear(b)
		return b
	}
	p.mu.Unlock()
	return make([]byte, size, 1<<c)
}

// Reallocate grows or shrinks b to size, keeping its contents; new bytes
// are zero.
func (p *bufferPool) Reallocate(size int, b []byte) []byte {
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
// holds less than maxPooled bytes; otherwise the garbage collector takes
// it.
func (p *bufferPool) Free(b []byte) {
	c := cap(b)
	if c == 0 || c&(c-1) != 0 {
		return // not one of ours
	}
	p.mu.Lock()
	if p.pooled+c <= maxPooled {
		p.free[sizeClass(c)] = append(p.free[sizeClass(c)], b[:0])
		p.pooled += c
	}
	p.mu.Unlock()
}
