package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/dmp-fhir/dmp-fhir/store"
)

// Store wraps st so that every storage operation is timed, by engine,
// operation and outcome. Operations inside a Transaction are timed too (the
// Ops given to fn are wrapped), as is the transaction as a whole. Methods
// of store.Store not listed here pass through untimed. A nil m returns st.
func (m *Metrics) Store(st store.Store) store.Store {
	if m == nil || st == nil {
		return st
	}
	return &meteredStore{Store: st, ops: meteredOps{m: m, engine: st.Info().Engine}}
}

type meteredStore struct {
	store.Store
	ops meteredOps
}

// meteredOps times the Ops of a store or of a transaction.
type meteredOps struct {
	next   store.Ops
	m      *Metrics
	engine string
}

func (o meteredOps) observe(op string, start time.Time, err error) {
	o.m.storeOps.WithLabelValues(o.engine, op, outcome(err)).Observe(time.Since(start).Seconds())
}

func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrDeleted):
		return "not_found"
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrExists), errors.Is(err, store.ErrVersionMismatch):
		return "conflict"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "timeout"
	case errors.Is(err, store.ErrNoTransactions):
		return "unsupported"
	}
	return "error"
}

func (o meteredOps) Create(ctx context.Context, typ, id string, body []byte) (*store.Resource, error) {
	start := time.Now()
	r, err := o.next.Create(ctx, typ, id, body)
	o.observe("create", start, err)
	return r, err
}

func (o meteredOps) Put(ctx context.Context, typ, id string, body []byte, ifMatch int64) (*store.Resource, store.Outcome, error) {
	start := time.Now()
	r, out, err := o.next.Put(ctx, typ, id, body, ifMatch)
	o.observe("put", start, err)
	return r, out, err
}

func (o meteredOps) Delete(ctx context.Context, typ, id string, ifMatch int64) (*store.Resource, store.Outcome, error) {
	start := time.Now()
	r, out, err := o.next.Delete(ctx, typ, id, ifMatch)
	o.observe("delete", start, err)
	return r, out, err
}

func (o meteredOps) Read(ctx context.Context, typ, id string) (*store.Resource, error) {
	start := time.Now()
	r, err := o.next.Read(ctx, typ, id)
	o.observe("read", start, err)
	return r, err
}

func (o meteredOps) VRead(ctx context.Context, typ, id string, version int64) (*store.Resource, error) {
	start := time.Now()
	r, err := o.next.VRead(ctx, typ, id, version)
	o.observe("vread", start, err)
	return r, err
}

func (o meteredOps) FindByToken(ctx context.Context, typ string, token store.TokenQuery, limit int) ([]string, error) {
	start := time.Now()
	ids, err := o.next.FindByToken(ctx, typ, token, limit)
	o.observe("find_by_token", start, err)
	return ids, err
}

// on is s's timing around next: the store itself or a transaction's Ops.
func (s *meteredStore) on(next store.Ops) meteredOps { o := s.ops; o.next = next; return o }

func (s *meteredStore) Create(ctx context.Context, typ, id string, body []byte) (*store.Resource, error) {
	return s.on(s.Store).Create(ctx, typ, id, body)
}

func (s *meteredStore) Put(ctx context.Context, typ, id string, body []byte, ifMatch int64) (*store.Resource, store.Outcome, error) {
	return s.on(s.Store).Put(ctx, typ, id, body, ifMatch)
}

func (s *meteredStore) Delete(ctx context.Context, typ, id string, ifMatch int64) (*store.Resource, store.Outcome, error) {
	return s.on(s.Store).Delete(ctx, typ, id, ifMatch)
}

func (s *meteredStore) Read(ctx context.Context, typ, id string) (*store.Resource, error) {
	return s.on(s.Store).Read(ctx, typ, id)
}

func (s *meteredStore) VRead(ctx context.Context, typ, id string, version int64) (*store.Resource, error) {
	return s.on(s.Store).VRead(ctx, typ, id, version)
}

func (s *meteredStore) FindByToken(ctx context.Context, typ string, token store.TokenQuery, limit int) ([]string, error) {
	return s.on(s.Store).FindByToken(ctx, typ, token, limit)
}

func (s *meteredStore) Search(ctx context.Context, q store.Query) (*store.Page, error) {
	start := time.Now()
	p, err := s.Store.Search(ctx, q)
	s.ops.observe("search", start, err)
	return p, err
}

func (s *meteredStore) History(ctx context.Context, q store.HistoryQuery) ([]*store.Resource, error) {
	start := time.Now()
	rs, err := s.Store.History(ctx, q)
	s.ops.observe("history", start, err)
	return rs, err
}

func (s *meteredStore) Transaction(ctx context.Context, fn func(tx store.Ops) error) error {
	start := time.Now()
	err := s.Store.Transaction(ctx, func(tx store.Ops) error {
		return fn(s.on(tx))
	})
	s.ops.observe("transaction", start, err)
	return err
}

func (s *meteredStore) Ping(ctx context.Context) error {
	start := time.Now()
	err := s.Store.Ping(ctx)
	s.ops.observe("ping", start, err)
	return err
}
