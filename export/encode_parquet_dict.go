package export

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"math/bits"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// The Parquet encoder gathers a row group column by column before handing
// it to pqarrow, and hands its strings over as Arrow dictionary arrays.
//
// Why: given plain strings, arrow-go's dictionary encoder hashes every value
// through BinaryMemoTable.InsertOrGet, which boxes each value in an
// interface (one heap allocation per value, ~3.5M for 300k rows of our 16
// string columns) and computes byte-array statistics over every value; that
// was a sixth of an export's CPU time, plus the garbage collector's share.
// Given a dictionary array, pqarrow puts the dictionary into the column
// writer once (PutDictionary) and then writes only the indices
// (WriteDictIndices), with statistics over the dictionary's distinct values.
// But it keeps a column chunk's dictionary only while every array written
// to the chunk carries the same dictionary; a changed one makes it fall back
// to plain values. So the dictionary is built here over a whole row group
// (a hash table of the row group's distinct values, no allocation per
// value), and the row group is written when it is complete.
//
// The writer's own choices are kept: a column whose dictionary does not pay
// (dictionary plus indices not smaller than the plain values, checked like
// arrow-go's cost fallback until a page's worth of values has been seen) or
// outgrows the dictionary page limit is handed over as plain strings, and
// arrow-go then decides for that column chunk as before.

// pqColumn gathers one column of the row group being filled.
type pqColumn interface {
	// add appends the values of arr, which has the column's type.
	add(arr arrow.Array) error
	// take returns the row group's column and starts an empty one.
	take() (*arrow.Chunked, error)
	// release drops what is gathered.
	release()
}

// newPQColumn returns the gatherer of a column of type dt: a dictionary for
// strings and lists of strings, the arrays themselves for the rest.
func newPQColumn(dt arrow.DataType, mem memory.Allocator, pageSize, dictLimit int64) pqColumn {
	switch t := dt.(type) {
	case *arrow.StringType:
		return &stringColumn{dict: newStrDict(mem, pageSize, dictLimit)}
	case *arrow.ListType:
		if _, ok := t.Elem().(*arrow.StringType); ok {
			return &listColumn{dt: t, elems: newStrDict(mem, pageSize, dictLimit), mem: mem}
		}
	}
	return &keptColumn{dt: dt}
}

// keptColumn holds the column's arrays themselves (retained) until the row
// group is written: numbers, dates, and any type without a dictionary here.
type keptColumn struct {
	dt   arrow.DataType
	arrs []arrow.Array
}

func (c *keptColumn) add(arr arrow.Array) error {
	arr.Retain()
	c.arrs = append(c.arrs, arr)
	return nil
}

func (c *keptColumn) take() (*arrow.Chunked, error) {
	ch := arrow.NewChunked(c.dt, c.arrs)
	c.release()
	return ch, nil
}

func (c *keptColumn) release() {
	for _, a := range c.arrs {
		a.Release()
	}
	clear(c.arrs)
	c.arrs = c.arrs[:0]
}

// strDict dictionary-encodes the string values of one column chunk: the
// distinct values in order of first appearance, and each value's index.
// Its slices are reused from row group to row group; what it hands over is
// copied into buffers of the allocator.
type strDict struct {
	mem       memory.Allocator
	seed      maphash.Seed
	pageSize  int64 // the writer's data page size: values seen before the cost check is final
	dictLimit int64 // the writer's dictionary page limit

	// The distinct values: value i is data[offs[i]:offs[i+1]], its hash
	// hashes[i]; slots is an open-addressing table of them.
	offs   []int32
	data   []byte
	hashes []uint64
	slots  []slot

	// The values: each one's index into the distinct values (0 for a
	// null), and their validity, kept from the first null on.
	idx   []int32
	valid []byte
	nulls int

	raw     int64 // plain size of the values so far: bytes plus a 4-byte length each
	settled bool  // the dictionary has paid for a page's worth of values, so it stays
	// dense holds the values as plain strings once the dictionary did not
	// pay or outgrew its limit; the rest of the row group is kept as given.
	dense   []arrow.Array
	isDense bool
}

// slot is an entry of strDict's table: a distinct value's index plus one
// (0: a free slot) and the high half of its hash, which most lookups of
// another value stop at without reading the value.
type slot struct {
	tag uint32
	id  int32
}

func newStrDict(mem memory.Allocator, pageSize, dictLimit int64) *strDict {
	d := &strDict{mem: mem, seed: maphash.MakeSeed(), pageSize: pageSize, dictLimit: dictLimit}
	d.reset()
	return d
}

// reset empties the dictionary for the next column chunk.
func (d *strDict) reset() {
	d.offs = append(d.offs[:0], 0)
	d.data = d.data[:0]
	d.hashes = d.hashes[:0]
	if len(d.slots) == 0 {
		d.slots = make([]slot, 1024)
	} else {
		clear(d.slots)
	}
	d.idx = d.idx[:0]
	d.valid = d.valid[:0]
	d.nulls, d.raw, d.settled, d.isDense = 0, 0, false, false
	for _, a := range d.dense {
		a.Release()
	}
	clear(d.dense)
	d.dense = d.dense[:0]
}

// add appends the values [from, to) of s.
func (d *strDict) add(s *array.String, from, to int) error {
	if from == to {
		return nil
	}
	if d.isDense {
		part := array.NewSlice(s, int64(from), int64(to))
		d.dense = append(d.dense, part)
		return nil
	}
	var data []byte
	if b := s.Data().Buffers()[2]; b != nil {
		data = b.Bytes()
	}
	offs := s.ValueOffsets()
	n, m := len(d.idx), to-from
	d.idx = slices.Grow(d.idx, m)[:n+m]
	idx := d.idx[n:]
	if s.NullN() == 0 {
		// No null: no look at validity, and the raw size in one go.
		for i := from; i < to; i++ {
			idx[i-from] = d.insert(data[offs[i]:offs[i+1]])
		}
		d.raw += int64(offs[to]-offs[from]) + 4*int64(m)
		if d.nulls > 0 {
			d.valid = growBits(d.valid, n+m)
			bitutil.SetBitsTo(d.valid, int64(n), int64(m), true)
		}
		return d.check()
	}
	if d.nulls == 0 {
		// The first null of the column chunk: the values so far are valid.
		d.valid = growBits(d.valid[:0], n)
		bitutil.SetBitsTo(d.valid, 0, int64(n), true)
	}
	d.valid = growBits(d.valid, n+m)
	for i := from; i < to; i++ {
		if s.IsNull(i) {
			d.nulls++
			idx[i-from] = 0
			continue
		}
		bitutil.SetBit(d.valid, n+i-from)
		v := data[offs[i]:offs[i+1]]
		d.raw += int64(len(v)) + 4
		idx[i-from] = d.insert(v)
	}
	return d.check()
}

// growBits makes bitmap b hold n bits, the new ones unset.
func growBits(b []byte, n int) []byte {
	old := len(b)
	need := int(bitutil.BytesForBits(int64(n)))
	if need <= old {
		return b
	}
	b = slices.Grow(b, need-old)[:need]
	clear(b[old:])
	return b
}

// insert returns the index of v among the distinct values, adding it.
func (d *strDict) insert(v []byte) int32 {
	h := maphash.Bytes(d.seed, v)
	tag := uint32(h >> 32)
	mask := len(d.slots) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		sl := d.slots[i]
		if sl.id == 0 {
			id := int32(len(d.hashes))
			d.slots[i] = slot{tag: tag, id: id + 1}
			d.hashes = append(d.hashes, h)
			d.data = append(d.data, v...)
			d.offs = append(d.offs, int32(len(d.data)))
			if 2*len(d.hashes) > len(d.slots) {
				d.rehash()
			}
			return id
		}
		if sl.tag == tag {
			if id := sl.id - 1; bytes.Equal(d.data[d.offs[id]:d.offs[id+1]], v) {
				return id
			}
		}
	}
}

// rehash doubles the table.
func (d *strDict) rehash() {
	d.slots = make([]slot, 2*len(d.slots))
	mask := len(d.slots) - 1
	for id, h := range d.hashes {
		i := int(h) & mask
		for d.slots[i].id != 0 {
			i = (i + 1) & mask
		}
		d.slots[i] = slot{tag: uint32(h >> 32), id: int32(id) + 1}
	}
}

// dictBytes is the dictionary page's plain size.
func (d *strDict) dictBytes() int64 { return int64(len(d.data)) + 4*int64(len(d.hashes)) }

// check applies the writer's rules as values come: the dictionary must
// stay under the dictionary page limit, and once a page's worth of values
// has been seen it must have paid for them (see pays), or the column
// chunk goes over to plain strings.
func (d *strDict) check() error {
	if d.dictBytes() >= d.dictLimit || len(d.data) > 1<<30 {
		return d.toDense()
	}
	if d.settled || d.raw < d.pageSize {
		return nil
	}
	if !d.pays() {
		return d.toDense()
	}
	d.settled = true
	return nil
}

// pays reports whether the dictionary plus its bit-packed indices are
// smaller than the plain values, arrow-go's cost fallback rule, which the
// writer would apply to plain strings before cutting the first page. (The
// writer checks after every batch it is given, so its first small batch
// can decide for the column chunk; here the rule waits for a page's worth
// of values or for the end of the row group.)
func (d *strDict) pays() bool {
	width := bits.Len32(uint32(max(len(d.hashes), 2) - 1))
	indices := 1 + (int64(len(d.idx)-d.nulls)*int64(width)+7)/8
	return d.dictBytes()+indices < d.raw
}

// toDense turns what is gathered into plain strings.
func (d *strDict) toDense() error {
	arr, err := d.dictArray()
	if err != nil {
		return err
	}
	defer arr.Release()
	dense, err := denseStrings(d.mem, arr.(*array.Dictionary))
	if err != nil {
		return err
	}
	d.reset()
	d.isDense = true
	d.dense = append(d.dense, dense)
	return nil
}

// dictType is the type of the arrays handed to the writer.
var dictType = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}

// copyBuffer copies b into a buffer of mem.
func copyBuffer(mem memory.Allocator, b []byte) *memory.Buffer {
	buf := memory.NewResizableBuffer(mem)
	buf.Resize(len(b))
	copy(buf.Bytes(), b)
	return buf
}

// dictArray returns the gathered values as one dictionary array.
func (d *strDict) dictArray() (arrow.Array, error) {
	dict := array.NewData(arrow.BinaryTypes.String, len(d.hashes),
		[]*memory.Buffer{nil, copyBuffer(d.mem, arrow.Int32Traits.CastToBytes(d.offs)), copyBuffer(d.mem, d.data)}, nil, 0, 0)
	defer dict.Release()
	var valid *memory.Buffer
	if d.nulls > 0 {
		valid = copyBuffer(d.mem, d.valid)
	}
	data := array.NewDataWithDictionary(dictType, len(d.idx),
		[]*memory.Buffer{valid, copyBuffer(d.mem, arrow.Int32Traits.CastToBytes(d.idx))}, d.nulls, 0, dict)
	defer data.Release()
	for _, b := range data.Buffers() {
		if b != nil {
			defer b.Release()
		}
	}
	for _, b := range dict.Buffers() {
		if b != nil {
			defer b.Release()
		}
	}
	return array.MakeFromData(data), nil
}

// take returns the column chunk's values, as a dictionary array or as
// plain strings, and empties the dictionary.
func (d *strDict) take() (*arrow.Chunked, error) {
	defer d.reset()
	if !d.isDense && !d.settled && !d.pays() {
		if err := d.toDense(); err != nil {
			return nil, err
		}
	}
	if d.isDense {
		return arrow.NewChunked(arrow.BinaryTypes.String, d.dense), nil
	}
	arr, err := d.dictArray()
	if err != nil {
		return nil, err
	}
	defer arr.Release()
	return arrow.NewChunked(dictType, []arrow.Array{arr}), nil
}

// denseStrings materializes a dictionary array of strings.
func denseStrings(mem memory.Allocator, arr *array.Dictionary) (arrow.Array, error) {
	dict, ok := arr.Dictionary().(*array.String)
	if !ok {
		return nil, fmt.Errorf("dictionary of %s, want strings", arr.Dictionary().DataType())
	}
	b := array.NewStringBuilder(mem)
	defer b.Release()
	b.Reserve(arr.Len())
	for i := 0; i < arr.Len(); i++ {
		if arr.IsNull(i) {
			b.AppendNull()
			continue
		}
		b.Append(dict.Value(arr.GetValueIndex(i)))
	}
	return b.NewArray(), nil
}

// stringColumn gathers a string column.
type stringColumn struct{ dict *strDict }

func (c *stringColumn) add(arr arrow.Array) error {
	s, ok := arr.(*array.String)
	if !ok {
		return fmt.Errorf("string column of %s", arr.DataType())
	}
	return c.dict.add(s, 0, s.Len())
}

func (c *stringColumn) take() (*arrow.Chunked, error) { return c.dict.take() }
func (c *stringColumn) release()                      { c.dict.reset() }

// listColumn gathers a column of lists of strings: the lists' offsets and
// validity here, their elements in a dictionary.
type listColumn struct {
	dt    *arrow.ListType
	mem   memory.Allocator
	elems *strDict
	offs  []int32
	valid []byte
	nulls int
}

func (c *listColumn) add(arr arrow.Array) error {
	l, ok := arr.(*array.List)
	if !ok {
		return fmt.Errorf("list column of %s", arr.DataType())
	}
	child, ok := l.ListValues().(*array.String)
	if !ok {
		return fmt.Errorf("list of %s, want strings", l.ListValues().DataType())
	}
	if len(c.offs) == 0 {
		c.offs = append(c.offs, 0)
	}
	n := l.Len()
	if n == 0 {
		return nil
	}
	rows := len(c.offs) - 1
	c.valid = growBits(c.valid, rows+n)
	lo, _ := l.ValueOffsets(0)
	_, hi := l.ValueOffsets(n - 1)
	base := c.offs[rows]
	raw := l.Offsets()[l.Data().Offset() : l.Data().Offset()+n+1]
	for i := 0; i < n; i++ {
		if l.IsNull(i) {
			c.nulls++
		} else {
			bitutil.SetBit(c.valid, rows+i)
		}
		c.offs = append(c.offs, base+raw[i+1]-int32(lo))
	}
	return c.elems.add(child, int(lo), int(hi))
}

func (c *listColumn) take() (*arrow.Chunked, error) {
	defer c.release()
	elems, err := c.elems.take()
	if err != nil {
		return nil, err
	}
	defer elems.Release()
	rows := max(len(c.offs)-1, 0)
	if len(c.offs) == 0 {
		c.offs = append(c.offs, 0)
	}
	var child arrow.Array
	switch chunks := elems.Chunks(); len(chunks) {
	case 1:
		child = chunks[0]
	case 0:
		b := array.NewStringBuilder(c.mem)
		child = b.NewArray()
		b.Release()
		defer child.Release()
	default:
		child, err = array.Concatenate(chunks, c.mem)
		if err != nil {
			return nil, fmt.Errorf("gather list elements: %w", err)
		}
		defer child.Release()
	}
	dt := arrow.ListOfField(arrow.Field{Name: c.dt.ElemField().Name, Type: child.DataType(), Nullable: c.dt.ElemField().Nullable})
	var valid *memory.Buffer
	if c.nulls > 0 {
		valid = copyBuffer(c.mem, c.valid)
		defer valid.Release()
	}
	offs := copyBuffer(c.mem, arrow.Int32Traits.CastToBytes(c.offs))
	defer offs.Release()
	data := array.NewData(dt, rows, []*memory.Buffer{valid, offs}, []arrow.ArrayData{child.Data()}, c.nulls, 0)
	defer data.Release()
	arr := array.MakeFromData(data)
	defer arr.Release()
	return arrow.NewChunked(dt, []arrow.Array{arr}), nil
}

func (c *listColumn) release() {
	c.elems.reset()
	c.offs = c.offs[:0]
	c.valid = c.valid[:0]
	c.nulls = 0
}
