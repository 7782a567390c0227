// Package intmath owns the integer arithmetic that more than one package of
// worklog needs and none of them owns: FloorDiv, which the query layer uses
// to cut timestamps into days and the encoders use to turn them into
// calendar dates. It imports nothing.
package intmath

// FloorDiv returns a/b rounded towards negative infinity (Go's / rounds
// towards zero), so that a time before 1970 falls on the right day:
// FloorDiv(-1, 86400) is -1, where -1/86400 is 0. b must not be zero.
func FloorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
