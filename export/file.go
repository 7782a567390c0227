package export

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile runs req into path atomically: the export is written to a
// temporary file beside path, synced and renamed, so path holds either the
// whole export or nothing (no half-written file is ever left under its
// name). "-" writes to standard output.
func WriteFile(ctx context.Context, req Request, path string) (rows int64, err error) {
	if path == "-" {
		bw := bufio.NewWriterSize(os.Stdout, 1<<16)
		rows, err = Run(ctx, req, bw, nil)
		if err == nil {
			err = bw.Flush()
		}
		return rows, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return 0, fmt.Errorf("create export file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<16)
	if rows, err = Run(ctx, req, bw, nil); err != nil {
		return rows, err
	}
	if err = bw.Flush(); err != nil {
		return rows, fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return rows, fmt.Errorf("sync %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return rows, fmt.Errorf("close %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return rows, fmt.Errorf("rename %s: %w", path, err)
	}
	if d, derr := os.Open(filepath.Dir(path)); derr == nil {
		err = d.Sync()
		err = errors.Join(err, d.Close())
	}
	return rows, err
}
