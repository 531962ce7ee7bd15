package api

import (
	"context"
	"time"
)

// SetAdmittedHook makes every FHIR request, once it has its slot and its
// deadline, run f first: the tests hold requests open with it.
func (s *Server) SetAdmittedHook(f func(ctx context.Context)) { s.admitted = f }

// SetRequestTimeout changes the deadline of the FHIR requests to come
// (Config.RequestTimeout); only while no request is in flight.
func (s *Server) SetRequestTimeout(d time.Duration) { s.cfg.RequestTimeout = d }

// WithAuthor is the author stamp of writes (feeding.go).
var WithAuthor = withAuthor

// LocalReferences is localReferences, the references $everything follows.
var LocalReferences = localReferences

// MarshalBundle is marshalBundle, the encoding of searchset Bundles.
var MarshalBundle = marshalBundle
