package query

import (
	"fmt"
	"strings"
	"time"

	"worklog/data"
)

// Null semantics of the negative comparators, chosen because a user reading
// "not equals X" expects every row that does not show X, including the rows
// where the field is empty:
//
//   - notEquals, notIn and notContains match rows where the field is null
//     (for list fields: where the list is null).
//   - every other comparator except isNull never matches a null.
//
// All operands are bound parameters; the only text spliced into SQL is
// catalogue field names (quoted by data.QuoteIdent), fixed keywords and the
// table expression built by data.ScanSQL from the store's manifest.

// sqlBuilder accumulates SQL text and its bound arguments.
type sqlBuilder struct {
	b    strings.Builder
	args []any
}

func (s *sqlBuilder) sql(text string) { s.b.WriteString(text) }

// arg writes a placeholder for v, with the cast that gives it the
// column's type.
func (s *sqlBuilder) arg(v any, dayOnly bool) {
	switch x := v.(type) {
	case time.Time:
		if dayOnly {
			s.b.WriteString("CAST(? AS DATE)")
		} else {
			s.b.WriteString("CAST(? AS TIMESTAMP)")
		}
		s.args = append(s.args, timeOperand(x, dayOnly))
	case int64:
		s.b.WriteString("CAST(? AS BIGINT)")
		s.args = append(s.args, x)
	case float64:
		s.b.WriteString("CAST(? AS DOUBLE)")
		s.args = append(s.args, x)
	case string:
		s.b.WriteString("CAST(? AS VARCHAR)")
		s.args = append(s.args, x)
	case []string:
		s.list(x)
	default:
		// Parse produces only the types above; anything else is a bug in
		// this package, refused by DuckDB rather than spliced.
		s.b.WriteString("?")
		s.args = append(s.args, x)
	}
}

// list writes a VARCHAR[] literal of placeholders.
func (s *sqlBuilder) list(items []string) {
	s.b.WriteString("CAST([")
	for i, it := range items {
		if i > 0 {
			s.b.WriteString(", ")
		}
		s.b.WriteString("?")
		s.args = append(s.args, it)
	}
	s.b.WriteString("] AS VARCHAR[])")
}

// args writes a comma-separated list of placeholders.
func (s *sqlBuilder) argList(vs []any, dayOnly bool) {
	for i, v := range vs {
		if i > 0 {
			s.b.WriteString(", ")
		}
		s.arg(v, dayOnly)
	}
}

// column returns the SQL expression a field is compared and ordered by: its
// quoted column, or its date part under DayPrecisionDate.
func (p *Plan) column(f data.Field) string {
	if p.dayPrecision(f) {
		return "CAST(" + data.QuoteIdent(f.Name) + " AS DATE)"
	}
	return data.QuoteIdent(f.Name)
}

// where writes the WHERE clause of the plan's filters (nothing without
// filters).
func (p *Plan) where(s *sqlBuilder) {
	for i, f := range p.Filters {
		if i == 0 {
			s.sql(" WHERE ")
		} else {
			s.sql(" AND ")
		}
		s.sql("(")
		p.condition(s, f)
		s.sql(")")
	}
}

// wherePage writes the WHERE clause of a page: the filters and, after a
// cursor, the keyset condition. The count (X-Total-Count) uses where alone:
// it counts the rows that match the filters, wherever the cursor stands.
func (p *Plan) wherePage(s *sqlBuilder) {
	p.where(s)
	if p.After == nil {
		return
	}
	if len(p.Filters) == 0 {
		s.sql(" WHERE (")
	} else {
		s.sql(" AND (")
	}
	p.after(s)
	s.sql(")")
}

// condition writes one filter's predicate.
func (p *Plan) condition(s *sqlBuilder, f Filter) {
	col := p.column(f.Field)
	day := p.dayPrecision(f.Field)
	list := f.Field.Kind == data.KindList
	switch f.Comparator {
	case IsNull:
		s.sql(col + " IS NULL")
	case IsNotNull:
		s.sql(col + " IS NOT NULL")
	case Equals:
		s.sql(col + " = ")
		s.arg(f.Value, day)
	case NotEquals:
		s.sql(col + " IS DISTINCT FROM ")
		s.arg(f.Value, day)
	case Gt, Gte, Lt, Lte:
		s.sql(col + " " + map[string]string{Gt: ">", Gte: ">=", Lt: "<", Lte: "<="}[f.Comparator] + " ")
		s.arg(f.Value, day)
	case Between:
		s.sql(col + " >= ")
		s.arg(f.From, day)
		if f.ToEndOfDay {
			// A date-only upper bound covers its whole day.
			s.sql(" AND " + col + " < ")
			s.arg(f.To.(time.Time).AddDate(0, 0, 1), day)
		} else {
			s.sql(" AND " + col + " <= ")
			s.arg(f.To, day)
		}
	case In, NotIn:
		if f.Comparator == NotIn {
			s.sql(col + " IS NULL OR NOT ")
		}
		if list {
			s.sql("list_has_any(" + col + ", ")
			s.list(stringsOf(f.Values))
			s.sql(")")
		} else {
			s.sql(col + " IN (")
			s.argList(f.Values, day)
			s.sql(")")
		}
	case Contains, NotContains:
		if f.Comparator == NotContains {
			s.sql(col + " IS NULL OR NOT ")
		}
		if list {
			// On a list, contains is element membership, case-insensitive.
			s.sql("list_contains(list_transform(" + col + ", lambda e: lower(e)), lower(")
			s.arg(f.Value, false)
			s.sql("))")
		} else {
			// strpos matches literally: % and _ are no wildcards.
			s.sql("strpos(lower(" + col + "), lower(")
			s.arg(f.Value, false)
			s.sql(")) > 0")
		}
	case StartsWith:
		if list {
			s.sql("list_bool_or(list_transform(" + col + ", lambda e: starts_with(lower(e), lower(")
			s.arg(f.Value, false)
			s.sql("))))")
		} else {
			s.sql("starts_with(lower(" + col + "), lower(")
			s.arg(f.Value, false)
			s.sql("))")
		}
	default:
		// Parse admits only the comparators above.
		panic(fmt.Sprintf("query: comparator %q has no SQL", f.Comparator))
	}
}

func stringsOf(vs []any) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i], _ = v.(string)
	}
	return out
}

// orderBy writes the ORDER BY clause: the plan's field with nulls last, ties
// broken by the event key in the same direction so that pages are stable.
// VARCHAR columns compare byte-wise in DuckDB's default (binary) collation,
// which is the byte order SPEC §4 asks for.
func (p *Plan) orderBy(s *sqlBuilder) {
	dir := " ASC"
	if p.Desc {
		dir = " DESC"
	}
	f, _ := data.Lookup(p.OrderBy)
	s.sql(" ORDER BY " + p.column(f) + dir + " NULLS LAST")
	if f.Name != data.KeyField {
		s.sql(", " + data.QuoteIdent(data.KeyField) + dir)
	}
}

// countSQL is the statement that counts the rows matching the filters.
func (p *Plan) countSQL(files []data.PartFile) (string, []any) {
	var s sqlBuilder
	s.sql("SELECT count(*) FROM " + data.ScanSQL(files) + " AS t")
	p.where(&s)
	return s.b.String(), s.args
}

// selectList is the select list of the 35 columns in catalogue order, the
// plan's unread fields as typed nulls, so that DuckDB's projection pushdown
// never reads them from the files.
func (p *Plan) selectList() string {
	if len(p.Unread) == 0 {
		return "*"
	}
	unread := map[string]bool{}
	for _, name := range p.Unread {
		unread[name] = true
	}
	// A field the plan filters or orders on is read whatever the caller
	// says, so that the SQL never compares a null stand-in.
	delete(unread, p.OrderBy)
	for _, f := range p.Filters {
		delete(unread, f.Field.Name)
	}
	var b strings.Builder
	for i, f := range data.Fields() {
		if i > 0 {
			b.WriteString(", ")
		}
		if unread[f.Name] {
			b.WriteString("CAST(NULL AS " + f.Kind.SQLType() + ") AS ")
		}
		b.WriteString(data.QuoteIdent(f.Name))
	}
	return b.String()
}

// selectSQL is the statement that reads the page (or the whole export): the
// 35 columns in catalogue order, filtered, ordered, limited.
func (p *Plan) selectSQL(files []data.PartFile) (string, []any) {
	var s sqlBuilder
	s.sql("SELECT " + p.selectList() + " FROM " + data.ScanSQL(files) + " AS t")
	p.wherePage(&s)
	p.orderBy(&s)
	if p.Limit > 0 {
		s.sql(" LIMIT ")
		s.arg(int64(p.Limit), false)
	}
	if p.Offset > 0 {
		s.sql(" OFFSET ")
		s.arg(int64(p.Offset), false)
	}
	return s.b.String(), s.args
}
