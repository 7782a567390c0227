package export

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// A null slot of a fixed-width column holds whatever the producer left
// there (DuckDB leaves it uninitialised: it was seen holding an agent's
// name). The Arrow stream must carry zeros there, and the values intact.
func TestArrowStreamCarriesNoBytesUnderNulls(t *testing.T) {
	values := make([]byte, 16)
	binary.LittleEndian.PutUint64(values, math.Float64bits(1.5))
	copy(values[8:], "SECRET!!")
	valid := []byte{0b01} // row 0 valid, row 1 null
	data := array.NewData(arrow.PrimitiveTypes.Float64, 2,
		[]*memory.Buffer{memory.NewBufferBytes(valid), memory.NewBufferBytes(values)}, nil, 1, 0)
	col := array.NewFloat64Data(data)
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "textAssistanceAccuracy", Type: arrow.PrimitiveTypes.Float64, Nullable: true}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, 2)
	defer rec.Release()

	var buf bytes.Buffer
	enc := NewArrowEncoder(&buf, schema, EncoderOptions{})
	if err := enc.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), []byte("SECRET")) {
		t.Fatal("the stream carries the bytes under a null slot")
	}
	r, err := ipc.NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if !r.Next() {
		t.Fatalf("no batch: %v", r.Err())
	}
	got := r.RecordBatch().Column(0).(*array.Float64)
	if got.Len() != 2 || got.IsNull(0) || got.Value(0) != 1.5 || !got.IsNull(1) {
		t.Errorf("read back %v", got)
	}
	// The producer's batch is not modified.
	if !bytes.Contains(values, []byte("SECRET")) {
		t.Error("the encoder changed its input")
	}
}
