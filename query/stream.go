package query

import (
	"database/sql"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// batchSource produces the batches of one result over a DuckDB connection
// that a stream owns: the plain statements of engine.go (statementSource)
// or the ordered chunks of chunked.go (chunkReader), or a streaming DuckDB
// result read on the chunked read's connection (streamSource). A stream calls its
// methods with its lock held, so never concurrently.
type batchSource interface {
	// next returns the next batch, which the caller owns (one reference,
	// released by the caller), or nil at the end of the result. An error
	// ends the stream and is reported by Err as it is, so it names the step
	// that failed ("query rows: ...", "read rows: ...").
	next() (arrow.RecordBatch, error)
	// release frees what the source holds. It is called once, on the
	// stream's last Release, before the connection goes back to the pool.
	release()
}

// stream is the array.RecordReader that Engine.Records returns, whichever
// way the rows are produced: the one implementation of the reader's
// lifecycle (Next, Err, Retain, Release). It owns one DuckDB connection,
// which it returns to the pool on its last Release, and the current batch,
// which it releases on the next call of Next.
type stream struct {
	schema *arrow.Schema

	mu   sync.Mutex
	conn *sql.Conn
	src  batchSource // nil once released
	cur  arrow.RecordBatch
	done bool // the source reported its end or an error
	refs int64
	err  error
}

var _ array.RecordReader = (*stream)(nil)

// newStream returns a stream of src's batches, with one reference, owning
// conn (nil: src runs on a connection its caller owns).
func newStream(conn *sql.Conn, schema *arrow.Schema, src batchSource) *stream {
	return &stream{schema: schema, conn: conn, src: src, refs: 1}
}

// Schema is the schema of every batch.
func (r *stream) Schema() *arrow.Schema { return r.schema }

// Next releases the current batch and moves to the next one. It returns
// false at the end of the rows, after an error (see Err) and after the last
// Release.
func (r *stream) Next() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.done || r.src == nil {
		return false
	}
	rec, err := r.src.next()
	if err != nil || rec == nil {
		r.err, r.done = err, true
		return false
	}
	r.cur = rec
	return true
}

// RecordBatch returns the current batch, valid until the next call of Next
// unless retained; nil before the first Next and after the end.
func (r *stream) RecordBatch() arrow.RecordBatch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// Record returns the current batch.
//
// Deprecated: use RecordBatch; kept because array.RecordReader requires it.
func (r *stream) Record() arrow.RecordBatch { return r.RecordBatch() }

// Err is the error that ended the stream, if any.
func (r *stream) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Retain adds a reference.
func (r *stream) Retain() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refs++
}

// Release drops a reference; the last one releases the current batch and
// the source, which ends a running query, and returns the connection to
// the pool.
func (r *stream) Release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refs <= 0 {
		return
	}
	r.refs--
	if r.refs > 0 {
		return
	}
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.src != nil {
		r.src.release()
		r.src = nil
	}
	if r.conn != nil {
		// A connection whose query was interrupted is still valid;
		// errors from closing are of no use to the reader's user.
		_ = r.conn.Close()
		r.conn = nil
	}
}
