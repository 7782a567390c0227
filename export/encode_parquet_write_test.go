package export

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// fileWriterReference writes batches as the encoder gathers them (row
// groups of rgRows rows, each column gathered by newPQColumn) but through
// pqarrow.FileWriter, one column after the other: the file the encoder
// wrote before it wrote a row group's columns on several goroutines.
func fileWriterReference(t *testing.T, schema *arrow.Schema, rgRows int64, batches ...arrow.RecordBatch) []byte {
	t.Helper()
	enc, err := NewParquetEncoder(io.Discard, schema, EncoderOptions{ParquetRowGroupRows: rgRows})
	if err != nil {
		t.Fatal(err)
	}
	props := enc.props
	var buf bytes.Buffer
	fw, err := pqarrow.NewFileWriter(schema, &buf, props, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	cols := make([]pqColumn, schema.NumFields())
	for i, f := range schema.Fields() {
		cols[i] = newPQColumn(f.Type, props.Allocator(), props.DataPageSize(), props.DictionaryPageSizeLimit())
	}
	var rows int64
	flush := func() {
		if err := fw.NewRowGroupChecked(); err != nil {
			t.Fatal(err)
		}
		for _, c := range cols {
			ch, err := c.take()
			if err != nil {
				t.Fatal(err)
			}
			err = fw.WriteColumnChunked(ch, 0, int64(ch.Len()))
			ch.Release()
			if err != nil {
				t.Fatal(err)
			}
		}
		rows = 0
	}
	for _, rec := range batches {
		for off := int64(0); off < rec.NumRows(); {
			take := min(rec.NumRows()-off, rgRows-rows)
			part := rec.NewSlice(off, off+take)
			for i, c := range cols {
				if err := c.add(part.Column(i)); err != nil {
					t.Fatal(err)
				}
			}
			part.Release()
			rows += take
			off += take
			if rows == rgRows {
				flush()
			}
		}
	}
	if rows > 0 {
		flush()
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// encodeParquetWorkers is encode for Parquet with the row groups' columns
// written on the given number of goroutines.
func encodeParquetWorkers(t *testing.T, schema *arrow.Schema, opts EncoderOptions, workers int, batches ...arrow.RecordBatch) ([]byte, error) {
	t.Helper()
	var buf bytes.Buffer
	enc, err := NewParquetEncoder(&buf, schema, opts)
	if err != nil {
		t.Fatal(err)
	}
	enc.workers = workers
	for _, rec := range batches {
		if err := enc.Write(rec); err != nil {
			return nil, err
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// shapesSchema has a column of each shape and kind the levels differ for:
// required and nullable scalars, a column of nulls only, strings that
// keep a dictionary, strings that do not (distinct), long strings that
// repeat (rawData), nullable lists of nullable strings, required lists of
// required strings, large and fixed-size lists, a dictionary column, and
// the Null type.
func shapesSchema() *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "nothing", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "distinct", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "raw", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
		{Name: "must", Type: arrow.ListOfNonNullable(arrow.BinaryTypes.String)},
		{Name: "large", Type: arrow.LargeListOf(arrow.BinaryTypes.String), Nullable: true},
		{Name: "kind", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}, Nullable: true},
		{Name: "at", Type: arrow.FixedWidthTypes.Timestamp_us, Nullable: true},
		{Name: "day", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "share", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "ok", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "null", Type: arrow.Null, Nullable: true},
	}, nil)
}

// shapesBatches returns rows of shapesSchema in batches of batchRows, the
// odd ones sliced so that their arrays start at an offset.
func shapesBatches(t *testing.T, mem memory.Allocator, rows, batchRows int) []arrow.RecordBatch {
	t.Helper()
	schema := shapesSchema()
	at := time.Date(2024, 5, 10, 9, 15, 0, 0, time.UTC)
	var out []arrow.RecordBatch
	for start := 0; start < rows; start += batchRows {
		var rs [][]any
		for r := start; r < min(start+batchRows, rows); r++ {
			row := []any{r, fmt.Sprintf("agent %d", r%37), nil, fmt.Sprintf("distinct value %08d %s", r, strings.Repeat("x", r%50)),
				fmt.Sprintf("ticket %d: %s", r/6, strings.Repeat("payload ", 20+r%40)),
				[]any{fmt.Sprintf("t%d", r%5), "shared"}, []any{"a", fmt.Sprint(r % 3)}, []any{fmt.Sprint(r % 4)},
				[]string{"readAction", "writeAction", "deleteAction"}[r%3], at.Add(time.Duration(r) * time.Minute), at.AddDate(0, 0, r%40),
				float64(r) / 7, r%2 == 0, nil}
			switch r % 11 {
			case 1:
				row[1], row[5], row[7], row[8], row[11], row[12] = nil, nil, nil, nil, nil, nil
			case 3:
				row[5], row[6], row[7] = []any{}, []any{}, []any{}
			case 6:
				row[5], row[7] = []any{nil, "shared", nil}, []any{nil}
			case 8:
				row[4], row[3] = nil, nil
			}
			rs = append(rs, row)
		}
		rec := newRecord(t, mem, schema, rs)
		if len(out)%2 == 1 && rec.NumRows() > 1 {
			s := rec.NewSlice(1, rec.NumRows())
			rec.Release()
			rec = s
		}
		out = append(out, rec)
	}
	t.Cleanup(func() {
		for _, rec := range out {
			rec.Release()
		}
	})
	return out
}

// TestParquetSameAsFileWriter checks that writing a row group's columns on
// several goroutines, through arrow-go's file layer with levels of our
// own, gives the file pqarrow.FileWriter gives, byte for byte: the same
// schema and metadata, pages, dictionaries, statistics, offsets and row
// groups. It covers every shape of column and of levels (shapesSchema),
// pages that fill, dictionaries that pay and that fall back, batches cut
// across row groups, and more goroutines than cores.
func TestParquetSameAsFileWriter(t *testing.T) {
	mem := newMem(t)
	many := shapesBatches(t, mem, 9000, 2048)
	few := shapesBatches(t, mem, 40, 7)
	priv := newRecord(t, mem, privacySchema(), [][]any{
		{ts(t, "2024-05-10 00:00:00"), "Agent-0123456789", "writeAction", 206, []any{"Billing"}, ts(t, "2024-05-13 16:15:00")},
		{ts(t, "1969-12-31 00:00:00"), nil, "readAction", nil, nil, nil},
		{nil, "n", nil, 3, []any{}, nil},
	})
	defer priv.Release()
	for _, tc := range []struct {
		name    string
		schema  *arrow.Schema
		rgRows  int64
		batches []arrow.RecordBatch
	}{
		{"rows in pages and row groups", shapesSchema(), 4000, many},
		{"one row group", shapesSchema(), DefaultParquetRowGroupRows, many},
		{"small row groups", shapesSchema(), 6, few},
		{"privacy schema", privacySchema(), 2, []arrow.RecordBatch{priv, priv}},
		{"no rows", shapesSchema(), 6, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := fileWriterReference(t, tc.schema, tc.rgRows, tc.batches...)
			for _, workers := range []int{1, 2, 5} {
				got, err := encodeParquetWorkers(t, tc.schema, EncoderOptions{ParquetRowGroupRows: tc.rgRows}, workers, tc.batches...)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%d goroutines: %d bytes differ from pqarrow.FileWriter's %d", workers, len(got), len(want))
				}
			}
			_, tbl := readParquet(t, want)
			if tbl.NumRows() == 0 && len(tc.batches) > 0 {
				t.Error("the reference file has no rows")
			}
		})
	}
}

// TestParquetColumnError checks that a column the writer refuses fails
// the export with the column's name, as pqarrow does, and that the other
// goroutines stop and release what they hold (newMem checks every buffer
// is freed): here a null list that spans elements between others, which
// Parquet's levels cannot say.
func TestParquetColumnError(t *testing.T) {
	mem := newMem(t)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	sb := array.NewStringBuilder(mem)
	defer sb.Release()
	sb.AppendValues([]string{"a", "b", "c"}, nil)
	elems := sb.NewArray()
	defer elems.Release()
	offsets := memory.NewBufferBytes(arrow.Int32Traits.CastToBytes([]int32{0, 1, 2, 3}))
	valid := memory.NewBufferBytes([]byte{0b101})
	ld := array.NewData(schema.Field(1).Type, 3, []*memory.Buffer{valid, offsets}, []arrow.ArrayData{elems.Data()}, 1, 0)
	defer ld.Release()
	tags := array.MakeFromData(ld)
	defer tags.Release()
	other := newRecord(t, mem, arrow.NewSchema([]arrow.Field{schema.Field(0), schema.Field(2)}, nil), [][]any{{1, "x"}, {2, "y"}, {3, "z"}})
	defer other.Release()
	rec := array.NewRecordBatch(schema, []arrow.Array{other.Column(0), tags, other.Column(1)}, 3)
	defer rec.Release()

	want := fmt.Sprint(errors.New("lists with non-zero length null components are not supported"))
	for _, workers := range []int{1, 3} {
		_, err := encodeParquetWorkers(t, schema, EncoderOptions{ParquetRowGroupRows: 3}, workers, rec, rec)
		if err == nil || !strings.Contains(err.Error(), "tags") || !strings.Contains(err.Error(), want) {
			t.Errorf("%d goroutines: error %v, want one naming tags: %s", workers, err, want)
		}
	}
}

// TestParquetFixedSizeListCut checks that a fixed-size list column cut
// into row groups within a batch reads back as given. (pqarrow's own path
// builder takes a sliced fixed-size list's elements from the start of
// its values, so through pqarrow.FileWriter the second row group repeated
// the first one's elements.)
func TestParquetFixedSizeListCut(t *testing.T) {
	mem := newMem(t)
	schema := arrow.NewSchema([]arrow.Field{{Name: "pair", Type: arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Int32), Nullable: true}}, nil)
	var rows [][]any
	for r := 0; r < 10; r++ {
		rows = append(rows, []any{[]any{r, -r}})
	}
	rec := newRecord(t, mem, schema, rows)
	defer rec.Release()
	rdr, tbl := readParquet(t, encode(t, FormatParquet, schema, EncoderOptions{ParquetRowGroupRows: 3}, rec))
	if rdr.NumRowGroups() != 4 {
		t.Errorf("%d row groups, want 4", rdr.NumRowGroups())
	}
	var got []string
	for _, chunk := range tbl.Column(0).Data().Chunks() {
		for i := 0; i < chunk.Len(); i++ {
			got = append(got, chunk.ValueStr(i))
		}
	}
	var want []string
	for r := 0; r < 10; r++ {
		want = append(want, fmt.Sprintf("[%d,%d]", r, -r))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("read back %v, want %v", got, want)
	}
}

// TestParquetDictionarySeeded checks that the column writers of arrow-go in
// use still let seedDictionary put a gathered dictionary in before pqarrow
// writes it (so pqarrow skips its search of the referenced values), for
// string columns and lists of strings, and that a dictionary that came with
// the batches is left to pqarrow (it may hold values the row group does not
// use). TestParquetSameAsFileWriter checks the bytes are unchanged by it.
func TestParquetDictionarySeeded(t *testing.T) {
	// The column writers are left unwritten, holding what was put in: no
	// allocator that checks every buffer comes back.
	mem := memory.NewGoAllocator()
	schema := shapesSchema()
	batches := shapesBatches(t, mem, 60, 60)
	enc, err := NewParquetEncoder(io.Discard, schema, EncoderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fw, err := newParquetFile(schema, io.Discard, enc.props)
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	rgw, err := fw.AppendBufferedRowGroupChecked()
	if err != nil {
		t.Fatal(err)
	}
	var sc levelScratch
	for _, tc := range []struct {
		name   string
		seeded bool
	}{{"name", true}, {"tags", true}, {"must", true}, {"kind", false}} {
		name, seeded := tc.name, tc.seeded
		i := schema.FieldIndices(name)[0]
		col := newPQColumn(schema.Field(i).Type, mem, enc.props.DataPageSize(), enc.props.DictionaryPageSizeLimit())
		if err := col.add(batches[0].Column(i)); err != nil {
			t.Fatal(err)
		}
		ch, err := col.take()
		if err != nil {
			t.Fatal(err)
		}
		values, _, _, _, err := leafLevels(ch.Chunk(0), schema.Field(i).Nullable, &sc)
		if err != nil {
			t.Fatal(err)
		}
		dict, ok := values.(*array.Dictionary)
		if !ok {
			t.Fatalf("%s: leaf values of %s, want a dictionary array", name, values.DataType())
		}
		cw, err := rgw.Column(i)
		if err != nil {
			t.Fatal(err)
		}
		if err := seedDictionary(cw, col, values); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		enc, ok := cw.CurrentEncoder().(dictionarySeeder)
		switch {
		case !ok:
			t.Errorf("%s: the column writer's encoder %T has no dictionary to seed", name, cw.CurrentEncoder())
		case seeded && enc.PreservedDictionary() != dict.Dictionary():
			t.Errorf("%s: the gathered dictionary was not put in", name)
		case !seeded && enc.PreservedDictionary() != nil:
			t.Errorf("%s: a dictionary that came with the batches was put in", name)
		}
		values.Release()
		ch.Release()
		col.release()
	}

	// A dictionary that repeats a value is refused: seeded, pqarrow would
	// write indices into a dictionary of fewer values.
	i := schema.FieldIndices("name")[0]
	cw, err := rgw.Column(schema.FieldIndices("distinct")[0])
	if err != nil {
		t.Fatal(err)
	}
	sb := array.NewStringBuilder(mem)
	sb.AppendValues([]string{"a", "b", "a"}, nil)
	dictValues := sb.NewArray()
	sb.Release()
	ib := array.NewInt32Builder(mem)
	ib.AppendValues([]int32{0, 1, 2}, nil)
	indices := ib.NewArray()
	ib.Release()
	repeated := array.NewDictionaryArray(dictType, indices, dictValues)
	col := newPQColumn(schema.Field(i).Type, mem, enc.props.DataPageSize(), enc.props.DictionaryPageSizeLimit())
	if err := seedDictionary(cw, col, repeated); err == nil || !strings.Contains(err.Error(), "3 values has 2 distinct") {
		t.Errorf("a dictionary with a repeated value seeded: %v", err)
	}
}
