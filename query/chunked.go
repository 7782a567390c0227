package query

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"worklog/data"
	"worklog/internal/bufpool"
	"worklog/internal/intmath"
)

// A whole export ordered by date (the default export) is the one request
// that returns many wide rows in an order DuckDB would have to sort. Sorting
// rows of 35 columns with a ~0.6 KB rawData each is most of DuckDB's time
// and memory (NOTES.md: the top-N COPY of 300k rows takes 6–14 s and
// ~2 GB), and duckdb-go materializes a whole result before its first batch.
// So the export runs in chunks of disjoint date ranges instead:
//
//  1. one narrow query counts the matching rows per unit (it reads only
//     `date`, the filtered columns and where each row sits): per row group
//     of the files, whose date ranges come from the files' statistics (see
//     rowGroupSpans), when the export orders by the full date-time; per
//     day when it orders by the day (privacy level pseudonymized), or when
//     the files have no date statistics;
//  2. the units are cut into chunks of about chunkRows rows, newest first
//     for a descending export;
//  3. each chunk is one unsorted query, `WHERE <filters> AND date in [lo,
//     hi)`, over the months it overlaps; the store's files are sorted by
//     date in 16k-row row groups, so DuckDB reads only the row groups of
//     those dates, and a chunk of whole row groups reads each of them once;
//  4. the chunk's batches are ordered here, on the narrow keys (date or its
//     day, then userWorklogId), and re-emitted in that order.
//
// Memory holds one chunk, whatever the export's size; no wide row is ever
// sorted. Chunks are disjoint ranges of the sort key in output order (whole
// days when the export orders by the day), so the order stays exact across
// chunk borders.
//
// A busy day (or span) larger than a chunk is cut too: one more narrow query
// reads its sort keys (date or its day, then userWorklogId) in order and
// keeps every minChunkRows-th key, which cuts it into pieces of
// consecutive key ranges; each chunk of the day then takes as many pieces
// as its target allows. Chunks are bounded by bytes as well as rows: after
// each chunk the reader measures the bytes per row it held and sizes the
// next chunk to chunkBytes, so wide rows (a large rawData) make smaller
// chunks, on a busy day too. Nothing is measured before the first chunk,
// so it is a probe of firstChunkRows rows at most. Chunks are planned one
// at a time, as the stream reaches them.
//
// DuckDB reads the next chunks while the current one is being emitted (and
// encoded by the caller): a planner goroutine plans the chunks in output
// order and hands each to one of chunkLoaders loader goroutines, each with
// a DuckDB connection of its own, which read and order it. At most two
// chunks are held: while one is emitted, one is read ahead; while the
// caller waits for the next chunk (it is being read), the one after it is
// read beside it, on another core. So DuckDB's scan, which is most of a
// chunk's cost and runs on one thread per query, is no longer one thread
// that the caller's encoding waits for (300k rows at level none as
// Parquet: the one loader was busy from the first batch to the last),
// and memory stays at two chunks.

// chunkLoaders is the number of chunks read at once (each on a connection
// of its own) while the caller waits for one.
const chunkLoaders = 2

// chunkRows is the most rows a chunk holds.
const chunkRows = 32 << 10

// chunkBytes is the most Arrow bytes a chunk aims to hold, measured on the
// chunks read so far.
const chunkBytes = 24 << 20

// minChunkRows keeps chunks of very wide rows from becoming tiny; it is
// also the size of the pieces a busy day is cut into.
const minChunkRows = 1024

// firstChunkRows bounds the first chunk, read before any bytes per row are
// known: 300k rows of one day at level none (1.3 KB a row in Arrow) came
// as 32k-row chunks of 40 MB, far over chunkBytes, when the first chunk
// had chunkRows.
const firstChunkRows = 4 << 10

// outBatchRows is the largest batch a chunked reader emits.
const outBatchRows = 4 << 10

// dayCount is the number of matching rows on one day; a null Day counts the
// rows whose date is null. A span of row groups (see rowGroupSpans) is a
// dayCount too: its rows' dates run from Day up to, not including, End.
type dayCount struct {
	Day  sql.NullTime
	Rows int64
	// End, when set, ends a span that is not one whole day.
	End time.Time
}

// end is the end (exclusive) of d's dates.
func (d dayCount) end() time.Time {
	if !d.End.IsZero() {
		return d.End
	}
	return d.Day.Time.AddDate(0, 0, 1)
}

// dayRange is one chunk: the days from Lo up to, not including, Hi. Null
// is the chunk of rows with a null date (never in the store: date is
// required; kept so that the chunked path returns what the plain query
// would). From and To, when set, cut a part of one busy day: the rows
// whose sort key (see rowKey) is after From and at most To, in ascending
// key order.
type dayRange struct {
	Lo, Hi   time.Time
	Null     bool
	From, To *rowKey
}

// rowKey is the sort key of a row: its date (unused when the export orders
// by the date's day, as all rows of a day share it) and its id.
type rowKey struct {
	Date time.Time
	ID   int64
}

// takeDays returns how many days, from the start of days (in output order,
// no null day), the next chunk takes: whole days up to target rows, or one
// day alone when it is larger; and how many rows they hold.
func takeDays(days []dayCount, target int64) (int, int64) {
	j, n := 0, int64(0)
	for j < len(days) && (j == 0 || n+days[j].Rows <= target) {
		n += days[j].Rows
		j++
	}
	return j, n
}

// chunkDays cuts days (ascending, the null day last if any) into ranges of
// about target rows each, whole days only, in output order: newest first
// when desc. Rows with a null date come last in either direction, as
// nulls sort last.
func chunkDays(days []dayCount, desc bool, target int64) []dayRange {
	var out []dayRange
	var nulls bool
	var dated []dayCount
	for _, d := range days {
		if !d.Day.Valid {
			nulls = d.Rows > 0
			continue
		}
		if d.Rows > 0 {
			dated = append(dated, d)
		}
	}
	if desc {
		slices.Reverse(dated)
	}
	for i := 0; i < len(dated); {
		n, _ := takeDays(dated[i:], target)
		out = append(out, daysRange(dated[i:i+n], desc))
		i += n
	}
	if nulls {
		out = append(out, dayRange{Null: true})
	}
	return out
}

// daysRange is the range covering days (in output order).
func daysRange(days []dayCount, desc bool) dayRange {
	first, last := days[0], days[len(days)-1]
	if desc {
		first, last = last, first
	}
	return dayRange{Lo: first.Day.Time, Hi: last.end()}
}

// blockRows is the granularity at which rowGroupSpans places the matching
// rows in their row groups: DuckDB's vector size, of which the store's row
// groups are multiples (storeRowGroup rows at ingest, DuckDB's own row
// groups when a file is rewritten). A row group of another size only makes
// the counts per row group approximate: a block is counted in the row group
// of its first row.
const blockRows = 2048

// blockCountSQL counts the matching rows per block of blockRows rows of
// each file, and those of them whose date is not null.
func (p *Plan) blockCountSQL(files []data.PartFile) (string, []any) {
	var s sqlBuilder
	file, row := data.QuoteIdent(data.ScanRowsFileColumn), data.QuoteIdent(data.ScanRowsRowColumn)
	s.sql("SELECT " + file + ", " + row + " // " + strconv.Itoa(blockRows) + ", count(*), count(" + data.QuoteIdent(data.DateField) + ") FROM " +
		data.ScanWithRowsSQL(files) + " AS t")
	p.where(&s)
	s.sql(" GROUP BY ALL")
	return s.b.String(), s.args
}

// rowGroupSpans returns the matching rows of files as spans of whole row
// groups, in date order, and the number of matching rows whose date is
// null. A chunk made of whole spans reads each row group once: a chunk of
// whole days ends inside a row group (the store's are storeRowGroup rows,
// a few days), which the chunk before or after it must read and decompress
// again (300k rows at level none: 17 chunks, nearly each row group read
// twice). It serves an export ordered by the full date-time, which may cut
// a day; one ordered by the day (DayPrecisionDate) keeps whole days.
//
// A span is a row group's dates, from its minimum up to just after its
// maximum (the file's statistics, which DuckDB's scan prunes by too), with
// the row group's matching rows; row groups whose dates overlap (files of
// one month written apart) are merged into one span; row groups without a
// matching row are left out. ok is false when a row group with matching
// rows has no date statistics.
func rowGroupSpans(ctx context.Context, conn queryer, p *Plan, files []data.PartFile) (spans []dayCount, nulls int64, ok bool, err error) {
	type rowGroup struct {
		first, n int64
		min, max sql.NullTime
		rows     int64
	}
	groups := map[string][]rowGroup{}
	rows, err := conn.QueryContext(ctx, "SELECT DISTINCT file_name, row_group_id, row_group_num_rows, TRY_CAST(stats_min_value AS TIMESTAMP), TRY_CAST(stats_max_value AS TIMESTAMP) FROM parquet_metadata("+
		data.FileListSQL(files)+") WHERE path_in_schema = "+data.QuoteString(data.DateField)+" ORDER BY file_name, row_group_id")
	if err != nil {
		return nil, 0, false, fmt.Errorf("read row groups: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var file string
		var id int64
		var g rowGroup
		if err := rows.Scan(&file, &id, &g.n, &g.min, &g.max); err != nil {
			return nil, 0, false, fmt.Errorf("read row groups: %w", err)
		}
		list := groups[file]
		if k := len(list); k > 0 {
			g.first = list[k-1].first + list[k-1].n
		}
		groups[file] = append(list, g)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, false, fmt.Errorf("read row groups: %w", err)
	}
	q, args := p.blockCountSQL(files)
	blocks, err := conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, 0, false, fmt.Errorf("count rows per row group: %w", err)
	}
	defer blocks.Close()
	for blocks.Next() {
		var file string
		var block, n, dated int64
		if err := blocks.Scan(&file, &block, &n, &dated); err != nil {
			return nil, 0, false, fmt.Errorf("count rows per row group: %w", err)
		}
		list, row := groups[file], block*blockRows
		i, _ := slices.BinarySearchFunc(list, row, func(g rowGroup, row int64) int { return cmp.Compare(g.first+g.n-1, row) })
		if i == len(list) {
			return nil, 0, false, fmt.Errorf("count rows per row group: row %d of %s is in none of its row groups", row, file)
		}
		list[i].rows += dated
		nulls += n - dated
	}
	if err := blocks.Err(); err != nil {
		return nil, 0, false, fmt.Errorf("count rows per row group: %w", err)
	}
	for _, list := range groups {
		for _, g := range list {
			if g.rows == 0 {
				continue
			}
			if !g.min.Valid || !g.max.Valid {
				return nil, 0, false, nil
			}
			spans = append(spans, dayCount{Day: g.min, Rows: g.rows, End: g.max.Time.Add(time.Microsecond)})
		}
	}
	slices.SortFunc(spans, func(a, b dayCount) int { return a.Day.Time.Compare(b.Day.Time) })
	merged := spans[:0]
	for _, sp := range spans {
		if k := len(merged) - 1; k >= 0 && sp.Day.Time.Before(merged[k].End) {
			merged[k].Rows += sp.Rows
			if sp.End.After(merged[k].End) {
				merged[k].End = sp.End
			}
			continue
		}
		merged = append(merged, sp)
	}
	return merged, nulls, true, nil
}

// dayCountSQL counts the matching rows per day of `date`.
func (p *Plan) dayCountSQL(files []data.PartFile) (string, []any) {
	var s sqlBuilder
	date := data.QuoteIdent(data.DateField)
	s.sql("SELECT CAST(" + date + " AS DATE) AS d, count(*) FROM " + data.ScanSQL(files) + " AS t")
	p.where(&s)
	s.sql(" GROUP BY d ORDER BY d NULLS LAST")
	return s.b.String(), s.args
}

// chunkSQL reads one chunk's rows, unordered, from the files of the months
// the chunk overlaps.
func (p *Plan) chunkSQL(files []data.PartFile, r dayRange) (string, []any) {
	if !r.Null {
		lo, hi := r.Lo.Format(monthLayout), r.Hi.Add(-time.Microsecond).Format(monthLayout)
		var in []data.PartFile
		for _, f := range files {
			if f.Month >= lo && f.Month <= hi {
				in = append(in, f)
			}
		}
		files = in
	}
	var s sqlBuilder
	date := data.QuoteIdent(data.DateField)
	s.sql("SELECT " + p.selectList() + " FROM " + data.ScanSQL(files) + " AS t")
	p.where(&s)
	if len(p.Filters) == 0 {
		s.sql(" WHERE ")
	} else {
		s.sql(" AND ")
	}
	if r.Null {
		s.sql(date + " IS NULL")
	} else {
		s.sql("(" + date + " >= ")
		s.arg(r.Lo, false)
		s.sql(" AND " + date + " < ")
		s.arg(r.Hi, false)
		s.sql(")")
	}
	p.keyBounds(&s, r)
	return s.b.String(), s.args
}

// keyBounds restricts a part of a busy day to its key range. Ordered by
// the day, the key is the id alone; ordered by date-time, it is (date, id),
// with plain date bounds beside it so that DuckDB still skips row groups.
func (p *Plan) keyBounds(s *sqlBuilder, r dayRange) {
	date, id := data.QuoteIdent(data.DateField), data.QuoteIdent(data.KeyField)
	if k := r.From; k != nil {
		if p.DayPrecisionDate {
			s.sql(" AND " + id + " > ")
			s.arg(k.ID, false)
		} else {
			s.sql(" AND " + date + " >= ")
			s.arg(k.Date, false)
			s.sql(" AND (" + date + " > ")
			s.arg(k.Date, false)
			s.sql(" OR " + id + " > ")
			s.arg(k.ID, false)
			s.sql(")")
		}
	}
	if k := r.To; k != nil {
		if p.DayPrecisionDate {
			s.sql(" AND " + id + " <= ")
			s.arg(k.ID, false)
		} else {
			s.sql(" AND " + date + " <= ")
			s.arg(k.Date, false)
			s.sql(" AND (" + date + " < ")
			s.arg(k.Date, false)
			s.sql(" OR " + id + " <= ")
			s.arg(k.ID, false)
			s.sql(")")
		}
	}
}

// splitSQL reads the sort keys of one day's matching rows, in ascending
// key order.
func (p *Plan) splitSQL(files []data.PartFile, r dayRange) (string, []any) {
	q, args := p.chunkSQL(files, r)
	date, id := data.QuoteIdent(data.DateField), data.QuoteIdent(data.KeyField)
	order := date + ", " + id
	if p.DayPrecisionDate {
		order = id
	}
	return "SELECT " + date + ", " + id + " FROM (" + q + ") ORDER BY " + order, args
}

// splitDay cuts one busy day into pieces of at most piece rows, in output
// order, from the day's sort keys.
func (r *chunkReader) splitDay(day dayRange, piece int64) ([]dayRange, error) {
	q, args := r.plan.splitSQL(r.files, day)
	// The stream's connection may be a loader's: the loader's query and
	// this one take turns.
	r.connMu[0].Lock()
	defer r.connMu[0].Unlock()
	rows, err := r.conns[0].QueryContext(r.ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("split a busy day: %w", err)
	}
	defer rows.Close()
	var parts []dayRange
	var from *rowKey
	var n int64
	for rows.Next() {
		var k rowKey
		if err := rows.Scan(&k.Date, &k.ID); err != nil {
			return nil, fmt.Errorf("split a busy day: %w", err)
		}
		if n++; n == piece {
			to := k
			part := day
			part.From, part.To = from, &to
			parts = append(parts, part)
			from, n = &to, 0
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("split a busy day: %w", err)
	}
	if n > 0 || len(parts) == 0 {
		part := day
		part.From = from
		parts = append(parts, part)
	}
	if r.desc {
		slices.Reverse(parts)
	}
	return parts, nil
}

// chunkedRecords starts a chunked date-ordered export (see above). It
// returns nil, nil when nothing matches, so that the caller runs the plain
// statement, whose empty result still carries the schema.
func (e *Engine) chunkedRecords(ctx context.Context, files []data.PartFile, p *Plan) (array.RecordReader, error) {
	conn, err := e.chunkDB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("get duckdb connection: %w", err)
	}
	// The units Count counted over the same files, else counted now, on
	// the engine's database with all its threads: nothing else runs yet.
	var days []dayCount
	if c := p.counted; c != nil && slices.Equal(c.files, files) {
		days = c.units
	} else if days, err = e.countUnits(ctx, p, files); err != nil {
		return nil, errors.Join(err, conn.Close())
	}
	loaders := chunkLoaders
	if e.chunkLoaders > 0 {
		loaders = e.chunkLoaders
	}
	r := &chunkReader{ctx: ctx, conns: []*sql.Conn{conn}, connMu: make([]sync.Mutex, loaders), desc: p.Desc, mem: memory.DefaultAllocator, gather: newGatherMem(p.ReuseReleased),
		dateCol: data.Index(data.DateField), keyCol: data.Index(data.KeyField), byDay: p.DayPrecisionDate,
		plan: p, files: files, maxRows: chunkRows, maxBytes: chunkBytes, minRows: minChunkRows, onChunk: e.onChunk, onChunkRead: e.onChunkRead, handBack: e.handBack,
		handBackAbove: e.handBackAbove, resident: e.resident}
	if e.chunkRows > 0 {
		r.maxRows = e.chunkRows
	}
	if e.chunkBytes > 0 {
		r.maxBytes = e.chunkBytes
	}
	if e.chunkMinRows > 0 {
		r.minRows = e.chunkMinRows
	}
	r.target = min(r.maxRows, max(firstChunkRows, r.minRows))
	for _, d := range days {
		switch {
		case !d.Day.Valid:
			r.nulls = d.Rows > 0
		case d.Rows > 0:
			r.days = append(r.days, d)
		}
	}
	if p.Desc {
		slices.Reverse(r.days)
	}
	if !r.more() {
		return nil, conn.Close()
	}
	// The first chunk is loaded now, so that the schema is known and a bad
	// statement fails the call rather than the stream; the chunks after it
	// are planned from what it measured.
	first, err := r.load(ctx)
	if err != nil {
		// The connection's close error is of no use next to err.
		_ = conn.Close()
		return nil, err
	}
	r.cur, r.schema = first, first.schema
	r.chunkRead()
	for r.more() && len(r.conns) < loaders {
		c, err := e.chunkDB.Conn(ctx)
		if err != nil {
			r.release()
			_ = conn.Close()
			return nil, fmt.Errorf("get duckdb connection: %w", err)
		}
		r.conns = append(r.conns, c)
	}
	r.startLoader()
	return newStream(conn, r.schema, r), nil
}

// countUnits counts the chunk units of p over files (chunkUnits) on the
// engine's database.
func (e *Engine) countUnits(ctx context.Context, p *Plan, files []data.PartFile) ([]dayCount, error) {
	if e.onCountUnits != nil {
		e.onCountUnits()
	}
	return chunkUnits(ctx, e.db, p, files)
}

// chunkUnits returns what the chunks are made of, in ascending date order,
// a null day (the rows with a null date) last: spans of row groups for an
// export ordered by the full date-time (see rowGroupSpans), whole days for
// one ordered by the day or when the files lack date statistics.
func chunkUnits(ctx context.Context, conn queryer, p *Plan, files []data.PartFile) ([]dayCount, error) {
	if !p.DayPrecisionDate {
		spans, nulls, ok, err := rowGroupSpans(ctx, conn, p, files)
		if err != nil {
			return nil, err
		}
		if ok {
			if nulls > 0 {
				spans = append(spans, dayCount{Rows: nulls})
			}
			return spans, nil
		}
	}
	q, args := p.dayCountSQL(files)
	return queryDayCounts(ctx, conn, q, args)
}

// queryer runs a query: a database or one of its connections.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func queryDayCounts(ctx context.Context, conn queryer, q string, args []any) ([]dayCount, error) {
	rows, err := conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("count rows per day: %w", err)
	}
	defer rows.Close()
	var days []dayCount
	for rows.Next() {
		var d dayCount
		if err := rows.Scan(&d.Day, &d.Rows); err != nil {
			return nil, fmt.Errorf("count rows per day: %w", err)
		}
		days = append(days, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count rows per day: %w", err)
	}
	return days, nil
}

// rowRef is one row of a chunk with its sort keys: batch b, row i.
type rowRef struct {
	key, id int64
	b, i    int32
}

// chunkReader is the batchSource of a chunked export: the rows of its
// chunks, each chunk read whole and ordered by (date or its day,
// userWorklogId), on the connections it holds.
//
// After the first chunk, which chunkedRecords reads itself, chunks are
// planned by the planner goroutine (loadAhead) and read by the loader
// goroutines (loadChunks), one per connection; the fields marked "planner"
// are the planner's own from then on, those marked "mu" are shared with the
// loaders under mu, and each connection is used by its loader alone (and by
// the planner, under the connection's lock, to cut a busy day) until
// release has stopped them.
type chunkReader struct {
	ctx context.Context
	// conns are the loaders' connections, the stream's first; connMu[i] is
	// held while conns[i] runs a query. conns[1:] are closed by release.
	conns           []*sql.Conn
	connMu          []sync.Mutex
	schema          *arrow.Schema
	desc, byDay     bool
	dateCol, keyCol int
	mem             memory.Allocator
	gather          gatherMem
	plan            *Plan
	files           []data.PartFile

	// The chunks still to read (planner): the parts of a busy day already
	// cut, then the days (in output order), then the null-date rows.
	split []dayRange
	days  []dayCount
	nulls bool
	// mu guards target and calls of onChunk.
	mu sync.Mutex
	// target is the next chunk's row count (mu): maxRows, or fewer to
	// keep a chunk near maxBytes at the bytes per row measured so far.
	target, maxRows, maxBytes, minRows int64
	onChunk                            func(rows int64)
	onChunkRead                        func()
	// handBack, when set, returns freed memory to the OS after each chunk
	// is read (DuckDB's memory for its query is free by then), while the
	// process's resident memory is above handBackAbove (when positive),
	// and when the stream is released.
	handBack      func()
	handBackAbove int64
	resident      func() (int64, bool)
	// handingBack serializes the hand-backs of the stream's loaders, each
	// with its measure of what it left; futile is set once one left the
	// process above handBackAbove (see chunkRead).
	handingBack sync.Mutex
	futile      bool

	// The chunks read ahead, in output order: the planner sends each
	// chunk's slot over ahead before a loader reads it, and the loader
	// sends the chunk (or its error) into the slot. ahead is closed after
	// the last slot; stopLoader cancels the planner and the loaders, and
	// loaderDone is closed when all have returned.
	ahead      chan chan chunk
	stopLoader context.CancelFunc
	loaderDone chan struct{}

	cur chunk // the chunk being emitted
	pos int   // next row of cur.order to emit
}

// chunk is one chunk read and ordered: its batches as DuckDB gave them and
// its rows in output order. A chunk the loader failed to read carries the
// error instead.
//
// A batch is released as soon as its last row has been emitted (left
// counts the rows of each batch still to emit): the store's files are
// sorted by date and DuckDB returns runs of them, so a batch's rows sit
// close together in the output order and the chunk shrinks as it is
// emitted, which makes room for the chunk being read ahead.
type chunk struct {
	schema *arrow.Schema
	held   []arrow.RecordBatch // nil where released
	left   []int32
	order  []rowRef
	err    error
}

// release drops the chunk's batches.
func (c *chunk) release() {
	for _, rec := range c.held {
		if rec != nil {
			rec.Release()
		}
	}
	c.held, c.left, c.order = nil, nil, nil
}

// emitted releases the batches whose last rows refs were.
func (c *chunk) emitted(refs []rowRef) {
	for _, ref := range refs {
		if c.left[ref.b]--; c.left[ref.b] == 0 {
			c.held[ref.b].Release()
			c.held[ref.b] = nil
		}
	}
}

var _ batchSource = (*chunkReader)(nil)

// more reports whether chunks remain to be read.
func (r *chunkReader) more() bool { return len(r.split) > 0 || len(r.days) > 0 || r.nulls }

// nextRange plans the next chunk: a cut part of a busy day, else whole days
// up to the target (a busy day is cut first), else the null-date rows.
func (r *chunkReader) nextRange() (dayRange, error) {
	r.mu.Lock()
	target := r.target
	r.mu.Unlock()
	switch {
	case len(r.split) > 0:
		return r.takePieces(target), nil
	case len(r.days) > 0:
		n, rows := takeDays(r.days, target)
		dr := daysRange(r.days[:n], r.desc)
		r.days = r.days[n:]
		if rows <= target {
			return dr, nil
		}
		pieces, err := r.splitDay(dr, r.piece())
		if err != nil {
			return dayRange{}, err
		}
		r.split = pieces
		return r.takePieces(target), nil
	default:
		r.nulls = false
		return dayRange{Null: true}, nil
	}
}

// piece is the size of the pieces a busy day is cut into: the smallest
// chunk the reader ever plans, so that a chunk of whole pieces can meet
// every target.
func (r *chunkReader) piece() int64 { return max(min(r.minRows, r.maxRows), 1) }

// takePieces takes the next chunk of a busy day: as many of its pieces as
// target allows, at least one. The pieces are in output order, each the
// keys after From up to To; the merged range runs from the lowest piece's
// From to the highest piece's To.
func (r *chunkReader) takePieces(target int64) dayRange {
	n := int(min(max(target/r.piece(), 1), int64(len(r.split))))
	first, last := r.split[0], r.split[n-1]
	r.split = r.split[n:]
	if r.desc {
		first, last = last, first
	}
	dr := first
	dr.To = last.To
	return dr
}

// load plans the next chunk and reads it on the stream's connection.
func (r *chunkReader) load(ctx context.Context) (chunk, error) {
	dr, err := r.nextRange()
	if err != nil {
		return chunk{}, err
	}
	return r.read(ctx, 0, dr)
}

// read reads the chunk dr whole on connection i and orders its rows. On
// error it holds nothing.
func (r *chunkReader) read(ctx context.Context, i int, dr dayRange) (c chunk, err error) {
	defer func() {
		if err != nil {
			c.release()
		}
	}()
	if r.onChunkRead != nil {
		r.onChunkRead()
	}
	r.connMu[i].Lock()
	defer r.connMu[i].Unlock()
	q, args := r.plan.chunkSQL(r.files, dr)
	// The chunk is read whole at once: streamed, DuckDB need not
	// materialize it first (see streamQuery).
	rr, err := streamQuery(ctx, r.conns[i], statement{q, args})
	if err != nil {
		return c, fmt.Errorf("query rows: %w", err)
	}
	defer rr.Release()
	c.schema = rr.Schema()
	for rr.Next() {
		rec := rr.RecordBatch()
		rec.Retain()
		c.held = append(c.held, rec)
	}
	if err := rr.Err(); err != nil {
		return c, fmt.Errorf("read rows: %w", err)
	}
	r.resize(c.held)
	c.left = make([]int32, len(c.held))
	for b, rec := range c.held {
		c.left[b] = int32(rec.NumRows())
	}
	c.order, err = r.sortChunk(c.held)
	return c, err
}

// startLoader starts the goroutines that read the chunks after the first.
func (r *chunkReader) startLoader() {
	ctx, cancel := context.WithCancel(r.ctx)
	// One slot waits in ahead beside the one the stream waits for (or the
	// chunk it emits): two chunks held at most, two read at once while
	// the stream waits.
	r.ahead, r.stopLoader, r.loaderDone = make(chan chan chunk, len(r.conns)-1), cancel, make(chan struct{})
	go r.loadAhead(ctx)
}

// loadJob is one chunk for a loader: its range and the slot its chunk goes
// into.
type loadJob struct {
	dr   dayRange
	slot chan chunk
}

// loadAhead is the planner goroutine: it plans chunk after chunk, sends
// each one's slot over r.ahead (waiting while the stream has not taken the
// slots before it) and hands the chunk to a free loader. It stops after the
// last chunk, after an error (handed over like a chunk) or when ctx ends,
// and returns when its loaders have.
func (r *chunkReader) loadAhead(ctx context.Context) {
	defer close(r.loaderDone)
	jobs := make(chan loadJob)
	var loaders sync.WaitGroup
	for i := range r.conns {
		loaders.Add(1)
		go func() {
			defer loaders.Done()
			r.loadChunks(ctx, i, jobs)
		}()
	}
	defer func() {
		close(jobs)
		loaders.Wait()
		close(r.ahead)
	}()
	for r.more() {
		slot := make(chan chunk, 1)
		dr, err := r.nextRange()
		if err != nil {
			slot <- chunk{err: err}
		}
		select {
		case r.ahead <- slot:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
		select {
		case jobs <- loadJob{dr: dr, slot: slot}:
		case <-ctx.Done():
			// The stream may wait on this slot: it gets the reason.
			slot <- chunk{err: fmt.Errorf("read rows: %w", ctx.Err())}
			return
		}
	}
}

// loadChunks is a loader goroutine: it reads the chunks it is handed on
// connection i and puts each (or its error) into its slot.
func (r *chunkReader) loadChunks(ctx context.Context, i int, jobs <-chan loadJob) {
	// DuckDB's calls of a connection come from one OS thread, so that the
	// C allocator's per-thread caches of few threads, not of every thread
	// the goroutine would wander over, hold the chunks' freed memory: 300k
	// rows of one day exported at level none peaked 15-25 MB lower.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for job := range jobs {
		c, err := r.read(ctx, i, job.dr)
		if err != nil {
			c.err = err
		}
		r.chunkRead()
		job.slot <- c
	}
}

// chunkRead hands freed memory back after a chunk is read, when the
// reader hands back and the process is above its threshold (see
// EngineOptions.HandBackAbove). An unknown resident size counts as above.
//
// A hand-back that leaves the process above the threshold is not tried
// again in the stream: what holds the memory then is not DuckDB's chunks
// (a Parquet export's row groups, other exports), and every later
// hand-back would only make the next chunk fault the same pages in again.
// 300k rows at level none as Parquet over HTTP spent 0.3 s more CPU time
// and 25 % more wall time handing back after every chunk, for a peak 2 %
// lower (605 MB against 618 MB).
func (r *chunkReader) chunkRead() {
	if r.handBack == nil {
		return
	}
	if r.handBackAbove <= 0 {
		r.handBack()
		return
	}
	r.handingBack.Lock()
	defer r.handingBack.Unlock()
	if r.futile {
		return
	}
	if rss, ok := r.resident(); ok && rss <= r.handBackAbove {
		return
	}
	r.handBack()
	if rss, ok := r.resident(); ok && rss > r.handBackAbove {
		r.futile = true
	}
}

// resize sets the next chunk's row target from the bytes per row of the
// chunk just read.
func (r *chunkReader) resize(held []arrow.RecordBatch) {
	var rows, size int64
	for _, rec := range held {
		rows += rec.NumRows()
		for _, col := range rec.Columns() {
			size += int64(arrowSize(col.Data()))
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.onChunk != nil {
		r.onChunk(rows)
	}
	if rows == 0 {
		return
	}
	r.target = max(min(r.maxRows, r.maxBytes*rows/max(size, 1)), min(r.minRows, r.maxRows))
}

// arrowSize is the bytes of an array's buffers, children included.
func arrowSize(d arrow.ArrayData) int {
	n := 0
	for _, b := range d.Buffers() {
		if b != nil {
			n += b.Len()
		}
	}
	for _, c := range d.Children() {
		n += arrowSize(c)
	}
	return n
}

// sortChunk computes the output order of a chunk's batches.
func (r *chunkReader) sortChunk(held []arrow.RecordBatch) ([]rowRef, error) {
	n := 0
	for _, rec := range held {
		n += int(rec.NumRows())
	}
	order := make([]rowRef, 0, n)
	for b, rec := range held {
		dates, ok := rec.Column(r.dateCol).(*array.Timestamp)
		if !ok {
			return nil, fmt.Errorf("column %s is %s, want a timestamp", data.DateField, rec.Column(r.dateCol).DataType())
		}
		ids, ok := rec.Column(r.keyCol).(*array.Int64)
		if !ok {
			return nil, fmt.Errorf("column %s is %s, want int64", data.KeyField, rec.Column(r.keyCol).DataType())
		}
		perDay := int64(24 * time.Hour / dates.DataType().(*arrow.TimestampType).Unit.Multiplier())
		for i := 0; i < dates.Len(); i++ {
			key := int64(dates.Value(i))
			if r.byDay {
				key = intmath.FloorDiv(key, perDay)
			}
			order = append(order, rowRef{key: key, id: ids.Value(i), b: int32(b), i: int32(i)})
		}
	}
	// A chunk holds a range of dates (whole days when ordered by the day)
	// and no null date (a null-date chunk has one key), so comparing keys
	// orders it exactly; ids are unique.
	slices.SortFunc(order, func(x, y rowRef) int {
		c := cmp.Compare(x.key, y.key)
		if c == 0 {
			c = cmp.Compare(x.id, y.id)
		}
		if r.desc {
			return -c
		}
		return c
	})
	return order, nil
}

// next returns the next batch of at most outBatchRows rows, taking the
// chunk read ahead when the current one is used up.
func (r *chunkReader) next() (arrow.RecordBatch, error) {
	// Batches of a loaded chunk come from memory, not from DuckDB, so the
	// source itself notices a cancelled request.
	if err := r.ctx.Err(); err != nil {
		return nil, fmt.Errorf("read rows: %w", err)
	}
	for r.pos >= len(r.cur.order) {
		r.cur.release()
		r.pos = 0
		slot, ok := <-r.ahead
		if !ok {
			return nil, nil
		}
		// A slot sent over ahead is always filled: by its loader, or by
		// the planner when it stopped before handing the slot over.
		c := <-slot
		if c.err != nil {
			return nil, c.err
		}
		r.cur = c
	}
	end := min(r.pos+outBatchRows, len(r.cur.order))
	refs := r.cur.order[r.pos:end]
	rec, err := takeRows(r.mem, r.gather, r.schema, r.cur.held, refs)
	if err != nil {
		return nil, fmt.Errorf("order rows: %w", err)
	}
	r.cur.emitted(refs)
	r.pos = end
	return rec, nil
}

// release stops the loader (interrupting its query), waits for it, and
// drops the chunks held.
func (r *chunkReader) release() {
	if r.stopLoader != nil {
		r.stopLoader()
		<-r.loaderDone
		// Chunks the loaders finished just before they stopped; a slot the
		// planner sent but handed to no loader is empty.
		for slot := range r.ahead {
			select {
			case c := <-slot:
				c.release()
			default:
			}
		}
		r.stopLoader = nil
	}
	r.cur.release()
	for _, conn := range r.conns[1:] {
		// The stream closes conns[0]; a close error of a connection whose
		// rows are all read (or dropped) tells the caller nothing.
		_ = conn.Close()
	}
	r.conns = r.conns[:1]
	if r.handBack != nil {
		r.handBack()
	}
}

// takeRows builds one batch of the rows refs points at, in that order. A
// run of consecutive rows of one batch (an ascending export over one file
// per month) is a zero-copy slice. held may have nil entries (batches
// released): refs point at none of them.
func takeRows(mem memory.Allocator, gm gatherMem, schema *arrow.Schema, held []arrow.RecordBatch, refs []rowRef) (arrow.RecordBatch, error) {
	if contiguous(refs) {
		return held[refs[0].b].NewSlice(int64(refs[0].i), int64(refs[len(refs)-1].i)+1), nil
	}
	cols := make([]arrow.Array, schema.NumFields())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for j := range cols {
		col, err := takeColumn(mem, gm, schema.Field(j).Type, held, j, refs)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", schema.Field(j).Name, err)
		}
		cols[j] = col
	}
	return array.NewRecordBatch(schema, cols, int64(len(refs))), nil
}

func contiguous(refs []rowRef) bool {
	for k := 1; k < len(refs); k++ {
		if refs[k].b != refs[0].b || refs[k].i != refs[k-1].i+1 {
			return false
		}
	}
	return true
}

// takeColumn gathers column j of the referenced rows. The store's column
// types are copied straight into new buffers (a builder's per-value
// checks cost as much as DuckDB's read); any other type goes through a
// builder and each value's string form.
func takeColumn(mem memory.Allocator, gm gatherMem, dt arrow.DataType, held []arrow.RecordBatch, j int, refs []rowRef) (arrow.Array, error) {
	cols := make([]arrow.Array, len(held))
	for b, rec := range held {
		if rec != nil {
			cols[b] = rec.Column(j)
		}
	}
	switch dt.ID() {
	case arrow.TIMESTAMP:
		return gatherFixed(gm, dt, cols, refs, func(a arrow.Array) []arrow.Timestamp { return a.(*array.Timestamp).TimestampValues() })
	case arrow.INT64:
		return gatherFixed(gm, dt, cols, refs, func(a arrow.Array) []int64 { return a.(*array.Int64).Int64Values() })
	case arrow.FLOAT64:
		return gatherFixed(gm, dt, cols, refs, func(a arrow.Array) []float64 { return a.(*array.Float64).Float64Values() })
	case arrow.STRING:
		data := gatherStrings(gm, dt, cols, refs)
		defer data.Release()
		return array.MakeFromData(data), nil
	case arrow.LIST:
		if dt.(*arrow.ListType).Elem().ID() == arrow.STRING {
			return gatherStringLists(gm, dt.(*arrow.ListType), cols, refs), nil
		}
	}
	bld := array.NewBuilder(mem, dt)
	defer bld.Release()
	return takeGeneric(bld, held, j, refs)
}

// gatherMem makes the buffers of gathered columns: new Go memory, or, when
// the consumer copies what it keeps of a batch before releasing it
// (Plan.ReuseReleased), buffers of a pool that the released batches'
// buffers return to. A chunked export gathers its whole result, batch
// after batch of the same few sizes, so reusing them spares the making,
// zeroing, faulting in and collecting of every buffer (300k rows at level
// none: ~0.26 GB).
type gatherMem struct{ pool *bufpool.Pool }

// gatherPooledBytes bounds a reader's pool: a few batches of wide rows (a
// 4,096-row batch with rawData is ~3.5 MB) queued between the reader and
// an encoder.
const gatherPooledBytes = 32 << 20

func newGatherMem(reuse bool) gatherMem {
	if !reuse {
		return gatherMem{}
	}
	return gatherMem{pool: bufpool.New(gatherPooledBytes)}
}

// buffer returns a buffer of n bytes for the caller to overwrite whole (a
// pooled one holds an earlier batch's bytes); the caller releases its
// reference once the buffer is in an array.
func (g gatherMem) buffer(n int) *memory.Buffer {
	if g.pool == nil {
		return memory.NewBufferBytes(make([]byte, n))
	}
	return memory.NewBufferWithAllocator(g.pool.Get(n), g.pool)
}

// validity returns the validity bitmap of the referenced rows and the null
// count; nil when nothing is null.
func validity(cols []arrow.Array, refs []rowRef) (*memory.Buffer, int) {
	// Most columns have no null at all: then no row needs a look. Where a
	// batch has nulls, its bitmap is read directly (an array's IsNull is a
	// method call per row through an interface).
	var bitmaps [][]byte
	var offsets []int
	for b, c := range cols {
		// (An array without a bitmap has no row IsNull reports.)
		if c != nil && c.NullN() > 0 && c.NullBitmapBytes() != nil {
			if bitmaps == nil {
				bitmaps, offsets = make([][]byte, len(cols)), make([]int, len(cols))
			}
			bitmaps[b], offsets[b] = c.NullBitmapBytes(), c.Data().Offset()
		}
	}
	if bitmaps == nil {
		return nil, 0
	}
	nulls := 0
	var bits []byte
	for k, ref := range refs {
		if bm := bitmaps[ref.b]; bm != nil && !bitutil.BitIsSet(bm, offsets[ref.b]+int(ref.i)) {
			if bits == nil {
				bits = make([]byte, bitutil.BytesForBits(int64(len(refs))))
				bitutil.SetBitsTo(bits, 0, int64(len(refs)), true)
			}
			bitutil.ClearBit(bits, k)
			nulls++
		}
	}
	if bits == nil {
		return nil, 0
	}
	return memory.NewBufferBytes(bits), nulls
}

// gatherFixed gathers a fixed-width column; values gives an array's values
// (already offset by the array's own slice offset).
func gatherFixed[T arrow.FixedWidthType](gm gatherMem, dt arrow.DataType, cols []arrow.Array, refs []rowRef, values func(arrow.Array) []T) (arrow.Array, error) {
	src := make([][]T, len(cols))
	for b, c := range cols {
		if c != nil {
			src[b] = values(c)
		}
	}
	var zero T
	buf := gm.buffer(len(refs) * int(unsafe.Sizeof(zero)))
	defer buf.Release()
	out := arrow.GetData[T](buf.Bytes())
	for k, ref := range refs {
		out[k] = src[ref.b][ref.i]
	}
	valid, nulls := validity(cols, refs)
	data := array.NewData(dt, len(refs), []*memory.Buffer{valid, buf}, nil, nulls, 0)
	defer data.Release()
	return array.MakeFromData(data), nil
}

// gatherStrings gathers a utf8 column into new offsets and bytes.
func gatherStrings(gm gatherMem, dt arrow.DataType, cols []arrow.Array, refs []rowRef) *array.Data {
	src := make([]*array.String, len(cols))
	size := 0
	for b, c := range cols {
		if c != nil {
			src[b] = c.(*array.String)
		}
	}
	for _, ref := range refs {
		size += src[ref.b].ValueLen(int(ref.i))
	}
	offBuf, byteBuf := gm.buffer((len(refs)+1)*arrow.Int32SizeBytes), gm.buffer(size)
	defer offBuf.Release()
	defer byteBuf.Release()
	offsets := arrow.GetData[int32](offBuf.Bytes())
	offsets[0] = 0
	// bytes has exactly size bytes of room: append never moves it off
	// byteBuf.
	bytes := byteBuf.Bytes()[:0]
	for k, ref := range refs {
		bytes = append(bytes, src[ref.b].Value(int(ref.i))...)
		offsets[k+1] = int32(len(bytes))
	}
	valid, nulls := validity(cols, refs)
	return array.NewData(dt, len(refs), []*memory.Buffer{valid, offBuf, byteBuf}, nil, nulls, 0)
}

// gatherStringLists gathers a list<utf8> column: new list offsets over a
// gathered child array.
func gatherStringLists(gm gatherMem, dt *arrow.ListType, cols []arrow.Array, refs []rowRef) arrow.Array {
	lists := make([]*array.List, len(cols))
	children := make([]arrow.Array, len(cols))
	for b, c := range cols {
		if c != nil {
			lists[b] = c.(*array.List)
			children[b] = lists[b].ListValues()
		}
	}
	offBuf := gm.buffer((len(refs) + 1) * arrow.Int32SizeBytes)
	defer offBuf.Release()
	offsets := arrow.GetData[int32](offBuf.Bytes())
	offsets[0] = 0
	n := 0
	for _, ref := range refs {
		if l := lists[ref.b]; !l.IsNull(int(ref.i)) {
			start, end := l.ValueOffsets(int(ref.i))
			n += int(end - start)
		}
	}
	childRefs := make([]rowRef, 0, n)
	for k, ref := range refs {
		l := lists[ref.b]
		if !l.IsNull(int(ref.i)) {
			start, end := l.ValueOffsets(int(ref.i))
			for e := start; e < end; e++ {
				childRefs = append(childRefs, rowRef{b: ref.b, i: int32(e)})
			}
		}
		offsets[k+1] = int32(len(childRefs))
	}
	child := gatherStrings(gm, dt.Elem(), children, childRefs)
	defer child.Release()
	valid, nulls := validity(cols, refs)
	data := array.NewData(dt, len(refs), []*memory.Buffer{valid, offBuf}, []arrow.ArrayData{child}, nulls, 0)
	defer data.Release()
	return array.MakeFromData(data)
}

// takeGeneric gathers a column of a type without a fast path through
// each value's string form.
func takeGeneric(b array.Builder, held []arrow.RecordBatch, j int, refs []rowRef) (arrow.Array, error) {
	for _, ref := range refs {
		a := held[ref.b].Column(j)
		if a.IsNull(int(ref.i)) {
			b.AppendNull()
			continue
		}
		if err := b.AppendValueFromString(a.ValueStr(int(ref.i))); err != nil {
			return nil, err
		}
	}
	return b.NewArray(), nil
}
