package main

import (
	"context"
	"errors"
)

// runDemo runs 'worklog demo'.
func runDemo(ctx context.Context, args []string) error {
	return errors.New("demo: not implemented yet")
}
