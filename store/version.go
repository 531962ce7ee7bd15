package store

import (
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
// extracts its index values.
func Prepare(typ, id string, body []byte, version int64, now time.Time) (*NewVersion, error) {
	stamped, err := fhir.Stamp(body, id, version, now)
	if err != nil {
		return nil, err
	}
	return &NewVersion{
		Resource: Resource{Type: typ, ID: id, Version: version, LastUpdated: now, Body: stamped},
		Index:    fhir.ExtractIndex(stamped),
	}, nil
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
