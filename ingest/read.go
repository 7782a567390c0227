package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// record is one event as read from a dump, not yet validated. JSON inputs
// fill obj with the object's text; CSV fills cells (header order). perr is a
// syntax error confined to this record (a malformed NDJSON line, a broken
// CSV row): the record is rejected, reading goes on.
type record struct {
	line  int64
	obj   []byte
	cells []string
	perr  error
}

// source yields the records of one input in order; io.EOF ends it. Any other
// error is fatal for the input (for instance a truncated JSON array).
type source interface {
	next() (record, error)
	// header is the CSV header, nil for JSON inputs.
	header() []string
}

// Magic bytes of the compressed formats we detect.
var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// readBufSize is the buffer of the decompressed stream. It is smaller than
// an NDJSON block (blockSize), so that a block is read into straight:
// bufio hands a read of at least its buffer's size on to the reader below
// once its buffer is empty, where a larger buffer would take every byte of
// the input and copy it into the block.
const readBufSize = 256 << 10

// openSource detects compression and format from the content and returns
// the record source; closer releases the decompressor. A compressed input
// ends with a *LimitError past lim.decompressed bytes, and every source
// refuses a record longer than lim.record with one: neither costs more
// memory than its limit.
//
// mapped, when not nil, is the same input mapped into memory (mapFile): an
// uncompressed NDJSON input is then split into blocks where it lies in the
// mapping, and r is read only to detect the format.
func openSource(r io.Reader, lim limits, mapped *mappedFile) (source, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(4)
	var plain io.Reader = br
	closer := func() {}
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("open gzip: %w", err)
		}
		plain, closer = &capReader{r: zr, limit: lim.decompressed}, func() { zr.Close() }
	case bytes.HasPrefix(magic, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return nil, nil, fmt.Errorf("open zstd: %w", err)
		}
		plain, closer = &capReader{r: zr, limit: lim.decompressed}, zr.Close
	}
	pr := bufio.NewReaderSize(plain, readBufSize)
	// Skip a UTF-8 byte order mark, then look at the first meaningful byte.
	skipped := 0
	if bom, _ := pr.Peek(3); bytes.Equal(bom, []byte{0xef, 0xbb, 0xbf}) {
		pr.Discard(3)
		skipped = 3
	}
	first, err := firstNonSpace(pr)
	if err != nil && !errors.Is(err, io.EOF) {
		closer()
		var le *LimitError
		if errors.As(err, &le) {
			return nil, nil, le
		}
		return nil, nil, fmt.Errorf("read input: %w", err)
	}
	switch first {
	case '[':
		return &arraySource{r: pr, line: 1, max: lim.record}, closer, nil
	case '{', 0:
		nd := &ndjsonSource{r: pr, max: lim.record}
		if mapped != nil && plain == io.Reader(br) {
			nd.mm, nd.off = mapped, skipped
			// The batches in flight hold at most the in-flight budget of
			// input, and the reader one block more.
			nd.keep = int(inFlightBytes(lim.record)) + 2*blockSize
		}
		return nd, closer, nil
	default:
		src, err := newCSVSource(pr, lim.record)
		if err != nil {
			closer()
			return nil, nil, err
		}
		return src, closer, nil
	}
}

// firstNonSpace peeks at the first byte that is not JSON whitespace, without
// consuming anything; 0 at end of input.
func firstNonSpace(r *bufio.Reader) (byte, error) {
	for n := 1; ; n *= 2 {
		b, err := r.Peek(n)
		for _, c := range b {
			if !isSpace(c) {
				return c, nil
			}
		}
		if err != nil {
			return 0, err
		}
		if n >= readBufSize {
			return 0, nil
		}
	}
}

// isSpace reports JSON whitespace. Most bytes tested are not: one
// comparison settles them.
func isSpace(c byte) bool { return c <= ' ' && (c == ' ' || c == '\t' || c == '\n' || c == '\r') }

// ndjsonSource reads one JSON object per line; blank lines are skipped but
// counted, so line numbers are physical lines. Run reads it a block of
// whole lines at a time (block), which the workers split into records:
// no line is copied. next serves the same records one by one.
type ndjsonSource struct {
	r     *bufio.Reader
	line  int64 // lines handed out so far
	max   int64 // longest line accepted
	carry []byte
	eof   bool
	// pending are the records of the last block next has not handed out.
	pending []record
	// mm, when set, holds the input (from its first byte), and blocks are
	// its slices: off is where the next block starts. The pages more than
	// keep bytes behind it are dropped from the resident set. seen, when
	// set, is told how far the input was read.
	mm   *mappedFile
	off  int
	keep int
	seen func(read int64)
}

func (s *ndjsonSource) header() []string { return nil }

func (s *ndjsonSource) next() (record, error) {
	for len(s.pending) == 0 {
		blk, first, err := s.block()
		if err != nil {
			return record{}, err
		}
		recs, err := splitLines(blk, first, s.max, nil)
		if err != nil {
			return record{}, err
		}
		s.pending = recs
	}
	rec := s.pending[0]
	s.pending = s.pending[1:]
	return rec, nil
}

// blockSize is the input an NDJSON block holds (more when one line is
// longer).
const blockSize = 512 << 10

// block returns the next run of whole lines (up to the last line end read,
// or to the end of the input) and the number of its first line; io.EOF
// when the input is done. A line longer than s.max is a *LimitError, found
// before more than twice s.max of it is held.
func (s *ndjsonSource) block() ([]byte, int64, error) {
	if s.mm != nil {
		return s.mappedBlock()
	}
	if s.eof && len(s.carry) == 0 {
		return nil, 0, io.EOF
	}
	buf := newBlock(len(s.carry))
	copy(buf, s.carry)
	s.carry = nil
	for {
		for !s.eof && len(buf) < cap(buf) {
			n, err := s.r.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if errors.Is(err, io.EOF) {
				s.eof = true
			} else if err != nil {
				return nil, 0, err
			}
		}
		end := len(buf)
		if !s.eof {
			end = bytes.LastIndexByte(buf, '\n') + 1
		}
		if end > 0 {
			// The line after the last line end waits for the next block.
			if rest := buf[end:]; len(rest) > 0 {
				s.carry = append(make([]byte, 0, len(rest)), rest...)
			}
			lines := buf[:end]
			first := s.line + 1
			s.line += int64(bytes.Count(lines, []byte{'\n'}))
			if lines[len(lines)-1] != '\n' {
				s.line++ // the last line has no line end
			}
			return lines, first, nil
		}
		if len(buf) == 0 {
			return nil, 0, io.EOF
		}
		// One line fills the buffer: grow it, up to the limit.
		if int64(len(buf)) > s.max {
			return nil, 0, &LimitError{Line: s.line + 1, Limit: s.max, Err: ErrRecordTooLarge}
		}
		grown := make([]byte, len(buf), 2*cap(buf))
		copy(grown, buf)
		buf = grown
	}
}

// mappedBlock is block for a mapped input: the next blockSize bytes of the
// mapping, cut after the last line end in them (a longer line is taken
// whole, up to the record limit).
func (s *ndjsonSource) mappedBlock() ([]byte, int64, error) {
	data := s.mm.data()
	if s.off >= len(data) {
		return nil, 0, io.EOF
	}
	end := min(s.off+blockSize, len(data))
	if end < len(data) {
		if nl := bytes.LastIndexByte(data[s.off:end], '\n'); nl >= 0 {
			end = s.off + nl + 1
		} else {
			// One line fills the block: its end, up to the limit.
			limit := len(data)
			if int64(limit-s.off) > s.max {
				limit = s.off + int(s.max) + 1
			}
			nl := -1
			if limit > end {
				nl = bytes.IndexByte(data[end:limit], '\n')
			}
			switch {
			case nl >= 0:
				end += nl + 1
			case limit < len(data):
				return nil, 0, &LimitError{Line: s.line + 1, Limit: s.max, Err: ErrRecordTooLarge}
			default:
				end = len(data)
			}
		}
	}
	lines := data[s.off:end:end]
	s.off = end
	if s.off > s.keep {
		s.mm.drop(s.off - s.keep)
	}
	if s.seen != nil {
		s.seen(int64(s.off))
	}
	first := s.line + 1
	s.line += int64(bytes.Count(lines, []byte{'\n'}))
	if lines[len(lines)-1] != '\n' {
		s.line++ // the last line has no line end
	}
	return lines, first, nil
}

// blockPool recycles the NDJSON blocks Run is done with (recycleBlock):
// a new block would be zeroed first, 1.7 GB for a million events.
var blockPool sync.Pool

// pooledBlock is the capacity of the blocks blockPool holds: a block and
// the start of a line carried over from the block before.
const pooledBlock = blockSize + 64<<10

// newBlock returns an empty block with room for blockSize bytes after
// carry bytes, of length carry.
func newBlock(carry int) []byte {
	if carry+blockSize <= pooledBlock {
		if b, ok := blockPool.Get().(*[]byte); ok {
			return (*b)[:carry]
		}
		return make([]byte, carry, pooledBlock)
	}
	return make([]byte, carry, carry+blockSize)
}

// recycleBlock hands a block that block returned back for reuse. Nothing
// may refer to it any more: not its records, nor values decoded from them.
func recycleBlock(b []byte) {
	if cap(b) == pooledBlock {
		b = b[:0]
		blockPool.Put(&b)
	}
}

// splitLines appends the records of the lines of blk, whose first line is
// number first, to recs: each non-blank line is a record pointing into blk
// (no copy). A line longer than max ends the list with a *LimitError; the
// records before it are returned with it.
func splitLines(blk []byte, first, max int64, recs []record) ([]record, error) {
	line := first
	for len(blk) > 0 {
		var l []byte
		if i := bytes.IndexByte(blk, '\n'); i >= 0 {
			l, blk = blk[:i], blk[i+1:]
		} else {
			l, blk = blk, nil
		}
		if int64(len(l)) > max {
			return recs, &LimitError{Line: line, Limit: max, Err: ErrRecordTooLarge}
		}
		if l = bytes.TrimSpace(l); len(l) > 0 {
			rec := record{line: line, obj: l[:len(l):len(l)]}
			if l[0] != '{' {
				rec.perr = errors.New("expected a JSON object")
			}
			recs = append(recs, rec)
		}
		line++
	}
	return recs, nil
}

// arraySource splits a JSON array into its elements as it streams, tracking
// the line each element starts on.
type arraySource struct {
	r       *bufio.Reader
	line    int64
	started bool
	ended   bool
	buf     []byte
	max     int64 // longest element accepted
}

func (s *arraySource) header() []string { return nil }

func (s *arraySource) readByte() (byte, error) {
	c, err := s.r.ReadByte()
	if err == nil && c == '\n' {
		s.line++
	}
	return c, err
}

// skipSpace returns the next non-space byte.
func (s *arraySource) skipSpace() (byte, error) {
	for {
		c, err := s.readByte()
		if err != nil || !isSpace(c) {
			return c, err
		}
	}
}

func (s *arraySource) next() (record, error) {
	if s.ended {
		return record{}, io.EOF
	}
	c, err := s.skipSpace()
	if err != nil {
		return record{}, s.truncated(err)
	}
	if !s.started {
		s.started = true // openSource saw '['
		if c, err = s.skipSpace(); err != nil {
			return record{}, s.truncated(err)
		}
		if c == ']' {
			return s.finish()
		}
	} else {
		switch c {
		case ']':
			return s.finish()
		case ',':
			if c, err = s.skipSpace(); err != nil {
				return record{}, s.truncated(err)
			}
		default:
			return record{}, fmt.Errorf("line %d: JSON array: expected ',' or ']', got %q", s.line, c)
		}
	}
	start := s.line
	s.buf = append(s.buf[:0], c)
	if err := s.scanValue(c); err != nil {
		if errors.Is(err, ErrRecordTooLarge) {
			return record{}, &LimitError{Line: start, Limit: s.max, Err: ErrRecordTooLarge}
		}
		return record{}, s.truncated(err)
	}
	rec := record{line: start, obj: bytes.Clone(s.buf)}
	if c != '{' {
		rec.perr = errors.New("expected a JSON object")
	}
	return rec, nil
}

// scanValue copies the rest of a JSON value whose first byte c is already in
// s.buf: strings and nested brackets are followed; a scalar ends before the
// next delimiter.
func (s *arraySource) scanValue(c byte) error {
	if c != '{' && c != '[' && c != '"' {
		for {
			b, err := s.r.Peek(1)
			if err != nil {
				return err
			}
			if isSpace(b[0]) || b[0] == ',' || b[0] == ']' || b[0] == '}' {
				return nil
			}
			if int64(len(s.buf)) >= s.max {
				return ErrRecordTooLarge
			}
			s.r.ReadByte()
			s.buf = append(s.buf, b[0])
		}
	}
	depth, inString, escaped := 0, false, false
	if c == '"' {
		inString = true
	} else {
		depth = 1
	}
	for {
		b, err := s.readByte()
		if err != nil {
			return err
		}
		if int64(len(s.buf)) >= s.max {
			return ErrRecordTooLarge
		}
		s.buf = append(s.buf, b)
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case b == '\\':
				escaped = true
			case b == '"':
				inString = false
				if depth == 0 {
					return nil
				}
			}
		case b == '"':
			inString = true
		case b == '{' || b == '[':
			depth++
		case b == '}' || b == ']':
			depth--
			if depth == 0 {
				return nil
			}
		}
	}
}

func (s *arraySource) finish() (record, error) {
	s.ended = true
	c, err := s.skipSpace()
	if err == nil {
		return record{}, fmt.Errorf("line %d: unexpected %q after the end of the JSON array", s.line, c)
	}
	if errors.Is(err, io.EOF) {
		return record{}, io.EOF
	}
	return record{}, fmt.Errorf("read input: %w", err)
}

func (s *arraySource) truncated(err error) error {
	var le *LimitError
	if errors.As(err, &le) {
		return le
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("line %d: JSON array is not closed (truncated input?)", s.line)
	}
	return fmt.Errorf("read input: %w", err)
}

// csvSource reads CSV with a header row of field names.
type csvSource struct {
	r    *csv.Reader
	head []string
	// stop bounds what encoding/csv may read ahead of the current record.
	stop *stopReader
	max  int64
	// nextLine is the line the next record starts on.
	nextLine int64
}

// csvBufSize is the buffer between stopReader and encoding/csv: the most
// a record can have read ahead beyond its own bytes.
const csvBufSize = 64 << 10

func newCSVSource(r io.Reader, maxRecord int64) (*csvSource, error) {
	stop := &stopReader{r: r}
	// encoding/csv keeps a *bufio.Reader it is given, so the bytes it has
	// consumed (InputOffset) and the bytes stop handed out differ by at
	// most csvBufSize.
	cr := csv.NewReader(bufio.NewReaderSize(stop, csvBufSize))
	cr.FieldsPerRecord = -1
	s := &csvSource{r: cr, stop: stop, max: maxRecord, nextLine: 1}
	head, err := s.read()
	if errors.Is(err, ErrRecordTooLarge) {
		return nil, &LimitError{Line: 1, Limit: maxRecord, Err: ErrRecordTooLarge}
	}
	if err != nil {
		return nil, fmt.Errorf("read CSV header: %w", err)
	}
	seen := map[string]bool{}
	for _, h := range head {
		if seen[h] {
			return nil, fmt.Errorf("CSV header: column %q appears twice", h)
		}
		seen[h] = true
	}
	s.head = head
	return s, nil
}

// read reads one CSV record of at most s.max bytes (ErrRecordTooLarge
// beyond) and advances nextLine past it.
func (s *csvSource) read() ([]string, error) {
	// A record may take s.max bytes from its first byte on; whatever the
	// buffer holds beyond them belongs to the next record.
	s.stop.stop = s.r.InputOffset() + s.max + csvBufSize
	cells, err := s.r.Read()
	// encoding/csv may report the cut as a quoting error of the partial
	// line rather than pass errStop on: the position tells.
	if err != nil && (errors.Is(err, errStop) || s.stop.pos >= s.stop.stop) {
		return nil, ErrRecordTooLarge
	}
	if err != nil {
		return cells, err
	}
	// The record's lines: the first, plus the line breaks inside quoted
	// cells (csv turns \r\n there into \n, one per break).
	start, _ := s.r.FieldPos(0)
	s.nextLine = int64(start) + 1
	for _, c := range cells {
		s.nextLine += int64(strings.Count(c, "\n"))
	}
	return cells, nil
}

func (s *csvSource) header() []string { return s.head }

func (s *csvSource) next() (record, error) {
	line := s.nextLine
	cells, err := s.read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			s.nextLine = int64(pe.Line) + 1
			return record{line: int64(pe.StartLine), perr: pe.Err}, nil
		}
		if errors.Is(err, ErrRecordTooLarge) {
			return record{}, &LimitError{Line: line, Limit: s.max, Err: ErrRecordTooLarge}
		}
		return record{}, err
	}
	start, _ := s.r.FieldPos(0)
	rec := record{line: int64(start), cells: cells}
	if len(cells) != len(s.head) {
		rec.perr = fmt.Errorf("expected %d CSV fields (the header's), got %d", len(s.head), len(cells))
	}
	return rec, nil
}
