package ingest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/parquet-go/parquet-go"

	"worklog/data"
)

// The staging files hold validated rows between the Go decoder and the
// DuckDB merge, one file per month. Every column is flat, so rows are cheap
// to build: date-times are BIGINT microseconds of the naive wall time, lists
// are their canonical JSON-array text; the merge converts both to the store
// types. seqColumn numbers the records in input order, so the merge can keep
// the last record per userWorklogId.
const seqColumn = "_seq"

// presentColumn holds, per staged record, a bit per catalogue field (bit i
// for field i) that is set when the record gave the field (a JSON key, a
// CSV column), even as null. A field the record left out keeps the stored
// value of an existing event (SPEC §8).
const presentColumn = "_present"

// allPresent is the mask of a record that gives every field.
var allPresent = uint64(1)<<len(data.Fields()) - 1

// stageRowGroup bounds the rows a staging writer buffers in memory.
const stageRowGroup = 2048

// The writers hold a row group in memory until it is flushed; rows near the
// record size limit would make 2048 of them gigabytes. A staging file ends
// its row group past stageGroupBytes of input, and all of them do when the
// stager holds more than stageBudget (a dump spread over many months).
// Ordinary rows (1-2 KB) never reach the first.
const (
	stageGroupBytes = 8 << 20
	stageBudget     = 64 << 20
)

// stageSchema is the staging layout, derived from the catalogue.
type stageSchema struct {
	schema *parquet.Schema
	// strings are the string columns: they get no min/max statistics,
	// which parquet-go would copy whole (a 15 MB rawData twice per page
	// and again in the footer, which DuckDB then reads in one piece). The
	// merge filters staging files only on date.
	strings    []string
	col        []int // catalogue position → column index
	seqCol     int
	presentCol int
}

func newStageSchema() *stageSchema {
	g := parquet.Group{seqColumn: parquet.Required(parquet.Int(64)), presentColumn: parquet.Required(parquet.Int(64))}
	fields := data.Fields()
	s := &stageSchema{col: make([]int, len(fields))}
	for _, f := range fields {
		var n parquet.Node
		switch f.Kind {
		case data.KindTimestamp, data.KindInt, data.KindFlag:
			n = parquet.Int(64)
		case data.KindFloat:
			n = parquet.Leaf(parquet.DoubleType)
		default:
			n = parquet.String()
			s.strings = append(s.strings, f.Name)
		}
		g[f.Name] = parquet.Optional(n)
	}
	s.schema = parquet.NewSchema("stage", g)
	for i, f := range fields {
		lc, _ := s.schema.Lookup(f.Name)
		s.col[i] = lc.ColumnIndex
	}
	lc, _ := s.schema.Lookup(seqColumn)
	s.seqCol = lc.ColumnIndex
	lc, _ = s.schema.Lookup(presentColumn)
	s.presentCol = lc.ColumnIndex
	return s
}

// row builds the staging row of validated values into dst, which has room
// for one value per column; vals is in catalogue order, present the
// record's presentColumn mask.
func (s *stageSchema) row(dst parquet.Row, seq int64, present uint64, vals []value, kinds []data.Kind) parquet.Row {
	row := dst[:len(vals)+2]
	row[s.seqCol] = parquet.Int64Value(seq).Level(0, 0, s.seqCol)
	row[s.presentCol] = parquet.Int64Value(int64(present)).Level(0, 0, s.presentCol)
	for i, v := range vals {
		c := s.col[i]
		if v.null {
			row[c] = parquet.NullValue().Level(0, 0, c)
			continue
		}
		switch kinds[i] {
		case data.KindTimestamp, data.KindInt, data.KindFlag:
			row[c] = parquet.Int64Value(v.i).Level(0, 1, c)
		case data.KindFloat:
			row[c] = parquet.DoubleValue(v.f).Level(0, 1, c)
		default:
			row[c] = parquet.ByteArrayValue(v.s).Level(0, 1, c)
		}
	}
	return row
}

// stager routes rows into one staging file per month.
type stager struct {
	dir    string
	schema *stageSchema
	months map[string]*stageFile
	// pending is the input bytes of rows in unflushed row groups, over
	// all files.
	pending int64
	// ordered says whether ids compare as the store sorts them (integer
	// ids); only then can a month be found sorted.
	ordered bool
}

type stageFile struct {
	path  string
	f     *os.File
	w     *parquet.GenericWriter[any]
	buf   []parquet.Row
	rows  int64
	bytes int64 // input size of the rows
	// pending is the input bytes of the rows of the open row group, and
	// groupRows their number.
	pending, groupRows int64
	// sorted holds while every row came in strictly after the one before
	// in the store's order (date, then userWorklogId); last is that row.
	sorted         bool
	lastDate, last int64
	// partial says some record left a field out.
	partial bool
}

// stagedMonth is one month's finished staging file.
type stagedMonth struct {
	path string
	// rowBytes is the average input size of a row, to size the parts.
	rowBytes int64
	// rows is the number of staged rows.
	rows int64
	// sorted says the rows are in the store's order, with no two rows of
	// the same date and id: the merge may copy them without sorting.
	sorted bool
	// partial says some row left a field out (see presentColumn).
	partial bool
}

func newStager(dir string, schema *stageSchema, ordered bool) *stager {
	return &stager{dir: dir, schema: schema, months: map[string]*stageFile{}, ordered: ordered}
}

// add stages row, which took size bytes of input and has the given date
// and id, in month; partial says it leaves a field out.
func (s *stager) add(month string, date, id int64, row parquet.Row, size int, partial bool) error {
	sf := s.months[month]
	if sf == nil {
		p := filepath.Join(s.dir, "stage-"+month+".parquet")
		f, err := os.Create(p)
		if err != nil {
			return fmt.Errorf("create staging file: %w", err)
		}
		opts := []parquet.WriterOption{s.schema.schema,
			// Staging files live for one ingest, mostly in the page
			// cache: compressing them cost more CPU (snappy: ~4 s per
			// 1M events) than copying their bytes.
			parquet.Compression(&parquet.Uncompressed),
			parquet.MaxRowsPerRowGroup(stageRowGroup),
			parquet.PageBufferSize(256 << 10),
		}
		for _, name := range s.schema.strings {
			opts = append(opts, parquet.SkipPageBounds(name), parquet.SkipPageStatistics(name))
		}
		w := parquet.NewGenericWriter[any](f, opts...)
		sf = &stageFile{path: p, f: f, w: w, sorted: s.ordered}
		s.months[month] = sf
	} else if sf.sorted && (date < sf.lastDate || date == sf.lastDate && id <= sf.last) {
		sf.sorted = false
	}
	sf.lastDate, sf.last = date, id
	sf.partial = sf.partial || partial
	sf.buf = append(sf.buf, row)
	sf.rows++
	sf.bytes += int64(size)
	sf.pending += int64(size)
	s.pending += int64(size)
	if sf.groupRows++; sf.groupRows == stageRowGroup {
		// The writer ends this row group by itself when the rows reach it.
		s.pending -= sf.pending
		sf.pending, sf.groupRows = 0, 0
	}
	if len(sf.buf) >= 256 || sf.pending >= stageGroupBytes {
		if err := sf.flush(); err != nil {
			return err
		}
	}
	switch {
	case s.pending > stageBudget:
		for _, f := range s.months {
			if err := f.endGroup(); err != nil {
				return err
			}
		}
		s.pending = 0
	case sf.pending >= stageGroupBytes:
		s.pending -= sf.pending
		return sf.endGroup()
	}
	return nil
}

// endGroup writes the buffered rows and the open row group to the file.
func (sf *stageFile) endGroup() error {
	if sf.pending == 0 {
		return nil
	}
	if err := sf.flush(); err != nil {
		return err
	}
	if err := sf.w.Flush(); err != nil {
		return fmt.Errorf("write staging row group: %w", err)
	}
	sf.pending, sf.groupRows = 0, 0
	return nil
}

func (sf *stageFile) flush() error {
	if len(sf.buf) == 0 {
		return nil
	}
	if _, err := sf.w.WriteRows(sf.buf); err != nil {
		return fmt.Errorf("write staging rows: %w", err)
	}
	clear(sf.buf)
	sf.buf = sf.buf[:0]
	return nil
}

// close finishes every staging file and returns them by month.
func (s *stager) close() (map[string]stagedMonth, error) {
	var errs []error
	out := map[string]stagedMonth{}
	for m, sf := range s.months {
		err := sf.flush()
		if err == nil {
			err = sf.w.Close()
		}
		errs = append(errs, err, sf.f.Close())
		out[m] = stagedMonth{path: sf.path, rowBytes: sf.bytes / max(sf.rows, 1), rows: sf.rows, sorted: sf.sorted, partial: sf.partial}
		sf.w, sf.buf = nil, nil // let the writer's buffers go before the merge
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("finish staging files: %w", err)
	}
	return out, nil
}

// abort closes the files without finishing them.
func (s *stager) abort() {
	for _, sf := range s.months {
		sf.f.Close()
	}
}

func sortedKeys(m map[string]stagedMonth) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
