package main

import (
	"context"
	"errors"
)

// runServe runs 'worklog serve'.
func runServe(ctx context.Context, args []string) error {
	return errors.New("serve: not implemented yet")
}
