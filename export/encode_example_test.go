package export_test

import (
	"fmt"
	"os"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"worklog/export"
)

// The JSON encoder writes one compact object per line, keys in schema order;
// date-times are wall-clock strings and lists JSON-array strings.
func ExampleJSONEncoder() {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "date", Type: arrow.FixedWidthTypes.Timestamp_us},
		{Name: "duration", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
	}, nil)

	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	date, _ := arrow.TimestampFromTime(time.Date(2024, 5, 10, 14, 52, 37, 0, time.UTC), arrow.Microsecond)
	b.Field(0).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{date, date + 60e6}, nil)
	b.Field(1).(*array.Int64Builder).AppendValues([]int64{206, 0}, []bool{true, false})
	tags := b.Field(2).(*array.ListBuilder)
	tags.Append(true)
	tags.ValueBuilder().(*array.StringBuilder).AppendValues([]string{"Billing", "Payment reminder"}, nil)
	tags.Append(true)
	rec := b.NewRecordBatch()
	defer rec.Release()

	enc := export.NewJSONEncoder(os.Stdout, schema)
	if err := enc.Write(rec); err != nil {
		fmt.Println(err)
	}
	if err := enc.Close(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// [
	// {"date":"2024-05-10 14:52:37","duration":206,"tags":"[\"Billing\", \"Payment reminder\"]"},
	// {"date":"2024-05-10 14:53:37","duration":null,"tags":"[]"}
	// ]
}
