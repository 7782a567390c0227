package export

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
)

// columnEncodings returns, per leaf column of row group rg, whether its
// chunk has a dictionary.
func columnDictionaries(t *testing.T, rdr *file.Reader, rg int) []bool {
	t.Helper()
	md := rdr.MetaData().RowGroup(rg)
	var out []bool
	for c := 0; c < md.NumColumns(); c++ {
		cc, err := md.ColumnChunk(c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, slices.Contains(cc.Encodings(), parquet.Encodings.RLEDict))
	}
	return out
}

// TestParquetGatheredRowGroups checks the row groups the encoder gathers
// column by column, with dictionaries of its own: batches cut across row
// groups and row groups across batches, sliced batches, null strings, null
// and empty lists and null list elements all read back as given, and every
// string column keeps a dictionary in every row group (a new one each: the
// values of later row groups differ).
func TestParquetGatheredRowGroups(t *testing.T) {
	mem := newMem(t)
	schema := privacySchema()
	var want, batches []arrow.RecordBatch
	row := 0
	for b, n := range []int{4, 9, 1, 13, 6} {
		var rows [][]any
		for i := 0; i < n; i++ {
			var name, tags any = fmt.Sprintf("agent %d", row/4), []any{"t" + fmt.Sprint(row%3), "shared"}
			switch row % 7 {
			case 2:
				name = nil
			case 3:
				tags = nil
			case 4:
				tags = []any{}
			case 5:
				tags = []any{nil, "shared"}
			}
			rows = append(rows, []any{nil, name, []string{"readAction", "writeAction"}[row%2], row, tags, nil})
			row++
		}
		rec := newRecord(t, mem, schema, rows)
		defer rec.Release()
		if b%2 == 1 {
			// A slice: its arrays start at an offset.
			s := rec.NewSlice(1, int64(n))
			defer s.Release()
			rec = s
		}
		batches = append(batches, rec)
		want = append(want, rec)
	}
	rdr, tbl := readParquet(t, encode(t, FormatParquet, schema, EncoderOptions{ParquetRowGroupRows: 5}, batches...))
	equalCells(t, "parquet", cellsOf(t, tbl, schema), cellsOfRecords(t, schema, want...))
	if rdr.NumRowGroups() != 7 {
		t.Errorf("%d row groups of %d rows, want 7 of at most 5", rdr.NumRowGroups(), tbl.NumRows())
	}
	// The last row group has one row: no dictionary pays for one value.
	for rg := 0; rg < rdr.NumRowGroups()-1; rg++ {
		dicts := columnDictionaries(t, rdr, rg)
		// name, action and the tags' elements (leaf columns 1, 2, 4).
		if !dicts[1] || !dicts[2] || !dicts[4] {
			t.Errorf("row group %d: dictionaries %v, want one for name, action and tags", rg, dicts)
		}
	}
}

// TestParquetDictionaryGivesUp checks a column whose dictionary does not
// pay over its row group although its first batch repeated one value: the
// values gathered are turned back into plain strings and the column chunk
// is written without a dictionary, as arrow-go decides for plain strings
// that do not repeat; strings and list elements alike. A column whose
// values keep repeating keeps its dictionary beside them.
func TestParquetDictionaryGivesUp(t *testing.T) {
	mem := newMem(t)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "repeats", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "turns", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
	}, nil)
	var rows1, rows2 [][]any
	for i := 0; i < 10; i++ {
		rows1 = append(rows1, []any{"same", "same", []any{"same", "same"}})
	}
	for i := 0; i < 300; i++ {
		long := fmt.Sprintf("%d %s", i, strings.Repeat("z", 100))
		var v any = long
		if i%10 == 0 {
			v = nil
		}
		rows2 = append(rows2, []any{"same", v, []any{long, "x" + long}})
	}
	first := newRecord(t, mem, schema, rows1)
	defer first.Release()
	second := newRecord(t, mem, schema, rows2)
	defer second.Release()
	a, b := second.NewSlice(0, 100), second.NewSlice(100, 300)
	defer a.Release()
	defer b.Release()
	rdr, tbl := readParquet(t, encode(t, FormatParquet, schema, EncoderOptions{}, first, a, b))
	equalCells(t, "parquet", cellsOf(t, tbl, schema), cellsOfRecords(t, schema, first, a, b))
	if got := columnDictionaries(t, rdr, 0); !slices.Equal(got, []bool{true, false, false}) {
		t.Errorf("dictionaries %v, want [true false false]", got)
	}
}

// TestStrDict checks the dictionary of one column chunk by itself: it
// gives up for plain strings as soon as it reaches the dictionary page
// limit, or when it has not paid once a page's worth of values has been
// seen; the values gathered before and after come back in order, nulls
// kept.
func TestStrDict(t *testing.T) {
	mem := newMem(t)
	b := array.NewStringBuilder(mem)
	defer b.Release()
	var want []string
	for i := 0; i < 400; i++ {
		if i%5 == 0 {
			b.AppendNull()
			want = append(want, "(null)")
			continue
		}
		// One value repeats in the first ten, then each is new: the
		// indices of 320 values cost more than the repeats save.
		v := "value 0"
		if i >= 10 {
			v = fmt.Sprintf("value %d", i)
		}
		b.Append(v)
		want = append(want, v)
	}
	s := b.NewStringArray()
	defer s.Release()

	for _, tt := range []struct {
		name                string
		pageSize, dictLimit int64
		to                  int  // values added
		denseAfter          bool // plain strings before take
		plain               bool // the column chunk taken
	}{
		{"repeating values keep their dictionary", 1 << 20, 1 << 20, 10, false, false},
		{"over the dictionary limit", 1 << 20, 60, 400, true, true},
		{"not paying once a page is seen", 100, 1 << 20, 400, true, true},
		{"not paying at the end of the row group", 1 << 20, 1 << 20, 400, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newStrDict(memory.NewGoAllocator(), tt.pageSize, tt.dictLimit)
			defer d.reset()
			if err := d.add(s, 0, 10); err != nil {
				t.Fatal(err)
			}
			if d.isDense {
				t.Fatal("plain strings after ten values of one")
			}
			if err := d.add(s, 10, tt.to); err != nil {
				t.Fatal(err)
			}
			if d.isDense != tt.denseAfter {
				t.Errorf("plain strings %v before take, want %v", d.isDense, tt.denseAfter)
			}
			ch, err := d.take()
			if err != nil {
				t.Fatal(err)
			}
			defer ch.Release()
			if plain := arrow.TypeEqual(ch.DataType(), arrow.BinaryTypes.String); plain != tt.plain {
				t.Errorf("column chunk of %s, want plain strings %v", ch.DataType(), tt.plain)
			}
			var got []string
			for _, c := range ch.Chunks() {
				for i := 0; i < c.Len(); i++ {
					got = append(got, c.ValueStr(i))
				}
			}
			if !slices.Equal(got, want[:tt.to]) {
				t.Errorf("values %q, want %q", got, want[:tt.to])
			}
		})
	}
}
