// Package jsontest holds test helpers for JSON output: decoding that keeps
// the key order a plain map loses. Only tests import it.
package jsontest

import (
	"bytes"
	"encoding/json"
	"testing"
)

// DecodeOrdered decodes a JSON array of objects, returning each object's
// keys in document order and its values (numbers as json.Number).
func DecodeOrdered(t testing.TB, b []byte) ([][]string, []map[string]any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var raws []json.RawMessage
	if err := dec.Decode(&raws); err != nil {
		t.Fatalf("decode json: %v\n%s", err, b)
	}
	if dec.More() {
		t.Fatalf("trailing data after the array")
	}
	var keys [][]string
	var objs []map[string]any
	for _, raw := range raws {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("element is not an object: %s", raw)
		}
		var ks []string
		for d.More() {
			tok, err := d.Token()
			if err != nil {
				t.Fatal(err)
			}
			ks = append(ks, tok.(string))
			var skip json.RawMessage
			if err := d.Decode(&skip); err != nil {
				t.Fatal(err)
			}
		}
		var obj map[string]any
		d = json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(&obj); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, ks)
		objs = append(objs, obj)
	}
	return keys, objs
}
