//go:build !unix

package export

import (
	"testing"
	"time"
)

// cpuTime is not measured outside Unix; the cpu-s/op metric reads 0.
func cpuTime(*testing.B) time.Duration { return 0 }
