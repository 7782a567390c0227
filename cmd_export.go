package main

import (
	"context"
	"errors"
)

// runExport runs 'worklog export'.
func runExport(ctx context.Context, args []string) error {
	return errors.New("export: not implemented yet")
}
