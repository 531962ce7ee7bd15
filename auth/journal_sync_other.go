//go:build !linux

package auth

import "os"

// journalSync makes a segment's records durable.
func journalSync(f *os.File) error { return f.Sync() }
