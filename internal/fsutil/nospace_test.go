package fsutil

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
)

func TestIsNoSpace(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"go write", fmt.Errorf("stage: %w", &os.PathError{Op: "write", Path: "/d/x", Err: syscall.ENOSPC}), true},
		{"duckdb text", errors.New(`IO Error: Could not write file "/d/tmp/x.parquet": No space left on device`), true},
		{"other io", &os.PathError{Op: "write", Path: "/d/x", Err: syscall.EIO}, false},
		{"permission", fmt.Errorf("open: %w", os.ErrPermission), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsNoSpace(tc.err); got != tc.want {
				t.Errorf("IsNoSpace = %v, want %v", got, tc.want)
			}
		})
	}
}

// A real ENOSPC from the kernel: writes to /dev/full fail with it.
func TestIsNoSpaceDevFull(t *testing.T) {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skip("no /dev/full:", err)
	}
	defer f.Close()
	_, err = f.Write([]byte("x"))
	if !IsNoSpace(fmt.Errorf("write: %w", err)) {
		t.Errorf("/dev/full: %v is not recognised as a full disk", err)
	}
}
