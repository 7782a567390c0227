package export

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gofrs/flock"
)

// spoolRoot is where the encoders' spill files live, under the data
// directory: <data>/tmp/spool/<pid>-<random>/.
const spoolRoot = "tmp/spool"

// Spool is one process's directory for the spill files of the encoders
// (excelize spools large sheets to disk), under the data directory rather
// than the system temp dir: a process killed mid-export leaves its files
// where the next start finds them. The directory is locked while its
// process lives (a flock on <dir>.lock); OpenSpool removes the directories
// whose lock no process holds. Pass Dir as EncoderOptions.TempDir.
type Spool struct {
	dir  string
	lock *flock.Flock
}

// OpenSpool creates this process's spool directory under dataDir and
// removes the ones that crashed processes left. A directory that cannot be
// removed is skipped (and returned in the error joined to a usable Spool):
// cleanup never stops the caller.
func OpenSpool(dataDir string) (*Spool, error) {
	root := filepath.Join(dataDir, filepath.FromSlash(spoolRoot))
	if err := os.MkdirAll(root, 0o750); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	name := fmt.Sprintf("%d-%s", os.Getpid(), hex.EncodeToString(rnd[:]))
	// The lock comes first: a directory never exists without its lock.
	lock := flock.New(filepath.Join(root, name+".lock"), flock.SetPermissions(0o640))
	if ok, err := lock.TryLock(); err != nil || !ok {
		return nil, fmt.Errorf("spool: lock %s: %v", name, err)
	}
	s := &Spool{dir: filepath.Join(root, name), lock: lock}
	if err := os.Mkdir(s.dir, 0o750); err != nil {
		lock.Unlock()
		return nil, fmt.Errorf("spool: %w", err)
	}
	return s, sweepSpools(root, name)
}

// sweepSpools removes the spool directories (and locks) of processes that
// are gone; mine is this process's.
func sweepSpools(root, mine string) error {
	entries, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("sweep spools: %w", err)
	}
	var errs []error
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".lock")
		if name == mine || e.IsDir() && fileExists(filepath.Join(root, name+".lock")) {
			continue // a directory is judged by its lock
		}
		lockPath := filepath.Join(root, name+".lock")
		lock := flock.New(lockPath)
		ok, err := lock.TryLock()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("sweep spool %s: %w", name, err))
			continue
		}
		if err == nil && !ok {
			continue // its process lives
		}
		if err := os.RemoveAll(filepath.Join(root, name)); err != nil {
			errs = append(errs, fmt.Errorf("sweep spool %s: %w", name, err))
		} else {
			os.Remove(lockPath)
		}
		if ok {
			lock.Unlock()
		}
	}
	return errors.Join(errs...)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Dir is the spool directory.
func (s *Spool) Dir() string { return s.dir }

// Close removes the spool directory and its lock.
func (s *Spool) Close() error {
	err := os.RemoveAll(s.dir)
	os.Remove(s.lock.Path())
	return errors.Join(err, s.lock.Unlock())
}
