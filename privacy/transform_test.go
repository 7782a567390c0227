package privacy

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"worklog/data"
)

// The fixture's date and name columns as stored.
var (
	fixtureDates = []string{"2024-03-05 14:22:07", "2024-03-05 00:00:00", "1969-12-31 23:59:59",
		"2024-02-29 23:59:59", "2024-04-01 08:00:00", "2024-04-02 09:30:00", "null"}
	fixtureNames = []string{"Alice Example", "Alice Example", "Bob Sample", "Carol NoId", "null", "null", "Dave Nodate"}
)

// TestTransformMatrix checks SPEC §6 on the fixture: each level, with and
// without reporting.viewEmail, against every privacy class.
func TestTransformMatrix(t *testing.T) {
	cutDates := []string{"2024-03-05", "2024-03-05", "1969-12-31", "2024-02-29", "2024-04-01", "2024-04-02", "null"}
	pseudonyms := []string{
		wantID(testKey, 42), wantID(testKey, 42), wantID(testKey, 7),
		wantPseudonym(testKey, "name:Carol NoId"), // no userId: the name is hashed
		"null",             // neither userId nor name
		wantID(testKey, 7), // no name, but a userId
		wantID(testKey, 99),
	}
	identifying := []string{"ticketId", "conversationId", "userId", "rawData"}
	tests := []struct {
		name      string
		level     Level
		perms     []string
		omitted   []string
		dates     []string
		names     []string
		dateType  arrow.Type
		unchanged bool // the output is the input batch itself
	}{
		{"none", None, nil, nil, fixtureDates, fixtureNames, arrow.TIMESTAMP, true},
		{"none with viewEmail", None, []string{PermViewEmail}, nil, fixtureDates, fixtureNames, arrow.TIMESTAMP, true},
		{"partial without viewEmail", Partial, []string{"reporting.ingest"}, []string{"email"}, fixtureDates, fixtureNames, arrow.TIMESTAMP, false},
		{"partial with viewEmail", Partial, []string{"reporting.ingest", PermViewEmail}, nil, fixtureDates, fixtureNames, arrow.TIMESTAMP, true},
		{"pseudonymized", Pseudonymized, nil, append([]string{"email"}, identifying...), cutDates, pseudonyms, arrow.DATE32, false},
		{"pseudonymized with viewEmail", Pseudonymized, []string{PermViewEmail}, append([]string{"email"}, identifying...), cutDates, pseudonyms, arrow.DATE32, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			in := loadFixture(t, mem)
			defer in.Release()
			p := checkedPolicy(t, tt.level, tt.perms, mem)

			out, err := p.Transform(in)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Release()

			var want []string
			for _, f := range data.Fields() {
				if !slices.Contains(tt.omitted, f.Name) {
					want = append(want, f.Name)
				}
			}
			if got := names(out.Schema()); !slices.Equal(got, want) {
				t.Errorf("columns = %v\nwant %v", got, want)
			}
			if !out.Schema().Equal(p.Schema(in.Schema())) {
				t.Errorf("batch schema %v differs from Schema() %v", out.Schema(), p.Schema(in.Schema()))
			}
			if out.NumRows() != in.NumRows() {
				t.Errorf("rows = %d, want %d", out.NumRows(), in.NumRows())
			}
			if got := column(out, "date").DataType().ID(); got != tt.dateType {
				t.Errorf("date type = %s, want %s", got, tt.dateType)
			}
			if got := texts(column(out, "date")); !slices.Equal(got, tt.dates) {
				t.Errorf("date = %q\nwant %q", got, tt.dates)
			}
			if got := texts(column(out, "name")); !slices.Equal(got, tt.names) {
				t.Errorf("name = %q\nwant %q", got, tt.names)
			}
			if got := out == in; got != tt.unchanged {
				t.Errorf("output is the input batch: %t, want %t", got, tt.unchanged)
			}
			// Untouched columns are the input's arrays, not copies.
			for _, f := range out.Schema().Fields() {
				if df, _ := data.Lookup(f.Name); df.Kind == data.KindTimestamp && tt.dateType == arrow.DATE32 {
					if f.Type.ID() != arrow.DATE32 {
						t.Errorf("%s: %s at a level that cuts date-times", f.Name, f.Type)
					}
					continue
				}
				if f.Name == "date" || f.Name == "name" {
					continue
				}
				if column(out, f.Name) != column(in, f.Name) {
					t.Errorf("column %q was copied", f.Name)
				}
			}
			// The input is not modified.
			if got := names(in.Schema()); len(got) != data.FieldCount() {
				t.Errorf("input lost columns: %v", got)
			}
			if got := texts(column(in, "name")); !slices.Equal(got, fixtureNames) {
				t.Errorf("input name = %q", got)
			}
			if got := texts(column(in, "date")); !slices.Equal(got, fixtureDates) {
				t.Errorf("input date = %q", got)
			}
		})
	}
}

// TestTransformNoRealValues scans every value of a pseudonymized batch for
// the fixture's names, e-mail addresses and rawData text.
func TestTransformNoRealValues(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in := loadFixture(t, mem)
	defer in.Release()
	out, err := checkedPolicy(t, Pseudonymized, []string{PermViewEmail}, mem).Transform(in)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	secrets := []string{"Alice", "Bob", "Carol", "Dave", "example.com", "Invoice", "subject", "5001", "7001"}
	for i, f := range out.Schema().Fields() {
		for _, v := range texts(out.Column(i)) {
			for _, s := range secrets {
				if strings.Contains(v, s) {
					t.Errorf("column %q shows %q", f.Name, v)
				}
			}
		}
	}
}

// TestTransformByName checks that columns are found by name: a reordered
// batch keeps its order and pseudonyms still come from userId; a column
// outside the catalogue is refused at every level (the layer fails closed)
// and left out of the schema.
func TestTransformByName(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in := loadFixture(t, mem)
	defer in.Release()

	extra := array.NewStringBuilder(mem)
	for i := 0; i < int(in.NumRows()); i++ {
		extra.Append("x")
	}
	extraArr := extra.NewArray()
	extra.Release()
	defer extraArr.Release()

	// Reverse the columns.
	var fields []arrow.Field
	var cols []arrow.Array
	for i := int(in.NumCols()) - 1; i >= 0; i-- {
		fields = append(fields, in.Schema().Field(i))
		cols = append(cols, in.Column(i))
	}
	rev := array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, in.NumRows())
	defer rev.Release()

	out, err := checkedPolicy(t, Pseudonymized, nil, mem).Transform(rev)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	got := names(out.Schema())
	if got[0] != "timesSetToOpen" || len(got) != 30 {
		t.Errorf("columns = %v, want reversed order without the 5 omitted", got)
	}
	if got, want := texts(column(out, "name"))[0], wantID(testKey, 42); got != want {
		t.Errorf("name[0] = %s, want %s", got, want)
	}

	// One column the catalogue does not know.
	fields = append(fields, arrow.Field{Name: "exportedBy", Type: arrow.BinaryTypes.String})
	cols = append(cols, extraArr)
	withExtra := array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, in.NumRows())
	defer withExtra.Release()
	for _, level := range []Level{None, Partial, Pseudonymized} {
		p := checkedPolicy(t, level, nil, mem)
		if out, err := p.Transform(withExtra); err == nil || !strings.Contains(err.Error(), `"exportedBy"`) {
			if out != nil {
				out.Release()
			}
			t.Errorf("%s: Transform of an unknown column = %v, want an error naming it", level, err)
		}
		if s := p.Schema(withExtra.Schema()); slices.Contains(names(s), "exportedBy") {
			t.Errorf("%s: Schema keeps the unknown column", level)
		}
	}
}

// TestTransformSliced checks a batch that is a slice of a larger one (the
// arrays have an offset), with nulls in date and name.
func TestTransformSliced(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in := loadFixture(t, mem)
	defer in.Release()
	sl := in.NewSlice(3, 7) // rows 1004..1007
	defer sl.Release()

	out, err := checkedPolicy(t, Pseudonymized, nil, mem).Transform(sl)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	if got, want := texts(column(out, "date")), []string{"2024-02-29", "2024-04-01", "2024-04-02", "null"}; !slices.Equal(got, want) {
		t.Errorf("date = %q, want %q", got, want)
	}
	wantNames := []string{wantPseudonym(testKey, "name:Carol NoId"), "null", wantID(testKey, 7), wantID(testKey, 99)}
	if got := texts(column(out, "name")); !slices.Equal(got, wantNames) {
		t.Errorf("name = %q, want %q", got, wantNames)
	}
}

// TestTransformDateUnits checks the cut to a date for every timestamp unit
// and for date64, around midnight and before 1970.
func TestTransformDateUnits(t *testing.T) {
	stamps := []string{"2024-03-05 23:59:59.999", "2024-03-06 00:00:00", "1969-12-31 23:59:59", "1970-01-01 00:00:00"}
	want := []string{"2024-03-05", "2024-03-06", "1969-12-31", "1970-01-01"}
	for _, unit := range []arrow.TimeUnit{arrow.Millisecond, arrow.Microsecond, arrow.Nanosecond} {
		t.Run(unit.String(), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			b := array.NewTimestampBuilder(mem, &arrow.TimestampType{Unit: unit})
			defer b.Release()
			for _, s := range stamps {
				v, err := arrow.TimestampFromString(s, unit)
				if err != nil {
					t.Fatal(err)
				}
				b.Append(v)
			}
			got := transformOne(t, mem, "date", b.NewArray())
			if !slices.Equal(got, want) {
				t.Errorf("date = %q, want %q", got, want)
			}
		})
	}
	t.Run("date64", func(t *testing.T) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		b := array.NewDate64Builder(mem)
		defer b.Release()
		b.AppendValues([]arrow.Date64{-1, 86400 * 1000}, nil)
		if got, want := transformOne(t, mem, "date", b.NewArray()), []string{"1969-12-31", "1970-01-02"}; !slices.Equal(got, want) {
			t.Errorf("date = %q, want %q", got, want)
		}
	})
}

// transformOne transforms a one-column batch at level pseudonymized and
// returns the column's values as text.
func transformOne(t *testing.T, mem memory.Allocator, name string, arr arrow.Array) []string {
	t.Helper()
	defer arr.Release()
	rec := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: name, Type: arr.DataType(), Nullable: true}}, nil),
		[]arrow.Array{arr}, int64(arr.Len()))
	defer rec.Release()
	out, err := checkedPolicy(t, Pseudonymized, nil, mem).Transform(rec)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	return texts(out.Column(0))
}

// TestTransformErrors checks that columns of a type the transform cannot
// handle give an error naming the column, and leak nothing.
func TestTransformErrors(t *testing.T) {
	tests := []struct {
		name   string
		fields []arrow.Field
		want   string
	}{
		{"date as text", []arrow.Field{{Name: "date", Type: arrow.BinaryTypes.String}},
			`column "date": cut to date: unsupported type utf8`},
		{"zoned date", []arrow.Field{{Name: "date", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "Europe/Berlin"}}},
			`column "date": cut to date: unsupported time zone "Europe/Berlin"`},
		{"name as number", []arrow.Field{{Name: "date", Type: &arrow.TimestampType{Unit: arrow.Microsecond}}, {Name: "name", Type: arrow.PrimitiveTypes.Int64}},
			`column "name": pseudonymize: unsupported type int64`},
		{"userId as text", []arrow.Field{{Name: "name", Type: arrow.BinaryTypes.String}, {Name: "userId", Type: arrow.BinaryTypes.String}},
			`column "name": pseudonymize: column "userId": unsupported type utf8`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			rb := array.NewRecordBuilder(mem, arrow.NewSchema(tt.fields, nil))
			defer rb.Release()
			for _, f := range rb.Fields() {
				f.AppendNull()
			}
			rec := rb.NewRecordBatch()
			defer rec.Release()
			out, err := checkedPolicy(t, Pseudonymized, nil, mem).Transform(rec)
			if err == nil {
				out.Release()
				t.Fatal("no error")
			}
			if err.Error() != tt.want {
				t.Errorf("error = %q\nwant    %q", err, tt.want)
			}
		})
	}
}

// TestTransformEmpty checks a batch without rows.
func TestTransformEmpty(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in := loadFixture(t, mem)
	defer in.Release()
	empty := in.NewSlice(0, 0)
	defer empty.Release()
	out, err := checkedPolicy(t, Pseudonymized, nil, mem).Transform(empty)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	if out.NumRows() != 0 || out.NumCols() != 30 {
		t.Errorf("got %d rows, %d columns; want 0, 30", out.NumRows(), out.NumCols())
	}
}

// TestTransformConcurrent uses one policy from several goroutines (run with
// -race): results stay right and the shared caches stay consistent.
func TestTransformConcurrent(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in := loadFixture(t, mem)
	defer in.Release()
	p := checkedPolicy(t, Pseudonymized, nil, mem)
	want := wantID(testKey, 42)
	var wg sync.WaitGroup
	errs := make(chan string, 8*50)
	for g := range 8 {
		wg.Go(func() {
			for range 50 {
				out, err := p.Transform(in)
				if err != nil {
					errs <- err.Error()
					return
				}
				if got := texts(column(out, "name"))[0]; got != want {
					errs <- got
				}
				out.Release()
				id := int64(g)
				p.Pseudonym(&id, "")
				p.Schema(in.Schema())
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
