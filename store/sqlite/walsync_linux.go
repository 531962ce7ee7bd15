package sqlite

import (
	"os"
	"syscall"
)

// walFileSync is fdatasync: the WAL's frames and, when it grew, its size.
var walFileSync = func(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
