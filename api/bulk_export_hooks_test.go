package api

import (
	"context"
	"time"
)

// SetExportHook makes every export job run f (with its id) before it
// starts: the tests hold a job in the running state with it.
func (s *Server) SetExportHook(f func(job string)) {
	s.exports.mu.Lock()
	defer s.exports.mu.Unlock()
	s.exports.hook = f
}

// SweepExports runs the sweep of expired and dead export jobs as if it
// were now.
func (s *Server) SweepExports(now time.Time) { s.exports.sweep(context.Background(), now) }
