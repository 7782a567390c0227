package iceberg

import (
	"fmt"

	ice "github.com/apache/iceberg-go"

	"worklog/data"
)

// listElementIDBase plus a list column's id is its element's id.
const listElementIDBase = 1000

// monthFieldID is the id of the table's one partition field, month(date).
// Partition field ids start at 1000 by the Iceberg convention.
const monthFieldID = 1000

// Schema is the Iceberg schema of the worklog table, derived from the
// catalogue: one optional column per field, in catalogue order, with the
// field's description as its doc.
//
// Field ids are stable: the i-th catalogue field (counting from 1) has id
// i, and the element of a list column i has id 1000+i, so that a field the
// catalogue appends takes the next id and moves none (Publish adds it to
// an existing table as a new schema); TestFieldIDs pins them. The columns
// are optional because the
// store's Parquet columns are (DuckDB writes every column OPTIONAL), even
// for the fields ingest requires.
func Schema() (*ice.Schema, error) {
	fields := data.Fields()
	nested := make([]ice.NestedField, 0, len(fields))
	for i, f := range fields {
		var t ice.Type
		switch f.Kind {
		case data.KindTimestamp:
			// Naive wall-clock date-times: "timestamp", without zone,
			// microseconds, as DuckDB writes TIMESTAMP to Parquet.
			t = ice.PrimitiveTypes.Timestamp
		case data.KindInt, data.KindFlag:
			t = ice.PrimitiveTypes.Int64
		case data.KindFloat:
			t = ice.PrimitiveTypes.Float64
		case data.KindString, data.KindEnum:
			t = ice.PrimitiveTypes.String
		case data.KindList:
			t = &ice.ListType{ElementID: listElementIDBase + i + 1, Element: ice.PrimitiveTypes.String}
		default:
			return nil, fmt.Errorf("iceberg schema: field %s: no Iceberg type for kind %v", f.Name, f.Kind)
		}
		nested = append(nested, ice.NestedField{ID: i + 1, Name: f.Name, Type: t, Doc: f.Description})
	}
	return ice.NewSchema(0, nested...), nil
}

// partitionSpec is month(date), the store's own partitioning: one
// partition of the table is one month=YYYY-MM directory.
func partitionSpec(sc *ice.Schema) (ice.PartitionSpec, error) {
	date, ok := sc.FindFieldByName(data.DateField)
	if !ok {
		return ice.PartitionSpec{}, fmt.Errorf("iceberg schema: no %s field", data.DateField)
	}
	id := monthFieldID
	spec, err := ice.NewPartitionSpecOpts(ice.WithSpecID(0),
		ice.AddPartitionFieldBySourceID(date.ID, data.DateField+"_month", ice.MonthTransform{}, sc, &id))
	if err != nil {
		return ice.PartitionSpec{}, fmt.Errorf("iceberg partition spec: %w", err)
	}
	return spec, nil
}
