package api

import (
	"bytes"
	"net/http"
	"testing"

	"worklog/privacy"
)

// The bom parameter starts a CSV with a UTF-8 byte-order mark, for Excel on
// Windows; without it the server's setting decides, and the default is
// plain RFC 4180. The rest of the file is the same bytes either way.
func TestCSVBOM(t *testing.T) {
	bom := []byte("\xef\xbb\xbf")
	tests := []struct {
		name    string
		setting bool
		q       string
		want    bool
	}{
		{"default: no mark", false, "format=csv", false},
		{"bom=true", false, "format=csv&bom=true", true},
		{"server setting on", true, "format=csv", true},
		{"bom=false overrides the setting", true, "format=csv&bom=false", false},
		{"the same without the setting", false, "format=csv&bom=false", false},
		{"a page too", false, "format=csv&limit=3&bom=true", true},
		{"json ignores it", false, "format=json&bom=true", false},
	}
	plain := map[string][]byte{} // by query, without the mark
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, privacy.None, func(c *Config) { c.CSVBOM = tc.setting })
			resp, body := env.get(env.token("u1", ""), tc.q+"&orderByField=userWorklogId&orderByDirection=asc")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			if got := bytes.HasPrefix(body, bom); got != tc.want {
				t.Errorf("starts with a BOM: %v, want %v (%q)", got, tc.want, body[:min(10, len(body))])
			}
			rest := bytes.TrimPrefix(body, bom)
			if ref, ok := plain[tc.q]; ok && !bytes.Equal(ref, rest) {
				t.Errorf("after the mark the file differs from the one without")
			}
			plain[tc.q] = rest
		})
	}
	// A bad value names the parameter.
	env := newTestEnv(t, privacy.None, nil)
	resp, body := env.get(env.token("u1", ""), "format=csv&bom=yes")
	if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte(`"param":"bom"`)) {
		t.Errorf("bom=yes: %d %s", resp.StatusCode, body)
	}
}
