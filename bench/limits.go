package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"worklog/export/api"
)

// limitsStall is the write stall timeout of L's server: short, so the
// scenario takes seconds, as the attack took minutes.
const limitsStall = 2 * time.Second

// limits (L) replays the hostile-client findings against a server of its
// own, so that its peak RSS is theirs alone: a 33 KB zstd body that
// expands to 1 GiB of spaces, then 4 exports and 200 pages whose clients
// never read. It reports the statuses, the peak RSS and the RSS once the
// stalled clients are cut.
func (b *bench) limits(ctx context.Context, store string) error {
	srv, err := b.serve(ctx, store, "--write-stall-timeout", limitsStall.String())
	if err != nil {
		return err
	}
	defer srv.stop()
	pid := srv.cmd.Process.Pid
	base, _ := vmHWM(pid)

	// L1: the bomb.
	var bomb bytes.Buffer
	zw, _ := zstd.NewWriter(&bomb, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	spaces := bytes.Repeat([]byte(" "), 1<<20)
	for range 1024 {
		zw.Write(spaces)
	}
	zw.Close()
	ingestTok := b.mint("bench", "reporting.ingest")
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.base+api.IngestPath, bytes.NewReader(bomb.Bytes()))
	req.Header.Set("Authorization", "Bearer "+ingestTok)
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Content-Encoding", "zstd")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("post bomb: %w", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	afterBomb, _ := vmHWM(pid)
	b.res.add(line{ID: "L1", What: fmt.Sprintf("zstd bomb (%d KB → 1 GiB of spaces) over HTTP: answered %d", bomb.Len()>>10, resp.StatusCode),
		Ours: newStat("MB", []float64{mb(afterBomb)}), Target: "413, peak RSS bounded by the record limit",
		Met: verdict(resp.StatusCode == http.StatusRequestEntityTooLarge), Note: fmt.Sprintf("server peak RSS before: %.0f MB", mb(base))})

	// L2: stalled readers.
	addr := strings.TrimPrefix(srv.base, "http://")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	stall := func(q string) error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		c.(*net.TCPConn).SetReadBuffer(4096)
		conns = append(conns, c)
		_, err = fmt.Fprintf(c, "GET %s?%s HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer %s\r\n\r\n", api.ExportPath, q, b.token)
		return err
	}
	for range 4 {
		if err := stall("format=csv&orderByField=date"); err != nil {
			return err
		}
	}
	for i := range 200 {
		if err := stall(fmt.Sprintf("format=json&limit=1000&offset=%d", i*1000)); err != nil {
			return err
		}
	}
	start := time.Now()
	// Wait until an export is answered again: the stalled ones were cut.
	var code int
	for time.Since(start) < 5*time.Minute {
		r, err := b.fetch(ctx, srv.base+api.ExportPath+"?format=csv&limit=10")
		code = 0
		if err == nil {
			code = r.code
		}
		free, err := b.fetch(ctx, srv.base+api.ExportPath+"?format=csv&filters[0][key]=userWorklogId&filters[0][comparator]=equals&filters[0][value]=1")
		if err == nil && free.code == http.StatusOK && code == http.StatusOK {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	took := time.Since(start)
	peak, _ := vmHWM(pid)
	time.Sleep(2 * limitsStall) // let the cut connections' buffers go
	rss, _ := procStatusKB(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
	heap := b.metric(ctx, srv.base, "go_memstats_heap_inuse_bytes")
	b.res.add(line{ID: "L2", What: fmt.Sprintf("4 exports + 200 pages that never read (stall timeout %s): exports answered again after %.1f s", limitsStall, took.Seconds()),
		Ours: newStat("MB", []float64{mb(peak)}), Target: "slots freed, RSS bounded",
		Met: verdict(code == http.StatusOK), Note: fmt.Sprintf("server RSS after the cut: %.0f MB, of which Go heap in use %.0f MB (the rest is DuckDB's)", mb(rss), heap/(1<<20))})
	return nil
}

// metric scrapes one unlabelled sample from the server's /metrics.
func (b *bench) metric(ctx context.Context, base, name string) float64 {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+api.MetricsPath, nil)
	resp, err := client.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return -1
}
