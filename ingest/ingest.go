// Package ingest loads event dumps into the worklog store.
//
// A dump is NDJSON, a JSON array (an export's own JSON re-ingests) or CSV
// with a header of field names, optionally gzip or zstd compressed; format
// and compression are detected from the content. Run validates every record
// against the catalogue (data.Fields), de-duplicates by userWorklogId (the
// last record wins, within a dump and across dumps) and commits the result
// to the store atomically.
//
// Pipeline. Reading streams: records are decoded and validated by parallel
// workers (one per CPU, at most 4) and written, in input order, straight in
// the store's part format (parquet-go, stage.go): a run of parts per month,
// each with a small sidecar holding the record's id, its sequence number in
// the input and which fields it gave, each written by a goroutine of its
// own, so that the writing of one part goes on while the next takes rows.
// Nothing is held per record in memory.
// An uncompressed NDJSON file is mapped into memory (on Linux) and split
// where it lies, not copied out of the page cache; the pages behind the
// records in flight leave the resident set, and a file that shrinks while
// it is read ends the input with an error (errInputChanged), not a crash.
// A month whose staged parts already are its new content (see Fast path)
// takes them into the store transaction as they are. DuckDB rewrites every
// other touched month: the month's committed rows minus the dump's ids,
// plus the dump's latest record of each id that falls in the month, sorted
// by date and userWorklogId, written with COPY into new parts of the store
// transaction. A month is touched when the
// dump has records in it or when it holds an older copy of one of the dump's
// ids (found by reading only the narrow userWorklogId column), so a record
// whose date moved leaves its old month. The cost grows with the dump and
// the months it touches, not with the store.
//
// Re-ingest. Each staged record carries a bit per field it gave (a JSON
// key, a CSV column), null or not. A field a record leaves out keeps the
// stored value of an existing event: the merge reads the stored rows of the
// updated ids and takes, field by field, the record's value or the stored
// one. So an export made without e-mails re-ingests without erasing them.
// Names of the pseudonym form are refused, so a pseudonymized export never
// overwrites real names. In the months where the dump meets stored ids,
// the merge compares each new event with the stored one (id and a hash of
// the 35 fields): equal ones are counted unchanged, and a month whose
// events all stay as they are keeps its files, so re-ingesting a dump
// writes and commits nothing.
//
// Fast path. The stager notes whether each month's rows arrived in store
// order (date, then userWorklogId, strictly increasing). A month whose rows
// did, none of which a later record of the dump supersedes, and of whose
// committed rows the dump replaces every one (a new month, or a re-ingest
// of the same dump) is its staged parts, moved into the transaction: one
// write of every row. Dumps in date order — the demo generator, most event
// logs — take this path. When moreover the ids came in increasing order
// (so no two records share one) and the store is empty, DuckDB is not
// opened at all: the whole ingest is Go and parquet-go.
//
// Memory. Staged parts end at storeRowGroup-row row groups and at
// defaultPartRows rows, so parquet-go's buffers and footers stay small
// whatever the size of the dump. The merge joins against one month's ids at
// a time, and writes a month as several parts of at most ~48 MB of input
// each (disjoint date ranges), so no DuckDB sort outgrows DuckDB's 256 MB
// limit.
//
// Retention and erasure. Prune and Forget (lifecycle.go, SPEC §12) are
// store transactions of the same kind: they rewrite, with the same DuckDB
// settings and part format, only the files that hold changed events, and
// commit once.
//
// It imports data (the catalogue, the store, ParseDateTime), parquet-go and
// DuckDB; never query, privacy, export, or anything of HTTP: the HTTP ingest
// calls Run like the CLI does, and gets typed errors (RecordError,
// Options.OnReject) rather than text.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goccy/go-json"

	"worklog/data"
	"worklog/privacy"
)

// nameField is the agent's name, which a pseudonym must never overwrite.
const nameField = "name"

// errPseudonym refuses a name of the pseudonym form (SPEC §8).
var errPseudonym = errors.New("looks like a pseudonym; only exports made at level none can be re-ingested")

// OnError says what Run does with invalid records.
type OnError int

const (
	// Fail commits nothing when any record is invalid (the default).
	Fail OnError = iota
	// Skip commits the valid records and reports the invalid ones.
	Skip
)

// ParseOnError parses "fail" or "skip".
func ParseOnError(s string) (OnError, error) {
	switch s {
	case "fail":
		return Fail, nil
	case "skip":
		return Skip, nil
	}
	return Fail, fmt.Errorf("on-error: want fail or skip, got %q", s)
}

// Options tune Run.
type Options struct {
	// OnError chooses between Fail and Skip.
	OnError OnError
	// Rejects receives, under Skip, each invalid record as one NDJSON line:
	// the record's own keys plus "_line" and "_error" (and "_source" when
	// several inputs are given). May be nil.
	Rejects io.Writer
	// OnReject, when set, is called with the error of every invalid record,
	// in input order, under Fail and Skip alike (Rejects is written under
	// Skip only, ValidationError keeps the first 10). Its Line, Field and
	// cause (Err, Cause) are the typed form of the "_line" and "_error" of a
	// rejects line. It is called from the goroutine running Run, never
	// concurrently, and only before Run returns.
	OnReject func(*RecordError)
	// Progress, when set, is called from time to time with the number of
	// input bytes read so far (as stored, i.e. compressed), over all inputs.
	Progress func(bytesRead int64)
	// TempDir is where staging files and DuckDB's spill go; default
	// <data>/tmp. Run removes what it creates there.
	TempDir string
	// MaxRecordBytes bounds one record: an NDJSON line, a JSON array
	// element, a CSV row (0: DefaultMaxRecordBytes). A longer one ends the
	// ingest with a *LimitError naming its line; nothing is committed.
	// Memory stays within a small multiple of it whatever the input.
	MaxRecordBytes int64
	// MaxDecompressedBytes bounds what a gzip or zstd input expands to,
	// counted as it is read (0: DefaultMaxDecompressedBytes). Beyond it
	// the ingest ends with a *LimitError; nothing is committed.
	// Uncompressed inputs are not counted: their size is what was sent.
	MaxDecompressedBytes int64
	// noMap makes Run read an uncompressed NDJSON file instead of mapping
	// it into memory, for tests that compare the two.
	noMap bool
	// hooks are tests' views into a run; nil outside tests.
	hooks *testHooks
}

// testHooks let a test watch and steer one run from inside.
type testHooks struct {
	// mapped is called once an input is mapped, before any of it is read.
	mapped func()
	// parse is called by a parse worker before it parses a batch.
	parse func()
	// write is called by a part's goroutine before it writes a run of
	// rows; an error it returns is the write's.
	write func() error
	// writers counts the parts' goroutines running: none may outlive Run.
	writers atomic.Int64
}

// Input is one dump.
type Input struct {
	// Name identifies the input in errors ("-" for stdin at the CLI).
	Name string
	// R is the dump's content.
	R io.Reader
}

// Summary reports an ingest.
type Summary struct {
	// New counts ids that were not in the store before.
	New int64
	// Updated counts ids that replaced an event already in the store with
	// other content.
	Updated int64
	// Unchanged counts ids whose event the store already held with the
	// same content (every field equal): ingesting a dump twice changes
	// nothing, and says so.
	Unchanged int64
	// Rejected counts invalid records.
	Rejected int64
	// UnknownKeys counts the distinct keys (or CSV columns) that are not
	// worklog fields; they were ignored.
	UnknownKeys int64
	// Elapsed is the wall time of the ingest.
	Elapsed time.Duration
	// Snapshot is the store state after the ingest.
	Snapshot data.Snapshot
}

// Ingested is the number of valid events of the dump (distinct ids):
// New + Updated + Unchanged.
func (s Summary) Ingested() int64 { return s.New + s.Updated + s.Unchanged }

// Changed is the number of events the ingest changed: New + Updated.
func (s Summary) Changed() int64 { return s.New + s.Updated }

// String is the closing line of the CLI:
// "ingested N events (new X, updated Y, unchanged Z), R rejected, in T s".
func (s Summary) String() string {
	return fmt.Sprintf("ingested %d events (new %d, updated %d, unchanged %d), %d rejected, in %.1f s",
		s.Ingested(), s.New, s.Updated, s.Unchanged, s.Rejected, s.Elapsed.Seconds())
}

// Run ingests the inputs, in order, into store as one transaction. It waits
// for the store's write lock. Under Fail, invalid records make Run return a
// *ValidationError and commit nothing; other errors (unreadable input, a
// truncated JSON array, an input beyond a size limit (*LimitError), a
// cancelled ctx) also commit nothing.
func Run(ctx context.Context, store *data.Store, inputs []Input, opts Options) (Summary, error) {
	return runWith(ctx, store, inputs, opts, mergeLimits{partRows: defaultPartRows, idBucketRows: defaultIDBucketRows})
}

// runWith is Run with the merge limits as a parameter, for tests.
func runWith(ctx context.Context, store *data.Store, inputs []Input, opts Options, lim mergeLimits) (Summary, error) {
	start := time.Now()
	txn, err := store.Begin(ctx, true)
	if err != nil {
		return Summary{}, err
	}
	defer txn.Rollback()

	tmpRoot := opts.TempDir
	if tmpRoot == "" {
		tmpRoot = filepath.Join(store.DataDir(), "tmp")
	}
	if err := os.MkdirAll(tmpRoot, 0o750); err != nil {
		return Summary{}, fmt.Errorf("create temp dir: %w", err)
	}
	// We hold the lock, so any earlier ingest directory is a crash leftover.
	if old, _ := filepath.Glob(filepath.Join(tmpRoot, workPrefix+"*")); len(old) > 0 {
		for _, d := range old {
			os.RemoveAll(d)
		}
	}
	work, err := os.MkdirTemp(tmpRoot, workPrefix)
	if err != nil {
		return Summary{}, fmt.Errorf("create work dir: %w", err)
	}
	defer os.RemoveAll(work)

	r := &run{
		opts:    opts,
		schema:  newStoreSchema(),
		fields:  data.Fields(),
		unknown: map[string]bool{},
		many:    len(inputs) > 1,
		dateIdx: data.Index(data.DateField),
		keyIdx:  data.Index(data.KeyField),
		lim:     opts.limits(),
		nameIdx: data.Index(nameField),
	}
	r.kinds = make([]data.Kind, len(r.fields))
	r.keys = make([]string, len(r.fields))
	for i, f := range r.fields {
		r.kinds[i], r.keys[i] = f.Kind, `"`+f.Name+`"`
	}
	r.stage = newStager(work, r.schema, r.fields[r.keyIdx].Kind == data.KindInt, lim.partRows)
	r.stage.hooks = r.opts.hooks
	defer r.stage.abort()
	if opts.Rejects != nil {
		r.rejects = opts.Rejects
	}
	var seq int64
	for _, in := range inputs {
		n, err := r.input(ctx, in, seq)
		if err != nil {
			if in.Name != "" && r.many {
				err = fmt.Errorf("%s: %w", in.Name, err)
			}
			return r.summary(start), err
		}
		seq += n
	}
	if r.failed() {
		return r.summary(start), &ValidationError{Errors: r.errs, Count: r.rejected}
	}
	staged, err := r.stage.close()
	if err != nil {
		return r.summary(start), err
	}
	// The decoding buffers are garbage now; hand them back to the OS
	// before DuckDB takes its share of the memory budget. When the staged
	// parts are the new store as they are, DuckDB is not opened: the
	// forced collection (about 35 ms after a million events, all of it on
	// the critical path) would buy nothing.
	if !installsAsStaged(txn, staged, r.stage.idsUp) {
		debug.FreeOSMemory()
	}
	if len(staged) == 0 {
		sum := r.summary(start)
		sum.Snapshot = txn.Base()
		return sum, nil
	}
	res, err := merge(ctx, txn, staged, r.stage.idsUp, work, lim)
	if err != nil {
		return r.summary(start), err
	}
	if !res.changed {
		// Every event is stored as it is: nothing to commit.
		sum := r.summary(start)
		sum.Unchanged, sum.Snapshot = res.unchanged, txn.Base()
		return sum, nil
	}
	snap, err := txn.Commit()
	if err != nil {
		return r.summary(start), err
	}
	sum := r.summary(start)
	sum.New, sum.Updated, sum.Unchanged, sum.Snapshot = res.newIDs, res.updated, res.unchanged, snap
	return sum, nil
}

// workPrefix names Run's directories under the temp dir.
const workPrefix = "worklog-ingest-"

// run is the state of one Run.
type run struct {
	opts    Options
	schema  *storeSchema
	fields  []data.Field
	keys    []string // of fields: their names as JSON literals, quoted
	kinds   []data.Kind
	stage   *stager
	rejects io.Writer
	// dateIdx and keyIdx are the catalogue positions of date and
	// userWorklogId.
	dateIdx, keyIdx, nameIdx int
	many                     bool
	read                     int64 // bytes read from earlier inputs
	lim                      limits

	// Touched only by the goroutine running Run.
	unknown  map[string]bool
	rejected int64
	errs     []*RecordError
}

func (r *run) failed() bool { return r.opts.OnError == Fail && r.rejected > 0 }

func (r *run) summary(start time.Time) Summary {
	return Summary{Rejected: r.rejected, UnknownKeys: int64(len(r.unknown)), Elapsed: time.Since(start)}
}

// batch is a run of consecutive records validated by one worker. An NDJSON
// batch is a block of whole lines, which the worker splits into recs.
type batch struct {
	recs      []record
	block     []byte
	firstLine int64 // of block
	bytes     int64 // of recs, taken from the in-flight budget
	seqBase   int64
	// span is how many sequence numbers the batch takes: one per record,
	// or one per line of a block (blank lines included).
	span    int64
	out     []result
	rows    *colRows // of the valid records, for the stager
	text    arena    // their decoded strings
	unknown map[string]bool
	err     error // fatal: ends the input
	done    chan struct{}
	// ref holds rows, text and block until the last run of the rows is
	// written (see stager); written says it was.
	ref     rowsRef
	written bool
}

// result is one validated record: a staging row and its month, or an error.
type result struct {
	month    string
	date, id int64 // the store's sort key
	// k is its row in the batch's rows, which hold its sequence number
	// in the input and its presentColumn mask too (colRows.side).
	k       int
	size    int  // bytes of input
	partial bool // the record leaves a field out
	err     *RecordError
}

const batchSize = 256

// batchBytes ends a batch early: records near the size limit must not make
// a batch of 256 of them.
const batchBytes = 4 << 20

// inFlightBytes is the budget of input bytes between the reader and the
// parts' writers: a batch takes its bytes when it is read and gives them
// back once the last of its rows is written (rowsRef), so the budget
// bounds the batches queued to the workers, those waiting to be staged and
// the rows queued to the parts' goroutines alike. Enough for every queue
// to be full of NDJSON blocks (about 24 of 512 KB), or a backlog of about
// 10,000 rows at the parts' goroutines (with the workers idle meanwhile,
// they keep both cores busy: a larger budget measured no better), and a
// few records of the size limit. A batch holds about twice its input in
// memory (values, decoded strings), so the budget weighs on the heap twice
// over.
func inFlightBytes(maxRecord int64) int64 { return max(16<<20, 4*maxRecord) }

// recordBytes is what a record holds in memory, for the budget.
func recordBytes(rec record) int64 {
	n := int64(len(rec.obj))
	for _, c := range rec.cells {
		n += int64(len(c)) + 16
	}
	return n
}

// input streams one input through the workers into the stager and returns
// the number of sequence numbers it took (records, or NDJSON lines).
func (r *run) input(ctx context.Context, in Input, seqBase int64) (n int64, err error) {
	cr := &countingReader{r: in.R, base: r.read, progress: r.opts.Progress}
	defer func() { r.read = cr.base + cr.n }()
	var mapped *mappedFile
	if f, ok := in.R.(*os.File); ok && !r.opts.noMap {
		mapped = mapFile(f)
	}
	src, closeSrc, err := openSource(cr, r.lim, mapped)
	if err != nil {
		if mapped != nil {
			mapped.unmap()
		}
		return 0, inputError(in.Name, err)
	}
	defer closeSrc()
	nd, _ := src.(*ndjsonSource)
	useMap := nd != nil && nd.mm != nil
	if mapped != nil && !useMap {
		mapped.unmap() // compressed, or not NDJSON: read
	}
	if useMap {
		// The workers, the reader and the writing of the input's rows
		// have ended before the mapping goes (deferred below). Every
		// goroutine that reads the mapping turns a fault (the file
		// shrank) into an error.
		defer mapped.unmap()
		defer onFault(true)()
		defer recoverFault(func() { err = inputError(in.Name, errInputChanged) })
		if h := r.opts.hooks; h != nil && h.mapped != nil {
			h.mapped()
		}
		nd.seen = func(read int64) {
			if read > cr.n {
				cr.n = read
				if cr.progress != nil {
					cr.progress(cr.base + cr.n)
				}
			}
		}
	}
	var header []int
	if h := src.header(); h != nil {
		header = make([]int, len(h))
		for j, name := range h {
			header[j] = data.Index(name)
			if header[j] < 0 {
				r.unknown[name] = true
			}
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	readerDone := make(chan struct{})
	// staging counts the batches whose rows may still be written by a
	// part's goroutine (rowsRef).
	var staging sync.WaitGroup
	// Batches are written out of order (by several parts' goroutines),
	// but give their bytes back to the budget in input order: held is
	// the staged batches whose bytes are still taken. So the budget
	// bounds the span of input from the oldest batch in flight to the
	// newest, not only their sum, and the pages of a mapped input more
	// than that span behind the reader, which it drops from the
	// resident set, are never read again (a read would fault them back
	// in for good).
	var heldMu sync.Mutex
	var held []*batch
	// Stop the reader first, then wait for the workers it feeds, and for
	// a mapped input's reader, which reads the mapping (a reader of a
	// stream is not waited for: it may be stuck in a read from a stalled
	// client, and ends with its next read). Then wait for the input's
	// rows to be written (or, after an error, dropped): they may point
	// into the mapping, and the next input starts from an empty budget.
	defer func() {
		if err != nil {
			r.stage.stop()
		}
		cancel()
		wg.Wait()
		if useMap {
			<-readerDone
		}
		staging.Wait()
		if err == nil {
			err = r.stageErr(in.Name)
		}
	}()
	workers := min(runtime.GOMAXPROCS(0), 4)
	todo := make(chan *batch, workers*2)
	ordered := make(chan *batch, workers*4)
	budget := newByteBudget(inFlightBytes(r.lim.record))
	go func() {
		defer close(readerDone)
		defer close(todo)
		defer close(ordered)
		defer onFault(useMap)()
		seq := seqBase
		for {
			b := &batch{seqBase: seq, done: make(chan struct{})}
			last := false
			if nd != nil {
				blk, first, err := readBlock(nd)
				if err != nil {
					if !errors.Is(err, io.EOF) {
						b.err = err
					}
					last = true
				} else {
					b.block, b.firstLine, b.bytes = blk, first, int64(len(blk))
					b.span = nd.line - first + 1
				}
			}
			for nd == nil && len(b.recs) < batchSize && b.bytes < batchBytes {
				rec, err := src.next()
				if err != nil {
					if !errors.Is(err, io.EOF) {
						b.err = err
					}
					last = true
					break
				}
				b.recs = append(b.recs, rec)
				b.bytes += recordBytes(rec)
			}
			if nd == nil {
				b.span = int64(len(b.recs))
			}
			seq += b.span
			// The batch is read; wait until the pipeline has room for it
			// before reading more.
			if budget.acquire(ctx, b.bytes) != nil {
				return
			}
			select {
			case ordered <- b:
			case <-ctx.Done():
				return
			}
			select {
			case todo <- b:
			case <-ctx.Done():
				return
			}
			if last {
				return
			}
		}
	}()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer onFault(useMap)()
			raws := make([][]byte, len(r.fields))
			vals := make([]value, len(r.fields))
			strs := make([]jsonString, len(r.fields))
			for b := range todo {
				func() {
					// Another panic is raised again on the goroutine
					// running Run when the batch comes up.
					defer func() {
						if v := recover(); v != nil {
							b.out, b.err = nil, &goroutinePanic{value: v, in: "parsing records"}
						}
					}()
					// A fault leaves no result to stage: the input ends.
					defer recoverFault(func() { b.out, b.err = nil, errInputChanged })
					if h := r.opts.hooks; h != nil && h.parse != nil {
						h.parse()
					}
					if b.block != nil {
						b.recs, b.err = splitLines(b.block, b.firstLine, r.lim.record, nil)
					}
					r.validate(b, header, src.header(), raws, strs, vals, in.Name)
				}()
				close(b.done)
			}
		}()
	}
	for b := range ordered {
		select {
		case <-b.done:
		case <-ctx.Done():
			return n, ctx.Err()
		}
		if gp, ok := b.err.(*goroutinePanic); ok {
			panic(gp.value)
		}
		// The batch's memory goes, and its bytes go back to the budget,
		// once its rows are written.
		staging.Add(1)
		heldMu.Lock()
		held = append(held, b)
		heldMu.Unlock()
		b.ref = rowsRef{mapped: useMap, free: func() {
			if b.block != nil {
				recycleBlock(b.block)
				b.block, b.recs = nil, nil
			}
			b.text.release()
			r.schema.recycleRows(b.rows)
			b.rows = nil
			heldMu.Lock()
			b.written = true
			for len(held) > 0 && held[0].written {
				budget.release(held[0].bytes)
				held[0] = nil
				held = held[1:]
			}
			heldMu.Unlock()
			staging.Done()
		}}
		if err := r.stageBatch(b, src.header()); err != nil {
			return n, err
		}
		n += b.span
		if b.err != nil {
			return n, inputError(in.Name, b.err)
		}
		if err := r.stageErr(in.Name); err != nil {
			return n, err
		}
	}
	if err := ctx.Err(); err != nil {
		return n, err
	}
	return n, nil
}

// stageErr is the first error of the parts' goroutines, nil so far. A
// memory fault of one (a mapped input that shrank) ends the input as an
// InputError.
func (r *run) stageErr(source string) error {
	err := r.stage.err()
	if errors.Is(err, errInputChanged) {
		return inputError(source, errInputChanged)
	}
	return err
}

// stageBatch hands the valid records of b to the stager and its invalid
// ones to reject, in input order. The stager holds b's rows (b.ref) until
// they are written.
func (r *run) stageBatch(b *batch, header []string) error {
	b.ref.hold()
	defer b.ref.drop()
	for k := range b.unknown {
		r.unknown[k] = true
	}
	for i := range b.out {
		res := &b.out[i]
		if res.err != nil {
			if err := r.reject(res.err, b.recs[i], header); err != nil {
				return err
			}
			continue
		}
		if r.failed() {
			continue // nothing will be committed; keep counting errors
		}
		if err := r.stage.add(res.month, res.date, res.id, b.rows, &b.ref, res.k, res.size, res.partial); err != nil {
			return err
		}
	}
	r.stage.flushRun()
	return nil
}

// readBlock returns nd.block(), a memory fault (a mapped input that
// shrank) as errInputChanged.
func readBlock(nd *ndjsonSource) (blk []byte, first int64, err error) {
	defer recoverFault(func() { blk, first, err = nil, 0, errInputChanged })
	return nd.block()
}

// inputError types an error that ends an input: a *LimitError stays one
// (with the input's name), anything else is an *InputError.
func inputError(name string, err error) error {
	var le *LimitError
	if errors.As(err, &le) {
		le.Source = name
		return le
	}
	return &InputError{Source: name, Err: err}
}

// validate fills b.out. raws, strs and vals are the worker's scratch space.
func (r *run) validate(b *batch, header []int, headNames []string, raws [][]byte, strs []jsonString, vals []value, source string) {
	b.out = make([]result, len(b.recs))
	// A CSV record gives the fields its header names.
	var csvPresent uint64
	for _, fi := range header {
		if fi >= 0 {
			csvPresent |= 1 << fi
		}
	}
	// The batch's decoded strings share blocks (b.text); they live as long
	// as its rows.
	text := &b.text
	var months monthCache
	for i, rec := range b.recs {
		fail := func(field string, err error) {
			b.out[i].err = &RecordError{Source: source, Line: rec.line, Field: field, Err: err}
		}
		if rec.perr != nil {
			fail("", rec.perr)
			continue
		}
		if rec.cells == nil {
			err := objectFields(rec.obj, raws, strs, r.keys, text, func(key []byte) {
				if b.unknown == nil {
					b.unknown = map[string]bool{}
				}
				b.unknown[string(key)] = true
			})
			if err != nil {
				fail("", err)
				continue
			}
		}
		ok := true
		present := csvPresent
		for fi := range r.fields {
			f := &r.fields[fi]
			var err error
			if rec.cells != nil {
				vals[fi], err = fromText(f, cellFor(rec.cells, header, fi))
			} else {
				if raws[fi] != nil {
					present |= 1 << fi
				}
				err = fromJSONTo(&vals[fi], f, raws[fi], strs[fi], text)
			}
			if err != nil {
				fail(f.Name, err)
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		if n := vals[r.nameIdx]; !n.null && privacy.IsPseudonym(n.s) {
			fail(nameField, errPseudonym)
			continue
		}
		if b.rows == nil {
			b.rows = r.schema.newRows(len(b.recs))
		}
		k := b.rows.n
		date, id := vals[r.dateIdx].i, vals[r.keyIdx].i
		seq := b.seqBase + int64(i)
		if b.block != nil {
			seq = b.seqBase + rec.line - b.firstLine
		}
		r.schema.addRow(b.rows, vals)
		b.rows.addSide(id, seq, present)
		size := len(rec.obj)
		for _, c := range rec.cells {
			size += len(c) + 1
		}
		b.out[i] = result{month: months.of(date), date: date, id: id, k: k,
			size: size, partial: present != allPresent}
	}
}

// cellFor returns the CSV cell of catalogue field fi, "" when the header
// lacks the column.
func cellFor(cells []string, header []int, fi int) string {
	for j, idx := range header {
		if idx == fi && j < len(cells) {
			return cells[j]
		}
	}
	return ""
}

// reject records an invalid record: counted always, kept among the first
// errors, handed to OnReject, and written to the rejects file under Skip.
func (r *run) reject(e *RecordError, rec record, header []string) error {
	r.rejected++
	if len(r.errs) < maxReported {
		r.errs = append(r.errs, e)
	}
	if r.opts.OnReject != nil {
		r.opts.OnReject(e)
	}
	if r.opts.OnError != Skip || r.rejects == nil {
		return nil
	}
	line := rejectLine(rec, header, e, r.many)
	if _, err := r.rejects.Write(line); err != nil {
		return fmt.Errorf("write rejects: %w", err)
	}
	return nil
}

// rejectLine renders a rejected record as one NDJSON line: its own keys
// (as written), then "_line" and "_error".
func rejectLine(rec record, header []string, e *RecordError, withSource bool) []byte {
	var b []byte
	switch {
	case rec.cells != nil:
		b = append(b, '{')
		for j, name := range header {
			if j >= len(rec.cells) {
				break
			}
			if j > 0 {
				b = append(b, ',')
			}
			k, _ := json.Marshal(name)
			b = append(b, k...)
			b = append(b, ':')
			if rec.cells[j] == "" {
				b = append(b, "null"...)
			} else {
				v, _ := json.Marshal(rec.cells[j])
				b = append(b, v...)
			}
		}
	case rec.obj != nil && json.Valid(rec.obj) && rec.obj[0] == '{':
		obj := strings.TrimSpace(string(rec.obj))
		b = append(b, obj[:len(obj)-1]...)
		b = []byte(strings.TrimRightFunc(string(b), func(c rune) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }))
	default:
		raw, _ := json.Marshal(string(rec.obj))
		b = append(b, `{"_raw":`...)
		b = append(b, raw...)
	}
	if len(b) > 1 {
		b = append(b, ',')
	}
	if withSource {
		s, _ := json.Marshal(e.Source)
		b = append(b, `"_source":`...)
		b = append(b, s...)
		b = append(b, ',')
	}
	b = append(b, `"_line":`...)
	b = strconv.AppendInt(b, e.Line, 10)
	msg, _ := json.Marshal(e.Error())
	b = append(b, `,"_error":`...)
	b = append(b, msg...)
	b = append(b, "}\n"...)
	return b
}

// countingReader reports the bytes read through it.
type countingReader struct {
	r        io.Reader
	base, n  int64
	progress func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.progress != nil && n > 0 {
		c.progress(c.base + c.n)
	}
	return n, err
}
