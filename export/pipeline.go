package export

import (
	"context"
	"errors"
	"fmt"
	"io"

	"worklog/data"
	"worklog/privacy"
	"worklog/query"
)

// Request is one export: which rows (Plan over Snapshot), as whom (Policy)
// and how (Format, Options). The HTTP handler, background jobs and
// `worklog export` all run exports through Run, so every path applies the
// same plan and the same privacy transform.
type Request struct {
	Engine   *query.Engine
	Snapshot data.Snapshot
	Plan     *query.Plan
	Policy   *privacy.Policy
	Format   Format
	Options  EncoderOptions
}

// Run streams the request's rows to w: DuckDB → Arrow batches → privacy →
// encoder. Memory stays at a few batches whatever the row count. afterBatch,
// when non-nil, runs after every encoded batch (the HTTP handler flushes
// there). Run returns the number of rows written.
func Run(ctx context.Context, req Request, w io.Writer, afterBatch func() error) (rows int64, err error) {
	// Columns the policy drops are not even read: rawData alone is most of
	// a row's bytes.
	plan := *req.Plan
	plan.Unread = req.Policy.Unread()
	rr, err := req.Engine.Records(ctx, req.Snapshot, &plan)
	if err != nil {
		return 0, fmt.Errorf("query records: %w", err)
	}
	defer rr.Release()

	enc, err := NewEncoder(req.Format, w, req.Policy.Schema(rr.Schema()), req.Options)
	if err != nil {
		return 0, fmt.Errorf("new %s encoder: %w", req.Format, err)
	}
	closed := false
	defer func() {
		// A failed export still releases what the encoder holds (XLSX spools
		// big sheets to temporary files), without writing a trailer that
		// would make a cut-off export look whole.
		if a, ok := enc.(aborter); ok && !closed {
			err = errors.Join(err, a.Abort())
		}
	}()
	for rr.Next() {
		out, err := req.Policy.Transform(rr.RecordBatch())
		if err != nil {
			return rows, fmt.Errorf("privacy transform: %w", err)
		}
		err = enc.Write(out)
		n := out.NumRows()
		out.Release()
		if err != nil {
			return rows, fmt.Errorf("encode %s: %w", req.Format, err)
		}
		rows += n
		if afterBatch != nil {
			if err := afterBatch(); err != nil {
				return rows, err
			}
		}
	}
	if err := rr.Err(); err != nil {
		return rows, fmt.Errorf("read records: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return rows, err
	}
	closed = true
	if err := enc.Close(); err != nil {
		return rows, fmt.Errorf("close %s encoder: %w", req.Format, err)
	}
	return rows, nil
}

// aborter is implemented by encoders that hold resources to release when an
// export fails before Close.
type aborter interface{ Abort() error }

// PlanOptions returns the query options for a policy: which fields may be
// filtered and ordered on, and whether dates count by day.
func PlanOptions(pol *privacy.Policy, defaultFormat Format) query.Options {
	return query.Options{
		DefaultFormat:    string(defaultFormat),
		FieldAllowed:     pol.FieldAllowed,
		DayPrecisionDate: pol.DayPrecisionDate(),
	}
}
