package query

import (
	"context"
	"net/url"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"worklog/data"
)

func expCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestExpRead(t *testing.T) {
	dir := os.Getenv("EXP_STORE")
	if dir == "" {
		t.Skip()
	}
	st, err := data.Open(dir, data.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e, err := NewEngine(st, EngineOptions{TempDirectory: t.TempDir(), KeepFreedMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if v := os.Getenv("EXP_CHUNK_BYTES"); v != "" {
		n, _ := strconv.ParseInt(v, 10, 64)
		e.chunkBytes = n
	}
	if v := os.Getenv("EXP_CHUNK_ROWS"); v != "" {
		n, _ := strconv.ParseInt(v, 10, 64)
		e.chunkRows = n
	}
	snap, _ := st.Snapshot()
	var cutoff string
	if err := e.db.QueryRow("SELECT CAST(date AS VARCHAR) FROM " + data.ScanSQL(snap.Files) + " ORDER BY date DESC LIMIT 1 OFFSET 300000").Scan(&cutoff); err != nil {
		t.Fatal(err)
	}
	v := url.Values{}
	v.Set("format", "json")
	v.Set("filters[0][key]", "date")
	v.Set("filters[0][comparator]", "gt")
	v.Set("filters[0][value]", cutoff)
	v.Set("orderByField", "date")
	v.Set("orderByDirection", os.Getenv("EXP_DIR"))
	p, err := Parse(v, Options{Formats: []string{"json"}, DefaultFormat: "json", FieldAllowed: func(string) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	for rep := 0; rep < 3; rep++ {
		start, c0 := time.Now(), expCPU()
		rr, err := e.Records(context.Background(), snap, p)
		if err != nil {
			t.Fatal(err)
		}
		var n, batches int64
		for rr.Next() {
			n += rr.RecordBatch().NumRows()
			batches++
		}
		rr.Release()
		t.Logf("%d rows %d batches in %.3f s CPU %.3f s", n, batches, time.Since(start).Seconds(), (expCPU() - c0).Seconds())
	}
}

func TestExpRaw(t *testing.T) {
	dir := os.Getenv("EXP_STORE")
	if dir == "" {
		t.Skip()
	}
	st, err := data.Open(dir, data.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e, err := NewEngine(st, EngineOptions{TempDirectory: t.TempDir(), KeepFreedMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	snap, _ := st.Snapshot()
	var cutoff string
	if err := e.db.QueryRow("SELECT CAST(date AS VARCHAR) FROM " + data.ScanSQL(snap.Files) + " ORDER BY date DESC LIMIT 1 OFFSET 300000").Scan(&cutoff); err != nil {
		t.Fatal(err)
	}
	t.Logf("cutoff %s", cutoff)
	cols := os.Getenv("EXP_COLS")
	if cols == "" {
		cols = "*"
	}
	q := "SELECT " + cols + " FROM " + data.ScanSQL(snap.Files) + " AS t WHERE date > TIMESTAMP '" + cutoff + "'"
	for _, which := range []string{"chunkDB", "db"} {
		db := e.chunkDB
		if which == "db" {
			db = e.db
		}
		for rep := 0; rep < 3; rep++ {
			conn, _ := db.Conn(context.Background())
			start, c0 := time.Now(), expCPU()
			rr, err := streamQuery(context.Background(), conn, statement{q, nil})
			if err != nil {
				t.Fatal(err)
			}
			var n, batches int64
			for rr.Next() {
				n += rr.RecordBatch().NumRows()
				batches++
			}
			rr.Release()
			t.Logf("%s: %d rows %d batches in %.3f s CPU %.3f s", which, n, batches, time.Since(start).Seconds(), (expCPU() - c0).Seconds())
			conn.Close()
		}
	}
	for _, which := range []string{"chunkDB", "db"} {
		db := e.chunkDB
		if which == "db" {
			db = e.db
		}
		for _, codec := range []string{"zstd", "uncompressed"} {
			start, c0 := time.Now(), expCPU()
			if _, err := db.Exec("COPY (" + q + ") TO '/tmp/exp-copy.parquet' (FORMAT parquet, COMPRESSION " + codec + ")"); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s COPY unsorted %s: %.3f s CPU %.3f s", which, codec, time.Since(start).Seconds(), (expCPU() - c0).Seconds())
		}
	}
}

func TestExpAlign(t *testing.T) {
	dir := os.Getenv("EXP_STORE")
	if dir == "" {
		t.Skip()
	}
	st, err := data.Open(dir, data.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e, err := NewEngine(st, EngineOptions{TempDirectory: t.TempDir(), KeepFreedMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	snap, _ := st.Snapshot()
	files := snap.Files
	var paths []string
	for _, f := range files {
		paths = append(paths, data.QuoteString(f.Path))
	}
	// row group boundaries of date over all files
	rows, err := e.db.Query("SELECT file_name, row_group_id, row_group_num_rows, stats_min_value, stats_max_value FROM parquet_metadata([" + joinStr(paths) + "]) WHERE path_in_schema = 'date' ORDER BY stats_min_value DESC LIMIT 20")
	if err != nil {
		t.Fatal(err)
	}
	type rg struct {
		file     string
		id, n    int64
		min, max string
	}
	var rgs []rg
	for rows.Next() {
		var r rg
		if err := rows.Scan(&r.file, &r.id, &r.n, &r.min, &r.max); err != nil {
			t.Fatal(err)
		}
		rgs = append(rgs, r)
	}
	rows.Close()
	for _, r := range rgs[:3] {
		t.Logf("%s rg %d n %d [%s, %s]", r.file, r.id, r.n, r.min, r.max)
	}
	conn, _ := e.chunkDB.Conn(context.Background())
	defer conn.Close()
	if os.Getenv("EXP_MDC") != "" {
		if _, err := conn.ExecContext(context.Background(), "SET parquet_metadata_cache = true"); err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string, ranges [][2]string) {
		start, c0 := time.Now(), expCPU()
		var n int64
		for _, rg := range ranges {
			fs := files
			if os.Getenv("EXP_OCT") != "" {
				fs = nil
				for _, f := range files {
					if f.Month == "2026-10" || f.Month == "2026-09" {
						fs = append(fs, f)
					}
				}
			}
			q := "SELECT * FROM " + data.ScanSQL(fs) + " AS t WHERE date >= TIMESTAMP '" + rg[0] + "' AND date < TIMESTAMP '" + rg[1] + "'"
			rr, err := streamQuery(context.Background(), conn, statement{q, nil})
			if err != nil {
				t.Fatal(err)
			}
			for rr.Next() {
				n += rr.RecordBatch().NumRows()
			}
			rr.Release()
		}
		t.Logf("%s: %d rows, %d queries, %.3f s CPU %.3f s", name, n, len(ranges), time.Since(start).Seconds(), (expCPU() - c0).Seconds())
	}
	// aligned: [min_i, min_{i-1}) for rgs sorted desc by min
	var aligned, shifted [][2]string
	for i := 1; i < 17; i++ {
		aligned = append(aligned, [2]string{rgs[i].min, rgs[i-1].min})
	}
	// shifted: boundaries at midpoints (string compare ok for same format? use duckdb to compute midpoints)
	for i := 1; i < 17; i++ {
		var lo, hi string
		e.db.QueryRow("SELECT CAST(TIMESTAMP '"+rgs[i+1].min+"' + (TIMESTAMP '"+rgs[i].min+"' - TIMESTAMP '"+rgs[i+1].min+"')/2 AS VARCHAR), CAST(TIMESTAMP '"+rgs[i].min+"' + (TIMESTAMP '"+rgs[i-1].min+"' - TIMESTAMP '"+rgs[i].min+"')/2 AS VARCHAR)").Scan(&lo, &hi)
		shifted = append(shifted, [2]string{lo, hi})
	}
	for rep := 0; rep < 3; rep++ {
		run("aligned", aligned)
		run("shifted", shifted)
		run("one", [][2]string{{aligned[len(aligned)-1][0], aligned[0][1]}})
	}
}

func joinStr(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}
