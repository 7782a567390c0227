package privacy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"worklog/data"
)

// testKey is the pseudonym key of the tests.
var testKey = []byte("0123456789abcdef0123456789abcdef")

// storeType is the Arrow type DuckDB returns for a catalogue kind (checked
// against real DuckDB output in TestTransformDuckDBParquet).
func storeType(k data.Kind) arrow.DataType {
	switch k {
	case data.KindTimestamp:
		return &arrow.TimestampType{Unit: arrow.Microsecond}
	case data.KindInt, data.KindFlag:
		return arrow.PrimitiveTypes.Int64
	case data.KindFloat:
		return arrow.PrimitiveTypes.Float64
	case data.KindList:
		return arrow.ListOf(arrow.BinaryTypes.String)
	default:
		return arrow.BinaryTypes.String
	}
}

// storeSchema is the schema of a DuckDB batch over the store: the 35
// catalogue fields in order, all nullable.
func storeSchema() *arrow.Schema {
	var fields []arrow.Field
	for _, f := range data.Fields() {
		fields = append(fields, arrow.Field{Name: f.Name, Type: storeType(f.Kind), Nullable: true})
	}
	return arrow.NewSchema(fields, nil)
}

// loadFixture reads testdata/events.json into one batch of the store schema.
func loadFixture(t testing.TB, mem memory.Allocator) arrow.RecordBatch {
	t.Helper()
	f, err := os.Open("testdata/events.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec, _, err := array.RecordFromJSON(mem, storeSchema(), f)
	if err != nil {
		t.Fatalf("load fixture: %v", err)
	}
	return rec
}

// names returns the column names of a schema.
func names(s *arrow.Schema) []string {
	var out []string
	for _, f := range s.Fields() {
		out = append(out, f.Name)
	}
	return out
}

// column returns the named column of rec, or nil.
func column(rec arrow.RecordBatch, name string) arrow.Array {
	idx := rec.Schema().FieldIndices(name)
	if len(idx) == 0 {
		return nil
	}
	return rec.Column(idx[0])
}

// texts renders a column's values as a user would read them, "null" for nulls.
func texts(a arrow.Array) []string {
	out := make([]string, a.Len())
	for i := range out {
		if a.IsNull(i) {
			out[i] = "null"
			continue
		}
		switch c := a.(type) {
		case *array.Date32:
			out[i] = c.Value(i).FormattedString()
		case *array.Timestamp:
			out[i] = c.Value(i).ToTime(arrow.Microsecond).Format(data.TimestampLayout)
		default:
			out[i] = a.ValueStr(i)
		}
	}
	return out
}

// wantPseudonym computes a pseudonym independently of the package.
func wantPseudonym(key []byte, msg string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return "Agent-" + hex.EncodeToString(m.Sum(nil))[:10]
}

// wantID is wantPseudonym of a user id.
func wantID(key []byte, id int64) string { return wantPseudonym(key, strconv.FormatInt(id, 10)) }

// checkedPolicy returns a policy whose arrays come from mem.
func checkedPolicy(t testing.TB, level Level, perms []string, mem memory.Allocator) *Policy {
	t.Helper()
	p, err := NewPolicy(level, perms, testKey, WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
