package mongo

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// maxAttempts bounds how often an unconditional write re-reads the latest
// version and tries again after concurrent writers took the version it
// wanted; past it the write fails with store.ErrConflict.
const maxAttempts = 50

// settleRounds bounds the read-back loop that, on FerretDB only, makes the
// resources document catch up with history after racing writers: the
// replaces of one writer, each read back.
const settleRounds = 10

// ops runs the store's reads and writes, in a transaction when sess is set.
type ops struct {
	s    *Store
	sess mongo.Session // nil outside a transaction
}

var _ store.Ops = ops{}

// ctx binds ctx to the transaction's session, if any.
func (o ops) ctx(ctx context.Context) context.Context {
	if o.sess == nil {
		return ctx
	}
	return mongo.NewSessionContext(ctx, o.sess)
}

func (o ops) inTx() bool { return o.sess != nil }

func (o ops) find(ctx context.Context, q query) ([]*document, error) {
	opts := options.Find().SetHint(q.index)
	if len(q.sort) > 0 {
		opts.SetSort(q.sort)
	}
	if q.limit > 0 {
		opts.SetLimit(q.limit)
	}
	cur, err := o.s.db.Collection(q.coll).Find(o.ctx(ctx), q.filter, opts)
	if err != nil {
		return nil, err
	}
	var docs []*document
	if err := cur.All(o.ctx(ctx), &docs); err != nil {
		return nil, err
	}
	return docs, nil
}

// findOne returns the first document q finds, or nil.
func (o ops) findOne(ctx context.Context, q query) (*document, error) {
	opts := options.FindOne().SetHint(q.index)
	if len(q.sort) > 0 {
		opts.SetSort(q.sort)
	}
	var d document
	err := o.s.db.Collection(q.coll).FindOne(o.ctx(ctx), q.filter, opts).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// latest is the newest version of typ/id in history, or nil: history, not
// the resources copy, says what the current version is.
func (o ops) latest(ctx context.Context, typ, id string) (*document, error) {
	d, err := o.findOne(ctx, latestQuery(typ, id))
	if err != nil {
		return nil, wrap("read", err)
	}
	return d, nil
}

func (o ops) Read(ctx context.Context, typ, id string) (*store.Resource, error) {
	d, err := o.latest(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, storeErr(store.ErrNotFound, nil, "%s/%s", typ, id)
	}
	if d.Deleted {
		return d.resource(), storeErr(store.ErrDeleted, nil, "%s/%s", typ, id)
	}
	return d.resource(), nil
}

func (o ops) VRead(ctx context.Context, typ, id string, version int64) (*store.Resource, error) {
	d, err := o.findOne(ctx, versionQuery(typ, id, version))
	if err != nil {
		return nil, wrap("vread", err)
	}
	if d == nil {
		return nil, storeErr(store.ErrNotFound, nil, "%s/%s/_history/%d", typ, id, version)
	}
	if d.Deleted {
		return d.resource(), storeErr(store.ErrDeleted, nil, "%s/%s/_history/%d", typ, id, version)
	}
	return d.resource(), nil
}

func (o ops) FindByToken(ctx context.Context, typ string, tq store.TokenQuery, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	q := tokenQuery(typ, tq, limit)
	opts := options.Find().SetHint(q.index).SetSort(q.sort).SetLimit(q.limit).
		SetProjection(bson.D{{Key: "_id", Value: 0}, {Key: fID, Value: 1}})
	cur, err := o.s.db.Collection(q.coll).Find(o.ctx(ctx), q.filter, opts)
	if err != nil {
		return nil, wrap("find by token", err)
	}
	var rows []struct {
		ID string `bson:"id"`
	}
	if err := cur.All(o.ctx(ctx), &rows); err != nil {
		return nil, wrap("find by token", err)
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	return ids, nil
}

func (o ops) Create(ctx context.Context, typ, id string, body []byte) (*store.Resource, error) {
	cur, err := o.latest(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	if cur != nil {
		return nil, storeErr(store.ErrExists, nil, "%s/%s", typ, id)
	}
	nv, err := store.Prepare(ctx, typ, id, body, 1, store.Now())
	if err != nil {
		return nil, err
	}
	taken, err := o.write(ctx, nv)
	if err != nil {
		return nil, err
	}
	if taken != nil {
		return nil, storeErr(store.ErrExists, taken, "%s/%s was created by a concurrent writer", typ, id)
	}
	return &nv.Resource, nil
}

func (o ops) Put(ctx context.Context, typ, id string, body []byte, ifMatch int64) (*store.Resource, store.Outcome, error) {
	for attempt := 1; ; attempt++ {
		cur, err := o.latest(ctx, typ, id)
		if err != nil {
			return nil, 0, err
		}
		if err := checkIfMatch(cur, typ, id, ifMatch); err != nil {
			return nil, 0, err
		}
		var curRes *store.Resource
		version, out := int64(1), store.Created
		if cur != nil {
			curRes = cur.resource()
			version = cur.Version + 1
			if !cur.Deleted {
				out = store.Updated
			}
		}
		if store.SameAsCurrent(curRes, body) {
			return curRes, store.Unchanged, nil
		}
		nv, err := store.Prepare(ctx, typ, id, body, version, store.Now())
		if err != nil {
			return nil, 0, err
		}
		taken, err := o.write(ctx, nv)
		if err != nil {
			return nil, 0, err
		}
		if taken == nil {
			return &nv.Resource, out, nil
		}
		if err := o.lost(ctx, taken, nv, ifMatch, attempt); err != nil {
			return nil, 0, err
		}
	}
}

func (o ops) Delete(ctx context.Context, typ, id string, ifMatch int64) (*store.Resource, store.Outcome, error) {
	for attempt := 1; ; attempt++ {
		cur, err := o.latest(ctx, typ, id)
		if err != nil {
			return nil, 0, err
		}
		if err := checkIfMatch(cur, typ, id, ifMatch); err != nil {
			return nil, 0, err
		}
		if cur == nil || cur.Deleted {
			return nil, store.NoOp, nil
		}
		nv := store.Deletion(typ, id, cur.Version+1, store.Now())
		d := newDocument(nv)
		d.Pat = cur.Pat // a deletion stays in its compartment (and on its shard)
		taken, err := o.writeDoc(ctx, d)
		if err != nil {
			return nil, 0, err
		}
		if taken == nil {
			return &nv.Resource, store.Deleted, nil
		}
		if err := o.lost(ctx, taken, nv, ifMatch, attempt); err != nil {
			return nil, 0, err
		}
	}
}

func checkIfMatch(cur *document, typ, id string, ifMatch int64) error {
	if ifMatch == 0 {
		return nil
	}
	if cur == nil {
		return storeErr(store.ErrVersionMismatch, nil, "%s/%s does not exist (If-Match %d)", typ, id, ifMatch)
	}
	if cur.Version != ifMatch {
		return storeErr(store.ErrVersionMismatch, nil, "%s/%s is at version %d, not %d", typ, id, cur.Version, ifMatch)
	}
	return nil
}

// lost decides what a writer does when a concurrent writer made the version
// nv wanted: a conditional write has lost (the current version is no
// longer ifMatch); in a transaction the server has aborted it; otherwise it
// waits a little and returns nil to try again on the new latest version,
// until maxAttempts.
func (o ops) lost(ctx context.Context, taken error, nv *store.NewVersion, ifMatch int64, attempt int) error {
	r := &nv.Resource
	switch {
	case ifMatch != 0:
		return storeErr(store.ErrVersionMismatch, taken, "%s/%s: version %d was made by a concurrent writer", r.Type, r.ID, r.Version)
	case o.inTx():
		return storeErr(store.ErrConflict, taken, "%s/%s: version %d was made by a concurrent writer", r.Type, r.ID, r.Version)
	case attempt >= maxAttempts:
		return storeErr(store.ErrConflict, taken, "%s/%s: lost to concurrent writers %d times", r.Type, r.ID, attempt)
	}
	// Random back-off, growing with the attempts, so that the losers do not
	// all come back together.
	wait := time.Duration(rand.Int64N(int64(min(attempt, 10))*int64(time.Millisecond) + 1))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(wait):
		return nil
	}
}

// write inserts nv's history document (without its index values, which
// only the resources document holds): the unique index on (type, id,
// version) lets exactly one writer make a version. taken is the
// duplicate-key error when another writer made it first (nothing was
// written). Then it makes nv the resources document, unless a newer version
// already is.
func (o ops) write(ctx context.Context, nv *store.NewVersion) (taken, err error) {
	return o.writeDoc(ctx, newDocument(nv))
}

// writeDoc is write with the history document already built.
func (o ops) writeDoc(ctx context.Context, d *document) (taken, err error) {
	if _, err := o.s.history.InsertOne(o.ctx(ctx), d.history()); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return err, nil
		}
		return nil, wrap("insert version", err)
	}
	return nil, o.settle(ctx, d)
}

// settle makes d the resources document of its resource unless that one
// already holds a newer version: the filter only matches an older version,
// and when none matches the upsert's insert fails on _id, which means a
// newer version is there (a lagging or crashed writer never moves the
// current document backwards on MongoDB).
//
// FerretDB does not apply the guarded replace atomically, so a late writer
// can move the document backwards there; on FerretDB each writer then reads
// the document back after each of its replaces and rolls it forward to the
// newest history version, so that the last writer leaves it right. The
// writer of the replace that lands last reads that replace back: a writer
// that finds another writer's version in place leaves it to that writer,
// and the round limit is checked after a read-back, never after a replace
// (a replace not read back could be the one that moved the document
// backwards last).
func (o ops) settle(ctx context.Context, d *document) error {
	for round := 1; ; round++ {
		c := d.current()
		filter := bson.D{{Key: "_id", Value: c.Key}, {Key: fVersion, Value: bson.D{{Key: "$lt", Value: c.Version}}}}
		_, err := o.s.resources.ReplaceOne(o.ctx(ctx), filter, c, options.Replace().SetUpsert(true))
		if err != nil && !mongo.IsDuplicateKeyError(err) {
			return wrap("update current version", err)
		}
		if !o.s.ferretDB || o.inTx() {
			return nil
		}
		var stored struct {
			Version int64 `bson:"version"`
		}
		err = o.s.resources.FindOne(ctx, bson.D{{Key: "_id", Value: c.Key}},
			options.FindOne().SetProjection(bson.D{{Key: fVersion, Value: 1}})).Decode(&stored)
		missing := errors.Is(err, mongo.ErrNoDocuments)
		if err != nil && !missing {
			return wrap("read current version", err)
		}
		newest, err := o.latest(ctx, d.Type, d.ID)
		if err != nil {
			return err
		}
		if newest == nil || stored.Version >= newest.Version {
			return nil
		}
		if !missing && stored.Version != c.Version {
			// Another writer's replace landed after this one's: that
			// writer reads it back and rolls it forward.
			return nil
		}
		if round >= settleRounds {
			return nil
		}
		if !newest.Deleted { // history keeps no index values
			newest.setIndex(fhir.ExtractIndex(newest.Body))
		}
		d = newest
	}
}
