package api

import (
	"context"

	"errors"
	"github.com/dmp-fhir/dmp-fhir/auth"
	"io"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/internal/ids"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// typeInteractions and systemInteractions are what the routes below serve;
// the CapabilityStatement is built from them.
var (
	typeInteractions   = []string{"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type"}
	systemInteractions = []string{"transaction", "batch", "history-system"}
	typeOperations     = []fhir.Operation{{Name: "validate", Definition: "http://hl7.org/fhir/OperationDefinition/Resource-validate"}}
)

func (s *Server) routes() *gin.Engine {
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RemoveExtraSlash = false
	e.ContextWithFallback = true // c carries the request's context (deadline, cancellation) to the store
	e.Use(s.requestLog)
	e.Use(gin.CustomRecoveryWithWriter(io.Discard, func(c *gin.Context, rec any) { // gin's own report would dump the headers
		s.log.Error("panic", "method", c.Request.Method, "route", c.FullPath(), "panic", rec, "stack", string(debug.Stack()))
		s.abortOutcome(c, http.StatusInternalServerError, "exception", "", "internal error")
	}))
	e.NoRoute(func(c *gin.Context) {
		s.writeOutcome(c, http.StatusNotFound, fhir.Issue{Code: "not-found", Diagnostics: "no route " + c.Request.Method + " " + c.Request.URL.Path})
	})
	e.NoMethod(func(c *gin.Context) {
		s.writeOutcome(c, http.StatusMethodNotAllowed, fhir.Issue{Code: "not-supported", Diagnostics: "method " + c.Request.Method + " is not allowed on " + c.Request.URL.Path})
	})

	g := e.Group("/fhir", s.negotiate, s.limit)
	g.GET("/metadata", s.capabilities)
	g.POST("/Patient/$dmp-request-code", s.anonymous, s.dmpRequestCode)
	g.POST("/Patient/$dmp-create", s.optionalAuthenticate, s.dmpCreate)
	a := g.Group("", s.authenticate)
	a.GET("/_history", s.history)
	a.POST("", s.bundle)
	a.POST("/", s.bundle)
	a.GET("/$export", s.exportKickoff) // bulk_export.go
	a.POST("/$export", s.exportKickoff)
	a.GET(exportStatusPath+":job", s.exportStatus)
	a.DELETE(exportStatusPath+":job", s.exportCancel)
	a.GET(exportFilePath+":job/:file", s.exportFile)

	t := a.Group("/:type", s.knownType)
	t.GET("", s.search)
	t.POST("", s.create)
	t.PUT("", s.conditionalUpdate)
	t.POST("/_search", s.searchPost)
	t.GET("/_history", s.history)
	t.POST("/$validate", s.validate)
	t.GET("/$export", s.exportKickoff)
	t.POST("/$export", s.exportKickoff)
	t.GET("/:id", s.read)
	t.PUT("/:id", s.update)
	t.DELETE("/:id", s.delete)
	t.PATCH("/:id", s.patch)
	t.GET("/:id/_history", s.history)
	t.GET("/:id/:compartmentType", s.compartmentSearch)
	t.GET("/:id/_history/:vid", s.vread)
	t.POST("/:id/:operation", s.instanceOperation)

	s.opsRoutes(e)
	e.GET("/.well-known/smart-configuration", s.smartConfiguration)
	e.POST("/auth/token", s.token)
	e.GET("/auth/jwks", s.jwks)
	return e
}

// knownType answers 404 for a resource type the server does not support, and
// 400 for a malformed id in the path.
func (s *Server) knownType(c *gin.Context) {
	typ := c.Param("type")
	if _, ok := fhir.LookupType(typ); !ok {
		s.abortOutcome(c, http.StatusNotFound, "not-supported", "", "resource type "+strconv.Quote(typ)+" is not supported by this server")
		return
	}
	if id := c.Param("id"); id != "" && !fhir.ValidID(id) {
		s.abortOutcome(c, http.StatusBadRequest, "value", "", "malformed resource id "+strconv.Quote(id)+": 1 to 64 letters, digits, '-' or '.'")
		return
	}
	c.Next()
}

// writeOutcomeHeader tells a client (the import command, a hospital system
// reconciling) whether an update made a new version: X-Write-Outcome is
// created, updated or unchanged.
func writeOutcomeHeader(c *gin.Context, out store.Outcome) {
	switch out {
	case store.Created:
		c.Header("X-Write-Outcome", "created")
	case store.Updated:
		c.Header("X-Write-Outcome", "updated")
	case store.Unchanged:
		c.Header("X-Write-Outcome", "unchanged")
	}
}

// opDefinition is the canonical of one of dmp-fhir's own operations.
func opDefinition(name string) string { return "https://dmp-fhir.fr/OperationDefinition/" + name }

func (s *Server) capabilities(c *gin.Context) {
	s.writeJSON(c, http.StatusOK, fhir.CapabilityStatement(fhir.Capabilities{
		Software:           "dmp-fhir",
		Version:            s.cfg.Version,
		BaseURL:            s.base(c),
		TypeInteractions:   typeInteractions,
		SystemInteractions: systemInteractions,
		TypeOperations:     typeOperations,
		ConditionalCreate:  true,
		ConditionalUpdate:  true,
		ConditionalRead:    "not-match",
		SearchParams:       searchParamsByType(),
		TypeSpecificOperations: map[string][]fhir.Operation{"Patient": {
			{Name: "authorize", Definition: opDefinition("authorize")}, {Name: "revoke", Definition: opDefinition("revoke")},
			{Name: "block", Definition: opDefinition("block")}, {Name: "unblock", Definition: opDefinition("unblock")},
			{Name: "set-treating-doctor", Definition: opDefinition("set-treating-doctor")},
			{Name: "emergency-preferences", Definition: opDefinition("emergency-preferences")},
			{Name: "declare-consent", Definition: opDefinition("declare-consent")},
			{Name: "access-decision", Definition: opDefinition("access-decision")},
			{Name: "dmp-request-code", Definition: opDefinition("dmp-request-code")}, {Name: "dmp-create", Definition: opDefinition("dmp-create")},
			{Name: "dmp-close", Definition: opDefinition("dmp-close")}, {Name: "dmp-reopen", Definition: opDefinition("dmp-reopen")},
			{Name: "change-password", Definition: opDefinition("change-password")},
			{Name: "everything", Definition: "http://hl7.org/fhir/OperationDefinition/Patient-everything"}, {Name: "summary", Definition: "http://hl7.org/fhir/uv/ips/OperationDefinition/summary"},
			{Name: "export", Definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"},
		}, "DocumentReference": {
			{Name: "mask", Definition: opDefinition("mask")}, {Name: "unmask", Definition: opDefinition("unmask")},
			{Name: "hide-from-patient", Definition: opDefinition("hide-from-patient")}, {Name: "show-to-patient", Definition: opDefinition("show-to-patient")},
		}},
		SystemOperations: []fhir.Operation{{Name: "export", Definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}},
		Instantiates:     []string{"http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"},
		Documentation:    exportDocumentation,
		SMART:            true,
		TokenEndpoint:    strings.TrimSuffix(s.base(c), "/fhir") + "/auth/token",
	}, time.Now()))
}

// incoming reads, parses and validates the resource body of a write.
func (s *Server) incoming(c *gin.Context) (*fhir.Resource, []byte, error) {
	body, err := s.readBody(c)
	if err != nil {
		return nil, nil, err
	}
	var res *fhir.Resource
	if ei := aheadEntry(c.Request.Context(), body); ei != nil && ei.res != nil {
		res = ei.res
	} else if res, err = fhir.ParseResource(body); err != nil {
		return nil, nil, err
	}
	if res.Type != c.Param("type") {
		return nil, nil, fhir.Invalid("resourceType", "resourceType "+strconv.Quote(res.Type)+" does not match the URL's type "+strconv.Quote(c.Param("type")))
	}
	if !validatedInBundle(c) {
		if err := s.validator.Validate(body); err != nil {
			return nil, nil, err
		}
	}
	return res, body, nil
}

func (s *Server) create(c *gin.Context) {
	if rawBinaryUpload(c) {
		s.createRawBinary(c)
		return
	}
	if !s.allow(c, c.Param("type"), auth.OpCreate, "create") {
		return
	}
	res, body, err := s.incoming(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.mayWrite(c, res.Type, body); err != nil {
		s.fail(c, err)
		return
	}
	typ := res.Type
	criteria := c.GetHeader("If-None-Exist")
	if criteria == "" {
		id := s.assignedID(c)
		var r *store.Resource
		err := s.writing(c, typ, body, func(ops store.Ops) error {
			var err error
			r, err = s.createIn(c, ops, typ, id, body)
			return err
		})
		if err != nil {
			s.fail(c, err)
			return
		}
		s.answerWrite(c, http.StatusCreated, r)
		return
	}
	var r *store.Resource
	created := false
	err = s.atomically(c, func(ops store.Ops) error {
		ids, err := s.matches(c, typ, criteria, "If-None-Exist", s.base(c))
		if err != nil {
			return err
		}
		switch len(ids) {
		case 0:
			created = true
			id := s.assignedID(c)
			if err := s.claimCriteria(c, ops, typ, criteria, id); err != nil {
				return err
			}
			r, err = s.createIn(c, ops, typ, id, body)
			return err
		case 1:
			created = false
			r, err = ops.Read(c, typ, ids[0])
			if err == nil {
				// The match is answered only to whom may read it.
				if ok, _, rerr := s.mayRead(c, r); rerr != nil || !ok {
					hidden := *r
					hidden.Body = nil
					r = &hidden
					return rerr
				}
			}
			return err
		default:
			return multipleMatches("If-None-Exist", len(ids))
		}
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	if created {
		s.answerWrite(c, http.StatusCreated, r)
	} else {
		s.answerWrite(c, http.StatusOK, r)
	}
}

func (s *Server) update(c *gin.Context) {
	if rawBinaryUpload(c) {
		s.updateRawBinary(c)
		return
	}
	if !s.allow(c, c.Param("type"), auth.OpUpdate, "update") {
		return
	}
	res, body, err := s.incoming(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.mayWrite(c, res.Type, body); err != nil {
		s.fail(c, err)
		return
	}
	id := c.Param("id")
	switch {
	case res.ID == "":
		s.fail(c, fhir.Invalid(res.Type+".id", "an update must carry the resource id, equal to the id in the URL ("+id+")"))
		return
	case res.ID != id:
		s.fail(c, fhir.Invalid(res.Type+".id", "the id in the body ("+res.ID+") does not match the id in the URL ("+id+")"))
		return
	}
	ifMatch, err := parseIfMatch(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var r *store.Resource
	var out store.Outcome
	err = s.writing(c, res.Type, body, func(ops store.Ops) error {
		var err error
		r, out, err = s.putIn(c, ops, res.Type, id, body, ifMatch)
		return err
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.answerPut(c, r, out)
}

// conditionalUpdate serves PUT /fhir/Type?criteria: no match creates, one
// match updates it, several are refused with 412.
func (s *Server) conditionalUpdate(c *gin.Context) {
	if !s.allow(c, c.Param("type"), auth.OpUpdate, "update") {
		return
	}
	res, body, err := s.incoming(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.mayWrite(c, res.Type, body); err != nil {
		s.fail(c, err)
		return
	}
	if c.Request.URL.RawQuery == "" {
		s.fail(c, fhir.NewError(http.StatusMethodNotAllowed, "not-supported", "", "PUT needs a resource id in the URL, or search criteria for a conditional update"))
		return
	}
	ifMatch, err := parseIfMatch(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var r *store.Resource
	var out store.Outcome
	err = s.atomically(c, func(ops store.Ops) error {
		ids, err := s.matches(c, res.Type, c.Request.URL.RawQuery, "", s.base(c))
		if err != nil {
			return err
		}
		var id string
		switch len(ids) {
		case 0:
			id = res.ID
			if id == "" {
				id = newID()
			} else if _, err := ops.Read(c, res.Type, id); !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrDeleted) {
				return fhir.NewError(http.StatusConflict, "conflict", res.Type+".id", "no resource matches the criteria, but id "+id+" belongs to a resource that does not match them")
			}
		case 1:
			id = ids[0]
			if res.ID != "" && res.ID != id {
				return fhir.Invalid(res.Type+".id", "the id in the body ("+res.ID+") is not the id of the matching resource ("+id+")")
			}
		default:
			return multipleMatches("the search criteria", len(ids))
		}
		if res.Type == "Patient" {
			if err := s.checkPatientUpdate(c, id, body); err != nil {
				return err
			}
		}
		r, out, err = s.putIn(c, ops, res.Type, id, body, ifMatch)
		return err
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.answerPut(c, r, out)
}

// createIn writes a new resource in ops: its author stamped, and the
// documents it replaces superseded with it (checked before it is written).
func (s *Server) createIn(ctx context.Context, ops store.Ops, typ, id string, body []byte) (*store.Resource, error) {
	stamped, st, err := s.authored(ctx, nil, body)
	if err == nil {
		err = s.supersede(ctx, ops, id, typ, stamped, false)
	}
	if err != nil {
		return nil, err
	}
	wctx, ix, ahead := withAheadIndex(ctx, body, stamped)
	if st != nil {
		wctx = store.WithStamp(wctx, stamped, id, 1, st)
	}
	r, err := ops.Create(wctx, typ, id, stamped)
	if err == nil {
		if ahead {
			noteWritten(ctx, r, ix)
		}
		err = s.supersede(ctx, ops, id, typ, stamped, true)
	}
	return r, err
}

// withAheadIndex passes the index values a Bundle extracted for body to
// the store's write of stamped (body with its author stamped in
// meta.extension, which no search parameter reads).
func withAheadIndex(ctx context.Context, body, stamped []byte) (context.Context, fhir.Index, bool) {
	ei := aheadEntry(ctx, body)
	if ei == nil {
		return ctx, fhir.Index{}, false
	}
	return store.WithIndex(plainContext(ctx), stamped, ei.ix), ei.ix, true
}

// noteWritten keeps the index values of the version just written for the
// audit of the request (answerWrite).
func noteWritten(ctx context.Context, r *store.Resource, ix fhir.Index) {
	if a := accessOf(ctx); a != nil && r != nil {
		a.written = &writtenVersion{typ: r.Type, id: r.ID, version: r.Version, ix: ix}
	}
}

// authored is body with its author stamped over the current version cur
// (stampAuthorOver) and, for a new resource (cur nil) whose Bundle entry
// prepared both ahead of the write lock (aheadEntry), its stamp as version
// 1 of its id; st is nil otherwise.
func (s *Server) authored(ctx context.Context, cur *store.Resource, body []byte) (stamped []byte, st *fhir.StampAhead, err error) {
	if cur == nil {
		if ei := aheadEntry(ctx, body); ei != nil && ei.stamp != nil {
			return ei.authored, ei.stamp, nil
		}
	}
	stamped, err = s.stampAuthorOver(accessOf(ctx), cur, body)
	return stamped, nil, err
}

// putIn is createIn for an update (or a create at a chosen id): a live
// resource is changed by its author only (mayUpdate).
func (s *Server) putIn(ctx context.Context, ops store.Ops, typ, id string, body []byte, ifMatch int64) (*store.Resource, store.Outcome, error) {
	cur, err := ops.Read(ctx, typ, id)
	switch {
	case err == nil:
		if err := s.mayUpdate(ctx, cur); err != nil {
			return nil, 0, err
		}
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrDeleted):
		cur = nil // a create, or a new life after a delete
	default:
		return nil, 0, err
	}
	return s.putOver(ctx, ops, typ, id, body, ifMatch, cur)
}

// putOver is putIn once the caller read the current version cur (nil when
// there is none) and checked the caller may change it (mayUpdate).
func (s *Server) putOver(ctx context.Context, ops store.Ops, typ, id string, body []byte, ifMatch int64, cur *store.Resource) (*store.Resource, store.Outcome, error) {
	stamped, st, err := s.authored(ctx, cur, body)
	if err == nil {
		err = s.supersede(ctx, ops, id, typ, stamped, false)
	}
	if err != nil {
		return nil, 0, err
	}
	wctx, ix, ahead := withAheadIndex(ctx, body, stamped)
	if st != nil {
		// The store uses it only for version 1 of id: a new life after a
		// delete stamps its own version.
		wctx = store.WithStamp(wctx, stamped, id, 1, st)
	}
	r, out, err := ops.Put(wctx, typ, id, stamped, ifMatch)
	if err == nil && ahead {
		noteWritten(ctx, r, ix) // unchanged: the same content, the same index values
	}
	if err == nil && out != store.Unchanged {
		err = s.supersede(ctx, ops, id, typ, stamped, true)
	}
	return r, out, err
}

// answerPut answers an update: 201 when it created the resource, else 200.
func (s *Server) answerPut(c *gin.Context, r *store.Resource, out store.Outcome) {
	status := http.StatusOK
	if out == store.Created {
		status = http.StatusCreated
	}
	writeOutcomeHeader(c, out)
	s.answerWrite(c, status, r)
}

// atomically runs fn in a store transaction: the one of the transaction
// Bundle being processed, if any, else a new one. On an engine without
// transactions (a standalone MongoDB) it runs fn directly, which leaves a
// window between the lookup and the write: docs/MONGODB.md says so.
func (s *Server) atomically(ctx context.Context, fn func(store.Ops) error) error {
	if tx, ok := ctx.Value(txKey{}).(store.Ops); ok {
		return fn(s.withContent(tx, false))
	}
	err := s.store.Transaction(ctx, func(tx store.Ops) error { return fn(s.withContent(tx, false)) })
	if errors.Is(err, store.ErrNoTransactions) {
		return fn(s.withContent(s.store, true))
	}
	return err
}

// writing runs a write: in one transaction when it also supersedes the
// documents it replaces, else directly.
func (s *Server) writing(ctx context.Context, typ string, body []byte, fn func(store.Ops) error) error {
	if typ == "DocumentReference" && len(replaced(body)) > 0 {
		return s.atomically(ctx, fn)
	}
	return fn(s.ops(ctx))
}

// txKey carries the store transaction of a transaction Bundle to the
// handlers that process its entries; assignedIDKey the id a Bundle entry's
// create must take (its urn:uuid was already rewritten to it).
type (
	txKey         struct{}
	assignedIDKey struct{}
)

// ops is where a handler reads and writes: the Bundle's transaction, or the
// store; writes follow the content rules of binary.go.
func (s *Server) ops(ctx context.Context) store.Ops {
	if tx, ok := ctx.Value(txKey{}).(store.Ops); ok {
		return s.withContent(tx, false)
	}
	return s.withContent(s.store, true)
}

// assignedID is the id of a new resource: fixed in advance for a Bundle
// entry, else a new random one.
func (s *Server) assignedID(ctx context.Context) string {
	if id, ok := ctx.Value(assignedIDKey{}).(string); ok && id != "" {
		return id
	}
	return newID()
}

func multipleMatches(what string, n int) error {
	return fhir.NewError(http.StatusPreconditionFailed, "multiple-matches", "", strconv.Itoa(n)+" resources match "+what+"; the criteria must select at most one")
}

func (s *Server) delete(c *gin.Context) {
	if !s.allow(c, c.Param("type"), auth.OpDelete, "delete") {
		return
	}
	if err := s.mayDelete(c, c.Param("type"), c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	ifMatch, err := parseIfMatch(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	r, out, err := s.ops(c).Delete(c, c.Param("type"), c.Param("id"), ifMatch)
	if err != nil {
		s.fail(c, err)
		return
	}
	if out == store.Deleted {
		c.Header("ETag", r.ETag())
	}
	if preferReturn(c) == "OperationOutcome" {
		msg := "deleted " + c.Param("type") + "/" + c.Param("id")
		if out == store.NoOp {
			msg = c.Param("type") + "/" + c.Param("id") + " did not exist or was already deleted"
		}
		s.writeOutcome(c, http.StatusOK, fhir.Issue{Severity: "information", Code: "informational", Diagnostics: msg})
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) read(c *gin.Context) {
	if !s.allow(c, c.Param("type"), auth.OpRead, "read") {
		return
	}
	if err := s.auditVisible(c, c.Param("type")); err != nil {
		s.fail(c, err)
		return
	}
	r, err := s.ops(c).Read(c, c.Param("type"), c.Param("id"))
	if err != nil {
		s.failRead(c, r, err)
		return
	}
	if ok, rule, err := s.mayRead(c, r); err != nil || !ok {
		s.refuseOrFail(c, rule, err)
		return
	}
	if inm := c.GetHeader("If-None-Match"); inm != "" && etagMatches(inm, r.ETag()) {
		s.versionHeaders(c, r)
		c.Status(http.StatusNotModified)
		return
	}
	s.answerRead(c, r)
}

func (s *Server) vread(c *gin.Context) {
	if !s.allow(c, c.Param("type"), auth.OpRead, "vread") {
		return
	}
	v, err := strconv.ParseInt(c.Param("vid"), 10, 64)
	if err != nil || v < 1 {
		s.fail(c, fhir.Invalid("", "version id must be a positive integer"))
		return
	}
	r, err := s.ops(c).VRead(c, c.Param("type"), c.Param("id"), v)
	if err != nil {
		s.failRead(c, r, err)
		return
	}
	if ok, rule, err := s.mayRead(c, r); err != nil || !ok {
		s.refuseOrFail(c, rule, err)
		return
	}
	// A label put on later (a mask) covers the older versions too: their
	// content is the same document.
	if cur, err := s.ops(c).Read(c, r.Type, r.ID); err == nil && cur.Version != r.Version {
		if ok, rule, err := s.mayRead(c, cur); err != nil || !ok {
			s.refuseOrFail(c, rule, err)
			return
		}
	}
	s.answerRead(c, r)
}

// failRead answers a failed read; a deleted resource keeps its version
// headers so that the client knows which version is the deletion.
func (s *Server) failRead(c *gin.Context, r *store.Resource, err error) {
	if errors.Is(err, store.ErrDeleted) && r != nil {
		s.versionHeaders(c, r)
	}
	s.fail(c, err)
}

func (s *Server) answerRead(c *gin.Context, r *store.Resource) {
	if r.Type == "Binary" {
		s.answerBinary(c, r)
		return
	}
	s.versionHeaders(c, r)
	s.writeJSON(c, http.StatusOK, r.Body)
}

func (s *Server) versionHeaders(c *gin.Context, r *store.Resource) {
	c.Header("ETag", r.ETag())
	c.Header("Last-Modified", r.LastUpdated.UTC().Format(http.TimeFormat))
	if validatedInBundle(c.Request.Context()) {
		c.Header(entryLastUpdatedHeader, r.LastUpdated.UTC().Format(fhir.InstantFormat))
	}
}

// answerWrite answers a create or update per the Prefer header.
func (s *Server) answerWrite(c *gin.Context, status int, r *store.Resource) {
	if a := accessOf(c); a != nil && !s.auth.Unrestricted {
		// For the audit only: without it, no need to read the patients again.
		var patients []string
		if w := a.written; w != nil && w.typ == r.Type && w.id == r.ID && w.version == r.Version {
			patients, _ = patientsIn(r, w.ix)
		} else {
			patients, _ = patientsOf(r)
		}
		a.touch(patients, r.Type+"/"+r.ID)
	}
	s.versionHeaders(c, r)
	if status == http.StatusCreated {
		c.Header("Location", s.base(c)+"/"+r.Type+"/"+r.ID+"/_history/"+itoa(r.Version))
	}
	switch preferReturn(c) {
	case "minimal":
		c.Status(status)
	case "representation", "":
		if r.Body == nil { // a conditional create's match the caller may not read
			c.Status(status)
			return
		}
		s.writeJSON(c, status, r.Body)
	case "OperationOutcome":
		if validatedInBundle(c) {
			c.Header(entryOutcomeHeader, "1")
		}
		s.writeOutcome(c, status, fhir.Issue{Severity: "information", Code: "informational", Diagnostics: r.Type + "/" + r.ID + " is at version " + itoa(r.Version)})
	default:
		s.writeJSON(c, status, r.Body)
	}
}

// validate serves $validate: the same checks as a write, nothing stored. As
// FHIR R4 says, the answer is 200 with an OperationOutcome that lists the
// problems (none: "All OK").
func (s *Server) validate(c *gin.Context) {
	body, err := s.readBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if res, perr := fhir.ParseResource(body); perr == nil && res.Type == "Parameters" {
		if body, err = fhir.ParameterResource(res, "resource"); err != nil {
			s.fail(c, err)
			return
		}
	}
	res, err := fhir.ParseResource(body)
	if err == nil && res.Type != c.Param("type") {
		err = fhir.Invalid("resourceType", "resourceType "+strconv.Quote(res.Type)+" does not match the URL's type "+strconv.Quote(c.Param("type")))
	}
	if err == nil {
		err = s.validator.Validate(body)
	}
	if err == nil {
		s.writeOutcome(c, http.StatusOK)
		return
	}
	if fe, ok := fhir.AsError(err); ok {
		s.writeOutcome(c, http.StatusOK, fe.Issues...)
		return
	}
	s.fail(c, err)
}

// parseIfMatch reads If-Match: W/"n" (or "n"); 0 when absent.
func parseIfMatch(c *gin.Context) (int64, error) {
	h := strings.TrimSpace(c.GetHeader("If-Match"))
	if h == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(h, "W/"), `"`), 10, 64)
	if err != nil || v < 1 {
		return 0, fhir.Invalid("", `If-Match must be a version ETag such as W/"1"`)
	}
	return v, nil
}

func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

// matches resolves the criteria of a conditional create or update with a
// search (strict: an unknown parameter is refused rather than ignored, as
// ignoring it would widen the match). Two ids are enough to tell one match
// from several. On SQLite the caller's transaction holds the write lock, so
// no other write can land between this search and the caller's write.
func (s *Server) matches(ctx context.Context, typ, rawQuery, header, base string) ([]string, error) {
	where := "the search criteria"
	if header != "" {
		where = header
	}
	q, err := url.ParseQuery(strings.TrimPrefix(rawQuery, "?"))
	if err != nil || len(q) == 0 {
		return nil, fhir.Invalid("", where+" must be a search query such as identifier=system|value")
	}
	for k := range q {
		if resultParams[k] {
			q.Del(k)
		}
	}
	searcher, ok := s.searcher()
	if !ok {
		return nil, fhir.NewError(http.StatusNotImplemented, "not-supported", "", "this store cannot search")
	}
	sr, err := parseSearch(typ, q, base, true)
	if err != nil {
		if fe, ok := fhir.AsError(err); ok {
			for i := range fe.Issues {
				fe.Issues[i].Diagnostics = where + ": " + fe.Issues[i].Diagnostics
			}
		}
		return nil, err
	}
	sr.Query.Count, sr.Query.Total = 2, false
	page, err := searcher.Search(ctx, sr.Query)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(page.Resources))
	for i, r := range page.Resources {
		ids[i] = r.ID
	}
	return ids, nil
}

// newID makes a server-assigned logical id (ids.New: a UUID version 7).
func newID() string { return ids.New() }
