package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"

	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// claimType is the store type of the claims of conditional creates: no
// FHIR type, so no route reaches them.
const claimType = "ConditionalClaim"

// claim is what a conditional create holds while its resource exists.
type claim struct {
	ResourceType string `json:"resourceType"`
	Target       string `json:"target"` // Type/id created under the criteria
}

// claimKey names the claim of criteria on typ: the same criteria, in any
// parameter order, give the same key.
func claimKey(typ, criteria string) string {
	q, err := url.ParseQuery(criteria)
	if err == nil {
		criteria = q.Encode() // sorted by key
	}
	sum := sha256.Sum256([]byte(typ + "?" + criteria))
	return hex.EncodeToString(sum[:])
}

// claimCriteria makes a conditional create duplicate-free by construction:
// in the transaction that creates typ/id because nothing matched criteria,
// it creates a record keyed by the criteria, which the store allows once.
// Two concurrent creates under the same criteria collide on it even where
// transactions do not serialize (MongoDB's snapshot isolation), and the
// loser's transaction is retried, to find the winner's resource. A claim
// whose resource no longer matches (deleted, identifier changed) is taken
// over.
func (s *Server) claimCriteria(ctx context.Context, ops store.Ops, typ, criteria, id string) error {
	key := claimKey(typ, criteria)
	rec := &claim{ResourceType: claimType, Target: typ + "/" + id}
	err := auth.WriteRecord(ctx, ops, claimType, key, rec, 0, true)
	if !errors.Is(err, store.ErrExists) {
		return err
	}
	var old claim
	version, err := auth.ReadRecord(ctx, ops, claimType, key, &old)
	if errors.Is(err, store.ErrDeleted) {
		return auth.WriteRecord(ctx, ops, claimType, key, rec, 0, false)
	}
	if err != nil {
		return err
	}
	// The criteria matched nothing in this transaction: the old claim is
	// stale. If-Match on its version: of two takers, one wins.
	if err := auth.WriteRecord(ctx, ops, claimType, key, rec, version, false); errors.Is(err, store.ErrVersionMismatch) {
		return store.ErrConflict
	} else {
		return err
	}
}
