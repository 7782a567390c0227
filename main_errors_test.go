package main

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
)

// A full disk is said plainly, whether it comes as ENOSPC or as DuckDB's
// text; other errors are printed as they are.
func TestErrorMessage(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		want     []string
		mustNot  string
		plainMsg bool
	}{
		{"ENOSPC", fmt.Errorf("ingest: stage: %w", syscall.ENOSPC), []string{"insufficient storage", "cause: ingest: stage: no space left on device"}, "", false},
		{"DuckDB", errors.New("ingest: merge: IO Error: Could not write file \"/d/x.parquet\": No space left on device\nLINE 1: COPY (SELECT secret_sql"), []string{"insufficient storage", "No space left on device"}, "secret_sql", false},
		{"other", errors.New("ingest: line 3: duration: expected integer"), []string{"worklog: ingest: line 3: duration: expected integer"}, "insufficient", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := errorMessage(tc.err)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			if tc.mustNot != "" && strings.Contains(got, tc.mustNot) {
				t.Errorf("%q contains %q", got, tc.mustNot)
			}
			if tc.plainMsg && got != "worklog: "+tc.err.Error() {
				t.Errorf("%q, want the error as it is", got)
			}
		})
	}
}
