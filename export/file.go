package export

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"worklog/query"
)

// WriteFile runs req into path atomically: the export is written to a
// temporary file beside path, synced and renamed, so path holds either the
// whole export or nothing (no half-written file is ever left under its
// name). "-" writes to standard output.
func WriteFile(ctx context.Context, req Request, path string) (rows int64, err error) {
	err = writeAtomic(path, func(w io.Writer) error {
		rows, err = Run(ctx, req, w, nil)
		return err
	})
	return rows, err
}

// WriteAggregateFile runs the analytics request req into path atomically,
// as WriteFile does an export ("-": standard output). It returns the
// groups written and the result's counts (Total, Suppressed).
func WriteAggregateFile(ctx context.Context, req AggregateRequest, path string) (rows int64, res *query.AggregateResult, err error) {
	res, err = QueryAggregate(ctx, req)
	if err != nil {
		return 0, nil, err
	}
	encoded := false
	err = writeAtomic(path, func(w io.Writer) error {
		encoded = true
		rows, err = EncodeAggregate(ctx, req, res, w, nil)
		return err
	})
	if !encoded {
		res.Records.Release() // EncodeAggregate releases them otherwise
	}
	return rows, res, err
}

// writeAtomic writes path through write: to a temporary file beside it,
// synced and renamed (its directory synced too), or to standard output for
// "-". On error no file is left under either name.
func writeAtomic(path string, write func(w io.Writer) error) (err error) {
	if path == "-" {
		bw := bufio.NewWriterSize(os.Stdout, 1<<16)
		if err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("create output file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<16)
	if err = write(bw); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("rename %s: %w", path, err)
	}
	if d, derr := os.Open(filepath.Dir(path)); derr == nil {
		err = d.Sync()
		err = errors.Join(err, d.Close())
	}
	return err
}
