package bufpool

import (
	"bytes"
	"testing"
)

// TestPool checks that freed buffers are reused for their size class and
// handed out zeroed, that Reallocate keeps the contents, that buffers the
// pool did not make are not kept, and that it keeps at most its bound.
func TestPool(t *testing.T) {
	const maxPooled = 1 << 20
	p := New(maxPooled)
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

	for i := range b {
		b[i] = 0xee
	}
	p.Free(b)
	if g := p.Get(700); &g[:1][0] != &b[:1][0] || g[599] != 0xee {
		t.Error("Get does not hand out the freed buffer as it was")
	}
	b = p.Allocate(600)
	copy(b, "abc")
	c := p.Reallocate(5000, b)
	if len(c) != 5000 || string(c[:3]) != "abc" || !bytes.Equal(c[3:], make([]byte, 4997)) {
		t.Errorf("Reallocate lost the contents or left garbage: %q", c[:8])
	}
	if d := p.Allocate(1024); &d[:1][0] != &b[:1][0] {
		t.Error("the buffer Reallocate outgrew is not reused")
	}

	p.Free(make([]byte, 1000)) // not a power of two: not one of the pool's
	if p.Pooled() != 0 {
		t.Errorf("a foreign buffer is kept: %d bytes pooled", p.Pooled())
	}
	for i := 0; i < 3; i++ {
		p.Free(make([]byte, maxPooled/2))
	}
	if p.Pooled() != maxPooled {
		t.Errorf("%d bytes pooled, want the bound %d", p.Pooled(), maxPooled)
	}
	if len(p.Allocate(0)) != 0 {
		t.Error("Allocate(0) is not empty")
	}
}
