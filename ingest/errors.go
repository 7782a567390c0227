package ingest

import (
	"fmt"
	"strings"
)

// RecordError is a problem with one record of a dump. Its message names the
// line and the field: `line 17: duration: expected integer, got "abc"`.
type RecordError struct {
	// Source is the input's name (Input.Name); Error leaves it out, callers
	// reading several inputs prefix it.
	Source string
	// Line is the physical line for NDJSON and CSV, and the line the record
	// starts on for a JSON array.
	Line int64
	// Field is the offending field, empty when the record as a whole is
	// broken (invalid JSON, wrong number of CSV cells).
	Field string
	// Err is the cause.
	Err error
}

// Error formats the error as `line N: field: cause`.
func (e *RecordError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("line %d: %s: %v", e.Line, e.Field, e.Err)
}

// Unwrap returns the cause.
func (e *RecordError) Unwrap() error { return e.Err }

// Cause is the message of the cause alone, without the "line N: field: "
// that Error puts before it: `expected integer, got "abc"`.
func (e *RecordError) Cause() string {
	if e.Err == nil {
		return ""
	}
	return e.Err.Error()
}

// InputError is a dump that cannot be read at all: corrupt compression, a
// truncated JSON array, a broken CSV header, or a failing reader. Nothing was
// committed. The HTTP ingest answers it with 400 rather than 500.
type InputError struct {
	// Source is the input's name (Input.Name).
	Source string
	// Err is the cause; Error returns its message unchanged.
	Err error
}

func (e *InputError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *InputError) Unwrap() error { return e.Err }

// maxReported is how many record errors a ValidationError keeps.
const maxReported = 10

// ValidationError is returned by Run under OnError Fail when records are
// invalid; nothing was committed.
type ValidationError struct {
	// Errors are the first invalid records, in input order (at most 10).
	Errors []*RecordError
	// Count is the number of invalid records in the whole input.
	Count int64
}

// Error summarises the failure and quotes the first error.
func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d invalid record(s), nothing committed", e.Count)
	if len(e.Errors) > 0 {
		b.WriteString("; first: ")
		if e.Errors[0].Source != "" {
			b.WriteString(e.Errors[0].Source + ": ")
		}
		b.WriteString(e.Errors[0].Error())
	}
	return b.String()
}
