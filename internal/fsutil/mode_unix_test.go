//go:build unix

package fsutil

import (
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestCommandOutputMode checks the two ways a file's mode is set: exactly
// perm (what the server keeps), or 0666 less the umask (CommandOutput, what
// a user asks a command for), for Create, WriteAtomic and WriteFile alike.
func TestCommandOutputMode(t *testing.T) {
	writers := map[string]func(path string, perm os.FileMode, opts ...Option) error{
		"Create": func(path string, perm os.FileMode, opts ...Option) error {
			f, err := Create(path, perm, opts...)
			if err != nil {
				return err
			}
			io.WriteString(f, "x")
			return f.Commit()
		},
		"WriteAtomic": func(path string, perm os.FileMode, opts ...Option) error {
			return WriteAtomic(path, perm, func(w io.Writer) error { _, err := io.WriteString(w, "x"); return err }, opts...)
		},
		"WriteFile": func(path string, perm os.FileMode, opts ...Option) error {
			return WriteFile(path, []byte("x"), perm, opts...)
		},
	}
	tests := []struct {
		name   string
		umask  int
		perm   os.FileMode
		opts   []Option
		want   os.FileMode
		replay bool // over an existing file of another mode
	}{
		{"exact perm ignores a loose umask", 0o000, 0o600, nil, 0o600, false},
		{"exact perm ignores a strict umask", 0o077, 0o640, nil, 0o640, false},
		{"command output, umask 022", 0o022, 0o600, []Option{CommandOutput()}, 0o644, false},
		{"command output, umask 002", 0o002, 0o600, []Option{CommandOutput()}, 0o664, false},
		{"command output, umask 077", 0o077, 0o644, []Option{CommandOutput()}, 0o600, false},
		{"command output replaces a private file", 0o022, 0o600, []Option{CommandOutput()}, 0o644, true},
	}
	for _, tc := range tests {
		for name, write := range writers {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				old := syscall.Umask(tc.umask)
				defer syscall.Umask(old)
				dir := t.TempDir()
				path := filepath.Join(dir, "out.csv")
				if tc.replay {
					if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
						t.Fatal(err)
					}
					os.Chmod(path, 0o600)
				}
				if err := write(path, tc.perm, tc.opts...); err != nil {
					t.Fatal(err)
				}
				st, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if got := st.Mode().Perm(); got != tc.want {
					t.Errorf("mode %o, want %o", got, tc.want)
				}
				noTemps(t, dir)
			})
		}
	}
}
