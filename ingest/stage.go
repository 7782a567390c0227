package ingest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/parquet-go/parquet-go/format"

	"worklog/data"
)

// Staging writes validated rows straight in the store's part format (see
// data/store.go: zstd, the catalogue's columns and types, lists as Parquet
// lists, date-times as plain TIMESTAMP, row groups of storeRowGroup rows),
// one run of part files per month, each part cut, at a change of date, past
// the rows or bytes a store part may hold. A month whose rows came in store
// order, none superseded and replacing all the month held, needs nothing
// more: its staged parts are moved into the store transaction as they are,
// with no second write. Every other month is merged by DuckDB, which reads
// the staged parts as its input.
//
// The store format has no room for what the merge needs besides the
// fields, so each part has a sidecar file, row for row: the record's id,
// its sequence number in the input (seqColumn: the last record of an id
// wins) and its presentColumn mask.
const seqColumn = "_seq"

// presentColumn holds, per staged record, a bit per catalogue field (bit i
// for field i) that is set when the record gave the field (a JSON key, a
// CSV column), even as null. A field the record left out keeps the stored
// value of an existing event (SPEC §8).
const presentColumn = "_present"

// sideID is the sidecar's copy of the record's userWorklogId.
const sideID = "id"

// allPresent is the mask of a record that gives every field.
var allPresent = uint64(1)<<len(data.Fields()) - 1

// The writers hold a row group in memory until it is flushed (its pages,
// compressed); rows near the record size limit would make 16,384 of them
// gigabytes. A part ends its row group past stageGroupBytes of input, and
// all of them do when the stager holds more than stageBudget (a dump spread
// over many months). Ordinary rows (1-2 KB) never reach the first.
const (
	stageGroupBytes = 32 << 20
	stageBudget     = 96 << 20
)

// storeSchema is the part layout, derived from the catalogue: one column per
// field, in catalogue order.
type storeSchema struct {
	schema *parquet.Schema
	side   *parquet.Schema
	kinds  []data.Kind
	// null is each column's null value (for a list column: the empty
	// list), made once: parquet.Value.Level is not inlined, and most
	// fields of an event are null.
	null []parquet.Value
	// rows recycles the colRows the stager is done with: they have this
	// schema's columns.
	rows sync.Pool
}

// dictionaryFields are the columns written with dictionary encoding, as
// DuckDB does for columns of few distinct values: the names, enums and
// labels. Identifiers, timestamps, numbers and rawData are plain.
func dictionaryField(f data.Field) bool {
	switch f.Kind {
	case data.KindString:
		return f.Name != "rawData"
	case data.KindEnum, data.KindList:
		return true
	}
	return false
}

// rawDataField is the column whose values are too large for min/max
// statistics: parquet-go would copy them whole into the footer.
const rawDataField = "rawData"

func newStoreSchema() *storeSchema {
	fields := data.Fields()
	s := &storeSchema{kinds: make([]data.Kind, len(fields)), null: make([]parquet.Value, len(fields))}
	var root orderedGroup
	for i, f := range fields {
		s.kinds[i] = f.Kind
		s.null[i] = parquet.NullValue().Level(0, 0, i)
		if f.Kind == data.KindList {
			// Definition level 1: a list without items.
			s.null[i] = parquet.NullValue().Level(0, 1, i)
		}
		var n parquet.Node
		switch f.Kind {
		case data.KindTimestamp:
			// Plain TIMESTAMP: naive wall-clock time, as DuckDB writes it.
			n = parquet.TimestampAdjusted(parquet.Microsecond, false)
		case data.KindInt, data.KindFlag:
			n = parquet.Int(64)
		case data.KindFloat:
			n = parquet.Leaf(parquet.DoubleType)
		case data.KindList:
			n = parquet.String()
		default:
			n = parquet.String()
		}
		if dictionaryField(f) {
			n = parquet.Encoded(n, &parquet.RLEDictionary)
		}
		if f.Kind == data.KindList {
			// DuckDB's layout: an optional list of optional elements.
			n = parquet.List(parquet.Optional(n))
		}
		root = append(root, namedField{Node: parquet.Optional(n), name: f.Name})
	}
	s.schema = parquet.NewSchema("duckdb_schema", root)
	s.side = parquet.NewSchema("stage", orderedGroup{
		namedField{Node: parquet.Required(parquet.Int(64)), name: sideID},
		namedField{Node: parquet.Required(parquet.Int(64)), name: seqColumn},
		namedField{Node: parquet.Required(parquet.Int(64)), name: presentColumn},
	})
	return s
}

// colRows are validated part rows held column by column, as the part
// writers take them: no row-major copy that Parquet would have to split
// into columns again. Row k of a column c that is not a list is
// cols[c][k]; a list column's row k is cols[c][offs[c][k]:offs[c][k+1]].
type colRows struct {
	cols [][]parquet.Value
	offs [][]int32
	// side is the sidecar's columns (id, seq, present), row k at side[c][k].
	side [3][]parquet.Value
	n    int // rows
}

// rowsOf returns the values of column c of rows k0 to k1 (excluded).
func (r *colRows) rowsOf(c, k0, k1 int) []parquet.Value {
	if o := r.offs[c]; o != nil {
		return r.cols[c][o[k0]:o[k1]]
	}
	return r.cols[c][k0:k1]
}

// recycleRows hands r back for reuse; nil is ignored. Nothing may refer to
// its values any more.
func (s *storeSchema) recycleRows(r *colRows) {
	if r == nil {
		return
	}
	for c := range r.cols {
		r.cols[c] = r.cols[c][:0]
		if r.offs[c] != nil {
			r.offs[c] = r.offs[c][:1]
		}
	}
	for c := range r.side {
		r.side[c] = r.side[c][:0]
	}
	r.n = 0
	s.rows.Put(r)
}

// newRows returns an empty colRows with room for n rows (a recycled one may
// have more, or fewer: then its columns grow).
func (s *storeSchema) newRows(n int) *colRows {
	if r, ok := s.rows.Get().(*colRows); ok {
		return r
	}
	r := &colRows{cols: make([][]parquet.Value, len(s.kinds)), offs: make([][]int32, len(s.kinds))}
	plain := 0
	for _, k := range s.kinds {
		if k != data.KindList {
			plain++
		}
	}
	// A few allocations per batch for all its rows' values.
	backing := make([]parquet.Value, plain*n)
	for c, k := range s.kinds {
		if k == data.KindList {
			r.cols[c] = make([]parquet.Value, 0, 2*n)
			r.offs[c] = append(make([]int32, 0, n+1), 0)
			continue
		}
		r.cols[c], backing = backing[:0:n], backing[n:]
	}
	side := make([]parquet.Value, 3*n)
	for c := range r.side {
		r.side[c], side = side[:0:n], side[n:]
	}
	return r
}

// addSide appends the sidecar values of the row addRow appended last: its
// id, sequence number and presentColumn mask (required columns: levels 0,
// as the values come).
func (r *colRows) addSide(id, seq int64, present uint64) {
	r.side[0] = append(r.side[0], parquet.Int64Value(id))
	r.side[1] = append(r.side[1], parquet.Int64Value(seq))
	r.side[2] = append(r.side[2], parquet.Int64Value(int64(present)))
}

// addRow appends the part row of validated values vals (in catalogue
// order) to r. Lists take one value per item (an empty list one null
// value). The levels are set in place with Value's setters, which inline:
// Value.Level does not, and costs a call per value. A column writer reads
// only a value's levels and data, so the column index is left unset.
func (s *storeSchema) addRow(r *colRows, vals []value) {
	r.n++
	for c := range vals {
		v := &vals[c]
		dst := r.cols[c]
		switch s.kinds[c] {
		case data.KindList:
			// Definition levels: 1 an empty list, 3 an item; repetition
			// level 1 for every item after the first.
			if len(v.list) == 0 {
				dst = append(dst, s.null[c])
			}
			for j, item := range v.list {
				dst = append(dst, parquet.ByteArrayValue(item))
				last := &dst[len(dst)-1]
				last.SetDefinitionLevel(3)
				if j > 0 {
					last.SetRepetitionLevel(1)
				}
			}
			r.offs[c] = append(r.offs[c], int32(len(dst)))
			r.cols[c] = dst
			continue
		case data.KindTimestamp, data.KindInt, data.KindFlag:
			if v.null {
				dst = append(dst, s.null[c])
			} else {
				dst = append(dst, parquet.Int64Value(v.i))
			}
		case data.KindFloat:
			if v.null {
				dst = append(dst, s.null[c])
			} else {
				dst = append(dst, parquet.DoubleValue(v.f))
			}
		default:
			if v.null {
				dst = append(dst, s.null[c])
			} else {
				dst = append(dst, parquet.ByteArrayValue(v.s))
			}
		}
		if !v.null {
			dst[len(dst)-1].SetDefinitionLevel(1)
		}
		r.cols[c] = dst
	}
}

// orderedGroup is a Parquet group whose fields keep their order
// (parquet.Group sorts them by name): the store's columns are in catalogue
// order, as DuckDB writes them.
type orderedGroup []parquet.Field

func (g orderedGroup) ID() int                         { return 0 }
func (g orderedGroup) String() string                  { return "group" }
func (g orderedGroup) Type() parquet.Type              { return parquet.Group{}.Type() }
func (g orderedGroup) Optional() bool                  { return false }
func (g orderedGroup) Repeated() bool                  { return false }
func (g orderedGroup) Required() bool                  { return true }
func (g orderedGroup) Leaf() bool                      { return false }
func (g orderedGroup) Fields() []parquet.Field         { return g }
func (g orderedGroup) Encoding() encoding.Encoding     { return nil }
func (g orderedGroup) Compression() compress.Codec     { return nil }
func (g orderedGroup) GoType() reflect.Type            { return reflect.TypeFor[map[string]any]() }
func (f namedField) Name() string                      { return f.name }
func (f namedField) Value(reflect.Value) reflect.Value { return reflect.Value{} }

// namedField is a field of an orderedGroup. Rows are written as
// parquet.Row, never as Go values, so Value is never used.
type namedField struct {
	parquet.Node
	name string
}

// stager routes rows into the staged parts of their month. It runs on the
// goroutine that takes the validated batches in input order and does the
// bookkeeping (months, parts, runs, row groups); the parquet-go writing of
// each part (about half of an ingest's CPU time) runs on a goroutine of
// the part's own (write), which gets the part's runs of rows, row-group
// ends and close as jobs, in order. So the ordering goroutine waits for
// Parquet only when a part's queue is full or too many parts are finishing
// (maxFinishing), and while one part's goroutine works through its backlog,
// the next part already takes rows and its goroutine writes on another
// core. A run's rows stay alive until it is written (rowsRef).
type stager struct {
	dir    string
	schema *storeSchema
	months map[string]*stageMonth
	// pending is the input bytes of rows in unflushed row groups, over
	// all months.
	pending int64
	// ordered says whether ids compare as the store sorts them (integer
	// ids); only then can a month be found sorted.
	ordered bool
	// partRows is the most rows of a part (mergeLimits.partRows).
	partRows int64
	files    int // parts opened so far, for their names
	// idsUp holds while every id came in greater than the one before (in
	// input order, over all months): then no two records share an id.
	idsUp  bool
	lastID int64
	anyID  bool
	// run is the rows added but not yet handed to a part's goroutine:
	// rows k0 to k1 of runRows, all of part runPart; runRef holds
	// runRows.
	runPart *stagePart
	runRows *colRows
	runRef  *rowsRef
	k0, k1  int
	// finishing are the parts whose close is queued and whose goroutine
	// may still be writing, oldest first: at most maxFinishing.
	finishing []*stagePart
	// stopped makes the parts' goroutines drop the jobs they get instead
	// of doing them: an error ended the ingest, nothing is committed.
	stopped atomic.Bool
	mu      sync.Mutex
	werr    error // the first error of a part's goroutine
	// hooks are a test's (Options.hooks); nil otherwise.
	hooks *testHooks
}

// maxFinishing bounds the finished parts still being written (their last
// rows, footers) while the next parts take rows. One lets a part's
// goroutine finish on one core while the next part's starts on the other,
// which is where a pipeline of one open part would have one core idle;
// each more would hold one more row group of buffers and a zstd encoder
// (measured: 1 adds about 15 MB to the peak RSS of a million events over
// none, 2 about 30 MB, and no speed).
const maxFinishing = 1

// partQueue is the capacity of a part's job queue. The rows queued are
// bounded by the reader's byte budget (a queued run keeps its batch's bytes
// taken), not by this: a full queue only makes the stager wait for the
// part's goroutine, which never waits for the stager.
const partQueue = 256

// rowsRef counts the holders of a batch's rows: the goroutine staging the
// batch, and each run of its rows queued to a part's goroutine. The last
// drop calls free, which recycles the rows and what their values point
// into (decoded text, the NDJSON block) and gives their bytes back to the
// reader's budget.
type rowsRef struct {
	n    atomic.Int32
	free func()
	// mapped says the values point into a mapped input file: reading
	// them faults if the file shrank (see onFault).
	mapped bool
}

func (r *rowsRef) hold() { r.n.Add(1) }

func (r *rowsRef) drop() {
	if r.n.Add(-1) == 0 && r.free != nil {
		r.free()
	}
}

// jobKind is what a partJob asks of a part's goroutine.
type jobKind uint8

const (
	// writeRun writes rows k0 to k1 of rows, and their sidecar values.
	writeRun jobKind = iota
	// endRowGroup ends the part's open row group.
	endRowGroup
	// closePart finishes the part and its sidecar (footers) and closes
	// their files.
	closePart
)

// partJob is one job of a part's goroutine.
type partJob struct {
	kind   jobKind
	rows   *colRows
	ref    *rowsRef // of rows; dropped once the job is done
	k0, k1 int
}

// stageMonth is the staging state of one month.
type stageMonth struct {
	month string
	done  []stagedPart
	cur   *stagePart
	rows  int64
	bytes int64 // input size of the rows
	// sorted holds while every row came in strictly after the one before
	// in the store's order (date, then userWorklogId); last is that row.
	sorted         bool
	lastDate, last int64
	// partial says some record left a field out.
	partial bool
}

// stagePart is a part being written and its sidecar. The writers and
// files belong to the part's goroutine (write); the counts to the stager.
type stagePart struct {
	path, side string
	f, sf      *os.File
	w, sw      *parquet.GenericWriter[any]
	rows       int64
	bytes      int64
	// pending is the input bytes of the rows of the open row group, and
	// groupRows their number.
	pending, groupRows int64
	lastDate           int64
	// jobs feeds the part's goroutine; done is closed when it has ended
	// (its files closed).
	jobs chan partJob
	done chan struct{}
}

// stagedPart is one finished staged part.
type stagedPart struct {
	// path is the part, side its sidecar.
	path, side string
	rows       int64
}

// stagedMonth is one month's finished staging.
type stagedMonth struct {
	parts []stagedPart
	// rowBytes is the average input size of a row, to size the parts.
	rowBytes int64
	// rows is the number of staged rows.
	rows int64
	// sorted says the rows are in the store's order, with no two rows of
	// the same date and id: the parts may become store parts as they are.
	sorted bool
	// partial says some row left a field out (see presentColumn).
	partial bool
}

func newStager(dir string, schema *storeSchema, ordered bool, partRows int64) *stager {
	return &stager{dir: dir, schema: schema, months: map[string]*stageMonth{}, ordered: ordered, partRows: partRows, idsUp: ordered}
}

// partOptions are the writer options of a staged part: the store's format.
func (s *stager) partOptions() []parquet.WriterOption {
	return []parquet.WriterOption{s.schema.schema,
		parquet.Compression(partCodec),
		parquet.MaxRowsPerRowGroup(storeRowGroup),
		parquet.PageBufferSize(1 << 20),
		parquet.DataPageVersion(1),
		parquet.SkipPageBounds(rawDataField),
		// No min/max in each data page's header: parquet-go would work
		// out every page's bounds twice (once more for the column index,
		// which keeps them, and whose bounds make the row groups'
		// statistics), and for rawData, whose bounds are skipped, once,
		// copying its largest and smallest value into every page header.
		// DuckDB's reader plans from the row groups' statistics, not
		// from those of the pages.
		parquet.DataPageStatistics(false),
		parquet.CreatedBy("worklog", "", ""),
	}
}

// partCodec compresses the parts: zstd at its fastest level, which took
// about 60% of the default level's time for 7% larger files.
var partCodec = &partZstd{}

// partWindow is the zstd window of partCodec. parquet-go's own zstd codec
// keeps the library's 8 MB window, whose history buffer takes 16 MB per
// encoder, and the parts' goroutines compress at once, an encoder each. A
// page holds about 1 MB (PageBufferSize, plus a run's overshoot), so a
// 2 MB window finds the same matches and writes the same frames (one
// segment, sized by the page) in a buffer of 4 MB; a page of larger
// records is still valid zstd, only compressed as in 2 MB windows.
const partWindow = 2 << 20

// partZstd is parquet-go's zstd codec (compress/zstd) at SpeedFastest with
// a window of partWindow.
type partZstd struct {
	encoders, decoders sync.Pool
}

func (c *partZstd) String() string { return "ZSTD" }

func (c *partZstd) CompressionCodec() format.CompressionCodec { return format.Zstd }

func (c *partZstd) Encode(dst, src []byte) ([]byte, error) {
	e, _ := c.encoders.Get().(*zstd.Encoder)
	if e == nil {
		var err error
		e, err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false), zstd.WithWindowSize(partWindow))
		if err != nil {
			return nil, fmt.Errorf("zstd encoder: %w", err)
		}
	}
	defer c.encoders.Put(e)
	return e.EncodeAll(src, dst[:0]), nil
}

func (c *partZstd) Decode(dst, src []byte) ([]byte, error) {
	d, _ := c.decoders.Get().(*zstd.Decoder)
	if d == nil {
		var err error
		if d, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1)); err != nil {
			return nil, fmt.Errorf("zstd decoder: %w", err)
		}
	}
	defer c.decoders.Put(d)
	return d.DecodeAll(src, dst[:0])
}

// open starts a new part of month m, and its goroutine.
func (s *stager) open(ms *stageMonth) error {
	s.files++
	name := fmt.Sprintf("%s-%06d.parquet", ms.month, s.files)
	p := &stagePart{path: filepath.Join(s.dir, "part-"+name), side: filepath.Join(s.dir, "side-"+name)}
	var err error
	if p.f, err = os.Create(p.path); err != nil {
		return fmt.Errorf("create staging file: %w", err)
	}
	if p.sf, err = os.Create(p.side); err != nil {
		p.f.Close()
		return fmt.Errorf("create staging file: %w", err)
	}
	p.w = parquet.NewGenericWriter[any](p.f, s.partOptions()...)
	p.sw = parquet.NewGenericWriter[any](p.sf, s.schema.side, parquet.Compression(&parquet.Uncompressed),
		parquet.MaxRowsPerRowGroup(1<<20), parquet.PageBufferSize(256<<10))
	p.jobs, p.done = make(chan partJob, partQueue), make(chan struct{})
	if s.hooks != nil {
		s.hooks.writers.Add(1)
	}
	go s.write(p)
	ms.cur = p
	return nil
}

// write is the goroutine of part p: it does p's jobs in order until the
// stager closes p.jobs, then closes p's files (finished by a closePart job,
// or left unfinished when the ingest failed). After an error, its own or
// another part's (stopped), it only drops the jobs' rows.
func (s *stager) write(p *stagePart) {
	defer close(p.done)
	if s.hooks != nil {
		defer s.hooks.writers.Add(-1)
	}
	failed := false
	for j := range p.jobs {
		if !failed && !s.stopped.Load() {
			if err := p.do(j, s.hooks); err != nil {
				s.fail(err)
				failed = true
			}
		}
		if j.ref != nil {
			j.ref.drop()
		}
	}
	if p.f != nil {
		p.f.Close()
		p.sf.Close()
	}
}

// do does job j of p. Values that point into a mapped input fault when the
// file shrank: that is errInputChanged.
func (p *stagePart) do(j partJob, hooks *testHooks) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &goroutinePanic{value: v, in: "writing a staged part"}
		}
	}()
	switch j.kind {
	case writeRun:
		defer onFault(j.ref.mapped)()
		defer recoverFault(func() { err = errInputChanged })
		if hooks != nil && hooks.write != nil {
			if err := hooks.write(); err != nil {
				return err
			}
		}
		for c, cw := range p.w.ColumnWriters() {
			if _, err := cw.WriteRowValues(j.rows.rowsOf(c, j.k0, j.k1)); err != nil {
				return fmt.Errorf("write staging rows: %w", err)
			}
		}
		for c, cw := range p.sw.ColumnWriters() {
			if _, err := cw.WriteRowValues(j.rows.side[c][j.k0:j.k1]); err != nil {
				return fmt.Errorf("write staging rows: %w", err)
			}
		}
	case endRowGroup:
		if err := p.w.Flush(); err != nil {
			return fmt.Errorf("write staging row group: %w", err)
		}
	case closePart:
		err := p.w.Close()
		if err == nil {
			err = p.sw.Close()
		}
		err = errors.Join(err, p.f.Close(), p.sf.Close())
		p.f, p.sf = nil, nil
		if err != nil {
			return fmt.Errorf("finish staging file: %w", err)
		}
	}
	return nil
}

// fail records err, the first error of a part's goroutine, and stops them
// all.
func (s *stager) fail(err error) {
	s.mu.Lock()
	if s.werr == nil {
		s.werr = err
	}
	s.mu.Unlock()
	s.stopped.Store(true)
}

// err is the first error of a part's goroutine, nil so far. A panic of
// one panics again here, on the goroutine running Run.
func (s *stager) err() error {
	s.mu.Lock()
	err := s.werr
	s.mu.Unlock()
	if pp, ok := err.(*goroutinePanic); ok {
		panic(pp.value)
	}
	return err
}

// goroutinePanic is a panic of one of Run's goroutines (a part's writer, a
// parse worker; other than a memory fault of a mapped input), recovered
// there and raised again on the goroutine running Run (by stager.err, or
// as the worker's batch comes up): where it was raised before the work had
// goroutines of its own, so that a caller's recovery (an HTTP handler's)
// still sees it instead of the process crashing.
type goroutinePanic struct {
	value any
	in    string // what the goroutine was doing
}

func (p *goroutinePanic) Error() string { return fmt.Sprintf("panic %s: %v", p.in, p.value) }

// stop makes the parts' goroutines drop the jobs queued and to come: the
// ingest ends with an error, and nothing staged will be committed.
func (s *stager) stop() { s.stopped.Store(true) }

// maxRun is the most rows written to the part writers at once: a page
// ends only between writes, so a run of rawData values (about 0.7 KB each)
// overshoots the page size by at most ~180 KB, and each write costs
// parquet-go a call per column.
const maxRun = 256

// add stages row k of rows (held by ref), which took size bytes of input
// and has the given date and id, in month; partial says it leaves a field
// out. The row's sidecar values are rows.side's (colRows.addSide). The
// rows are handed to the part's goroutine in runs (flushRun, which the
// stager calls itself whenever the row goes to another part than the one
// before, or comes from other rows, or is not the next one); ref holds
// them until they are written.
func (s *stager) add(month string, date, id int64, rows *colRows, ref *rowsRef, k int, size int, partial bool) error {
	ms := s.months[month]
	if ms == nil {
		ms = &stageMonth{month: month, sorted: s.ordered}
		s.months[month] = ms
	} else if ms.sorted && (date < ms.lastDate || date == ms.lastDate && id <= ms.last) {
		ms.sorted = false
	}
	ms.lastDate, ms.last = date, id
	if s.anyID && id <= s.lastID {
		s.idsUp = false
	}
	s.lastID, s.anyID = id, true
	ms.partial = ms.partial || partial
	ms.rows++
	ms.bytes += int64(size)

	// A part ends at a change of date once it is full, so that parts of a
	// month cover disjoint date ranges.
	if p := ms.cur; p != nil && (p.rows >= s.partRows || p.bytes >= partBytes) && date != p.lastDate {
		if err := s.finish(ms); err != nil {
			return err
		}
	}
	if ms.cur == nil {
		if err := s.open(ms); err != nil {
			return err
		}
	}
	p := ms.cur
	if s.runPart != p || s.runRows != rows || s.k1 != k || s.k1-s.k0 >= maxRun {
		s.flushRun()
		s.runPart, s.runRows, s.runRef, s.k0, s.k1 = p, rows, ref, k, k
	}
	s.k1++
	p.lastDate = date
	p.rows++
	p.bytes += int64(size)
	p.pending += int64(size)
	s.pending += int64(size)
	if p.groupRows++; p.groupRows == storeRowGroup {
		s.pending -= p.pending
		s.endGroup(p)
		return nil
	}
	switch {
	case s.pending > stageBudget:
		for _, ms := range s.months {
			if ms.cur != nil {
				s.endGroup(ms.cur)
			}
		}
		s.pending = 0
	case p.pending >= stageGroupBytes:
		s.pending -= p.pending
		s.endGroup(p)
	}
	return nil
}

// flushRun hands the run of rows added and not yet written to its part's
// goroutine.
func (s *stager) flushRun() {
	if p := s.runPart; p != nil && s.k1 > s.k0 {
		s.runRef.hold()
		p.jobs <- partJob{kind: writeRun, rows: s.runRows, ref: s.runRef, k0: s.k0, k1: s.k1}
	}
	s.runPart, s.runRows, s.runRef = nil, nil, nil
}

// finish queues the close of the open part of ms. When more than
// maxFinishing parts are still being written, it waits for the oldest.
func (s *stager) finish(ms *stageMonth) error {
	p := ms.cur
	ms.cur = nil
	s.pending -= p.pending
	if s.runPart == p {
		s.flushRun()
	}
	p.jobs <- partJob{kind: closePart}
	close(p.jobs)
	ms.done = append(ms.done, stagedPart{path: p.path, side: p.side, rows: p.rows})
	s.finishing = append(s.finishing, p)
	// Wait for the oldest while too many may still be writing (a part
	// already written costs no wait).
	for len(s.finishing) > maxFinishing {
		<-s.finishing[0].done
		s.finishing = s.finishing[1:]
	}
	return s.err()
}

// endGroup hands p's rows not yet written to its goroutine and ends its
// open row group.
func (s *stager) endGroup(p *stagePart) {
	if p.groupRows == 0 {
		return
	}
	if s.runPart == p {
		s.flushRun()
	}
	p.jobs <- partJob{kind: endRowGroup}
	p.pending, p.groupRows = 0, 0
}

// close finishes every staged part, waits until they are written and
// returns the months.
func (s *stager) close() (map[string]stagedMonth, error) {
	out := map[string]stagedMonth{}
	for m, ms := range s.months {
		if ms.cur != nil {
			if err := s.finish(ms); err != nil {
				return nil, err
			}
		}
		out[m] = stagedMonth{parts: ms.done, rowBytes: ms.bytes / max(ms.rows, 1), rows: ms.rows, sorted: ms.sorted, partial: ms.partial}
	}
	for _, p := range s.finishing {
		<-p.done
	}
	s.finishing = nil
	if err := s.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// abort stops the parts' goroutines, unfinished parts left as they are,
// and waits for them to end (their files closed).
func (s *stager) abort() {
	s.stop()
	for _, ms := range s.months {
		if p := ms.cur; p != nil {
			close(p.jobs)
			s.finishing = append(s.finishing, p)
			ms.cur = nil
		}
	}
	for _, p := range s.finishing {
		<-p.done
	}
	s.finishing = nil
}

func sortedKeys(m map[string]stagedMonth) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// movePart puts the finished staged part src at the store part's temporary
// path dst: a rename, or a copy when the staging directory is on another
// file system.
func movePart(src, dst string) error {
	if err := os.Rename(src, dst); err == nil {
		return nil
	}
	if err := copyToNew(src, dst); err != nil {
		return err
	}
	return os.Remove(src)
}

// copyToNew copies src into a new file dst (refused if dst exists), synced
// before it is closed: the fallback of movePart and carryOver where a rename
// or a hard link cannot reach. dst is a temporary part path that the
// store's commit renames, so a failed copy leaves nothing under a part's
// name.
func copyToNew(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return errors.Join(out.Sync(), out.Close())
}
