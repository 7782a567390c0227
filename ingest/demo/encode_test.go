package demo

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// TestAppendString checks that encoded strings decode to the original,
// including quotes, backslashes, control characters and non-ASCII text.
func TestAppendString(t *testing.T) {
	for _, s := range []string{
		"", "plain", `say "hi"`, `C:\path`, "line\nbreak\r\n", "tab\there",
		"\x00\x01\x1f", "Jürgen Keßler", "日本語", "mixed \"\\\n\tüñ\x7f",
	} {
		b := appendString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Errorf("appendString(%q) = %s: %v", s, b, err)
			continue
		}
		if got != s {
			t.Errorf("appendString(%q) decodes to %q", s, got)
		}
	}
}

// TestPicker checks that draws follow the weights, zero weights are never
// drawn and a tiny weight is still reachable.
func TestPicker(t *testing.T) {
	tests := []struct {
		name    string
		weights []float64
	}{
		{"even", []float64{1, 1, 1, 1}},
		{"skewed", []float64{70, 20, 10}},
		{"zeros", []float64{0, 5, 0, 5}},
		{"tiny", []float64{1e6, 1}},
		{"one", []float64{3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPicker(tt.weights)
			if len(p.table) != 1<<pickerBits {
				t.Fatalf("table has %d slots", len(p.table))
			}
			slots := make([]int, len(tt.weights))
			for _, v := range p.table {
				slots[v]++
			}
			var sum float64
			for _, w := range tt.weights {
				sum += w
			}
			for i, w := range tt.weights {
				share := float64(slots[i]) / float64(len(p.table))
				switch {
				case w == 0 && slots[i] != 0:
					t.Errorf("weight 0 at %d owns %d slots", i, slots[i])
				case w > 0 && slots[i] == 0:
					t.Errorf("weight %v at %d owns no slot", w, i)
				case w/sum > 0.01 && (share < w/sum-0.01 || share > w/sum+0.01):
					t.Errorf("weight %v at %d owns %.3f of the slots, want %.3f", w, i, share, w/sum)
				}
			}
			r := rand.New(rand.NewPCG(1, 2))
			for range 1000 {
				if i := p.pick(r); tt.weights[i] == 0 {
					t.Fatalf("drew index %d of weight 0", i)
				}
			}
		})
	}
}

// TestAppendDocString checks the encoding of a JSON document as a string
// value against encoding/json, across chunk boundaries.
func TestAppendDocString(t *testing.T) {
	for _, doc := range []string{
		``, `{}`, `{"a":1}`, `{"body":"line\nbreak \"quoted\" C:\\dir"}`,
		`{"name":"Jürgen Keßler","tags":["a","b"]}`, `12345678`, `1234567"`, `"1234567`,
	} {
		got := appendDocString(nil, []byte(doc))
		want, _ := json.Marshal(doc)
		var back string
		if err := json.Unmarshal(got, &back); err != nil || back != doc {
			t.Errorf("appendDocString(%s) = %s, decodes to %q (%v); encoding/json gives %s", doc, got, back, err, want)
		}
	}
}
