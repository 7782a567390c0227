package query

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	duckdb "github.com/duckdb/duckdb-go/v2"

	"worklog/data"
)

// EngineOptions are DuckDB settings; zero values keep DuckDB's defaults.
type EngineOptions struct {
	// MemoryLimit caps DuckDB's memory, e.g. "1GB".
	MemoryLimit string
	// Threads is the number of DuckDB worker threads. The chunks of a
	// chunked export are read with fewer when it is more than half the
	// cores (see chunkThreads).
	Threads int
	// TempDirectory is where DuckDB spills when it exceeds MemoryLimit
	// (DuckDB's default for an in-memory database is ".tmp" in the working
	// directory; a server should point it into its data directory).
	TempDirectory string
	// KeepFreedMemory leaves DuckDB's allocator its default caching of
	// freed memory. Without it the engine hands freed memory back to the
	// OS after every task above 16 MB, and after every chunk of a chunked
	// export (DuckDB's jemalloc and the C heap, see handBack), which a
	// long-running server needs (a burst of queries left it at 1.2 GB
	// otherwise; one busy day exported at level none peaked 100-150 MB
	// higher) but which costs a one-shot command such as `worklog export`
	// CPU for nothing: its chunks fault the same pages in again, chunk
	// after chunk (300k rows at level none: 0.9-1.0 s of system time
	// against 0.5-0.6 s, of 3 s).
	KeepFreedMemory bool
	// KeepChunkMemory skips the hand-back after every chunk (see handBack)
	// while KeepFreedMemory is unset: DuckDB still flushes its allocator
	// after large tasks, but a chunked export keeps what it freed for its
	// next chunk. It costs peak memory and saves CPU: one busy day of 300k
	// events at level none, 240-260 MB with the hand-back, 320-340 MB
	// without; 3.2-3.3 s of CPU with it, 2.7-3.0 s without (medians).
	KeepChunkMemory bool
	// HandBackAbove, when positive, makes the hand-back after a chunk
	// conditional: it runs only while the process's resident memory is
	// above this many bytes. Most of the hand-back's cost is the next
	// chunk faulting the returned pages in again (each chunk's query uses
	// the same 50-80 MB of DuckDB's memory), which an export that stays well
	// under the bound need not pay; one that grows (a busy day, exports
	// at once) is handed back as before, as long as a hand-back brings the
	// process under the bound (see chunkReader.chunkRead). The hand-back
	// when a stream ends is unconditional, so that an idle server holds
	// nothing freed.
	HandBackAbove int64
}

// SnapshotSource yields the store's current committed snapshot.
// *data.Store implements it.
type SnapshotSource interface {
	Snapshot() (data.Snapshot, error)
}

// Engine runs plans against the store with one embedded, in-memory DuckDB
// that reads the store's Parquet files. It is safe for concurrent use; each
// running query holds one pooled DuckDB connection.
type Engine struct {
	src       SnapshotSource
	connector *duckdb.Connector
	db        *sql.DB
	// chunkDB reads the chunks of a chunked export (see chunkThreads): a
	// second in-memory DuckDB with fewer threads, or db itself.
	chunkConnector *duckdb.Connector
	chunkDB        *sql.DB
	// wholeExport disables the chunked read of a whole export ordered by
	// date, so that benchmarks can compare both ways; always false outside
	// tests.
	wholeExport bool
	// chunkRows overrides the chunk size of a chunked export (0: chunkRows),
	// so that tests can cut small stores into many chunks.
	chunkRows int64
	// chunkBytes and chunkMinRows override the byte target and the least
	// rows of a chunk (0: chunkBytes, minChunkRows).
	chunkBytes, chunkMinRows int64
	// chunkLoaders overrides the number of chunks read at once (0:
	// chunkLoaders).
	chunkLoaders int
	// onChunk, when set (tests), sees the row count of every chunk read.
	onChunk func(rows int64)
	// onChunkRead, when set (tests), is called by the goroutine that
	// reads a chunk, before its query.
	onChunkRead func()
	// onCountUnits, when set (tests), is called whenever the units of a
	// chunked export are counted.
	onCountUnits func()
	// handBack, when set, returns freed memory to the OS after every
	// chunk (EngineOptions.KeepFreedMemory and KeepChunkMemory unset).
	handBack func()
	// handBackAbove is EngineOptions.HandBackAbove.
	handBackAbove int64
	// resident measures the process's resident memory for the hand-back
	// (residentBytes; tests script it).
	resident func() (int64, bool)
	// aggregates are the aggregate statements running, shared by the
	// requests that ask for one while it runs.
	aggregates flights
	// onAggregateRun, when set (tests), is called whenever an aggregate
	// statement starts, by the goroutine that runs it.
	onAggregateRun func()
}

// NewEngine opens an in-memory DuckDB configured by opts.
func NewEngine(src SnapshotSource, opts EngineOptions) (*Engine, error) {
	// Settings go through the DSN, which DuckDB validates at open time;
	// nothing from the options is spliced into SQL.
	cfg := url.Values{}
	// Every statement the engine runs either orders its result or
	// aggregates it (the chunks of a date-ordered export are ordered here),
	// so DuckDB need not keep scan order: it may emit rows as its threads
	// produce them, with less buffering.
	cfg.Set("preserve_insertion_order", "false")
	// Hand freed memory back to the OS early: by default DuckDB's
	// allocator keeps up to 128 MB-512 MB per thread cached, so a burst of
	// queries (200 deep pages) left the server at 1.2 GB RSS afterwards.
	if !opts.KeepFreedMemory {
		cfg.Set("allocator_flush_threshold", "16MB")
		cfg.Set("allocator_bulk_deallocation_flush_threshold", "16MB")
	}
	if opts.MemoryLimit != "" {
		cfg.Set("memory_limit", opts.MemoryLimit)
	}
	if opts.Threads > 0 {
		cfg.Set("threads", strconv.Itoa(opts.Threads))
	}
	if opts.TempDirectory != "" {
		cfg.Set("temp_directory", opts.TempDirectory)
	}
	connector, err := duckdb.NewConnector("?"+cfg.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	e := &Engine{src: src, connector: connector, db: sql.OpenDB(connector), handBackAbove: opts.HandBackAbove, resident: residentBytes}
	e.chunkConnector, e.chunkDB = connector, e.db
	mainThreads := opts.Threads
	if mainThreads <= 0 {
		mainThreads = runtime.NumCPU() // DuckDB's default
	}
	if threads := chunkThreads(runtime.NumCPU()); threads < mainThreads {
		// DuckDB's threads are a setting of the whole database, so the
		// chunks get a database of their own: another in-memory DuckDB
		// with the same settings, fewer threads. Chunks read Parquet
		// files by path and need nothing the first one holds. Its spill
		// files go to a directory of their own (beside the first one's),
		// since each database numbers and removes its own.
		//
		// The two share one memory limit (the setting, or DuckDB's
		// default), so that a second database does not double what
		// DuckDB may take: the chunks' database gets a share of it
		// (chunkMemoryShare), the engine's the rest. A limit too small to
		// share, or one that cannot be read back, keeps one database.
		limit, err := memoryLimit(e.db)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("open duckdb: %w", err), e.Close())
		}
		if limit < minSharedMemory {
			return e.ready(opts)
		}
		chunkLimit := limit / chunkMemoryShare
		// Both values are integers formatted here: nothing of the
		// options is spliced into the statement.
		if _, err := e.db.Exec(fmt.Sprintf("SET memory_limit = '%dB'", limit-chunkLimit)); err != nil {
			return nil, errors.Join(fmt.Errorf("open duckdb: share its memory limit: %w", err), e.Close())
		}
		cfg.Set("memory_limit", fmt.Sprintf("%dB", chunkLimit))
		cfg.Set("threads", strconv.Itoa(threads))
		if opts.TempDirectory != "" {
			cfg.Set("temp_directory", filepath.Clean(opts.TempDirectory)+"-chunks")
		}
		c, err := duckdb.NewConnector("?"+cfg.Encode(), nil)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("open duckdb for chunked exports: %w", err), e.Close())
		}
		e.chunkConnector, e.chunkDB = c, sql.OpenDB(c)
	}
	return e.ready(opts)
}

// ready finishes opening e: the settings DuckDB takes only once its
// Parquet reader is loaded, and the hand-back after chunks as opts ask.
func (e *Engine) ready(opts EngineOptions) (*Engine, error) {
	for _, db := range []*sql.DB{e.db, e.chunkDB} {
		// Keep the Parquet files' footers once read: a chunked export runs
		// a query per chunk over the same few files, and the store's part
		// files never change once written (a rewrite makes new files, and
		// DuckDB checks a cached footer against the file's modification
		// time).
		if _, err := db.Exec("SET GLOBAL parquet_metadata_cache = true"); err != nil {
			return nil, errors.Join(fmt.Errorf("open duckdb: %w", err), e.Close())
		}
	}
	if !opts.KeepFreedMemory && !opts.KeepChunkMemory {
		e.handBack = handBack
	}
	return e, nil
}

// chunkMemoryShare is the part of DuckDB's memory limit (1/chunkMemoryShare)
// that the chunks' database gets when there is one. A chunk is a streamed
// scan of at most chunkBytes of rows on one or few threads: a P1 export of
// 300k rows keeps the whole server under 260 MB, so a quarter of the
// default 1GB leaves room for several exports at once, and the engine's
// own queries (sorts, aggregates, which spill past their limit) keep the
// larger part.
const chunkMemoryShare = 4

// minSharedMemory is the smallest memory limit that is shared between two
// databases; below it the chunks are read on the engine's one database.
const minSharedMemory = 256 << 20

// memoryLimit returns db's memory limit in bytes, as DuckDB resolved its
// setting (a size, a percentage of the RAM, or its default). DuckDB prints
// it back rounded to one decimal of a binary unit ("953.6 MiB"), a
// rounding far below anything the limit is used for.
func memoryLimit(db *sql.DB) (int64, error) {
	var s string
	if err := db.QueryRow("SELECT current_setting('memory_limit')").Scan(&s); err != nil {
		return 0, fmt.Errorf("read the memory limit: %w", err)
	}
	return parseMemorySize(s)
}

// parseMemorySize parses a size as DuckDB prints one: a number, a space and
// a unit.
func parseMemorySize(s string) (int64, error) {
	num, unit, _ := strings.Cut(strings.TrimSpace(s), " ")
	f, err := strconv.ParseFloat(num, 64)
	scale, known := memoryUnit(unit)
	if err != nil || !known || f < 0 {
		return 0, fmt.Errorf("read the memory limit: DuckDB gave %q, not a number and a unit", s)
	}
	return int64(f * scale), nil
}

// memoryUnit is the size of a unit DuckDB prints sizes in (binary ones;
// bytes below a KiB).
func memoryUnit(unit string) (float64, bool) {
	switch unit {
	case "byte", "bytes", "B":
		return 1, true
	case "KiB":
		return 1 << 10, true
	case "MiB":
		return 1 << 20, true
	case "GiB":
		return 1 << 30, true
	case "TiB":
		return 1 << 40, true
	case "PiB":
		return 1 << 50, true
	}
	return 0, false
}

// chunkThreads is the number of DuckDB threads that read the chunks of a
// chunked export on a machine of cores cores: half of them, so that the
// encoders, which turn the chunks into bytes while the next chunk is read,
// have the other half. More threads cost more than they gain: on 2
// cores, 300k rows read by DuckDB on one thread and encoded as CSV on two
// goroutines took 10 % less CPU time than with DuckDB on two threads
// (contending with the encoders for the same cores).
func chunkThreads(cores int) int { return max(1, cores/2) }

// Close closes the databases. Readers still open must be released first.
func (e *Engine) Close() error {
	err := errors.Join(e.db.Close(), e.connector.Close())
	if e.chunkDB != e.db {
		err = errors.Join(err, e.chunkDB.Close(), e.chunkConnector.Close())
	}
	return err
}

// Snapshot returns the store's current snapshot. Callers take one snapshot
// per request and pass it to both Count and Records, so that the count and
// the rows agree even while an ingest commits.
func (e *Engine) Snapshot() (data.Snapshot, error) {
	snap, err := e.src.Snapshot()
	if err != nil {
		return data.Snapshot{}, fmt.Errorf("read snapshot: %w", err)
	}
	return snap, nil
}

// Acquire is Snapshot pinned: no writer removes the snapshot's files until
// its Release, however long the reader takes (see data.Store.Acquire). A
// long reader — an export streamed or written to a file — uses it and
// defers snap.Release. A source that cannot pin yields a plain snapshot.
func (e *Engine) Acquire() (data.Snapshot, error) {
	src, ok := e.src.(interface{ Acquire() (data.Snapshot, error) })
	if !ok {
		return e.Snapshot()
	}
	snap, err := src.Acquire()
	if err != nil {
		return data.Snapshot{}, fmt.Errorf("read snapshot: %w", err)
	}
	return snap, nil
}

// Count returns the number of rows of snap matching the plan's filters,
// before limit and offset (the X-Total-Count header).
//
// For a plan Records reads in chunks, the count is the sum of the chunks'
// units (rows per row group or per day), which Count leaves on p for
// Records to reuse: an export over HTTP counts for its X-Total-Count header
// first, and would otherwise scan the same columns twice before its first
// row.
func (e *Engine) Count(ctx context.Context, snap data.Snapshot, p *Plan) (int64, error) {
	files := p.files(snap)
	if e.chunked(p, files) {
		units, err := e.countUnits(ctx, p, files)
		if err != nil {
			return 0, fmt.Errorf("count rows: %w", explain(files, err))
		}
		p.counted = &countedUnits{files: files, units: units}
		var n int64
		for _, u := range units {
			n += u.Rows
		}
		return n, nil
	}
	q, args := p.countSQL(files)
	var n int64
	if err := e.db.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count rows: %w", explain(files, err))
	}
	return n, nil
}

// chunked reports whether Records reads p over files in chunks: a whole
// export (no limit, no offset) ordered by date.
func (e *Engine) chunked(p *Plan, files []data.PartFile) bool {
	return !e.wholeExport && p.Limit == 0 && p.Offset == 0 && p.OrderBy == data.DateField && len(files) > 0
}

// Records runs the plan over snap and returns its rows as Arrow record
// batches: the 35 catalogue columns in catalogue order (timestamp[us],
// utf8, list<utf8>, int64, float64), ordered, with limit and offset
// applied. The reader holds a DuckDB connection until its Release;
// cancelling ctx interrupts the query and ends the stream with ctx's error
// (see Err).
//
// A whole export ordered by date (no limit, no offset: the default export)
// runs in chunks of disjoint date ranges (whole row groups of the files, or
// whole days when it orders by the day; a busy one cut by its sort keys),
// bounded by rows and bytes, each read unsorted and ordered on its narrow keys here
// (see chunked.go): memory holds one chunk whatever the export's size or
// the size of a day, and DuckDB never sorts wide rows. Every other plan is one
// statement, SelectSQL.
func (e *Engine) Records(ctx context.Context, snap data.Snapshot, p *Plan) (array.RecordReader, error) {
	files := p.files(snap)
	if e.chunked(p, files) {
		rr, err := e.chunkedRecords(ctx, files, p)
		if err != nil || rr != nil {
			return rr, explain(files, err)
		}
	}
	q, args := p.selectSQL(files)
	conn, err := e.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("get duckdb connection: %w", err)
	}
	src := &statementSource{ctx: ctx, conn: conn, pending: []statement{{q, args}}}
	if err := src.advance(); err != nil {
		return nil, errors.Join(explain(files, err), conn.Close())
	}
	return newStream(conn, src.cur.Schema(), src), nil
}

// explain turns a failed query over files into the *data.DamagedPartError
// of each file that cannot be read, when there is one: the caller then
// learns which file is damaged, in words, instead of DuckDB's message
// with its SQL. Other errors pass unchanged.
func explain(files []data.PartFile, err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if damaged := data.CheckParts(files); damaged != nil {
		return damaged
	}
	return err
}

// SelectSQL returns one DuckDB statement, with its bound arguments, whose
// result is the rows Records returns for p over snap: the 35 columns,
// filtered, ordered, limited. Records may run other statements that give
// the same rows faster; this one is the reference, e.g. for running the
// same query bare in DuckDB.
func (p *Plan) SelectSQL(snap data.Snapshot) (string, []any) {
	return p.selectSQL(p.files(snap))
}

// statement is one SQL statement with its bound arguments.
type statement struct {
	sql  string
	args []any
}

// statementSource is the batchSource of one or more statements run one
// after the other on one DuckDB connection (the stream owns it).
type statementSource struct {
	ctx     context.Context
	conn    *sql.Conn
	pending []statement
	cur     array.RecordReader
}

// advance releases the current DuckDB reader and starts the next statement.
func (r *statementSource) advance() error {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	st := r.pending[0]
	r.pending = r.pending[1:]
	cur, err := arrowQuery(r.ctx, r.conn, st)
	if err != nil {
		return fmt.Errorf("query rows: %w", err)
	}
	r.cur = cur
	return nil
}

// next returns DuckDB's next batch, starting the next statement when the
// current one is exhausted.
func (r *statementSource) next() (arrow.RecordBatch, error) {
	for {
		if r.cur.Next() {
			rec := r.cur.RecordBatch()
			rec.Retain() // the stream's reference
			return rec, nil
		}
		if err := r.cur.Err(); err != nil {
			return nil, fmt.Errorf("read rows: %w", err)
		}
		if len(r.pending) == 0 {
			return nil, nil
		}
		if err := r.advance(); err != nil {
			return nil, err
		}
	}
}

// release ends the running statement.
func (r *statementSource) release() {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	r.pending = nil
}

// arrowQuery runs st on conn through duckdb-go's Arrow interface.
func arrowQuery(ctx context.Context, conn *sql.Conn, st statement) (array.RecordReader, error) {
	var rr array.RecordReader
	err := conn.Raw(func(dc any) error {
		dconn, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		ar, err := duckdb.NewArrowFromConn(dconn)
		if err != nil {
			return err
		}
		// The Arrow reader keeps using the driver connection after Raw
		// returns. That is safe because the caller owns the *sql.Conn
		// exclusively until it releases the reader, so database/sql never
		// hands it to anyone else.
		rr, err = ar.QueryContext(ctx, st.sql, st.args...)
		return err
	})
	return rr, err
}

// DateRange returns the first and the last `date` of snap, for the summary
// serve prints at start; ok is false for an empty store. DuckDB answers it
// from the Parquet statistics of the files.
func (e *Engine) DateRange(ctx context.Context, snap data.Snapshot) (first, last time.Time, ok bool, err error) {
	if len(snap.Files) == 0 {
		return time.Time{}, time.Time{}, false, nil
	}
	col := data.QuoteIdent(data.DateField)
	q := "SELECT min(" + col + "), max(" + col + ") FROM " + data.ScanSQL(snap.Files)
	var lo, hi sql.NullTime
	if err := e.db.QueryRowContext(ctx, q).Scan(&lo, &hi); err != nil {
		return time.Time{}, time.Time{}, false, fmt.Errorf("date range: %w", explain(snap.Files, err))
	}
	return lo.Time, hi.Time, lo.Valid && hi.Valid, nil
}
