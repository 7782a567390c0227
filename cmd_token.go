package main

import (
	"context"
	"errors"
)

// runToken runs 'worklog token'.
func runToken(ctx context.Context, args []string) error {
	return errors.New("token: not implemented yet")
}
