//go:build unix

package sqlite

import (
	"errors"
	"os"
	"syscall"
)

// flockExclusive takes f's exclusive lock without waiting; false when
// another open file (of this process or another) holds it.
func flockExclusive(f *os.File) (bool, error) {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, syscall.EWOULDBLOCK):
			return false, nil
		case errors.Is(err, syscall.EINTR):
			continue
		}
		return false, err
	}
}
