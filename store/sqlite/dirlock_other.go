//go:build !unix

package sqlite

import (
	"errors"
	"os"
)

// flockExclusive: no flock here, so the lock is not taken and WriteCount
// says its counts are not exact (the api then reads every decision's
// policy from the store).
func flockExclusive(f *os.File) (bool, error) {
	return false, errors.ErrUnsupported
}
