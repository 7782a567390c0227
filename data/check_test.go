package data

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckPart(t *testing.T) {
	s, _ := Open(t.TempDir(), StoreOptions{})
	good := commitParts(t, s, nil, map[string]int{"2024-01": 5}).Files[0]
	b, _ := os.ReadFile(good.Path)
	dir := filepath.Dir(good.Path)
	write := func(name string, content []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, content, 0o640)
		return p
	}
	tests := []struct {
		name   string
		file   PartFile
		reason string // "" when readable
	}{
		{"intact", good, ""},
		{"missing", PartFile{Month: "2024-01", Path: filepath.Join(dir, "gone.parquet"), Rows: 5}, "missing"},
		{"truncated", PartFile{Month: "2024-01", Path: write("cut.parquet", b[:len(b)/2]), Rows: 5}, "truncated"},
		{"tiny", PartFile{Month: "2024-01", Path: write("tiny.parquet", b[:5]), Rows: 5}, "truncated"},
		{"footer garbage", PartFile{Month: "2024-01", Path: write("bad.parquet", append(append([]byte{}, b[:len(b)-40]...), append(make([]byte, 32), b[len(b)-8:]...)...)), Rows: 5}, "footer"},
		{"row count differs", PartFile{Month: "2024-01", Path: good.Path, Rows: 6}, "rows"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPart(tc.file)
			if tc.reason == "" {
				if err != nil {
					t.Errorf("CheckPart = %v", err)
				}
				return
			}
			var de *DamagedPartError
			if !errors.As(err, &de) || !strings.Contains(de.Reason, tc.reason) || !strings.HasPrefix(de.Path, "month=2024-01/") || strings.Contains(err.Error(), dir) {
				t.Errorf("CheckPart = %v; want a DamagedPartError about %q with the store-relative path", err, tc.reason)
			}
		})
	}
	if err := CheckParts([]PartFile{good, tests[1].file, tests[2].file}); strings.Count(err.Error(), "is damaged") != 2 {
		t.Errorf("CheckParts = %v, want both damaged files", err)
	}
}
