package data

import (
	"strings"
	"testing"
)

// TestUnits keeps the units next to the descriptions: a field in seconds
// says so in its description (the reference's text), and only numeric
// fields carry a unit.
func TestUnits(t *testing.T) {
	for _, f := range Fields() {
		saysSeconds := strings.Contains(strings.ToLower(f.Description), "seconds")
		if f.Unit != "" && !f.Numeric {
			t.Errorf("%s: unit %q on a field that is not numeric", f.Name, f.Unit)
		}
		if f.Numeric && saysSeconds != (f.Unit == UnitSeconds) {
			t.Errorf("%s: unit %q, description %q", f.Name, f.Unit, f.Description)
		}
	}
}
