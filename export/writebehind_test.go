package export

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// recordWriter keeps what is written; a function queued with after sees
// how much was written before it ran.
type recordWriter struct {
	bytes.Buffer
	failAt int // the failAt-th write fails (1-based); 0 never
	writes int
}

func (w *recordWriter) Write(p []byte) (int, error) {
	if w.writes++; w.writes == w.failAt {
		return 0, errDiskFull
	}
	return w.Buffer.Write(p)
}

// Bytes handed off come out in order, each function
// queued with after runs once the bytes before it are written, and close
// waits for all of it.
func TestWriteBehindOrder(t *testing.T) {
	w := &recordWriter{}
	wb := newWriteBehind(w)
	var want strings.Builder
	var seen, wantSeen []int
	buf := wb.spare(16)
	for i := range 100 {
		switch i % 3 {
		case 0, 1:
			buf = fmt.Appendf(buf, "batch %d;", i)
			want.WriteString(fmt.Sprintf("batch %d;", i))
			var err error
			if buf, err = wb.handoff(buf); err != nil || len(buf) != 0 {
				t.Fatalf("handoff: %q, %v", buf, err)
			}
		default:
			wantSeen = append(wantSeen, want.Len())
			if err := wb.after(func() error { seen = append(seen, w.Len()); return nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := wb.close(); err != nil {
		t.Fatal(err)
	}
	if w.String() != want.String() {
		t.Errorf("written %q\nwant %q", w.String(), want.String())
	}
	if fmt.Sprint(seen) != fmt.Sprint(wantSeen) {
		t.Errorf("after saw %v written, want %v", seen, wantSeen)
	}
	wb.abort() // after close: returns at once
}

// A failed write is sticky: it is wrapped once ("write: ..."), nothing
// after it is written, later handoffs and close return it, and a function
// queued after it does not run. An error of a queued function stops the
// writes the same way.
func TestWriteBehindError(t *testing.T) {
	w := &recordWriter{failAt: 2}
	wb := newWriteBehind(w)
	for i := range 5 {
		if _, err := wb.handoff([]byte{byte('a' + i)}); err != nil && !errors.Is(err, errDiskFull) {
			t.Fatalf("handoff %d: %v", i, err)
		}
	}
	ran := false
	_ = wb.after(func() error { ran = true; return nil })
	err := wb.close()
	if !errors.Is(err, errDiskFull) || err.Error() != "write: "+errDiskFull.Error() {
		t.Errorf("close: %v", err)
	}
	if w.String() != "a" || ran {
		t.Errorf("written %q, after ran %v: want only what came before the failed write", w.String(), ran)
	}
	if _, err := wb.handoff([]byte("x")); !errors.Is(err, errDiskFull) {
		t.Errorf("handoff after the error: %v", err)
	}

	flushErr := errors.New("flush failed")
	w = &recordWriter{}
	wb = newWriteBehind(w)
	_, _ = wb.handoff([]byte("a"))
	_ = wb.after(func() error { return flushErr })
	_, _ = wb.handoff([]byte("b"))
	if err := wb.close(); err != flushErr {
		t.Errorf("close: %v, want the function's error as it is", err)
	}
	if w.String() != "a" {
		t.Errorf("written %q after the function failed", w.String())
	}
}

// blockWriter blocks its first write until release is closed.
type blockWriter struct {
	recordWriter
	entered, release chan struct{}
}

func (w *blockWriter) Write(p []byte) (int, error) {
	if w.writes == 0 {
		close(w.entered)
		<-w.release
	}
	return w.recordWriter.Write(p)
}

// abort drops what is queued: the write in progress finishes, nothing
// after it is written, and abort returns only once the writer goroutine
// has ended, so that the caller owns the writer again.
func TestWriteBehindAbort(t *testing.T) {
	w := &blockWriter{entered: make(chan struct{}), release: make(chan struct{})}
	wb := newWriteBehind(w)
	_, _ = wb.handoff([]byte("first;"))
	<-w.entered
	for _, s := range []string{"second;", "third;"} {
		if _, err := wb.handoff([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	aborted := make(chan struct{})
	go func() {
		wb.abort()
		close(aborted)
	}()
	// The write in progress goes on until released; the abort is marked
	// before it is.
	for !wb.stop.Load() {
		runtime.Gosched()
	}
	close(w.release)
	<-aborted
	if w.String() != "first;" {
		t.Errorf("written %q, want only the write that was in progress", w.String())
	}
}

// errFlushPanic stands for what a handler's flush may panic with.
var errFlushPanic = errors.New("flush panicked")

// A queued function that panics (a handler's flush) does not crash the
// process from the writer goroutine: the encoder's next handoffs fail
// (a full queue is drained, never waited on for good), and the panic is
// raised again where the export runs, when the writer ends, for net/http
// to recover as a handler's panic.
func TestWriteBehindPanic(t *testing.T) {
	wb := newWriteBehind(&recordWriter{})
	_ = wb.after(func() error { panic(errFlushPanic) })
	// The queue holds writeBehindDepth steps: a handoff beyond them waits
	// for the writer, which has failed by then.
	var err error
	for i := 0; err == nil && i <= 2*writeBehindDepth; i++ {
		_, err = wb.handoff([]byte("x"))
	}
	if err == nil {
		t.Fatal("handoffs still succeed after the panic")
	}
	defer func() {
		if p := recover(); p != errFlushPanic {
			t.Errorf("abort panicked with %v, want the function's panic", p)
		}
	}()
	wb.abort()
	t.Error("abort returned without panicking")
}
