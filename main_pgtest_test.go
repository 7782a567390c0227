package main

import (
	"testing"

	"worklog/internal/pgtest"
)

// TestMain stops the private PostgreSQL of the tests that use one
// (pgtest.New) when the package's tests are done.
func TestMain(m *testing.M) { pgtest.Main(m) }
