//go:build !linux

package main

// freeBytes is not measured here: the dump is written and a full disk
// fails it cleanly (fsutil.WriteAtomic leaves nothing behind).
func freeBytes(string) (int64, bool) { return 0, false }
