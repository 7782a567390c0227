package main

import (
	"context"
	"errors"
)

// runIngest runs 'worklog ingest'.
func runIngest(ctx context.Context, args []string) error {
	return errors.New("ingest: not implemented yet")
}
