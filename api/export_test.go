package api

import "context"

// SetAdmittedHook makes every FHIR request, once it has its slot and its
// deadline, run f first: the tests hold requests open with it.
func (s *Server) SetAdmittedHook(f func(ctx context.Context)) { s.admitted = f }

// WithAuthor is the author stamp of writes (feeding.go).
var WithAuthor = withAuthor

// LocalReferences is localReferences, the references $everything follows.
var LocalReferences = localReferences

// MarshalBundle is marshalBundle, the encoding of searchset Bundles.
var MarshalBundle = marshalBundle
