package main

import (
	"testing"

	"worklog/internal/pgtest"
)

// TestMain stops the private PostgreSQL of the tests that use one
// (pgtest.New) when the package's tests are done, and removes the binary
// worklogBin built (165 MB left in the temp dir by every run before).
func TestMain(m *testing.M) { pgtest.Main(m, removeBuiltBinary) }
