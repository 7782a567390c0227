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

// readBufSize is the buffer of the decompressed stream.
const readBufSize = 1 << 20

// openSource detects compression and format from the content and returns
// the record source; closer releases the decompressor. A compressed input
// ends with a *LimitError past lim.decompressed bytes, and every source
// refuses a record longer than lim.record with one: neither costs more
// memory than its limit.
func openSource(r io.Reader, lim limits) (source, func(), error) {
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
	if bom, _ := pr.Peek(3); bytes.Equal(bom, []byte{0xef, 0xbb, 0xbf}) {
		pr.Discard(3)
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
		return &ndjsonSource{r: pr, max: lim.record}, closer, nil
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

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// ndjsonSource reads one JSON object per line; blank lines are skipped but
// counted, so line numbers are physical lines.
type ndjsonSource struct {
	r     *bufio.Reader
	line  int64
	buf   []byte
	arena []byte
	max   int64 // longest line accepted
}

func (s *ndjsonSource) header() []string { return nil }

func (s *ndjsonSource) next() (record, error) {
	for {
		line, err := s.readLine()
		if errors.Is(err, ErrRecordTooLarge) {
			return record{}, &LimitError{Line: s.line + 1, Limit: s.max, Err: ErrRecordTooLarge}
		}
		if len(line) == 0 && err != nil {
			return record{}, err
		}
		s.line++
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			if err != nil {
				return record{}, err
			}
			continue
		}
		rec := record{line: s.line, obj: s.keep(line)}
		if line[0] != '{' {
			rec.perr = errors.New("expected a JSON object")
		}
		return rec, nil
	}
}

// keep copies a line into the current arena: records of a batch share a
// few large allocations instead of one each. Earlier records keep pointing
// into the arena they were copied to when it is replaced.
func (s *ndjsonSource) keep(line []byte) []byte {
	if len(s.arena)+len(line) > cap(s.arena) {
		s.arena = make([]byte, 0, max(arenaSize, len(line)))
	}
	start := len(s.arena)
	s.arena = append(s.arena, line...)
	return s.arena[start:len(s.arena):len(s.arena)]
}

// arenaSize is the allocation unit of ndjsonSource.keep.
const arenaSize = 256 << 10

// readLine returns the next line without its newline. The slice is valid
// until the next call. A line longer than s.max is ErrRecordTooLarge, found
// before more than s.max plus one buffer of it is held.
func (s *ndjsonSource) readLine() ([]byte, error) {
	b, err := s.r.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		if err == nil {
			b = b[:len(b)-1]
		}
		if int64(len(b)) > s.max {
			return nil, ErrRecordTooLarge
		}
		return b, err
	}
	s.buf = append(s.buf[:0], b...)
	for errors.Is(err, bufio.ErrBufferFull) {
		if int64(len(s.buf)) > s.max {
			return nil, ErrRecordTooLarge
		}
		b, err = s.r.ReadSlice('\n')
		s.buf = append(s.buf, b...)
	}
	if err == nil {
		s.buf = s.buf[:len(s.buf)-1]
	}
	if int64(len(s.buf)) > s.max {
		return nil, ErrRecordTooLarge
	}
	return s.buf, err
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
