package data

import (
	"sort"
	"strings"
)

// PartFile is one committed Parquet file of the store.
type PartFile struct {
	// Month is the partition, "YYYY-MM".
	Month string `json:"month"`
	// Path is the file's absolute path.
	Path string `json:"path"`
	// Rows is the number of events in the file.
	Rows int64 `json:"rows"`
}

// Snapshot is one committed state of the store: the files a reader reads.
// A snapshot never changes; a commit produces a new one.
type Snapshot struct {
	// Generation increases by one with every commit.
	Generation uint64 `json:"generation"`
	// Files are the committed part files, ordered by month, then path.
	Files []PartFile `json:"files"`

	// lease is set by Store.Acquire; Release drops it.
	lease *leaseRef
}

// Rows is the total number of events in the snapshot.
func (s Snapshot) Rows() int64 {
	var n int64
	for _, f := range s.Files {
		n += f.Rows
	}
	return n
}

// Months lists the snapshot's partitions in ascending order.
func (s Snapshot) Months() []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range s.Files {
		if !seen[f.Month] {
			seen[f.Month] = true
			out = append(out, f.Month)
		}
	}
	sort.Strings(out)
	return out
}

// FilesIn returns the files whose month m satisfies keep(m), in snapshot order.
func (s Snapshot) FilesIn(keep func(month string) bool) []PartFile {
	var out []PartFile
	for _, f := range s.Files {
		if keep(f.Month) {
			out = append(out, f)
		}
	}
	return out
}

// ScanSQL returns a DuckDB table expression that reads the given part files
// with the catalogue's 35 columns in export order. With no files it returns
// an empty relation of the same shape, so callers never special-case an empty
// store. Paths come from the store's manifest, never from a request; they are
// quoted as SQL string literals.
func ScanSQL(files []PartFile) string { return scanSQL(files, false) }

// ScanRowsFileColumn and ScanRowsRowColumn are the two columns that
// ScanWithRowsSQL adds to the catalogue's: the part file a row is read from
// and its row number in that file. Neither name is a catalogue field.
const (
	ScanRowsFileColumn = "_part_file"
	ScanRowsRowColumn  = "_part_row"
)

// ScanWithRowsSQL is ScanSQL with two more columns, ScanRowsFileColumn and
// ScanRowsRowColumn, which place every row in its file (and so in its row
// group).
func ScanWithRowsSQL(files []PartFile) string { return scanSQL(files, true) }

// scanSQL is ScanSQL, with the two row-placing columns when rows is set.
func scanSQL(files []PartFile, rows bool) string {
	var b strings.Builder
	b.WriteString("(SELECT ")
	for i, f := range catalogue {
		if i > 0 {
			b.WriteString(", ")
		}
		if len(files) == 0 {
			b.WriteString("CAST(NULL AS " + f.Kind.SQLType() + ") AS ")
		}
		b.WriteString(QuoteIdent(f.Name))
	}
	if rows {
		file, row := "filename", "file_row_number"
		if len(files) == 0 {
			file, row = "CAST(NULL AS VARCHAR)", "CAST(NULL AS BIGINT)"
		}
		b.WriteString(", " + file + " AS " + QuoteIdent(ScanRowsFileColumn) + ", " + row + " AS " + QuoteIdent(ScanRowsRowColumn))
	}
	if len(files) == 0 {
		b.WriteString(" WHERE false)")
		return b.String()
	}
	b.WriteString(" FROM read_parquet(")
	writeFileList(&b, files)
	if rows {
		b.WriteString(", filename = true, file_row_number = true")
	}
	b.WriteString("))")
	return b.String()
}

// writeFileList writes files as a DuckDB list of string literals.
func writeFileList(b *strings.Builder, files []PartFile) {
	b.WriteString("[")
	for i, f := range files {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(QuoteString(f.Path))
	}
	b.WriteString("]")
}

// FileListSQL returns files as a DuckDB list of string literals, as
// read_parquet and parquet_metadata take them.
func FileListSQL(files []PartFile) string {
	var b strings.Builder
	writeFileList(&b, files)
	return b.String()
}

// QuoteIdent quotes a DuckDB identifier.
func QuoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// QuoteString quotes a DuckDB string literal.
func QuoteString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
