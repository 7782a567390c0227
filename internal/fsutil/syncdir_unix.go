//go:build !windows

package fsutil

import (
	"errors"
	"fmt"
	"os"
)

// SyncDir fsyncs directory dir, so that the creations, renames and removals
// in it survive a crash. On Windows, which cannot sync a directory handle
// and commits directory entries itself, it does nothing.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	if err := d.Sync(); err != nil {
		return errors.Join(fmt.Errorf("sync dir %s: %w", dir, err), d.Close())
	}
	if err := d.Close(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
