package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"worklog/data"
)

// An aggregate is one statement:
//
//	WITH g AS (                       -- one row per group
//	  SELECT k0, k1, m0, m1, [agents]
//	  FROM (SELECT <dimension keys>, <fields the measures read>
//	        FROM <the months the filters touch> WHERE <filters>)  -- b
//	       [unnest of each list dimension, one level each]
//	  GROUP BY k0, k1),
//	s AS (SELECT *, count(*) OVER () AS groups, <groups kept> OVER () AS kept FROM g)
//	SELECT <labels of k0, k1>, m0, m1, [userId], kept AS total, groups - kept AS suppressed
//	FROM s WHERE <kept> ORDER BY ... LIMIT ? OFFSET ?
//
// Group keys are the values grouped by (a time bucket as its first instant),
// labelled only in the outer select, so that DuckDB groups and orders
// dates and numbers, not text. The two trailing columns carry the number of
// groups before the page and the number suppressed; Aggregate reads them
// from the first row and drops them. Values are bound parameters; names come
// from the catalogue or are fixed here.

// Bookkeeping columns of the statement, never shown.
const (
	colAgents     = "__agents"
	colGroups     = "__groups"
	colKept       = "__kept"
	colTotal      = "__total"
	colSuppressed = "__suppressed"
	colLabelID    = "__label_id"
	colLabelName  = "__label_name"
	colLabel      = "__label"
)

// keyCol is the column of dimension i's group key; an agent dimension has a
// second key, its name where userId is null.
func keyCol(i int) string     { return "k" + strconv.Itoa(i) }
func keyNameCol(i int) string { return "k" + strconv.Itoa(i) + "n" }
func measureCol(i int) string { return "m" + strconv.Itoa(i) }

// q quotes an identifier.
func q(name string) string { return data.QuoteIdent(name) }

// keyExpr is the group key of a non-list dimension, over the store's columns.
func keyExpr(d Dimension) string {
	col := q(d.Field.Name)
	switch d.Bucket {
	case BucketHour:
		return "date_trunc('hour', " + col + ")"
	case BucketDay:
		return "CAST(" + col + " AS DATE)"
	case BucketWeek:
		// DuckDB's weeks are ISO weeks: they start on Monday.
		return "CAST(date_trunc('week', " + col + ") AS DATE)"
	case BucketMonth:
		return "CAST(date_trunc('month', " + col + ") AS DATE)"
	case BucketQuarter:
		return "CAST(date_trunc('quarter', " + col + ") AS DATE)"
	case BucketYear:
		return "CAST(date_trunc('year', " + col + ") AS DATE)"
	}
	if d.Field.Kind == data.KindList {
		return listKeyExpr(col)
	}
	if d.ByAgent {
		return q(agentIDField)
	}
	return col
}

// comparedListLen is the longest list whose elements listKeyExpr compares
// pair by pair (six comparisons at four) before it falls back on
// list_distinct.
const comparedListLen = 4

// listKeyExpr is the group key of a list column, to be unnested: each
// element once, an empty or null list in the null group.
//
// list_distinct is the costliest step of a list dimension: it hashes every
// list, and DuckDB then builds a new one. Most lists are short and hold no
// element twice, which comparing their elements pair by pair finds for
// less: such a list is its own key. Over a year of the 1M bench store
// (teams of 0-3 elements) the statement took 89 ms this way, 107 ms when
// only lists of two were compared, 50 ms with no deduplication at all.
// Elements are never null (the ingest refuses them), so list_distinct,
// which drops nulls, and the comparisons agree.
func listKeyExpr(col string) string {
	var b strings.Builder
	b.WriteString("CASE WHEN coalesce(len(" + col + "), 0) = 0 THEN [CAST(NULL AS VARCHAR)] WHEN len(" + col + ") = 1 THEN " + col)
	for n := 2; n <= comparedListLen; n++ {
		b.WriteString(" WHEN len(" + col + ") = " + strconv.Itoa(n))
		for i := 1; i <= n; i++ {
			for j := i + 1; j <= n; j++ {
				b.WriteString(" AND " + col + "[" + strconv.Itoa(i) + "] IS DISTINCT FROM " + col + "[" + strconv.Itoa(j) + "]")
			}
		}
		b.WriteString(" THEN " + col)
	}
	b.WriteString(" ELSE list_distinct(" + col + ") END")
	return b.String()
}

// labelExpr is the shown value of a group key: time buckets by their first
// instant (SPEC §10), every other key as it is.
func labelExpr(d Dimension, key string) string {
	k := q(key)
	switch d.Bucket {
	case BucketMonth:
		return "strftime(" + k + ", '%Y-%m')"
	case BucketQuarter:
		return "strftime(" + k + ", '%Y') || '-Q' || CAST(quarter(" + k + ") AS VARCHAR)"
	case BucketYear:
		return "strftime(" + k + ", '%Y')"
	}
	return k
}

// measureExpr is the aggregate of a measure over the columns of b.
func measureExpr(m Measure) string {
	f := q(m.Field.Name)
	switch m.Kind {
	case MeasureCount:
		return "count(*)"
	case MeasureTickets:
		return "count(DISTINCT " + q(ticketField) + ")"
	case MeasureAgents:
		return agentsExpr()
	case MeasureSum:
		if m.Field.Kind == data.KindFloat {
			return "sum(" + f + ")"
		}
		// DuckDB sums BIGINT into HUGEINT, which Arrow carries as a decimal.
		return "CAST(sum(" + f + ") AS BIGINT)"
	case MeasureAvg:
		return "avg(" + f + ")"
	case MeasureMin:
		return "min(" + f + ")"
	case MeasureMax:
		return "max(" + f + ")"
	case MeasureP50, MeasureP90, MeasureP95:
		return "CAST(quantile_cont(" + f + ", " + quantiles[m.Kind] + ") AS DOUBLE)"
	case MeasureRate:
		return "avg(CAST(" + f + " AS DOUBLE))"
	case MeasureSLAMetRate:
		return "avg(CAST(" + f + " <= 0 AS DOUBLE))"
	}
	panic(fmt.Sprintf("query: measure %q has no SQL", m.Kind))
}

// agentsExpr counts distinct agents: the user ids, plus the names of the
// rows without one. The two sets are disjoint by construction, so the sum
// is exact, and counting integers is faster than counting a combined text.
func agentsExpr() string {
	return "(count(DISTINCT " + q(agentIDField) + ") + count(DISTINCT CASE WHEN " + q(agentIDField) +
		" IS NULL THEN " + q(agentNameField) + " END))"
}

// readColumns lists the store columns the measures and the suppression
// read, each once, in catalogue order.
func (p *AggregatePlan) readColumns() []string {
	need := map[string]bool{}
	for _, m := range p.Measures {
		switch m.Kind {
		case MeasureCount:
		case MeasureTickets:
			need[ticketField] = true
		case MeasureAgents:
			need[agentIDField], need[agentNameField] = true, true
		default:
			need[m.Field.Name] = true
		}
	}
	if p.MinGroupAgents > 1 {
		need[agentIDField], need[agentNameField] = true, true
	}
	var out []string
	for _, f := range data.Fields() {
		if need[f.Name] {
			out = append(out, f.Name)
		}
	}
	return out
}

// filterPlan is the export plan whose filters and file pruning the
// aggregate shares.
func (p *AggregatePlan) filterPlan() *Plan {
	return &Plan{Filters: p.Filters, DayPrecisionDate: p.DayPrecisionDate}
}

// groupSQL writes the WITH g AS (...) part: one row per group.
func (p *AggregatePlan) groupSQL(s *sqlBuilder, files []data.PartFile) {
	// b: the filtered rows with their group keys and the columns the
	// measures read.
	var cols []string
	var sel []string
	for i, d := range p.Dimensions {
		sel = append(sel, keyExpr(d)+" AS "+q(keyCol(i)))
		cols = append(cols, keyCol(i))
		if d.ByAgent {
			sel = append(sel, "CASE WHEN "+q(agentIDField)+" IS NULL THEN "+q(agentNameField)+" END AS "+q(keyNameCol(i)))
			cols = append(cols, keyNameCol(i))
		}
	}
	for _, c := range p.readColumns() {
		sel = append(sel, q(c))
		cols = append(cols, c)
	}
	if len(sel) == 0 {
		sel = append(sel, "1 AS one") // count(*) alone reads no column
	}
	s.sql("WITH g AS (SELECT ")
	var keys []string
	for i, d := range p.Dimensions {
		keys = append(keys, q(keyCol(i)))
		if d.ByAgent {
			keys = append(keys, q(keyNameCol(i)))
		}
	}
	var aggs []string
	aggs = append(aggs, keys...)
	for i, m := range p.Measures {
		aggs = append(aggs, measureExpr(m)+" AS "+q(measureCol(i)))
	}
	if p.MinGroupAgents > 1 {
		aggs = append(aggs, agentsExpr()+" AS "+q(colAgents))
	}
	s.sql(strings.Join(aggs, ", "))
	s.sql(" FROM (")
	// Each list dimension is unnested one level at a time: DuckDB zips
	// several unnests of one select list, and a cross product is wanted.
	levels := 0
	for _, d := range p.Dimensions {
		if d.Field.Kind == data.KindList {
			levels++
		}
	}
	for j := len(p.Dimensions) - 1; j >= 0; j-- {
		if p.Dimensions[j].Field.Kind != data.KindList {
			continue
		}
		var out []string
		for _, c := range cols {
			if c == keyCol(j) {
				out = append(out, "unnest("+q(c)+") AS "+q(c))
			} else {
				out = append(out, q(c))
			}
		}
		s.sql("SELECT " + strings.Join(out, ", ") + " FROM (")
	}
	s.sql("SELECT " + strings.Join(sel, ", ") + " FROM " + data.ScanSQL(files) + " AS t")
	p.filterPlan().where(s)
	s.sql(")")
	for l := 0; l < levels; l++ {
		s.sql(" AS u" + strconv.Itoa(l) + ")")
	}
	s.sql(" AS b")
	if len(keys) > 0 {
		s.sql(" GROUP BY " + strings.Join(keys, ", "))
	}
	s.sql(")")
}

// keptSQL writes the condition of a kept (not suppressed) group.
func (p *AggregatePlan) keptSQL(s *sqlBuilder) {
	if p.MinGroupAgents > 1 {
		s.sql(q(colAgents) + " >= ")
		s.arg(int64(p.MinGroupAgents), false)
		return
	}
	s.sql("true")
}

// orderSQL writes the ORDER BY clause: the plan's column, nulls last, then
// the dimensions in order, ascending, nulls last. With labels, an agent
// dimension orders by its label, as shown.
func (p *AggregatePlan) orderSQL(s *sqlBuilder, labels bool) {
	var terms []string
	dimKeys := func(i int, dir string) []string {
		if p.Dimensions[i].ByAgent && labels {
			return []string{q(colLabel) + dir + " NULLS LAST"}
		}
		out := []string{q(keyCol(i)) + dir + " NULLS LAST"}
		if p.Dimensions[i].ByAgent {
			out = append(out, q(keyNameCol(i))+dir+" NULLS LAST")
		}
		return out
	}
	dir := " ASC"
	if p.Desc {
		dir = " DESC"
	}
	first := -1
	if p.OrderBy != "" {
		for i, d := range p.Dimensions {
			if d.Name == p.OrderBy {
				terms = append(terms, dimKeys(i, dir)...)
				first = i
			}
		}
		for i, m := range p.Measures {
			if m.Name == p.OrderBy {
				terms = append(terms, q(measureCol(i))+dir+" NULLS LAST")
			}
		}
	}
	for i := range p.Dimensions {
		if i == first {
			continue
		}
		d := " ASC"
		if p.OrderBy == "" {
			d = dir
		}
		terms = append(terms, dimKeys(i, d)...)
	}
	if len(terms) > 0 {
		s.sql(" ORDER BY " + strings.Join(terms, ", "))
	}
}

// agentLabel is the label of one agent key.
type agentLabel struct {
	id    *int64
	name  *string
	label string
}

// byAgent returns the index of the dimension grouped by agent, or -1.
func (p *AggregatePlan) byAgent() int {
	for i, d := range p.Dimensions {
		if d.ByAgent {
			return i
		}
	}
	return -1
}

// agentKeysSQL lists the distinct agent keys of the filtered rows.
func (p *AggregatePlan) agentKeysSQL(files []data.PartFile) (string, []any) {
	var s sqlBuilder
	s.sql("SELECT DISTINCT " + q(agentIDField) + ", CASE WHEN " + q(agentIDField) + " IS NULL THEN " + q(agentNameField) +
		" END FROM " + data.ScanSQL(files) + " AS t")
	p.filterPlan().where(&s)
	return s.b.String(), s.args
}

// aggregateSQL is the statement of the page of groups. labels, when
// given, label the agent keys for ordering.
func (p *AggregatePlan) aggregateSQL(files []data.PartFile, labels []agentLabel) (string, []any) {
	var s sqlBuilder
	p.groupSQL(&s, files)
	s.sql(", s AS (SELECT *, count(*) OVER () AS " + q(colGroups) + ", count(*) FILTER (WHERE ")
	p.keptSQL(&s)
	s.sql(") OVER () AS " + q(colKept) + " FROM g) SELECT ")
	var out []string
	for i, d := range p.Dimensions {
		key := keyCol(i)
		if d.ByAgent {
			// The name of the rows without userId; the privacy layer
			// turns it and the userId column into the pseudonym.
			key = keyNameCol(i)
		}
		out = append(out, labelExpr(d, key)+" AS "+q(d.Name))
	}
	for i, m := range p.Measures {
		out = append(out, q(measureCol(i))+" AS "+q(m.Name))
	}
	for i, d := range p.Dimensions {
		if d.ByAgent {
			out = append(out, q(keyCol(i))+" AS "+q(agentIDField))
		}
	}
	out = append(out, q(colKept)+" AS "+q(colTotal), q(colGroups)+" - "+q(colKept)+" AS "+q(colSuppressed))
	s.sql(strings.Join(out, ", "))
	s.sql(" FROM s")
	if a := p.byAgent(); a >= 0 && len(labels) > 0 {
		// The labels are bound values; the join only orders.
		s.sql(" LEFT JOIN (VALUES ")
		for i, l := range labels {
			if i > 0 {
				s.sql(", ")
			}
			s.sql("(")
			if l.id != nil {
				s.arg(*l.id, false)
			} else {
				s.sql("CAST(NULL AS BIGINT)")
			}
			s.sql(", ")
			if l.name != nil {
				s.arg(*l.name, false)
			} else {
				s.sql("CAST(NULL AS VARCHAR)")
			}
			s.sql(", ")
			s.arg(l.label, false)
			s.sql(")")
		}
		s.sql(") AS lbl(" + q(colLabelID) + ", " + q(colLabelName) + ", " + q(colLabel) + ") ON " +
			q(keyCol(a)) + " IS NOT DISTINCT FROM " + q(colLabelID) + " AND " + q(keyNameCol(a)) + " IS NOT DISTINCT FROM " + q(colLabelName))
	}
	s.sql(" WHERE ")
	p.keptSQL(&s)
	p.orderSQL(&s, p.byAgent() >= 0 && len(labels) > 0)
	s.sql(" LIMIT ")
	s.arg(int64(p.Limit), false)
	if p.Offset > 0 {
		s.sql(" OFFSET ")
		s.arg(int64(p.Offset), false)
	}
	return s.b.String(), s.args
}

// countSQL counts the groups kept and suppressed, for a page that holds no
// row to carry the counts.
func (p *AggregatePlan) countSQL(files []data.PartFile) (string, []any) {
	var s sqlBuilder
	p.groupSQL(&s, files)
	s.sql(" SELECT count(*) FILTER (WHERE ")
	p.keptSQL(&s)
	s.sql("), count(*) FILTER (WHERE NOT (")
	p.keptSQL(&s)
	s.sql(")) FROM g")
	return s.b.String(), s.args
}

// AggregateSQL returns the statement, with its bound arguments, whose result
// is the page of groups Aggregate returns for p over snap, with two more
// columns: the number of groups kept and suppressed (the same in every
// row). It is the reference for running the same query bare in DuckDB.
func (p *AggregatePlan) AggregateSQL(snap data.Snapshot) (string, []any) {
	return p.aggregateSQL(p.filterPlan().files(snap), nil)
}

// derivedMetadata returns, for each result column that is not a catalogue
// field, the Arrow metadata that tells the privacy layer what it is derived
// from (data.MetaDerivedFrom): the privacy layer refuses unmarked columns.
func (p *AggregatePlan) derivedMetadata() map[string]arrow.Metadata {
	out := map[string]arrow.Metadata{}
	for _, d := range p.Dimensions {
		if _, ok := data.Lookup(d.Name); ok {
			continue // the field itself: decided as a field
		}
		out[d.Name] = arrow.NewMetadata([]string{data.MetaDerivedFrom, data.MetaBucket}, []string{d.Field.Name, string(d.Bucket)})
	}
	for _, m := range p.Measures {
		from := m.Field.Name // "" for count, tickets and agents
		out[m.Name] = arrow.NewMetadata([]string{data.MetaDerivedFrom, data.MetaMeasure}, []string{from, string(m.Kind)})
	}
	return out
}

// AggregateResult is a page of groups.
type AggregateResult struct {
	// Records yields the groups: the dimensions (time buckets as labels),
	// the measures, and for a dimension grouped by agent a trailing userId
	// column for the privacy layer. The caller releases it.
	Records array.RecordReader
	// Total is the number of groups before limit and offset, suppressed
	// groups not counted (X-Total-Count).
	Total int64
	// Suppressed is the number of groups left out for having fewer than
	// MinGroupAgents agents (X-Suppressed-Groups).
	Suppressed int64
}

// Aggregate runs the plan over snap. A page is at most MaxGroupLimit groups,
// so its batches are read whole, into Go memory, before Aggregate returns
// (duckdb-go materializes a result before its first batch anyway): the
// counts are known before the first byte, and the DuckDB connection is back
// in the pool when it returns. Requests for the same statement while it
// runs share its page (see flights).
func (e *Engine) Aggregate(ctx context.Context, snap data.Snapshot, p *AggregatePlan) (*AggregateResult, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	files := p.filterPlan().files(snap)
	var labels []agentLabel
	if p.byAgent() >= 0 && p.AgentLabel != nil {
		var err error
		if labels, err = p.agentLabels(ctx, e.db, files); err != nil {
			return nil, err
		}
	}
	sqlText, args := p.aggregateSQL(files, labels)
	var res *AggregateResult
	err := e.aggregates.do(ctx, flightKey(sqlText, args), func(ctx context.Context) (*aggregatePage, error) {
		return e.runAggregate(ctx, p, files, statement{sqlText, args})
	}, func(page *aggregatePage) error {
		held, err := array.NewRecordReader(page.schema, page.batches)
		if err != nil {
			return fmt.Errorf("aggregate: %w", err)
		}
		res = &AggregateResult{Records: held, Total: page.total, Suppressed: page.suppressed}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// runAggregate runs an aggregate statement of p and reads its page.
func (e *Engine) runAggregate(ctx context.Context, p *AggregatePlan, files []data.PartFile, st statement) (*aggregatePage, error) {
	if e.onAggregateRun != nil {
		e.onAggregateRun()
	}
	conn, err := e.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("get duckdb connection: %w", err)
	}
	defer conn.Close()
	rr, err := arrowQuery(ctx, conn, st)
	if err != nil {
		return nil, fmt.Errorf("aggregate: %w", explain(files, err))
	}
	defer rr.Release()
	in := rr.Schema()
	totalCol, supCol := in.FieldIndices(colTotal), in.FieldIndices(colSuppressed)
	if len(totalCol) != 1 || len(supCol) != 1 {
		return nil, fmt.Errorf("aggregate: result lacks its count columns: %s", in)
	}
	keep := make([]int, 0, in.NumFields()-2)
	fields := make([]arrow.Field, 0, in.NumFields()-2)
	derived := p.derivedMetadata()
	for i, f := range in.Fields() {
		if i != totalCol[0] && i != supCol[0] {
			keep = append(keep, i)
			if md, ok := derived[f.Name]; ok {
				f.Metadata = md
			}
			fields = append(fields, f)
		}
	}
	md := in.Metadata()
	page := &aggregatePage{schema: arrow.NewSchema(fields, &md), total: -1}
	for rr.Next() {
		rec := rr.RecordBatch()
		if rec.NumRows() == 0 {
			continue
		}
		if page.total < 0 {
			t, ok1 := rec.Column(totalCol[0]).(*array.Int64)
			sp, ok2 := rec.Column(supCol[0]).(*array.Int64)
			if !ok1 || !ok2 {
				page.release()
				return nil, fmt.Errorf("aggregate: count columns are %s and %s, want int64", rec.Column(totalCol[0]).DataType(), rec.Column(supCol[0]).DataType())
			}
			page.total, page.suppressed = t.Value(0), sp.Value(0)
		}
		// duckdb-go frees a batch's memory at the next Next, references
		// or not: the page is copied into Go memory (it is small).
		cols := make([]arrow.Array, len(keep))
		for j, i := range keep {
			c, err := array.Concatenate([]arrow.Array{rec.Column(i)}, memory.DefaultAllocator)
			if err != nil {
				for _, c := range cols[:j] {
					c.Release()
				}
				page.release()
				return nil, fmt.Errorf("aggregate: copy column %s: %w", page.schema.Field(j).Name, err)
			}
			cols[j] = c
		}
		page.batches = append(page.batches, array.NewRecordBatch(page.schema, cols, rec.NumRows()))
		for _, c := range cols {
			c.Release()
		}
	}
	if err := rr.Err(); err != nil {
		page.release()
		return nil, fmt.Errorf("aggregate: %w", explain(files, err))
	}
	if page.total < 0 {
		// No row on this page: count the groups on their own.
		cq, cargs := p.countSQL(files)
		if err := conn.QueryRowContext(ctx, cq, cargs...).Scan(&page.total, &page.suppressed); err != nil {
			page.release()
			return nil, fmt.Errorf("count groups: %w", explain(files, err))
		}
	}
	return page, nil
}

// MaxAgentLabels bounds the agents whose labels order a grouping by agent.
const MaxAgentLabels = 100000

// agentLabels reads the distinct agents of the filtered rows and labels
// them, so that groups by agent are ordered by what is shown.
func (p *AggregatePlan) agentLabels(ctx context.Context, db *sql.DB, files []data.PartFile) ([]agentLabel, error) {
	kq, kargs := p.agentKeysSQL(files)
	rows, err := db.QueryContext(ctx, kq, kargs...)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", explain(files, err))
	}
	defer rows.Close()
	var out []agentLabel
	for rows.Next() {
		var id sql.NullInt64
		var name sql.NullString
		if err := rows.Scan(&id, &name); err != nil {
			return nil, fmt.Errorf("list agents: %w", err)
		}
		var l agentLabel
		switch {
		case id.Valid:
			l.id = &id.Int64
			l.label = p.AgentLabel(l.id, "")
		case name.Valid:
			l.name = &name.String
			l.label = p.AgentLabel(nil, name.String)
		default:
			continue // no agent: a null label, as the join leaves it
		}
		out = append(out, l)
		if len(out) > MaxAgentLabels {
			return nil, fmt.Errorf("%w: more than %d agents; filter the events further", ErrTooManyAgents, MaxAgentLabels)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return out, nil
}

// ErrTooManyAgents is returned by Aggregate when a grouping by agent would
// have to order more than MaxAgentLabels agents.
var ErrTooManyAgents = errors.New("too many agents to group by")

// errNoMeasure guards against a plan built by hand without measures.
var errNoMeasure = errors.New("aggregate plan has no measure")

// Validate checks a plan built by hand (not by ParseAggregate) for what
// the SQL relies on.
func (p *AggregatePlan) Validate() error {
	if len(p.Measures) == 0 {
		return errNoMeasure
	}
	if p.Limit < 1 || p.Limit > MaxGroupLimit || p.Offset < 0 {
		return fmt.Errorf("aggregate plan: limit %d or offset %d out of range", p.Limit, p.Offset)
	}
	return nil
}
