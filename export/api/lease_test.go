package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"worklog/data"
	"worklog/ingest"
	"worklog/privacy"
)

// An export that is still streaming while five ingests commit, each
// replacing every month, with a writer whose retire grace is 1 ns, completes
// with the rows of the snapshot it started on: its lease keeps the files.
func TestExportOutlivesCommits(t *testing.T) {
	env := newTestEnv(t, privacy.None, nil, readFixture(t))
	tok := env.token("u1", "")
	resp, want := env.get(tok, "")
	if resp.StatusCode != 200 {
		t.Fatalf("baseline: %d %s", resp.StatusCode, want)
	}
	release := make(chan struct{})
	held := holdFirstExport(env, func(context.Context) { <-release })
	type result struct {
		status int
		body   []byte
		err    error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, env.url+ExportPath, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, b, err}
	}()
	<-held

	// Another writer, as `worklog ingest` in another process would be.
	writer, err := data.Open(env.store.DataDir(), data.StoreOptions{RetireGrace: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := writer.Snapshot()
	for i := range 5 {
		var dump strings.Builder
		for j, m := range snap.Months() {
			fmt.Fprintf(&dump, `{"date":"%s-10 10:00:00","action":"readAction","userWorklogId":%d}`+"\n", m, 900000000+i*1000+j)
		}
		if _, err := ingest.Run(context.Background(), writer, []ingest.Input{{Name: "more", R: strings.NewReader(dump.String())}}, ingest.Options{}); err != nil {
			t.Fatalf("ingest %d: %v", i, err)
		}
	}
	close(release)
	got := <-done
	if got.err != nil || got.status != 200 || !bytes.Equal(got.body, want) {
		t.Errorf("held export: %d, %v, %d bytes (want the %d bytes of the snapshot it started on)", got.status, got.err, len(got.body), len(want))
	}
	// Released, the replaced files go with the next commit.
	if _, err := ingest.Run(context.Background(), writer, []ingest.Input{{Name: "last", R: strings.NewReader(`{"date":"2030-01-01 00:00:00","action":"readAction","userWorklogId":1}` + "\n")}}, ingest.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, f := range snap.Files {
		if _, err := os.Stat(f.Path); err == nil {
			t.Errorf("%s outlived the lease that held it", f.Path)
		}
	}
}
