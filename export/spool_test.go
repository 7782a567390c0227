package export

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/gofrs/flock"
)

// The XLSX encoder spools into the given directory, not the system temp
// dir; a spool left by a killed process is removed by the next OpenSpool,
// a living process's spool is kept.
func TestXLSXSpoolsUnderDataDir(t *testing.T) {
	data := t.TempDir()
	sysTmp := t.TempDir()
	t.Setenv("TMPDIR", sysTmp)
	root := filepath.Join(data, "tmp", "spool")
	os.MkdirAll(filepath.Join(root, "999999-deadbeef0000"), 0o750)
	os.WriteFile(filepath.Join(root, "999999-deadbeef0000", "excelize-1"), make([]byte, 1<<20), 0o600)
	os.WriteFile(filepath.Join(root, "999999-deadbeef0000.lock"), nil, 0o640)
	os.MkdirAll(filepath.Join(root, "888888-00000000aaaa"), 0o750) // no lock at all
	alive := flock.New(filepath.Join(root, "777777-0000000bbbbb.lock"))
	if ok, err := alive.TryLock(); !ok || err != nil {
		t.Fatal(err)
	}
	defer alive.Unlock()
	os.MkdirAll(filepath.Join(root, "777777-0000000bbbbb"), 0o750)

	spool, err := OpenSpool(data)
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	for name, want := range map[string]bool{"999999-deadbeef0000": false, "999999-deadbeef0000.lock": false, "888888-00000000aaaa": false, "777777-0000000bbbbb": true} {
		if _, err := os.Stat(filepath.Join(root, name)); (err == nil) != want {
			t.Errorf("%s: present %t, want %t", name, err == nil, want)
		}
	}

	mem := newMem(t)
	schema := arrow.NewSchema([]arrow.Field{{Name: "rawData", Type: arrow.BinaryTypes.String}}, nil)
	rows := make([][]any, 2500)
	for i := range rows {
		rows[i] = []any{strings.Repeat("x", 8000)} // past excelize's 16 MiB in-memory chunk
	}
	rec := newRecord(t, mem, schema, rows)
	defer rec.Release()
	enc, err := NewXLSXEncoder(&failWriter{}, schema, EncoderOptions{TempDir: spool.Dir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.Write(rec); err != nil {
		t.Fatal(err)
	}
	if countFiles(t, spool.Dir()) == 0 || countFiles(t, sysTmp) != 0 {
		t.Errorf("spooled %d files under the data dir and %d in the system temp dir", countFiles(t, spool.Dir()), countFiles(t, sysTmp))
	}
	enc.Abort()
	if err := spool.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(spool.Dir()); !os.IsNotExist(err) {
		t.Errorf("spool left after Close: %v", err)
	}
}
