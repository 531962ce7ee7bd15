//go:build !linux

package sqlite

import "os"

// walFileSync is fsync where fdatasync is not portable.
var walFileSync = func(f *os.File) error { return f.Sync() }
