package mongo

import (
	"context"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/dmp-fhir/dmp-fhir/fhir"
)

// reindexBatch is how many resources Reindex reads per query (keyset
// batches on _id, so that no cursor stays open while it writes); a
// variable for the tests.
var reindexBatch = 500

// reindexQuery lists the current, non-deleted resources after the _id
// after, in _id order.
func reindexQuery(after string) query {
	return query{
		coll:   resourcesColl,
		filter: bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}}},
		sort:   bson.D{{Key: "_id", Value: 1}},
		index:  "_id_",
		limit:  int64(reindexBatch),
	}
}

// Reindex extracts the index values of every current resource again
// (fhir.ExtractIndex on its stored body) and rewrites the ix, sk and pat of
// its resources document. Each update is guarded by the version read, so a
// resource written meanwhile keeps the values its writer extracted. History
// documents hold no index values and keep the pat they were written with.
// progress is called after each batch with the number of resources done.
func (s *Store) Reindex(ctx context.Context, progress func(done int)) error {
	o := ops{s: s}
	after, done := "", 0
	for {
		docs, err := o.find(ctx, reindexQuery(after))
		if err != nil {
			return wrap("reindex", err)
		}
		for _, d := range docs {
			after = d.Key
			if d.Deleted {
				continue
			}
			d.setIndex(fhir.ExtractIndex(d.Body))
			set, unset := bson.D{{Key: fIx, Value: d.Ix}}, bson.D{}
			if d.Sk != nil {
				set = append(set, bson.E{Key: fSk, Value: d.Sk})
			} else {
				unset = append(unset, bson.E{Key: fSk, Value: ""})
			}
			if d.Pat != "" {
				set = append(set, bson.E{Key: fPat, Value: d.Pat})
			} else {
				unset = append(unset, bson.E{Key: fPat, Value: ""})
			}
			upd := bson.D{{Key: "$set", Value: set}}
			if len(unset) > 0 {
				upd = append(upd, bson.E{Key: "$unset", Value: unset})
			}
			cur := bson.D{{Key: "_id", Value: d.Key}, {Key: fVersion, Value: d.Version}}
			if _, err := s.resources.UpdateOne(ctx, cur, upd); err != nil {
				return wrap("reindex", err)
			}
			done++
		}
		if progress != nil && len(docs) > 0 {
			progress(done)
		}
		if len(docs) < reindexBatch {
			return nil
		}
	}
}
