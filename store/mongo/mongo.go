// Package mongo is the MongoDB storage engine: MongoDB 6+ as a replica set or
// a sharded cluster in production (transactions need one of them), anything
// that speaks the wire protocol for tests (FerretDB, see internal/mongotest).
//
// Two collections: history holds every version (deletions included) and its
// unique index on (type, id, version) decides which of concurrent writers
// makes version n+1; resources holds a copy of each resource's newest
// version with its index values, for lookups. Reads of a resource go to
// history, so they never see a lagging resources document. docs/MONGODB.md
// has the layout, the indexes and why.
package mongo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/readconcern"
	"go.mongodb.org/mongo-driver/mongo/readpref"
	"go.mongodb.org/mongo-driver/mongo/writeconcern"

	"github.com/dmp-fhir/dmp-fhir/store"
)

// Store is an opened MongoDB engine; it implements store.Store.
type Store struct {
	client    *mongo.Client
	db        *mongo.Database
	resources *mongo.Collection
	history   *mongo.Collection
	info      store.Info
	ferretDB  bool
}

var _ store.Store = (*Store)(nil)

// Minimum wire versions for transactions: 7 (MongoDB 4.0) on a replica set,
// 8 (4.2) on a sharded cluster.
const (
	wireReplicaSetTx = 7
	wireShardedTx    = 8
)

func writeConcern() *writeconcern.WriteConcern {
	j := true
	return &writeconcern.WriteConcern{W: "majority", Journal: &j}
}

// Open connects to the server at uri, checks what it can do and creates the
// collections' indexes in database (idempotent: opening again changes
// nothing). Writes use write concern majority with journal.
func Open(ctx context.Context, uri, database string) (*Store, error) {
	opts := options.Client().ApplyURI(uri).
		SetWriteConcern(writeConcern()).
		SetReadPreference(readpref.Primary())
	client, err := mongo.Connect(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("mongodb: connect: %w", err)
	}
	s := &Store{client: client, db: client.Database(database)}
	s.resources = s.db.Collection(resourcesColl)
	s.history = s.db.Collection(historyColl)
	if err := s.init(ctx); err != nil {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		client.Disconnect(dctx)
		return nil, err
	}
	return s, nil
}

func (s *Store) init(ctx context.Context) error {
	if err := s.client.Ping(ctx, readpref.Primary()); err != nil {
		return fmt.Errorf("mongodb: ping: %w", err)
	}
	admin := s.client.Database("admin")

	var build bson.M
	if err := admin.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&build); err != nil {
		return fmt.Errorf("mongodb: buildInfo: %w", err)
	}
	s.ferretDB = isFerretDB(build)

	var hello struct {
		SetName        string `bson:"setName"`
		Msg            string `bson:"msg"`
		MaxWireVersion int32  `bson:"maxWireVersion"`
	}
	err := admin.RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&hello)
	if err != nil { // servers before 4.4.2 know only isMaster
		err = admin.RunCommand(ctx, bson.D{{Key: "isMaster", Value: 1}}).Decode(&hello)
	}
	if err != nil {
		return fmt.Errorf("mongodb: hello: %w", err)
	}
	replicaSet := hello.SetName != "" && hello.MaxWireVersion >= wireReplicaSetTx
	sharded := hello.Msg == "isdbgrid" && hello.MaxWireVersion >= wireShardedTx
	s.info = store.Info{
		Engine:         "mongodb",
		Transactions:   (replicaSet || sharded) && !s.ferretDB,
		ConcurrentSafe: !s.ferretDB,
	}
	return s.ensureIndexes(ctx)
}

// isFerretDB recognises FerretDB by the fields it adds to buildInfo
// (ferretdbVersion, ferretdbFeatures in v1; ferretdb in v2).
func isFerretDB(build bson.M) bool {
	for k := range build {
		if strings.HasPrefix(strings.ToLower(k), "ferretdb") {
			return true
		}
	}
	return false
}

// ensureIndexes creates the declared indexes; creating an index that exists
// with the same keys and options is a no-op on MongoDB and FerretDB alike
// (and one with other keys or options under the same name is an error). One
// createIndexes per index: FerretDB 1.24 panics when one call lists several
// indexes that already exist.
func (s *Store) ensureIndexes(ctx context.Context) error {
	for _, ix := range indexes {
		o := options.Index().SetName(ix.name)
		if ix.unique {
			o.SetUnique(true)
		}
		if _, err := s.db.Collection(ix.coll).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.keys, Options: o}); err != nil {
			return fmt.Errorf("mongodb: create index %s.%s: %w", ix.coll, ix.name, err)
		}
	}
	return nil
}

// Info describes the engine: transactions only on a replica set or a
// sharded cluster; not concurrent-safe on FerretDB.
func (s *Store) Info() store.Info { return s.info }

// Ping checks that the primary answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx, readpref.Primary()); err != nil {
		return fmt.Errorf("mongodb: ping: %w", err)
	}
	return nil
}

// Close disconnects from the server.
func (s *Store) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.client.Disconnect(ctx); err != nil && !errors.Is(err, mongo.ErrClientDisconnected) {
		return fmt.Errorf("mongodb: close: %w", err)
	}
	return nil
}

// Transaction runs fn in a MongoDB transaction (snapshot reads, majority
// writes); the driver runs fn again on a transient transaction error, such
// as a write conflict with a concurrent writer. Without a replica set or a
// sharded cluster it returns store.ErrNoTransactions and does not call fn.
func (s *Store) Transaction(ctx context.Context, fn func(tx store.Ops) error) error {
	if !s.info.Transactions {
		return store.ErrNoTransactions
	}
	sess, err := s.client.StartSession()
	if err != nil {
		return fmt.Errorf("mongodb: start session: %w", err)
	}
	defer sess.EndSession(context.WithoutCancel(ctx))
	txOpts := options.Transaction().
		SetReadConcern(readconcern.Snapshot()).
		SetWriteConcern(writeConcern()).
		SetReadPreference(readpref.Primary())
	var fnErr error
	_, err = sess.WithTransaction(ctx, func(sc mongo.SessionContext) (any, error) {
		fnErr = fn(ops{s: s, sess: sess})
		return nil, fnErr
	}, txOpts)
	if err == nil || err == fnErr {
		return err // fn's own error as fn returned it
	}
	return wrap("transaction", err)
}

// The Ops of the store outside a transaction.

func (s *Store) Create(ctx context.Context, typ, id string, body []byte) (*store.Resource, error) {
	return ops{s: s}.Create(ctx, typ, id, body)
}

func (s *Store) Put(ctx context.Context, typ, id string, body []byte, ifMatch int64) (*store.Resource, store.Outcome, error) {
	return ops{s: s}.Put(ctx, typ, id, body, ifMatch)
}

func (s *Store) Delete(ctx context.Context, typ, id string, ifMatch int64) (*store.Resource, store.Outcome, error) {
	return ops{s: s}.Delete(ctx, typ, id, ifMatch)
}

func (s *Store) Read(ctx context.Context, typ, id string) (*store.Resource, error) {
	return ops{s: s}.Read(ctx, typ, id)
}

func (s *Store) VRead(ctx context.Context, typ, id string, version int64) (*store.Resource, error) {
	return ops{s: s}.VRead(ctx, typ, id, version)
}

func (s *Store) FindByToken(ctx context.Context, typ string, q store.TokenQuery, limit int) ([]string, error) {
	return ops{s: s}.FindByToken(ctx, typ, q, limit)
}

// History lists versions newest first, filtered by type, id and since, one
// page of q.Count (default 50) after q.After.
func (s *Store) History(ctx context.Context, q store.HistoryQuery) ([]*store.Resource, error) {
	hq, err := historyQuery(q)
	if err != nil {
		return nil, err
	}
	docs, err := ops{s: s}.find(ctx, hq)
	if err != nil {
		return nil, wrap("history", err)
	}
	out := make([]*store.Resource, len(docs))
	for i, d := range docs {
		out[i] = d.resource()
	}
	return out, nil
}

// Purge removes every version of typ/id: its resources document first, so
// that searches stop finding it, then its history. In one transaction when
// the server runs them; otherwise a failure in between leaves history
// versions that a second Purge removes.
func (s *Store) Purge(ctx context.Context, typ, id string) error {
	purge := func(o ops) error {
		if _, err := s.resources.DeleteOne(o.ctx(ctx), bson.D{{Key: "_id", Value: resourceKey(typ, id)}}); err != nil {
			return wrap("purge current version", err)
		}
		if _, err := s.history.DeleteMany(o.ctx(ctx), bson.D{{Key: fType, Value: typ}, {Key: fID, Value: id}}); err != nil {
			return wrap("purge history", err)
		}
		return nil
	}
	err := s.Transaction(ctx, func(tx store.Ops) error { return purge(tx.(ops)) })
	if errors.Is(err, store.ErrNoTransactions) {
		return purge(ops{s: s})
	}
	return err
}

// WriteCount is never exact on MongoDB: other servers write the same
// database, so every read goes to it (store.Store).
func (s *Store) WriteCount(typ string) (uint64, bool) { return 0, false }
