package export

import (
	"bytes"
	"testing"
)

// TestBufferPool checks the Parquet encoder's allocator: freed buffers are
// reused for their size class and handed out zeroed, Reallocate keeps the
// contents, buffers it did not make are not kept, and it keeps at most
// maxPooled bytes.
func TestBufferPool(t *testing.T) {
	p := &bufferPool{}
	a := p.Allocate(1000)
	if len(a) != 1000 || cap(a) != 1024 {
		t.Fatalf("Allocate(1000): len %d cap %d, want 1000, 1024", len(a), cap(a))
	}
	for i := range a {
		a[i] = 0xff
	}
	p.Free(a)
	b := p.Allocate(600)
	if &b[:1][0] != &a[:1][0] {
		t.Error("a freed buffer of the size class is not reused")
	}
	if !bytes.Equal(b, make([]byte, 600)) {
		t.Error("a reused buffer is not zeroed")
	}

	copy(b, "abc")
	c := p.Reallocate(5000, b)
	if len(c) != 5000 || string(c[:3]) != "abc" || !bytes.Equal(c[3:], make([]byte, 4997)) {
		t.Errorf("Reallocate lost the contents or left garbage: %q", c[:8])
	}
	if d := p.Allocate(1024); &d[:1][0] != &b[:1][0] {
		t.Error("the buffer Reallocate outgrew is not reused")
	}

	p.Free(make([]byte, 1000)) // not a power of two: not one of the pool's
	if p.pooled != 0 {
		t.Errorf("a foreign buffer is kept: %d bytes pooled", p.pooled)
	}
	for i := 0; i < 3; i++ {
		p.Free(make([]byte, maxPooled/2))
	}
	if p.pooled != maxPooled {
		t.Errorf("%d bytes pooled, want the bound %d", p.pooled, maxPooled)
	}
	if len(p.Allocate(0)) != 0 {
		t.Error("Allocate(0) is not empty")
	}
}
