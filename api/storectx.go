package api

import (
	"context"
	"io"

	"github.com/gin-gonic/gin"

	"github.com/dmp-fhir/dmp-fhir/store"
)

// plainContext gives the store the request's own context rather than gin's:
// a *gin.Context is recycled for the next request as soon as the handler
// returns, while a database driver may still watch ctx.Done() from its own
// goroutine (go test -race showed it).
func plainContext(ctx context.Context) context.Context {
	if gc, ok := ctx.(*gin.Context); ok && gc.Request != nil {
		return gc.Request.Context()
	}
	return ctx
}

// requestStore is the store as the handlers see it: every call made with
// the request's context (plainContext), inside transactions too. Methods
// it does not wrap take no context.
type requestStore struct{ store.Store }

type requestOps struct{ store.Ops }

func (s requestStore) Create(ctx context.Context, typ, id string, body []byte) (*store.Resource, error) {
	return s.Store.Create(plainContext(ctx), typ, id, body)
}

func (s requestStore) Put(ctx context.Context, typ, id string, body []byte, ifMatch int64) (*store.Resource, store.Outcome, error) {
	return s.Store.Put(plainContext(ctx), typ, id, body, ifMatch)
}

func (s requestStore) Delete(ctx context.Context, typ, id string, ifMatch int64) (*store.Resource, store.Outcome, error) {
	return s.Store.Delete(plainContext(ctx), typ, id, ifMatch)
}

func (s requestStore) Read(ctx context.Context, typ, id string) (*store.Resource, error) {
	return s.Store.Read(plainContext(ctx), typ, id)
}

func (s requestStore) VRead(ctx context.Context, typ, id string, version int64) (*store.Resource, error) {
	return s.Store.VRead(plainContext(ctx), typ, id, version)
}

func (s requestStore) FindByToken(ctx context.Context, typ string, tq store.TokenQuery, limit int) ([]string, error) {
	return s.Store.FindByToken(plainContext(ctx), typ, tq, limit)
}

func (s requestStore) Search(ctx context.Context, q store.Query) (*store.Page, error) {
	return s.Store.Search(plainContext(ctx), q)
}

func (s requestStore) Reindex(ctx context.Context, progress func(done int)) error {
	return s.Store.Reindex(plainContext(ctx), progress)
}

func (s requestStore) Transaction(ctx context.Context, fn func(tx store.Ops) error) error {
	return s.Store.Transaction(plainContext(ctx), func(tx store.Ops) error { return fn(requestOps{tx}) })
}

func (s requestStore) History(ctx context.Context, q store.HistoryQuery) ([]*store.Resource, error) {
	return s.Store.History(plainContext(ctx), q)
}

func (s requestStore) Ping(ctx context.Context) error { return s.Store.Ping(plainContext(ctx)) }

func (o requestOps) Create(ctx context.Context, typ, id string, body []byte) (*store.Resource, error) {
	return o.Ops.Create(plainContext(ctx), typ, id, body)
}

func (o requestOps) Put(ctx context.Context, typ, id string, body []byte, ifMatch int64) (*store.Resource, store.Outcome, error) {
	return o.Ops.Put(plainContext(ctx), typ, id, body, ifMatch)
}

func (o requestOps) Delete(ctx context.Context, typ, id string, ifMatch int64) (*store.Resource, store.Outcome, error) {
	return o.Ops.Delete(plainContext(ctx), typ, id, ifMatch)
}

func (o requestOps) Read(ctx context.Context, typ, id string) (*store.Resource, error) {
	return o.Ops.Read(plainContext(ctx), typ, id)
}

func (o requestOps) VRead(ctx context.Context, typ, id string, version int64) (*store.Resource, error) {
	return o.Ops.VRead(plainContext(ctx), typ, id, version)
}

func (o requestOps) FindByToken(ctx context.Context, typ string, tq store.TokenQuery, limit int) ([]string, error) {
	return o.Ops.FindByToken(plainContext(ctx), typ, tq, limit)
}

type requestBlobs struct{ store.Blobs }

func (s requestStore) Blobs() store.Blobs { return requestBlobs{s.Store.Blobs()} }

func (b requestBlobs) Put(ctx context.Context, id string, r io.Reader) error {
	return b.Blobs.Put(plainContext(ctx), id, r)
}

func (b requestBlobs) Get(ctx context.Context, id string) (io.ReadCloser, int64, error) {
	return b.Blobs.Get(plainContext(ctx), id)
}

func (b requestBlobs) Delete(ctx context.Context, id string) error {
	return b.Blobs.Delete(plainContext(ctx), id)
}
