package privacy

import (
	"fmt"
	"math"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Transform returns the batch a user may see: omitted columns dropped,
// date-times of the timestamp class cut to their date part (a date32 column),
// names replaced by pseudonyms. Columns are found by name, not position;
// a column outside the catalogue is an error (fail closed). Untouched columns are the
// input's arrays, retained, never copied; when nothing changes, the input
// batch itself is returned, retained. The input is not modified; the caller
// releases both batches.
//
// The pseudonym of a row is that of its userId, or of its name when userId is
// null (or absent from the batch); a row with neither has a null pseudonym.
// The userId is read before it is dropped, so the pseudonym works at the
// level that omits userId.
func (p *Policy) Transform(rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pl := p.planFor(rec.Schema())
	if len(pl.unknown) > 0 {
		return nil, fmt.Errorf("column %q is not a worklog field: the privacy layer passes only catalogue fields", pl.unknown[0])
	}
	if pl.identity {
		rec.Retain()
		return rec, nil
	}
	cols := make([]arrow.Array, len(pl.src))
	var built []arrow.Array
	defer func() {
		// NewRecordBatch retains what it keeps; the arrays built here are
		// released once, on success and on error alike.
		for _, a := range built {
			a.Release()
		}
	}()
	for j, src := range pl.src {
		in := rec.Column(src)
		name := pl.in.Field(src).Name
		switch pl.act[j] {
		case keep:
			cols[j] = in
		case toDate:
			a, err := p.dateColumn(in)
			if err != nil {
				return nil, fmt.Errorf("column %q: %w", name, err)
			}
			built = append(built, a)
			cols[j] = a
		case toPseudonym:
			var ids arrow.Array
			if pl.userCol >= 0 {
				ids = rec.Column(pl.userCol)
			}
			a, err := p.pseudonymColumn(in, ids)
			if err != nil {
				return nil, fmt.Errorf("column %q: %w", name, err)
			}
			built = append(built, a)
			cols[j] = a
		}
	}
	return array.NewRecordBatch(pl.out, cols, rec.NumRows()), nil
}

// utcZones are the time zones whose wall-clock date is the date of the
// stored value.
var utcZones = map[string]bool{"": true, "UTC": true, "Etc/UTC": true, "Z": true, "+00:00": true}

// dateColumn cuts a date-time column to its date part. The store holds naive
// wall-clock times (timestamp without zone), so the date part is computed on
// the value as stored; zoned timestamps other than UTC are refused rather
// than cut at the wrong midnight.
func (p *Policy) dateColumn(in arrow.Array) (arrow.Array, error) {
	var (
		vals   []int64
		perDay int64
	)
	switch a := in.(type) {
	case *array.Date32:
		a.Retain()
		return a, nil
	case *array.Timestamp:
		tt := a.DataType().(*arrow.TimestampType)
		if !utcZones[tt.TimeZone] {
			return nil, fmt.Errorf("cut to date: unsupported time zone %q", tt.TimeZone)
		}
		perDay = int64(24 * time.Hour / tt.Unit.Multiplier())
		vals = arrow.Int64Traits.CastFromBytes(arrow.TimestampTraits.CastToBytes(a.TimestampValues()))
	case *array.Date64:
		perDay = 86400 * 1000
		vals = arrow.Int64Traits.CastFromBytes(arrow.Date64Traits.CastToBytes(a.Date64Values()))
	default:
		return nil, fmt.Errorf("cut to date: unsupported type %s", in.DataType())
	}
	n := in.Len()
	values := memory.NewResizableBuffer(p.mem)
	defer values.Release()
	values.Resize(arrow.Date32Traits.BytesRequired(n))
	out := arrow.Date32Traits.CastFromBytes(values.Bytes())
	for i, v := range vals {
		d := v / perDay
		if v%perDay < 0 {
			d-- // floor: 1969-12-31 23:00 is day -1, not day 0
		}
		out[i] = arrow.Date32(d)
	}
	validity := p.validity(in)
	if validity != nil {
		defer validity.Release()
	}
	d := array.NewData(arrow.FixedWidthTypes.Date32, n, []*memory.Buffer{validity, values}, nil, in.NullN(), 0)
	defer d.Release()
	return array.MakeFromData(d), nil
}

// validity returns the validity bitmap of in, starting at bit 0, for a new
// array of the same length and null slots: the input's own buffer, retained,
// when the input is not sliced; nil when there are no nulls. The caller
// releases it.
func (p *Policy) validity(in arrow.Array) *memory.Buffer {
	if in.NullN() == 0 {
		return nil
	}
	d := in.Data()
	bm := d.Buffers()[0]
	if bm == nil {
		return nil
	}
	if d.Offset() == 0 {
		bm.Retain()
		return bm
	}
	out := memory.NewResizableBuffer(p.mem)
	out.Resize(int(bitutil.BytesForBits(int64(d.Len()))))
	bitutil.CopyBitmap(bm.Bytes(), d.Offset(), d.Len(), out.Bytes(), 0)
	return out
}

// stringArray is what a name column must offer: utf8, large utf8 and string
// view arrays all do.
type stringArray interface {
	arrow.Array
	Value(i int) string
}

// pseudonymColumn builds the utf8 column of pseudonyms for a name column and
// the userId column beside it (nil when the batch has none). Every pseudonym
// has the same length, so the buffers are sized once and filled without a
// per-row allocation; pseudonyms come from the policy's caches.
func (p *Policy) pseudonymColumn(nameCol, idCol arrow.Array) (arrow.Array, error) {
	names, ok := nameCol.(stringArray)
	if !ok {
		return nil, fmt.Errorf("pseudonymize: unsupported type %s", nameCol.DataType())
	}
	var (
		idArr *array.Int64
		ids   []int64
	)
	switch a := idCol.(type) {
	case nil, *array.Null:
	case *array.Int64:
		idArr, ids = a, a.Int64Values()
	default:
		return nil, fmt.Errorf("pseudonymize: column %q: unsupported type %s", userIDField, idCol.DataType())
	}
	n := names.Len()
	if int64(n)*int64(pseudonymLen) > math.MaxInt32 {
		return nil, fmt.Errorf("pseudonymize: batch of %d rows is too large for utf8 offsets", n)
	}

	offsets := memory.NewResizableBuffer(p.mem)
	defer offsets.Release()
	offsets.Resize(arrow.Int32Traits.BytesRequired(n + 1))
	off := arrow.Int32Traits.CastFromBytes(offsets.Bytes())

	values := memory.NewResizableBuffer(p.mem)
	defer values.Release()
	values.Resize(n * pseudonymLen)
	buf := values.Bytes()

	validity := memory.NewResizableBuffer(p.mem)
	defer validity.Release()
	validity.Resize(int(bitutil.BytesForBits(int64(n))))
	bits := validity.Bytes()
	clear(bits)

	pos, nulls := 0, 0
	for i := 0; i < n; i++ {
		off[i] = int32(pos)
		var ps pseudonym
		switch {
		case idArr != nil && idArr.IsValid(i):
			ps = p.byID(ids[i])
		case names.IsValid(i):
			ps = p.byName(names.Value(i))
		default:
			nulls++
			continue
		}
		*(*pseudonym)(buf[pos : pos+pseudonymLen]) = ps
		pos += pseudonymLen
		bitutil.SetBit(bits, i)
	}
	off[n] = int32(pos)
	values.ResizeNoShrink(pos)

	vb := validity
	if nulls == 0 {
		vb = nil
	}
	d := array.NewData(arrow.BinaryTypes.String, n, []*memory.Buffer{vb, offsets, values}, nil, nulls, 0)
	defer d.Release()
	return array.MakeFromData(d), nil
}
