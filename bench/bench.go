package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"worklog/data"
	"worklog/export/api"
	"worklog/export/api/auth"
	"worklog/ingest/demo"
	"worklog/internal/fsutil"
)

// exportRows is P1's export size: the synchronous limit of CSV and JSON.
const exportRows = 300000

// bench is one run of the harness.
type bench struct {
	cfg    config
	res    *results
	bin    string // the worklog binary built for this run
	secret string
	token  string
	db     *sql.DB // the harness's own DuckDB, for cutoffs and P3's bare query
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func (b *bench) run(ctx context.Context) error {
	b.res.Load = loadAvg()
	defer func() { b.res.LoadEnd = loadAvg() }()
	var sec [24]byte
	_, _ = rand.Read(sec[:])
	b.secret = hex.EncodeToString(sec[:])
	tok, err := auth.MintHS256([]byte(b.secret), auth.TokenRequest{Subject: "bench", Email: "bench@example.com", TTL: 24 * time.Hour})
	if err != nil {
		return err
	}
	b.token = tok
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return fmt.Errorf("open duckdb: %w", err)
	}
	defer db.Close()
	b.db = db

	if err := b.build(ctx); err != nil {
		return err
	}
	dump, err := b.dump(ctx, b.cfg.rows)
	if err != nil {
		return err
	}
	store := filepath.Join(b.cfg.work, fmt.Sprintf("store-%d", b.cfg.rows))
	if !b.cfg.skip["P2"] && b.cfg.profile == "" {
		if err := b.p2(ctx, dump, store); err != nil {
			return fmt.Errorf("P2: %w", err)
		}
	}
	if !b.cfg.skip["ID"] && b.cfg.profile == "" {
		if err := b.ingestHead(ctx, dump); err != nil {
			return fmt.Errorf("ID: %w", err)
		}
	}
	if err := b.ensureStore(ctx, dump, store); err != nil {
		return err
	}
	if b.cfg.profile != "" {
		for _, format := range b.cfg.formats {
			prof := strings.TrimSuffix(b.cfg.profile, ".pprof") + "-" + format + ".pprof"
			if err := b.profileExport(ctx, store, format, prof); err != nil {
				return fmt.Errorf("profile: %w", err)
			}
		}
		return nil
	}
	if !b.cfg.skip["I"] {
		if err := b.publishCost(ctx, dump); err != nil {
			return fmt.Errorf("measurement I: %w", err)
		}
	}
	if !b.cfg.skip["F"] {
		files, err := storeFiles(store)
		if err != nil {
			return err
		}
		if err := b.forget(ctx, store, files); err != nil {
			return fmt.Errorf("measurement F: %w", err)
		}
	}
	if !b.cfg.skip["L"] {
		if err := b.limits(ctx, store); err != nil {
			return fmt.Errorf("measurement L: %w", err)
		}
	}
	if !b.cfg.skip["BD"] {
		if err := b.busyDay(ctx); err != nil {
			return fmt.Errorf("busy day (BD): %w", err)
		}
	}
	if !b.cfg.skip["R"] {
		files, err := storeFiles(store)
		if err != nil {
			return err
		}
		if err := b.replicas(ctx, store, files); err != nil {
			return fmt.Errorf("measurement R: %w", err)
		}
	}
	if b.cfg.skip["P1"] && b.cfg.skip["P3"] && b.cfg.skip["P4"] && b.cfg.skip["X"] && b.cfg.skip["C"] && b.cfg.skip["PQ"] && b.cfg.skip["A"] {
		return nil
	}
	// P4's page clients share the bench's token (one user): that user's
	// share of the query pool (--queries-per-user, 4 by default) is raised
	// to hold them all, else P4 would measure the fairness refusals.
	srv, err := b.serve(ctx, store, "--queries-per-user", strconv.Itoa(max(b.cfg.clients, 4)))
	if err != nil {
		return err
	}
	defer srv.stop()
	files, err := storeFiles(store)
	if err != nil {
		return err
	}
	if !b.cfg.skip["P1"] {
		if err := b.p1(ctx, srv, store, files); err != nil {
			return fmt.Errorf("P1: %w", err)
		}
	}
	if !b.cfg.skip["P3"] {
		if err := b.p3(ctx, srv, files, store); err != nil {
			return fmt.Errorf("P3: %w", err)
		}
	}
	if !b.cfg.skip["P4"] {
		if err := b.p4(ctx, srv, files); err != nil {
			return fmt.Errorf("P4: %w", err)
		}
	}
	if !b.cfg.skip["A"] {
		if err := b.analytics(ctx, srv, files); err != nil {
			return fmt.Errorf("analytics (A): %w", err)
		}
	}
	if !b.cfg.skip["X"] {
		if err := b.xlsx(ctx, store, files); err != nil {
			return fmt.Errorf("XLSX: %w", err)
		}
	}
	if !b.cfg.skip["C"] {
		if err := b.cursors(ctx, srv, store, files); err != nil {
			return fmt.Errorf("cursor pages: %w", err)
		}
	}
	if !b.cfg.skip["PQ"] {
		if err := b.parquet(ctx, store, files); err != nil {
			return fmt.Errorf("parquet export: %w", err)
		}
	}
	if hwm, err := vmHWM(srv.cmd.Process.Pid); err == nil {
		b.res.note("peak RSS of the pseudonymized server over the whole run (P1's pseudonymized requests, P3, P4, A, C): %.0f MB", mb(hwm))
	}
	return nil
}

// mint makes a token of the bench's secret with the given permissions.
func (b *bench) mint(sub string, perms ...string) string {
	tok, _ := auth.MintHS256([]byte(b.secret), auth.TokenRequest{Subject: sub, Email: "bench@example.com", Permissions: perms, TTL: time.Hour})
	return tok
}

// build compiles the worklog binary of this module into the work directory.
func (b *bench) build(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("find module: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	b.bin = filepath.Join(b.cfg.work, "worklog")
	b.logf("building %s", b.bin)
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "duckdb_arrow", "-o", b.bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build worklog: %w: %s", err, out)
	}
	return nil
}

// dumpBytesPerEvent is the disk an event of the dump needs: 1.7 KB of
// NDJSON plus about 0.3 KB for the stores built from it (ours, DuckDB's
// snappy and zstd files).
const dumpBytesPerEvent = 2000

// dump writes (or reuses) the demo NDJSON dump of rows events.
func (b *bench) dump(ctx context.Context, rows int) (string, error) {
	path := filepath.Join(b.cfg.work, fmt.Sprintf("events-%d.ndjson", rows))
	if _, err := os.Stat(path); err == nil {
		b.logf("reusing %s", path)
		return path, nil
	}
	// A 10M dump is 16.7 GB, and both sides' stores follow it: on a disk
	// shared with others, say so before filling it rather than part-way.
	if free, ok := freeBytes(b.cfg.work); ok && free < int64(rows)*dumpBytesPerEvent {
		return "", fmt.Errorf("generate dump of %d events: needs about %.1f GB free in %s (the dump and the stores), has %.1f GB",
			rows, float64(int64(rows)*dumpBytesPerEvent)/1e9, b.cfg.work, float64(free)/1e9)
	}
	b.logf("generating %d events into %s", rows, path)
	start := time.Now()
	err := fsutil.WriteAtomic(path, 0o644, func(w io.Writer) error {
		return demo.Generate(ctx, w, demo.Options{Rows: rows, Seed: 1})
	})
	if err != nil {
		return "", fmt.Errorf("generate dump: %w", err)
	}
	fi, _ := os.Stat(path)
	b.logf("generated %.0f MB in %.1f s", mb(fi.Size()), time.Since(start).Seconds())
	return path, nil
}

// ingest runs `worklog ingest` of dump into the store at dir.
func (b *bench) ingest(ctx context.Context, dump, dir string) (procResult, error) {
	cmd := exec.CommandContext(ctx, b.bin, "ingest", "--data", dir, dump)
	res, err := runProc(ctx, cmd)
	if err != nil {
		return res, fmt.Errorf("ingest: %w", err)
	}
	return res, nil
}

// ensureStore ingests dump into dir unless a store is already there.
func (b *bench) ensureStore(ctx context.Context, dump, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "worklog", "_manifest.json")); err == nil {
		return nil
	}
	b.logf("ingesting %s into %s", filepath.Base(dump), dir)
	res, err := b.ingest(ctx, dump, dir)
	if err != nil {
		return err
	}
	b.logf("ingested in %.1f s, peak RSS %.0f MB", res.wall.Seconds(), mb(res.peakRSS))
	return nil
}

// storeFiles lists the committed part files of the store at dir.
func storeFiles(dir string) ([]data.PartFile, error) {
	st, err := data.Open(dir, data.StoreOptions{})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	snap, err := st.Snapshot()
	if err != nil {
		return nil, err
	}
	return snap.Files, nil
}

// server is a running `worklog serve` child.
type server struct {
	cmd  *exec.Cmd
	base string
	done chan error
	log  *os.File
}

// serve starts `worklog serve` over the store at dir with the server's
// default privacy level and waits until it answers.
func (b *bench) serve(ctx context.Context, dir string, extra ...string) (*server, error) {
	logf, err := os.CreateTemp(b.cfg.work, "serve-"+filepath.Base(dir)+"-*.log")
	if err != nil {
		return nil, err
	}
	return b.start(ctx, dir, "server", logf, extra...)
}

// start runs `worklog serve` over the store at dir on a free loopback port,
// logging to logf, and waits until it answers; what names it in messages.
func (b *bench) start(ctx context.Context, dir, what string, logf *os.File, extra ...string) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		logf.Close()
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(b.bin, append([]string{"serve", "--data", dir, "--addr", addr}, extra...)...)
	cmd.Env = append(os.Environ(), "WORKLOG_JWT_SECRET="+b.secret)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", what, err)
	}
	s := &server{cmd: cmd, base: "http://" + addr, done: make(chan error, 1), log: logf}
	go func() { s.done <- cmd.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r, err := b.fetch(ctx, s.base+api.ExportPath+"?limit=1")
		if err == nil && r.code == http.StatusOK {
			b.logf("%s up at %s (pid %d)", what, s.base, cmd.Process.Pid)
			return s, nil
		}
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("%s exited: %v (log %s)", what, err, logf.Name())
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s did not become ready", what)
		}
	}
}

// stop shuts the server down. A server that shut down cleanly leaves no
// log behind (one per start piled up in the work directory); one that did
// not keeps it, named on stderr.
func (s *server) stop() {
	if s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
	s.log.Close()
	if s.cmd.ProcessState != nil && s.cmd.ProcessState.Success() {
		_ = os.Remove(s.log.Name())
		return
	}
	fmt.Fprintf(os.Stderr, "server %s did not shut down cleanly (%v): its log is %s\n", s.base, s.cmd.ProcessState, s.log.Name())
}

// client reads whole bodies; compression is off so that the bytes measured
// are the bytes encoded.
var client = &http.Client{Transport: &http.Transport{
	DisableCompression:  true,
	MaxIdleConnsPerHost: 64,
}}

// exportURL is P1's request: the whole result of a date filter, newest first.
func exportURL(base, format, cutoff string) string {
	v := url.Values{}
	v.Set("format", format)
	v.Set("filters[0][key]", "date")
	v.Set("filters[0][comparator]", "gt")
	v.Set("filters[0][value]", cutoff)
	v.Set("orderByField", "date")
	v.Set("orderByDirection", "desc")
	return base + api.ExportPath + "?" + v.Encode()
}
