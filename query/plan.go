// Package query turns the export endpoint's request parameters (SPEC §4)
// into a validated Plan, the Plan into parameterized DuckDB SQL over the
// store's Parquet files, and runs it as a stream of Arrow record batches.
//
// Parse is pure: it sees only url.Values and Options and never touches DuckDB.
// Every value of a request reaches DuckDB as a bound parameter; field names
// reach SQL only through the data catalogue, so SQL injection is impossible by
// construction. The comparators are listed once (comparators.go), and every
// Records result is one stream (stream.go), however its rows are produced.
//
// It imports data, internal packages, DuckDB and Arrow; never ingest,
// privacy (the policy reaches it as Options.FieldAllowed), export, or
// anything of HTTP.
package query

import (
	"fmt"
	"time"

	"worklog/data"
)

// Error codes of ParamError, as the HTTP layer puts them in its JSON body.
const (
	// CodeInvalidParameter is a malformed, unknown-valued or repeated parameter.
	CodeInvalidParameter = "invalid_parameter"
	// CodeFieldNotAvailable is a field the privacy level hides: it may be
	// neither filtered nor ordered on.
	CodeFieldNotAvailable = "field_not_available"
	// CodeUnknownParameter is a parameter the endpoint does not know.
	CodeUnknownParameter = "unknown_parameter"
)

// ParamError is a bad request parameter. The HTTP layer answers 400 with
// {"error":{"code":Code,"message":Message,"param":Param}}.
type ParamError struct {
	// Param names the parameter as the request spelled it, e.g.
	// "filters[1][comparator]" or "limit".
	Param string
	// Code is CodeInvalidParameter, CodeFieldNotAvailable or
	// CodeUnknownParameter.
	Code string
	// Message says what is wrong, for a person.
	Message string
}

// Error returns "<param>: <message>".
func (e *ParamError) Error() string { return e.Param + ": " + e.Message }

// invalid returns a ParamError with code invalid_parameter.
func invalid(param, format string, args ...any) *ParamError {
	return &ParamError{Param: param, Code: CodeInvalidParameter, Message: fmt.Sprintf(format, args...)}
}

// Options are the server settings that shape parsing.
type Options struct {
	// Formats are the accepted values of format, lower case. The export
	// package owns the list (export.FormatNames); query only checks against
	// it, so that the formats are listed once.
	Formats []string
	// DefaultFormat is Plan.Format when format is absent.
	DefaultFormat string
	// CursorKey seals and opens page cursors (see EncodeCursor). Nil
	// refuses the cursor parameter.
	CursorKey []byte
	// FieldAllowed, when set, is asked about every field used in a filter or
	// in orderByField. A non-nil error refuses the field (the privacy level
	// hides it); Parse turns it into a ParamError with code
	// field_not_available. Nil allows every field.
	FieldAllowed func(field string) error
	// DayPrecisionDate makes filters and ordering on the date-time field of
	// privacy class PrivacyTimestamp (`date`) use its date part only, so that
	// neither can reveal the time the output hides (level pseudonymized).
	DayPrecisionDate bool
	// MaxFilters bounds the number of filters (0: 50).
	MaxFilters int
	// MaxValues bounds the values[] of one in/notIn filter (0: 1000).
	MaxValues int
}

// Defaults of Options and the page bounds of SPEC §4.
const (
	DefaultMaxFilters = 50
	DefaultMaxValues  = 1000
	MaxLimit          = 1000
)

// Filter is one validated filter: a catalogue field, a comparator and its
// operands, already converted to the field's kind.
//
// Operand types by kind: KindInt and KindFlag → int64, KindFloat → float64,
// KindString and KindEnum → string, KindTimestamp → time.Time (UTC wall
// time; midnight for a date-only value). On a KindList field the operands of
// in/notIn/contains/notContains/startsWith are strings (elements), and the
// Value of equals/notEquals is a []string (the whole list).
type Filter struct {
	// Field is the catalogue field filtered on.
	Field data.Field
	// Comparator is one of the comparator constants (Between, In, ...).
	Comparator string
	// Value is the operand of equals, notEquals, gt, gte, lt, lte, contains,
	// notContains and startsWith.
	Value any
	// From and To are the inclusive bounds of between.
	From, To any
	// ToEndOfDay is set when To of a date-time between was a date only: the
	// bound then covers that whole day (the SQL compares < next midnight).
	ToEndOfDay bool
	// Values are the operands of in and notIn, without duplicates.
	Values []any
	// Param is the filter's parameter prefix, e.g. "filters[3]", for errors.
	Param string
}

// Plan is a validated export request: what to read, in which order, which
// page, and in which format to write it.
type Plan struct {
	// Format is the format parameter (one of Options.Formats), else
	// Options.DefaultFormat.
	Format string
	// Limit is 0 for no limit (an export), else the page size, 1..1000.
	Limit int
	// Offset is the number of ordered rows skipped.
	Offset int
	// BOM is the bom parameter: whether a CSV starts with a UTF-8
	// byte-order mark; nil when absent, and the server's setting decides.
	BOM *bool
	// After, when set (the cursor parameter), starts the rows right after
	// this position of the ordering: a keyset page.
	After *Position
	// OrderBy is the catalogue field the rows are ordered by.
	OrderBy string
	// Desc orders descending; nulls sort last either way and ties are broken
	// by userWorklogId in the same direction.
	Desc bool
	// Filters are AND-ed, in the order of their request indices.
	Filters []Filter
	// DayPrecisionDate compares and orders `date` by its date part only.
	DayPrecisionDate bool
	// Unread names fields whose values the caller drops (the privacy level
	// omits them). Records still returns all 35 columns, but these are all
	// null and DuckDB never reads them from the files. A field the plan
	// filters or orders on is read and returned regardless.
	Unread []string
	// ReuseReleased tells Records that the caller copies whatever it keeps
	// of a batch before releasing it (the Parquet encoder does), so that a
	// chunked read may build its next batches in the memory of the batches
	// released (see gatherPool in chunked.go).
	ReuseReleased bool

	// counted is what Count counted for a chunked export, which Records
	// then reuses instead of counting again (see chunkedRecords).
	counted *countedUnits
}

// countedUnits are the chunk units Count counted over files.
type countedUnits struct {
	files []data.PartFile
	units []dayCount
}

// dayPrecision reports whether the plan compares field f by date part only.
func (p *Plan) dayPrecision(f data.Field) bool {
	return p.DayPrecisionDate && f.Kind == data.KindTimestamp && f.Privacy == data.PrivacyTimestamp
}

// timeOperand is how a time.Time operand is bound: as text, cast in SQL, so
// that DuckDB compares naive wall-clock values whatever the driver would make
// of a Go time.Time.
func timeOperand(t time.Time, dateOnly bool) string {
	if dateOnly {
		return t.Format(data.DateLayout)
	}
	return t.Format("2006-01-02 15:04:05.999999")
}
