package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	bindings "github.com/duckdb/duckdb-go-bindings"
	"github.com/duckdb/duckdb-go/v2"
	"github.com/duckdb/duckdb-go/v2/arrowmapping"
	"github.com/duckdb/duckdb-go/v2/mapping"
)

// duckdb-go runs every query as a materialized result (duckdb_pending_
// prepared): DuckDB first copies the whole result into a collection of its
// own, strings included, and the Arrow reader then converts chunk after
// chunk of that copy. A chunk of an export is read whole and at once
// anyway, so the copy only costs: of 206k rows at level none read with
// one thread, materializing took 0.43 s of CPU time before the first
// batch and 0.60 s in all; the same rows streamed (duckdb_pending_
// prepared_streaming, each DuckDB chunk converted to Arrow as it is
// produced) took 0.36 s. duckdb-go has no streaming query and does not
// expose its connection's handle, so streamQuery takes the handle from
// its connection (the field conn of duckdb.Conn, a mapping.Connection)
// and runs the statement through duckdb-go's own C bindings. When the
// handle cannot be found (another duckdb-go version), it falls back to
// arrowQuery; TestStreamQueryAvailable fails then, so that an upgrade
// does not lose the streaming read unnoticed.

// rawConnection returns the C connection handle of a duckdb-go connection.
func rawConnection(c *duckdb.Conn) (mapping.Connection, bool) {
	f := reflect.ValueOf(c).Elem().FieldByName("conn")
	if !f.IsValid() || f.Type() != reflect.TypeFor[mapping.Connection]() {
		return mapping.Connection{}, false
	}
	conn := *(*mapping.Connection)(unsafe.Pointer(f.UnsafeAddr()))
	return conn, conn.Ptr != nil
}

// streamQuery runs st on conn as a streaming result: the Arrow batches are
// converted from DuckDB's chunks as the query produces them. The caller
// owns conn exclusively until it releases the reader, and must read the
// reader to its end or release it before running anything else on conn.
func streamQuery(ctx context.Context, conn *sql.Conn, st statement) (array.RecordReader, error) {
	var rr array.RecordReader
	fallback := false
	err := conn.Raw(func(dc any) error {
		c, ok := dc.(*duckdb.Conn)
		if !ok {
			fallback = true
			return nil
		}
		raw, ok := rawConnection(c)
		if !ok {
			fallback = true
			return nil
		}
		s, err := newStreamReader(ctx, raw, st)
		if err != nil {
			return err
		}
		rr = s
		return nil
	})
	if fallback {
		return arrowQuery(ctx, conn, st)
	}
	return rr, err
}

// streamSource is the batchSource of a streaming DuckDB result: each of
// DuckDB's chunks converted to Arrow as the query produces it. It runs on a
// connection it does not own (the chunked read's), so the stream around it
// has no connection to return.
type streamSource struct {
	conn   mapping.Connection
	stmt   mapping.PreparedStatement
	res    mapping.Result
	opts   arrowmapping.ArrowOptions
	schema *arrow.Schema
	ctx    context.Context
	// stopWatch ends the goroutine that interrupts the query when ctx
	// ends; watchDone is closed when it has.
	stopWatch chan struct{}
	watchDone chan struct{}
	stopOnce  sync.Once
}

var _ batchSource = (*streamSource)(nil)

// newStreamReader prepares st on conn, binds its arguments and starts it
// as a streaming result.
func newStreamReader(ctx context.Context, conn mapping.Connection, st statement) (_ *stream, err error) {
	r := &streamSource{conn: conn, ctx: ctx}
	if mapping.Prepare(conn, st.sql, &r.stmt) == mapping.StateError {
		msg := mapping.PrepareError(r.stmt)
		mapping.DestroyPrepare(&r.stmt)
		return nil, errors.New(msg)
	}
	defer func() {
		if err != nil {
			mapping.DestroyPrepare(&r.stmt)
		}
	}()
	for i, a := range st.args {
		idx := mapping.IdxT(i + 1)
		var state mapping.State
		switch v := a.(type) {
		case string:
			state = mapping.BindVarchar(r.stmt, idx, v)
		case int64:
			state = mapping.BindInt64(r.stmt, idx, v)
		case float64:
			state = mapping.BindDouble(r.stmt, idx, v)
		default:
			// sqlBuilder binds only the types above.
			return nil, fmt.Errorf("bind argument %d: unsupported type %T", i+1, a)
		}
		if state == mapping.StateError {
			return nil, fmt.Errorf("bind argument %d: %s", i+1, mapping.PrepareError(r.stmt))
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var pending mapping.PendingResult
	// duckdb-go's mapping has no name for the streaming variant; its types
	// are the bindings' own.
	if bindings.PendingPreparedStreaming(r.stmt, &pending) == mapping.StateError {
		msg := mapping.PendingError(pending)
		mapping.DestroyPending(&pending)
		return nil, errors.New(msg)
	}
	state := mapping.ExecutePending(pending, &r.res)
	mapping.DestroyPending(&pending)
	if state == mapping.StateError {
		msg := mapping.ResultError(&r.res)
		mapping.DestroyResult(&r.res)
		return nil, errors.Join(ctx.Err(), errors.New(msg))
	}
	defer func() {
		if err != nil {
			mapping.DestroyResult(&r.res)
		}
	}()
	r.opts = arrowmapping.ResultGetArrowOptions(&r.res)
	n := mapping.ColumnCount(&r.res)
	names := make([]string, n)
	types := make([]mapping.LogicalType, n)
	for i := range n {
		names[i] = mapping.ColumnName(&r.res, i)
		types[i] = mapping.ColumnLogicalType(&r.res, i)
	}
	schema, ed := arrowmapping.NewArrowSchema(r.opts, types, names)
	for i := range types {
		mapping.DestroyLogicalType(&types[i])
	}
	if err := errorData(ed); err != nil {
		arrowmapping.DestroyArrowOptions(&r.opts)
		return nil, fmt.Errorf("arrow schema: %w", err)
	}
	r.schema = schema
	r.stopWatch, r.watchDone = make(chan struct{}), make(chan struct{})
	go r.watch()
	return newStream(nil, schema, r), nil
}

// watch interrupts the query when ctx ends while the query runs (until
// its last chunk or the reader's release), as duckdb-go does while it
// executes a query: an interrupt after the end would be left to the
// connection's next query.
func (r *streamSource) watch() {
	defer close(r.watchDone)
	select {
	case <-r.ctx.Done():
		mapping.Interrupt(r.conn)
	case <-r.stopWatch:
	}
}

// stopWatching ends the watch goroutine and waits for it.
func (r *streamSource) stopWatching() {
	r.stopOnce.Do(func() { close(r.stopWatch) })
	<-r.watchDone
}

// errorData turns a DuckDB error data into an error and destroys it.
func errorData(ed mapping.ErrorData) error {
	defer mapping.DestroyErrorData(&ed)
	if !mapping.ErrorDataHasError(ed) {
		return nil
	}
	return errors.New(mapping.ErrorDataMessage(ed))
}

// next fetches the next chunk of the result and converts it; nil at the
// end of the result.
func (r *streamSource) next() (arrow.RecordBatch, error) {
	if err := r.ctx.Err(); err != nil {
		return nil, err
	}
	chunk := mapping.FetchChunk(r.res)
	if chunk.Ptr == nil {
		// The end of the result, or an error while producing it: the
		// query no longer runs.
		r.stopWatching()
		if msg := mapping.ResultError(&r.res); msg != "" {
			return nil, errors.Join(r.ctx.Err(), errors.New(msg))
		}
		return nil, nil
	}
	defer mapping.DestroyDataChunk(&chunk)
	rec, ed := arrowmapping.DataChunkToArrowArray(r.opts, r.schema, chunk)
	if err := errorData(ed); err != nil {
		return nil, fmt.Errorf("arrow batch: %w", err)
	}
	return rec, nil
}

// release ends the query and destroys the result and the statement.
func (r *streamSource) release() {
	r.stopWatching()
	arrowmapping.DestroyArrowOptions(&r.opts)
	mapping.DestroyResult(&r.res)
	mapping.DestroyPrepare(&r.stmt)
}
