package sqlite

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// LockName is the file in the data directory that the process which has
// the store open keeps locked (flock, released by the kernel when the
// process ends, however it ends).
const LockName = "LOCK"

// errDirLocked: another process has the data directory open.
var errDirLocked = errors.New("locked")

// dirLock is the lock of one data directory; a nil *dirLock holds nothing.
type dirLock struct {
	f    *os.File // nil when no lock is held
	once sync.Once
}

// lockDir takes dir's lock without waiting: a second server, or an import
// run beside the server, is refused at once instead of writing behind the
// first one's back (whose write counts would then miss writes).
func lockDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, LockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: lock file: %w", err)
	}
	ok, err := flockExclusive(f)
	if errors.Is(err, errors.ErrUnsupported) {
		f.Close()
		return &dirLock{}, nil // not held: WriteCount says so
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("sqlite: lock %s: %w", path, err)
	}
	if !ok {
		holder, _ := os.ReadFile(path)
		f.Close()
		return nil, fmt.Errorf("sqlite: the data directory %s is in use by another process (pid %s): stop it first: %w",
			dir, strings.TrimSpace(string(holder)), errDirLocked)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{f: f}, nil
}

// held reports whether the lock is held (false where flock is not
// available: lock_other.go).
func (l *dirLock) held() bool { return l != nil && l.f != nil }

// release lets the lock go (closing the file drops the flock); again is a
// no-op.
func (l *dirLock) release() {
	if l.held() {
		l.once.Do(func() { l.f.Close() })
	}
}
