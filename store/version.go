package store

import (
	"bytes"
	"context"
	"time"

	"github.com/dmp-fhir/dmp-fhir/fhir"
)

// NewVersion is what an engine writes for one version: the stamped body and
// the index values extracted from it. Engines build it with Prepare so that
// both write exactly the same thing.
type NewVersion struct {
	Resource
	Index fhir.Index
}

// Prepare stamps body as version `version` of typ/id at time now and
// extracts its index values, or takes the stamp WithStamp and the values
// WithIndex gave in ctx for exactly this body.
func Prepare(ctx context.Context, typ, id string, body []byte, version int64, now time.Time) (*NewVersion, error) {
	var stamped []byte
	if h, ok := ctx.Value(stampHintKey{}).(*stampHint); ok && h.id == id && h.version == version && bytes.Equal(h.body, body) {
		stamped = h.st.At(now)
	} else {
		var err error
		if stamped, err = fhir.Stamp(body, id, version, now); err != nil {
			return nil, err
		}
	}
	nv := &NewVersion{Resource: Resource{Type: typ, ID: id, Version: version, LastUpdated: now, Body: stamped}}
	if h, ok := ctx.Value(indexHintKey{}).(*indexHint); ok && bytes.Equal(h.body, body) {
		nv.Index = h.ix
	} else {
		nv.Index = fhir.ExtractIndexOfStamped(stamped)
	}
	return nv, nil
}

type indexHintKey struct{}

type indexHint struct {
	body []byte
	ix   fhir.Index
}

// WithIndex tells the write of body made with the returned context that its
// index values are ix, extracted ahead (a transaction Bundle extracts its
// entries' in parallel, before it takes the store's write lock), so that
// the engine does not extract them again inside its transaction. ix must be
// fhir.ExtractIndex of body or of a body that differs from it only by
// members no search parameter reads (meta.versionId, meta.lastUpdated,
// meta.extension). A write of any other body extracts its own.
func WithIndex(ctx context.Context, body []byte, ix fhir.Index) context.Context {
	return context.WithValue(ctx, indexHintKey{}, &indexHint{body: body, ix: ix})
}

type stampHintKey struct{}

type stampHint struct {
	body    []byte
	id      string
	version int64
	st      *fhir.StampAhead
}

// WithStamp tells the write of body as version `version` of id, made with
// the returned context, that its stamp was prepared ahead
// (fhir.PrepareStamp of body, id and version, outside the write lock): the
// write only writes its time in. A write of anything else stamps its own.
func WithStamp(ctx context.Context, body []byte, id string, version int64, st *fhir.StampAhead) context.Context {
	return context.WithValue(ctx, stampHintKey{}, &stampHint{body: body, id: id, version: version, st: st})
}

// Deletion is the deletion version `version` of typ/id.
func Deletion(typ, id string, version int64, now time.Time) *NewVersion {
	return &NewVersion{Resource: Resource{Type: typ, ID: id, Version: version, LastUpdated: now, Deleted: true}}
}

// SameAsCurrent reports whether body says the same as the current version cur,
// in which case a Put makes no new version.
func SameAsCurrent(cur *Resource, body []byte) bool {
	return cur != nil && !cur.Deleted && fhir.SameContent(cur.Body, body)
}
