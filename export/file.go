package export

import (
	"bufio"
	"context"
	"io"
	"os"

	"worklog/internal/fsutil"
	"worklog/query"
)

// WriteFile runs req into path atomically: the export is written to a
// temporary file beside path, synced and renamed, so path holds either the
// whole export or nothing (no half-written file is ever left under its
// name). "-" writes to standard output. The file is private (0600) unless
// opts say otherwise: 'worklog export --out' passes fsutil.CommandOutput.
func WriteFile(ctx context.Context, req Request, path string, opts ...fsutil.Option) (rows int64, err error) {
	err = writeAtomic(path, func(w io.Writer) error {
		rows, err = Run(ctx, req, w, nil)
		return err
	}, opts)
	return rows, err
}

// WriteAggregateFile runs the analytics request req into path atomically,
// as WriteFile does an export ("-": standard output). It returns the
// groups written and the result's counts (Total, Suppressed).
func WriteAggregateFile(ctx context.Context, req AggregateRequest, path string, opts ...fsutil.Option) (rows int64, res *query.AggregateResult, err error) {
	res, err = QueryAggregate(ctx, req)
	if err != nil {
		return 0, nil, err
	}
	encoded := false
	err = writeAtomic(path, func(w io.Writer) error {
		encoded = true
		rows, err = EncodeAggregate(ctx, req, res, w, nil)
		return err
	}, opts)
	if !encoded {
		res.Records.Release() // EncodeAggregate releases them otherwise
	}
	return rows, res, err
}

// writeAtomic writes path through write with fsutil.WriteAtomic (a temporary
// file beside it, synced, renamed, its directory synced), or to standard
// output for "-". On error no file is left under either name.
func writeAtomic(path string, write func(w io.Writer) error, opts []fsutil.Option) error {
	if path == "-" {
		bw := bufio.NewWriterSize(os.Stdout, 1<<16)
		if err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	}
	// 0600 as os.CreateTemp gave before: an export can hold personal data.
	return fsutil.WriteAtomic(path, 0o600, write, opts...)
}
