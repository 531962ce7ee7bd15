package auth

import (
	"os"
	"syscall"
)

// journalSync makes a segment's records durable. fdatasync: the segment is
// zero-filled ahead of its records (journalZeroFill), so there is no
// metadata to commit but when the file grows, which fdatasync then commits.
func journalSync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
