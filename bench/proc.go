package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // registers the "duckdb" driver
)

// childEnv selects the child role of the harness binary.
const childEnv = "WORKLOG_BENCH_CHILD"

// childSQLEnv carries the statements a DuckDB child runs, separated by ";\n".
const childSQLEnv = "WORKLOG_BENCH_SQL"

// childMain runs the harness as a child when childEnv is set, and reports
// whether it did. A DuckDB child opens a fresh in-memory DuckDB with its
// default settings (as a user's own script would), runs the statements and
// prints the wall time of the last one as JSON; earlier statements are setup.
func childMain() bool {
	if os.Getenv(childEnv) != "duckdb" {
		return false
	}
	stmts := strings.Split(os.Getenv(childSQLEnv), ";\n")
	db, err := sql.Open("duckdb", "")
	if err != nil {
		fmt.Fprintln(os.Stderr, "open duckdb:", err)
		os.Exit(1)
	}
	var elapsed time.Duration
	for _, s := range stmts {
		start := time.Now()
		if _, err := db.Exec(s); err != nil {
			fmt.Fprintf(os.Stderr, "run %q: %v\n", short(s), err)
			os.Exit(1)
		}
		elapsed = time.Since(start)
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]float64{"seconds": elapsed.Seconds()})
	return true
}

func short(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// procResult is one finished child process.
type procResult struct {
	wall    time.Duration
	cpu     time.Duration // user + system, from getrusage: steadier than wall on a shared machine
	peakRSS int64         // bytes, from getrusage
	stdout  []byte
}

// runProc runs cmd to completion and measures its wall time and peak RSS.
func runProc(ctx context.Context, cmd *exec.Cmd) (procResult, error) {
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return procResult{}, fmt.Errorf("%s: %w: %s", cmd.Args[0], err, tail(errb.String()))
	}
	var rss int64
	var cpu time.Duration
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss * 1024 // Linux reports KiB
		cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return procResult{wall: wall, cpu: cpu, peakRSS: rss, stdout: out.Bytes()}, ctx.Err()
}

// duckdbChild runs statements in a fresh DuckDB child process and returns
// the last statement's own time and the process's peak RSS.
func duckdbChild(ctx context.Context, stmts ...string) (seconds float64, peakRSS int64, err error) {
	seconds, res, err := duckdbChildProc(ctx, stmts...)
	return seconds, res.peakRSS, err
}

// duckdbChildProc is duckdbChild with the whole process's figures.
func duckdbChildProc(ctx context.Context, stmts ...string) (seconds float64, res procResult, err error) {
	self, err := os.Executable()
	if err != nil {
		return 0, res, err
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), childEnv+"=duckdb", childSQLEnv+"="+strings.Join(stmts, ";\n"))
	res, err = runProc(ctx, cmd)
	if err != nil {
		return 0, res, fmt.Errorf("duckdb child: %w", err)
	}
	var rep struct{ Seconds float64 }
	if err := json.Unmarshal(res.stdout, &rep); err != nil {
		return 0, res, fmt.Errorf("duckdb child output %q: %w", res.stdout, err)
	}
	return rep.Seconds, res, nil
}

// vmHWM reads a running process's peak resident set size (bytes).
func vmHWM(pid int) (int64, error) {
	return procStatusKB("/proc/"+strconv.Itoa(pid)+"/status", "VmHWM:")
}

// procStatusKB reads a "Key:   N kB" line of a /proc status-like file.
func procStatusKB(path, key string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, key); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse %s %s: %w", path, key, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "cpu unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "cpu unknown"
}

func memTotal() string {
	n, err := procStatusKB("/proc/meminfo", "MemTotal:")
	if err != nil {
		return "memory unknown"
	}
	return fmt.Sprintf("%.1f GB RAM", float64(n)/1e9)
}

// loadAvg is the 1-minute load average, to judge how noisy a run was.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}
