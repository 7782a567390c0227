package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Defaults of the input-size limits (Options fields left zero).
const (
	// DefaultMaxRecordBytes bounds one record. Real events are a few KB
	// (rawData 0.4-0.8 KB); 4 MiB leaves room for odd dumps. It is also
	// what the merge's DuckDB budget (256 MB) carries: 150 records of 4 MiB
	// ingest at 370 MB peak RSS, while 8 MiB records fail in DuckDB.
	DefaultMaxRecordBytes = 4 << 20
	// DefaultMaxDecompressedBytes bounds what a compressed input expands to:
	// about 2.5 million events, far beyond the 1 GiB an HTTP body may have
	// as sent for real dumps (zstd shrinks them about tenfold), far below
	// what a bomb expands to.
	DefaultMaxDecompressedBytes = 4 << 30
)

// zstdMaxWindow bounds the window a zstd frame may ask the decoder to
// allocate (the library's default is 512 MiB, which a 13-byte frame can
// claim). 128 MiB covers `zstd --ultra -22` and `--long=27`.
const zstdMaxWindow = 128 << 20

// Sentinels of LimitError.Err.
var (
	// ErrRecordTooLarge: one record (NDJSON line, JSON array element, CSV
	// row) is longer than Options.MaxRecordBytes.
	ErrRecordTooLarge = errors.New("record too large")
	// ErrDecompressedTooLarge: a compressed input expands to more than
	// Options.MaxDecompressedBytes.
	ErrDecompressedTooLarge = errors.New("decompressed input too large")
)

// LimitError is an input refused because it exceeds a size limit. Reading
// stops there, at a bounded cost in memory, and nothing is committed. The
// HTTP ingest answers it with 413.
type LimitError struct {
	// Source is the input's name (Input.Name).
	Source string
	// Line is where the oversized record starts; 0 for
	// ErrDecompressedTooLarge.
	Line int64
	// Limit is the limit in bytes.
	Limit int64
	// Err is ErrRecordTooLarge or ErrDecompressedTooLarge.
	Err error
}

// Error names the line (for a record) and the limit.
func (e *LimitError) Error() string {
	if errors.Is(e.Err, ErrRecordTooLarge) {
		return fmt.Sprintf("line %d: the record is larger than %d bytes (the record size limit)", e.Line, e.Limit)
	}
	return fmt.Sprintf("the input expands to more than %d bytes when decompressed (the decompressed size limit)", e.Limit)
}

// Unwrap returns the sentinel.
func (e *LimitError) Unwrap() error { return e.Err }

// Setting returns the one of the two setting names (record, decompressed)
// that the error is about, for messages that tell how to raise it.
func (e *LimitError) Setting(record, decompressed string) string {
	if errors.Is(e.Err, ErrRecordTooLarge) {
		return record
	}
	return decompressed
}

// limits are the resolved size limits of a Run.
type limits struct {
	record, decompressed int64
}

func (o Options) limits() limits {
	l := limits{record: o.MaxRecordBytes, decompressed: o.MaxDecompressedBytes}
	if l.record <= 0 {
		l.record = DefaultMaxRecordBytes
	}
	if l.decompressed <= 0 {
		l.decompressed = DefaultMaxDecompressedBytes
	}
	return l
}

// capReader ends a decompressed stream with a LimitError once more than
// limit bytes came out of it: the bytes are counted as they are read, so a
// bomb costs no more than limit bytes of decompression work.
type capReader struct {
	r        io.Reader
	n, limit int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n > c.limit {
		return 0, &LimitError{Limit: c.limit, Err: ErrDecompressedTooLarge}
	}
	// Read at most one byte past the limit: that byte proves the excess.
	if room := c.limit + 1 - c.n; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.limit {
		return n, &LimitError{Limit: c.limit, Err: ErrDecompressedTooLarge}
	}
	return n, err
}

// stopReader hands out bytes up to position stop and then fails with
// errStop; the CSV source moves stop before each record, so that
// encoding/csv (which has no size limit of its own) cannot buffer a record
// longer than the limit.
type stopReader struct {
	r         io.Reader
	pos, stop int64
}

// errStop is stopReader's error past its stop position.
var errStop = errors.New("record size limit reached")

func (s *stopReader) Read(p []byte) (int, error) {
	if s.pos >= s.stop {
		return 0, errStop
	}
	if room := s.stop - s.pos; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := s.r.Read(p)
	s.pos += int64(n)
	return n, err
}

// byteBudget bounds the bytes of records in flight between the reader and
// the stager (read, being validated, waiting to be staged), so that many
// records close to the size limit cannot pile up in the pipeline's queues.
type byteBudget struct {
	mu         sync.Mutex
	used, size int64
	freed      chan struct{} // closed, and replaced, when bytes are released
}

func newByteBudget(size int64) *byteBudget {
	return &byteBudget{size: size, freed: make(chan struct{})}
}

// acquire waits until n bytes fit (a request larger than the whole budget
// waits for an empty pipeline) or ctx ends.
func (b *byteBudget) acquire(ctx context.Context, n int64) error {
	n = min(n, b.size)
	for {
		b.mu.Lock()
		if b.used+n <= b.size {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		ch := b.freed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release returns n bytes taken by acquire.
func (b *byteBudget) release(n int64) {
	n = min(n, b.size)
	b.mu.Lock()
	b.used -= n
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}
