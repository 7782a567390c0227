package api

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	_ "github.com/duckdb/duckdb-go/v2" // the "duckdb" database/sql driver

	"worklog/data"
	"worklog/export"
	"worklog/privacy"
)

// The NDJSON, Parquet and Arrow exports are read back by readers that share
// no code with their encoders, and compared cell by cell with the JSON
// export of the same request: NDJSON with encoding/json, Parquet and Arrow
// with arrow-go's pqarrow and ipc readers, Parquet also with DuckDB's own
// read_parquet, and in CI also with node's apache-arrow and hyparquet
// (node_test.go).

// arrowCellText renders value i of a column the way parseExport renders the JSON
// export's values: null empty, numbers by value, date-times as
// "YYYY-MM-DD HH:MM:SS", dates "YYYY-MM-DD", lists as reference-style JSON.
func arrowCellText(t *testing.T, a arrow.Array, i int) string {
	t.Helper()
	if a.IsNull(i) {
		return ""
	}
	switch a := a.(type) {
	case *array.Int64:
		return norm(json.Number(strconv.FormatInt(a.Value(i), 10)))
	case *array.Float64:
		return norm(json.Number(strconv.FormatFloat(a.Value(i), 'g', -1, 64)))
	case *array.String:
		return a.Value(i)
	case *array.Timestamp:
		return a.Value(i).ToTime(a.DataType().(*arrow.TimestampType).Unit).Format(data.TimestampLayout)
	case *array.Date32:
		return a.Value(i).ToTime().Format(data.DateLayout)
	case *array.List:
		start, end := a.ValueOffsets(i)
		items := []any{}
		for j := start; j < end; j++ {
			items = append(items, a.ListValues().(*array.String).Value(int(j)))
		}
		return referenceStyleList(items)
	}
	t.Fatalf("column of type %s", a.DataType())
	return ""
}

// columnar is a Parquet or Arrow export read back: its cells and the Arrow
// type of each column.
type columnar struct {
	table
	types []arrow.DataType
}

// readColumnar reads a Parquet body with pqarrow or an Arrow IPC stream with
// ipc.Reader.
func readColumnar(t *testing.T, format string, body []byte) columnar {
	t.Helper()
	var tbl arrow.Table
	switch format {
	case "parquet":
		rdr, err := file.NewParquetReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("open parquet: %v", err)
		}
		fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		if tbl, err = fr.ReadTable(context.Background()); err != nil {
			t.Fatalf("read parquet: %v", err)
		}
	case "arrow":
		r, err := ipc.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("open arrow stream: %v", err)
		}
		var recs []arrow.RecordBatch
		for r.Next() {
			rec := r.RecordBatch()
			rec.Retain()
			recs = append(recs, rec)
		}
		if err := r.Err(); err != nil {
			t.Fatalf("read arrow stream: %v", err)
		}
		tbl = array.NewTableFromRecords(r.Schema(), recs)
		for _, rec := range recs {
			rec.Release()
		}
		r.Release()
	default:
		t.Fatalf("format %s is not columnar", format)
	}
	defer tbl.Release()
	var out columnar
	for _, f := range tbl.Schema().Fields() {
		out.header = append(out.header, f.Name)
		out.types = append(out.types, f.Type)
	}
	tr := array.NewTableReader(tbl, 1000)
	defer tr.Release()
	for tr.Next() {
		rec := tr.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			row := make([]string, rec.NumCols())
			for c := range row {
				row[c] = arrowCellText(t, rec.Column(c), i)
			}
			out.rows = append(out.rows, row)
		}
	}
	return out
}

// readWithDuckDB reads a Parquet body with DuckDB's read_parquet: the cells
// and DuckDB's type name of each column.
func readWithDuckDB(t *testing.T, body []byte) (table, []string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "export.parquet")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// No hive partitioning: a directory named key=value in the path would
	// add a column.
	rows, err := db.Query("SELECT * FROM read_parquet(" + data.QuoteString(path) + ", hive_partitioning = false)")
	if err != nil {
		t.Fatalf("read_parquet: %v", err)
	}
	defer rows.Close()
	cts, err := rows.ColumnTypes()
	if err != nil {
		t.Fatal(err)
	}
	var tb table
	var types []string
	for _, ct := range cts {
		tb.header = append(tb.header, ct.Name())
		types = append(types, ct.DatabaseTypeName())
	}
	for rows.Next() {
		vals := make([]any, len(cts))
		ptrs := make([]any, len(cts))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = duckText(t, v, types[i])
		}
		tb.rows = append(tb.rows, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return tb, types
}

// duckText renders a value scanned from DuckDB like arrowCellText.
func duckText(t *testing.T, v any, typ string) string {
	switch v := v.(type) {
	case nil:
		return ""
	case int64:
		return norm(json.Number(strconv.FormatInt(v, 10)))
	case float64:
		return norm(json.Number(strconv.FormatFloat(v, 'g', -1, 64)))
	case string:
		return v
	case time.Time:
		if typ == "DATE" {
			return v.Format(data.DateLayout)
		}
		return v.Format(data.TimestampLayout)
	case []any:
		return referenceStyleList(v)
	}
	t.Fatalf("DuckDB value %T (%s)", v, typ)
	return ""
}

// equalTables compares a table read back with the JSON export's.
func equalTables(t *testing.T, what string, got, want table) {
	t.Helper()
	if strings.Join(got.header, ",") != strings.Join(want.header, ",") {
		t.Fatalf("%s columns\n got %v\nwant %v", what, got.header, want.header)
	}
	if len(got.rows) != len(want.rows) {
		t.Fatalf("%s: %d rows, want %d", what, len(got.rows), len(want.rows))
	}
	bad := 0
	for i := range want.rows {
		for c, h := range want.header {
			if got.rows[i][c] != want.rows[i][c] {
				t.Errorf("%s row %d %s = %q, want %q", what, i, h, got.rows[i][c], want.rows[i][c])
				if bad++; bad > 10 {
					t.FailNow()
				}
			}
		}
	}
}

// TestColumnarFormatsMatchJSON exports the same demo data as JSON and as
// NDJSON, Parquet and Arrow at every privacy level, whole and as a page, and
// checks that independent readers see the JSON export's columns and values,
// with date-times as TIMESTAMP without time zone (DATE where pseudonymized)
// and lists as lists.
func TestColumnarFormatsMatchJSON(t *testing.T) {
	dump := demoDump(t, 300)
	for _, pc := range privacyCases {
		env := newTestEnv(t, pc.level, nil, dump)
		tok := env.token("analyst", "analyst@example.org", pc.perms...)
		for _, q := range []string{"orderByField=date", "limit=50&orderByField=duration&orderByDirection=asc"} {
			_, jsonBody := env.get(tok, q+"&format=json")
			want := parseExport(t, "json", jsonBody)
			if len(want.rows) == 0 {
				t.Fatal("the JSON export is empty")
			}
			t.Run(pc.name+"/"+q+"/ndjson", func(t *testing.T) {
				resp, body := env.get(tok, q+"&format=ndjson")
				if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
					t.Fatalf("status %d, Content-Type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
				}
				var got table
				for i, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
					if !json.Valid([]byte(line)) {
						t.Fatalf("line %d is not JSON: %s", i+1, line)
					}
					row := parseExport(t, "json", []byte("["+line+"]"))
					got.header, got.rows = row.header, append(got.rows, row.rows...)
				}
				equalTables(t, "ndjson", got, want)
			})
			for _, format := range []string{"parquet", "arrow"} {
				t.Run(pc.name+"/"+q+"/"+format, func(t *testing.T) {
					resp, body := env.get(tok, q+"&format="+format)
					f, _ := export.ParseFormat(format)
					if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != f.ContentType() {
						t.Fatalf("status %d, Content-Type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
					}
					if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, "."+format+`"`) {
						t.Errorf("Content-Disposition %q", cd)
					}
					got := readColumnar(t, format, body)
					equalTables(t, format, got.table, want)
					for c, name := range got.header {
						fd, _ := data.Lookup(name)
						typ := got.types[c]
						// SPEC §4: a pseudonymized date is a DATE. The other
						// date-times lose their time of day too (§6); their
						// type is the privacy layer's to choose.
						switch {
						case name == data.DateField && pc.pseudo:
							if typ.ID() != arrow.DATE32 {
								t.Errorf("%s is %s, want date32", name, typ)
							}
						case fd.Kind == data.KindTimestamp && pc.pseudo && typ.ID() == arrow.DATE32:
						case fd.Kind == data.KindTimestamp:
							if ts, ok := typ.(*arrow.TimestampType); !ok || ts.TimeZone != "" || ts.Unit != arrow.Microsecond {
								t.Errorf("%s is %s, want timestamp[us] without time zone", name, typ)
							}
						case fd.Kind == data.KindList:
							if lt, ok := typ.(*arrow.ListType); !ok || lt.Elem().ID() != arrow.STRING {
								t.Errorf("%s is %s, want a list of strings", name, typ)
							}
						case fd.Kind == data.KindInt || fd.Kind == data.KindFlag:
							if typ.ID() != arrow.INT64 {
								t.Errorf("%s is %s, want int64", name, typ)
							}
						case fd.Kind == data.KindFloat:
							if typ.ID() != arrow.FLOAT64 {
								t.Errorf("%s is %s, want float64", name, typ)
							}
						}
					}
					if format != "parquet" {
						return
					}
					duck, types := readWithDuckDB(t, body)
					equalTables(t, "duckdb", duck, want)
					for c, name := range duck.header {
						fd, _ := data.Lookup(name)
						want := map[data.Kind]string{data.KindTimestamp: "TIMESTAMP", data.KindList: "VARCHAR[]", data.KindInt: "BIGINT",
							data.KindFlag: "BIGINT", data.KindFloat: "DOUBLE", data.KindString: "VARCHAR", data.KindEnum: "VARCHAR"}[fd.Kind]
						if fd.Kind == data.KindTimestamp && pc.pseudo && (name == data.DateField || types[c] == "DATE") {
							want = "DATE"
						}
						if types[c] != want {
							t.Errorf("DuckDB reads %s as %s, want %s", name, types[c], want)
						}
					}
				})
			}
		}
	}
}

// TestAcceptNegotiation checks SPEC §4: without format, the first export
// media type the Accept header names decides; format wins over Accept.
func TestAcceptNegotiation(t *testing.T) {
	env := newTestEnv(t, privacy.None, func(c *Config) { c.DefaultFormat = export.FormatCSV }, readFixture(t))
	tok := env.token("u1", "")
	tests := []struct{ query, accept, want string }{
		{"", "", "text/csv; charset=utf-8"},
		{"", "*/*", "text/csv; charset=utf-8"},
		{"", "application/vnd.apache.parquet", "application/vnd.apache.parquet"},
		{"", "text/html, application/x-ndjson;q=0.9, application/json", "application/x-ndjson"},
		{"", "application/x-ndjson;q=0, application/vnd.apache.arrow.stream", "application/vnd.apache.arrow.stream"},
		{"", "Application/JSON", "application/json"},
		{"", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
		{"format=json", "application/vnd.apache.parquet", "application/json"},
		{"limit=3", "application/x-ndjson", "application/x-ndjson"},
	}
	for _, tc := range tests {
		resp, body := env.get(tok, tc.query, "Accept", tc.accept)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.want {
			t.Errorf("?%s Accept %q: %d %q, want %q (%.80s)", tc.query, tc.accept, resp.StatusCode, resp.Header.Get("Content-Type"), tc.want, body)
		}
		if !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Accept") {
			t.Errorf("Vary %q lacks Accept", resp.Header.Values("Vary"))
		}
	}
}

// TestColumnarFormatsAsJobs checks that NDJSON, Parquet and Arrow follow
// the CSV/JSON synchronous limit: above it the request becomes a background
// job in that format (also when Accept chose it), whose file is the
// synchronous export's bytes and reads back as the JSON export.
func TestColumnarFormatsAsJobs(t *testing.T) {
	env := newJobEnv(t, privacy.None, true, nil)
	tok := env.token("u1", "ann@example.com")
	want := parseExport(t, "json", env.syncExport(tok, "format=json&orderByField=userWorklogId"))
	for _, f := range []string{"ndjson", "parquet", "arrow"} {
		format, _ := export.ParseFormat(f)
		resp, body := env.get(tok, "orderByField=userWorklogId", "Accept", format.MediaType())
		var sb scheduledBody
		if resp.StatusCode != http.StatusAccepted || json.Unmarshal(body, &sb) != nil || sb.Format != format {
			t.Fatalf("%s: %d %s, want 202 with format %s", f, resp.StatusCode, body, f)
		}
		v := env.wait(tok, sb.JobID, delivered)
		resp, file := env.getPath(tok, *v.DownloadURL)
		if resp.Header.Get("Content-Type") != format.ContentType() {
			t.Errorf("%s: download Content-Type %q", f, resp.Header.Get("Content-Type"))
		}
		if f == "ndjson" {
			if !bytes.Equal(file, env.syncExport(tok, "format=ndjson&orderByField=userWorklogId")) {
				t.Errorf("ndjson job file differs from the synchronous export")
			}
			continue
		}
		equalTables(t, f+" job", readColumnar(t, f, file).table, want)
	}
}
