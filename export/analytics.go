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

// AnalyticsSheetName names the XLSX sheet of an analytics result.
const AnalyticsSheetName = "analytics"

// AggregateRequest is one analytics query (SPEC §10): which groups (Plan
// over Snapshot), as whom (Policy) and how (Format, Options). The HTTP
// handler and `worklog analytics` both run it through QueryAggregate and
// EncodeAggregate, so every path applies the same plan and privacy.
type AggregateRequest struct {
	Engine   *query.Engine
	Snapshot data.Snapshot
	Plan     *query.AggregatePlan
	Policy   *privacy.Policy
	Format   Format
	Options  EncoderOptions
}

// AggregateOptions returns the query options of an aggregate under a
// policy: the export's field rules for filters, the analytics rules for
// dimensions and measures, grouping by agent where names are pseudonymized,
// and the small-group threshold the level applies to the server's
// --min-group-agents setting.
func AggregateOptions(pol *privacy.Policy, defaultFormat Format, minGroupAgents int) query.AggregateOptions {
	return query.AggregateOptions{
		Options:        PlanOptions(pol, defaultFormat),
		ReadAllowed:    pol.ReadAllowed,
		GroupAllowed:   func(field string) error { return pol.GroupAllowed(field, minGroupAgents) },
		NameByAgent:    pol.GroupsByAgent(),
		MinGroupAgents: pol.MinGroupAgents(minGroupAgents),
		AgentLabel:     pol.Pseudonym,
	}
}

// QueryAggregate runs the request's statement. The result's counts (groups
// before paging, groups suppressed) are known when it returns, before
// anything is encoded; the caller releases its Records, normally by
// EncodeAggregate.
func QueryAggregate(ctx context.Context, req AggregateRequest) (*query.AggregateResult, error) {
	res, err := req.Engine.Aggregate(ctx, req.Snapshot, req.Plan)
	if err != nil {
		return nil, fmt.Errorf("query groups: %w", err)
	}
	return res, nil
}

// EncodeAggregate writes the groups of res to w: privacy transform (agent
// groups labelled with their pseudonyms, the userId beside them dropped),
// then the format's encoder, with the column names of the request
// ("date:week", "avg(duration)"). It releases res.Records and returns the
// number of groups written.
func EncodeAggregate(ctx context.Context, req AggregateRequest, res *query.AggregateResult, w io.Writer, afterBatch func() error) (rows int64, err error) {
	defer res.Records.Release()
	opts := req.Options
	if opts.SheetName == "" {
		opts.SheetName = AnalyticsSheetName
	}
	enc, err := NewEncoder(req.Format, w, req.Policy.Schema(res.Records.Schema()), opts)
	if err != nil {
		return 0, fmt.Errorf("new %s encoder: %w", req.Format, err)
	}
	closed := false
	defer func() {
		// As in Run: a failed encoding releases what the encoder holds,
		// without a trailer that would make a cut-off result look whole.
		if a, ok := enc.(aborter); ok && !closed {
			err = errors.Join(err, a.Abort())
		}
	}()
	for res.Records.Next() {
		n, err := writeBatch(enc, req.Policy, req.Format, res.Records.RecordBatch())
		if err != nil {
			return rows, err
		}
		rows += n
		if afterBatch != nil {
			if err := afterBatch(); err != nil {
				return rows, err
			}
		}
	}
	if err := res.Records.Err(); err != nil {
		return rows, fmt.Errorf("read groups: %w", err)
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
