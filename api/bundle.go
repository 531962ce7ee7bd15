package api

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// DefaultMaxBundleEntries caps the entries of one batch or transaction.
const DefaultMaxBundleEntries = 10000

// bundleEntry is one entry of a batch or transaction as sent.
type bundleEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Request  *bundleRequest  `json:"request"`
}

type bundleRequest struct {
	Method      string `json:"method"`
	URL         string `json:"url"`
	IfNoneMatch string `json:"ifNoneMatch"`
	IfMatch     string `json:"ifMatch"`
	IfNoneExist string `json:"ifNoneExist"`
}

// entryResult is what processing one entry answered.
type entryResult struct {
	status int
	header http.Header
	body   []byte
	// outcomeAsked: the body is the OperationOutcome Prefer:
	// return=OperationOutcome asked for, which goes to response.outcome.
	outcomeAsked bool
	lastUpdated  string // the version's lastUpdated, a FHIR instant; "" if none
}

// methodOrder is the order FHIR processes a transaction's entries in.
var methodOrder = map[string]int{"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}

// conditionalRef reports whether a reference is conditional, Type?criteria
// (the pattern ^[A-Z][A-Za-z]+\?.+, by hand: it runs on every reference of
// an entry that holds a '?').
func conditionalRef(v string) bool {
	i := 0
	for i < len(v) && (v[i] >= 'A' && v[i] <= 'Z' || i > 0 && v[i] >= 'a' && v[i] <= 'z') {
		i++
	}
	return i >= 2 && i+1 < len(v) && v[i] == '?' && v[i+1] != '\n'
}

// bundle serves POST /fhir: a batch (entries succeed or fail one by one) or
// a transaction (all or nothing, in one store transaction). Each entry is
// handled by the same handler as the equivalent single request, so the
// rules are the same; a transaction's handlers share its store transaction
// through the request context.
func (s *Server) bundle(c *gin.Context) {
	body, err := s.readBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	res, err := fhir.ParseResource(body)
	if err != nil {
		s.fail(c, err)
		return
	}
	if res.Type != "Bundle" {
		s.fail(c, fhir.Invalid("resourceType", "POST "+"/fhir takes a Bundle of type batch or transaction, not a "+res.Type))
		return
	}
	b, err := readBundle(res.Fields)
	if err != nil {
		s.fail(c, err)
		return
	}
	if b.Type != "batch" && b.Type != "transaction" {
		s.fail(c, fhir.Invalid("Bundle.type", "Bundle.type must be batch or transaction, not "+strconv.Quote(b.Type)))
		return
	}
	if max := s.maxEntries(); len(b.Entry) > max {
		s.fail(c, fhir.NewError(http.StatusRequestEntityTooLarge, "too-costly", "Bundle.entry["+strconv.Itoa(max)+"]", "the Bundle has "+strconv.Itoa(len(b.Entry))+" entries; at most "+strconv.Itoa(max)+" are accepted (DMP_MAX_BUNDLE_ENTRIES): entry "+strconv.Itoa(max)+" is the first one over"))
		return
	}
	if err := s.validator.Validate(body); err != nil {
		s.fail(c, err)
		return
	}
	for i, e := range b.Entry {
		if err := checkEntry(i, e); err != nil {
			s.fail(c, err)
			return
		}
	}
	var results []entryResult
	if b.Type == "batch" {
		results = s.runBatch(c, b.Entry)
	} else if results, err = s.runTransaction(c, b.Entry); err != nil {
		s.fail(c, err)
		return
	}
	kind := "batch-response"
	if b.Type == "transaction" {
		kind = "transaction-response"
	}
	s.writeJSON(c, http.StatusOK, responseBundle(newID(), kind, results))
}

// parsedBundle is what bundle reads of a Bundle.
type parsedBundle struct {
	Type  string
	Entry []bundleEntry
}

// readBundle reads a Bundle's type and entries from its members, as
// json.Unmarshal into parsedBundle did, without decoding the Bundle again
// (that was a twentieth of an import): the resources stay slices of the
// body ParseResource returned. A Bundle json.Unmarshal refused is refused
// with the element at fault; its keys must be spelled as FHIR does (the
// validation refuses the others anyway).
func readBundle(fields fhir.Object) (parsedBundle, error) {
	var b parsedBundle
	if raw := fields.Get("type"); raw != nil {
		if err := stringMember(raw, "Bundle.type", &b.Type); err != nil {
			return b, err
		}
	}
	raw := fields.Get("entry")
	if raw == nil || string(raw) == "null" {
		return b, nil
	}
	objs, bad, err, ok := fhir.ObjectsOf(raw)
	if !ok {
		return b, fhir.Invalid("Bundle.entry", "malformed Bundle: entry must be a list")
	}
	if err != nil {
		return b, fhir.Invalid("Bundle.entry["+strconv.Itoa(bad)+"]", "malformed Bundle: "+err.Error())
	}
	b.Entry = make([]bundleEntry, len(objs))
	for i, obj := range objs {
		at := "Bundle.entry[" + strconv.Itoa(i) + "]"
		e := &b.Entry[i]
		for _, f := range obj {
			switch f.Key {
			case "fullUrl":
				err = stringMember(f.Value, at+".fullUrl", &e.FullURL)
			case "resource":
				e.Resource = f.Value
			case "request":
				err = requestMember(f.Value, at+".request", e)
			}
			if err != nil {
				return b, err
			}
		}
	}
	return b, nil
}

// stringMember reads a JSON string (or null, which leaves *dst as it is).
func stringMember(raw json.RawMessage, at string, dst *string) error {
	if string(raw) == "null" {
		return nil
	}
	if len(raw) >= 2 && raw[0] == '"' && bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		*dst = string(raw[1 : len(raw)-1])
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fhir.Invalid(at, "malformed Bundle: "+at+" must be a string")
	}
	return nil
}

func requestMember(raw json.RawMessage, at string, e *bundleEntry) error {
	if string(raw) == "null" {
		return nil
	}
	obj, err := fhir.ParseObjectInPlace(raw)
	if err != nil {
		return fhir.Invalid(at, "malformed Bundle: "+at+" must be an object")
	}
	e.Request = &bundleRequest{}
	for _, f := range obj {
		var dst *string
		switch f.Key {
		case "method":
			dst = &e.Request.Method
		case "url":
			dst = &e.Request.URL
		case "ifNoneMatch":
			dst = &e.Request.IfNoneMatch
		case "ifMatch":
			dst = &e.Request.IfMatch
		case "ifNoneExist":
			dst = &e.Request.IfNoneExist
		default:
			continue
		}
		if err := stringMember(f.Value, at+"."+f.Key, dst); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) maxEntries() int {
	if s.cfg.MaxBundleEntries > 0 {
		return s.cfg.MaxBundleEntries
	}
	return DefaultMaxBundleEntries
}

func checkEntry(i int, e bundleEntry) error {
	at := "Bundle.entry[" + strconv.Itoa(i) + "]"
	if e.Request == nil {
		return fhir.Invalid(at+".request", "every entry of a batch or transaction needs a request")
	}
	if _, ok := methodOrder[e.Request.Method]; !ok {
		return fhir.Invalid(at+".request.method", "unsupported method "+strconv.Quote(e.Request.Method))
	}
	if e.Request.URL == "" {
		return fhir.Invalid(at+".request.url", "the request needs a url")
	}
	needsBody := e.Request.Method == "POST" || e.Request.Method == "PUT"
	if needsBody && e.Resource == nil {
		return fhir.Invalid(at+".resource", e.Request.Method+" entries need a resource")
	}
	return nil
}

func (s *Server) runBatch(c *gin.Context, entries []bundleEntry) []entryResult {
	results := make([]entryResult, len(entries))
	indexes := make([]*entryIndex, len(entries))
	a := accessOf(c.Request.Context())
	parallel(len(entries), func(i int) { indexes[i] = s.prepareAhead(a, entries[i], entries[i].Resource, "") })
	for _, i := range processingOrder(entries) {
		results[i] = s.dispatch(withEntryIndex(c.Request.Context(), indexes[i]), c.Request, entries[i], entries[i].Resource, "")
	}
	return results
}

// runTransaction resolves the entries' new ids and conditional references,
// rewrites the references, then runs the writes in one store transaction:
// the first failing entry rolls everything back and becomes the answer.
// Reads (GET) run after the commit.
func (s *Server) runTransaction(c *gin.Context, entries []bundleEntry) ([]entryResult, error) {
	ids, err := s.resolveTransaction(c, s.base(c), entries)
	if err != nil {
		return nil, err
	}
	results := make([]entryResult, len(entries))
	order := processingOrder(entries)
	// References rewritten and index values extracted for every entry at
	// once, on GOMAXPROCS goroutines, before the store's write lock is
	// taken.
	bodies := make([]json.RawMessage, len(entries))
	failed := make([]error, len(entries))
	indexes := make([]*entryIndex, len(entries))
	a := accessOf(c.Request.Context())
	parallel(len(entries), func(i int) {
		e := entries[i]
		bodies[i] = e.Resource
		if e.Resource != nil && ids.mayRewrite(e.Resource) {
			rewritten, _, err := fhir.RewriteReferences(e.Resource, func(v string) (string, bool) {
				if to, ok := ids.byFullURL[v]; ok {
					return to, true
				}
				if to, ok := ids.conditional[v]; ok {
					return to, true
				}
				return "", false
			})
			if err != nil {
				failed[i] = fhir.Invalid("Bundle.entry["+strconv.Itoa(i)+"].resource", err.Error())
				return
			}
			bodies[i] = rewritten
		}
		indexes[i] = s.prepareAhead(a, e, bodies[i], ids.newID[i])
	})
	for _, err := range failed {
		if err != nil {
			return nil, err
		}
	}
	// A Binary given its document as securityContext here gets its index
	// values extracted by its write (its body is no longer the one above).
	if err := linkBinaries(entries, bodies, ids); err != nil {
		return nil, err
	}
	err = s.store.Transaction(c, func(tx store.Ops) error {
		ctx := context.WithValue(c.Request.Context(), txKey{}, tx)
		for _, i := range order {
			if entries[i].Request.Method == "GET" || entries[i].Request.Method == "HEAD" {
				continue
			}
			r := s.dispatch(withEntryIndex(ctx, indexes[i]), c.Request, entries[i], bodies[i], ids.newID[i])
			if r.status >= 400 {
				return entryFailure(i, r)
			}
			results[i] = r
		}
		return nil
	})
	if errors.Is(err, store.ErrNoTransactions) {
		return nil, fhir.NewError(http.StatusUnprocessableEntity, "not-supported", "Bundle.type",
			"this server's MongoDB is not a replica set and cannot apply a transaction all or nothing; send a batch, or run MongoDB as a replica set")
	}
	if err != nil {
		return nil, err
	}
	for _, i := range order {
		if m := entries[i].Request.Method; m == "GET" || m == "HEAD" {
			results[i] = s.dispatch(c.Request.Context(), c.Request, entries[i], nil, "")
		}
	}
	return results, nil
}

// entryFailure turns a failed entry's answer into the transaction's error,
// its locations prefixed with the entry.
func entryFailure(i int, r entryResult) error {
	at := "Bundle.entry[" + strconv.Itoa(i) + "]"
	fe := &fhir.Error{Status: r.status}
	var oo struct {
		Issue []struct {
			Severity    string   `json:"severity"`
			Code        string   `json:"code"`
			Diagnostics string   `json:"diagnostics"`
			Expression  []string `json:"expression"`
		} `json:"issue"`
	}
	json.Unmarshal(r.body, &oo)
	for _, is := range oo.Issue {
		expr := at
		if len(is.Expression) > 0 {
			// The entry's handler names elements from its resource type
			// (DocumentReference.content[0]): inside the Bundle the type is
			// the entry's resource.
			e := is.Expression[0]
			if typ, rest, ok := strings.Cut(e, "."); ok {
				if _, known := fhir.LookupType(typ); known {
					e = rest
				}
			}
			expr = at + ".resource." + e
		}
		fe.Issues = append(fe.Issues, fhir.Issue{Severity: is.Severity, Code: is.Code, Expression: expr, Diagnostics: "entry " + strconv.Itoa(i) + ": " + is.Diagnostics})
	}
	if len(fe.Issues) == 0 {
		fe.Issues = []fhir.Issue{{Severity: "error", Code: "processing", Expression: at, Diagnostics: "entry " + strconv.Itoa(i) + " failed with status " + strconv.Itoa(r.status)}}
	}
	return fe
}

// transactionIDs is what a transaction's entries resolve to before any write.
type transactionIDs struct {
	byFullURL   map[string]string // fullUrl (urn:uuid:..., or absolute) -> Type/id
	conditional map[string]string // "Type?criteria" -> Type/id
	newID       []string          // per entry: the id a POST creates
}

// mayRewrite says whether body may hold a reference the transaction
// rewrites: the search for one parses the whole resource, which most
// resources of an import (plain Type/id references) do not need.
func (ids *transactionIDs) mayRewrite(body []byte) bool {
	if len(ids.conditional) > 0 && bytes.IndexByte(body, '?') >= 0 {
		return true
	}
	if len(ids.byFullURL) > 64 { // too many to look for one by one: their schemes
		return bytes.Contains(body, []byte("urn:")) || bytes.Contains(body, []byte("http"))
	}
	for u := range ids.byFullURL {
		if bytes.Contains(body, []byte(u)) {
			return true
		}
	}
	return false
}

func (s *Server) resolveTransaction(ctx context.Context, base string, entries []bundleEntry) (*transactionIDs, error) {
	ids := &transactionIDs{byFullURL: map[string]string{}, conditional: map[string]string{}, newID: make([]string, len(entries))}
	for i, e := range entries {
		at := "Bundle.entry[" + strconv.Itoa(i) + "]"
		typ, id := splitEntryURL(e.Request.URL)
		switch e.Request.Method {
		case "POST":
			if _, ok := fhir.LookupType(typ); !ok || id != "" {
				return nil, fhir.Invalid(at+".request.url", "a POST entry's url must be a supported resource type, e.g. Observation")
			}
			target := newID()
			if e.Request.IfNoneExist != "" {
				matched, err := s.matches(ctx, typ, e.Request.IfNoneExist, at+".request.ifNoneExist", base)
				if err != nil {
					return nil, err
				}
				if len(matched) > 1 {
					return nil, multipleMatches(at+".request.ifNoneExist", len(matched))
				}
				if len(matched) == 1 {
					target = matched[0]
				}
			}
			ids.newID[i] = target
			if e.FullURL != "" {
				ids.byFullURL[e.FullURL] = typ + "/" + target
			}
		case "PUT":
			if id != "" && e.FullURL != "" {
				ids.byFullURL[e.FullURL] = typ + "/" + id
			}
		}
	}
	for i, e := range entries {
		if e.Resource == nil {
			continue
		}
		if bytes.IndexByte(e.Resource, '?') < 0 {
			continue // no conditional reference in it (parsing it is a tenth of an import)
		}
		at := "Bundle.entry[" + strconv.Itoa(i) + "].resource"
		var failure error
		fhir.RewriteReferences(e.Resource, func(v string) (string, bool) {
			if failure != nil || !conditionalRef(v) {
				return "", false
			}
			if _, done := ids.conditional[v]; done {
				return "", false
			}
			typ, criteria, _ := strings.Cut(v, "?")
			if _, ok := fhir.LookupType(typ); !ok {
				failure = fhir.Invalid(at, "conditional reference "+strconv.Quote(v)+" names an unsupported type")
				return "", false
			}
			matched, err := s.matches(ctx, typ, criteria, "conditional reference "+v, base)
			switch {
			case err != nil:
				failure = err
			case len(matched) == 0:
				failure = fhir.NewError(http.StatusPreconditionFailed, "not-found", at, "conditional reference "+strconv.Quote(v)+" matches no resource")
			case len(matched) > 1:
				failure = fhir.NewError(http.StatusPreconditionFailed, "multiple-matches", at, "conditional reference "+strconv.Quote(v)+" matches several resources")
			default:
				ids.conditional[v] = typ + "/" + matched[0]
			}
			return "", false
		})
		if failure != nil {
			return nil, failure
		}
	}
	return ids, nil
}

// splitEntryURL reads "Type", "Type/id" or "Type?query" (relative URLs).
func splitEntryURL(u string) (typ, id string) {
	path, _, _ := strings.Cut(u, "?")
	path = strings.TrimPrefix(path, "/")
	typ, id, _ = strings.Cut(path, "/")
	if i := strings.IndexByte(id, '/'); i >= 0 {
		id = id[:i]
	}
	return typ, id
}

// processingOrder is the entries' indexes in the order FHIR processes them:
// DELETE, POST, PUT/PATCH, GET; stable within a method.
func processingOrder(entries []bundleEntry) []int {
	order := make([]int, len(entries))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		return methodOrder[entries[order[a]].Request.Method] < methodOrder[entries[order[b]].Request.Method]
	})
	return order
}

// dispatch runs one entry through the router as an internal request, so it
// meets exactly the checks of the equivalent single request.
func (s *Server) dispatch(ctx context.Context, parent *http.Request, e bundleEntry, body []byte, assigned string) entryResult {
	target := "/fhir/" + strings.TrimPrefix(e.Request.URL, "/")
	if u, err := url.Parse(e.Request.URL); err == nil && u.IsAbs() {
		target = u.RequestURI()
		if !strings.HasPrefix(target, "/fhir/") {
			// An entry is a FHIR interaction: not the server's metrics or
			// health routes, whatever the absolute URL names.
			return entryResult{status: http.StatusBadRequest, body: fhir.OperationOutcome(fhir.Issue{Severity: "error", Code: "not-supported",
				Diagnostics: "the entry's url " + strconv.Quote(e.Request.URL) + " is not under this server's FHIR base /fhir"})}
		}
	}
	if assigned != "" {
		ctx = context.WithValue(ctx, assignedIDKey{}, assigned)
	}
	ctx = context.WithValue(ctx, validatedKey{}, true)
	req, err := http.NewRequestWithContext(ctx, e.Request.Method, target, bytes.NewReader(body))
	if err != nil {
		return entryResult{status: http.StatusBadRequest, body: fhir.OperationOutcome(fhir.Issue{Code: "invalid", Diagnostics: "malformed request url " + strconv.Quote(e.Request.URL)})}
	}
	req.Host, req.TLS = parent.Host, parent.TLS // links and Location use the client's base
	if body != nil {
		req.Header.Set("Content-Type", fhirJSON)
	}
	req.Header.Set("Accept", fhirJSON) // an entry's answer is a resource, a Binary's too
	// Prefer's return= and handling= apply to each entry (FHIR
	// http.html#prefer); respond-async does not (an entry is answered in
	// the Bundle).
	if prefer := entryPrefer(parent.Header); prefer != "" {
		req.Header.Set("Prefer", prefer)
	}
	for h, v := range map[string]string{"If-Match": e.Request.IfMatch, "If-None-Match": e.Request.IfNoneMatch, "If-None-Exist": e.Request.IfNoneExist} {
		if v != "" {
			req.Header.Set(h, v)
		}
	}
	rec := httptest.NewRecorder()
	s.engine.ServeHTTP(rec, req)
	outcomeAsked := rec.Header().Get(entryOutcomeHeader) != ""
	lastUpdated := rec.Header().Get(entryLastUpdatedHeader)
	rec.Header().Del(entryOutcomeHeader)
	rec.Header().Del(entryLastUpdatedHeader)
	return entryResult{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes(), outcomeAsked: outcomeAsked, lastUpdated: lastUpdated}
}

// entryLastUpdatedHeader carries, on an entry's answer, the version's
// lastUpdated as a FHIR instant (versionHeaders), for the entry's
// response.lastModified: Last-Modified is an HTTP date, to the second, and
// lastModified an instant. It never leaves the server.
const entryLastUpdatedHeader = "X-Dmp-Entry-Last-Updated"

// entryOutcomeHeader marks, on an entry's answer, the OperationOutcome a
// write answered for Prefer: return=OperationOutcome (answerWrite): it goes
// to response.outcome, where an operation's OperationOutcome ($validate)
// stays the entry's resource. It never leaves the server.
const entryOutcomeHeader = "X-Dmp-Entry-Outcome"

// entryPrefer is the part of a Bundle's Prefer headers its entries take.
func entryPrefer(h http.Header) string {
	var kept []string
	for _, p := range preferences(h) {
		if p.key == "return" || p.key == "handling" {
			kept = append(kept, p.raw)
		}
	}
	return strings.Join(kept, ", ")
}

// entryIndex is the index values of an entry's resource as the Bundle
// sends it (references rewritten), extracted before the entries are
// processed: on GOMAXPROCS goroutines, outside the store's write lock. The
// entry's handler uses them for its checks (the patients the resource
// belongs to), hands them to the store with the resource (store.WithIndex:
// the author stamp changes no index value) and to the audit.
//
// A create (POST, or a PUT at an id that turns out to be new, as an import
// sends) is also stamped ahead: its author (the caller, as stampAuthorOver
// writes it for a new resource) and its id, versionId and meta
// (fhir.PrepareStamp), all but the time of the write, which the store takes
// in its lock. Both were JSON passes over every resource inside the lock,
// which bounds a Bundle's ingest once validation is cheap. A PUT over an
// existing resource stamps in the lock as before (its author and version
// come from the stored one): what was prepared for it is thrown away, work
// done beside the lock.
type entryIndex struct {
	body     []byte
	ix       fhir.Index
	res      *fhir.Resource   // body parsed; nil if it does not parse (the handler says why)
	authored []byte           // body with its author as a new resource; nil if not prepared
	stamp    *fhir.StampAhead // authored stamped as version 1 of its id
}

type entryIndexKey struct{}

// prepareAhead extracts the index values of the resource an entry writes
// and, for a create at id newID, stamps it ahead.
func (s *Server) prepareAhead(a *access, e bundleEntry, body []byte, newID string) *entryIndex {
	if e.Request == nil || (e.Request.Method != "POST" && e.Request.Method != "PUT") || body == nil {
		return nil
	}
	ei := &entryIndex{body: body, ix: fhir.ExtractIndex(body)}
	if res, err := fhir.ParseResource(body); err == nil {
		ei.res = res
	}
	id := newID
	if e.Request.Method == "PUT" {
		// The id of "Type/id"; a conditional update ("Type?criteria")
		// finds its id in the store.
		if _, target := splitEntryURL(e.Request.URL); !strings.ContainsAny(e.Request.URL, "?#") && fhir.ValidID(target) {
			id = target
		}
	}
	if id != "" {
		if authored, err := s.stampAuthorOver(a, nil, body); err == nil {
			if st, err := fhir.PrepareStamp(authored, id, 1); err == nil {
				ei.authored, ei.stamp = authored, st
			}
		}
	}
	return ei
}

// parallel runs fn(0) ... fn(n-1) on GOMAXPROCS goroutines.
func parallel(n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

func withEntryIndex(ctx context.Context, ei *entryIndex) context.Context {
	if ei == nil {
		return ctx
	}
	return context.WithValue(ctx, entryIndexKey{}, ei)
}

// indexOf returns the index values of body: those its Bundle extracted
// ahead when body is the entry's resource, else extracted now.
func indexOf(ctx context.Context, body []byte) fhir.Index {
	if ei := aheadEntry(ctx, body); ei != nil {
		return ei.ix
	}
	return fhir.ExtractIndex(body)
}

// aheadEntry returns what the Bundle prepared ahead for its entry (outside
// the store's write lock), when body is that entry's resource; else nil.
func aheadEntry(ctx context.Context, body []byte) *entryIndex {
	if ei, ok := ctx.Value(entryIndexKey{}).(*entryIndex); ok && bytes.Equal(ei.body, body) {
		return ei
	}
	return nil
}

// validatedKey marks the requests of a Bundle's entries: their resources
// were validated with the Bundle (bundle's Validate checks every nested
// resource against its own type's schema and rules, urn:uuid and
// conditional references typed through the Bundle), so the entry's handler
// does not validate them again. What the transaction changes in them
// since (references rewritten to the id of the same type, a Binary's
// securityContext) cannot make them invalid.
type validatedKey struct{}

func validatedInBundle(ctx context.Context) bool {
	v, _ := ctx.Value(validatedKey{}).(bool)
	return v
}

// responseBundle writes the batch-response or transaction-response Bundle
// of results, as the Bundle model would marshal it (fields in the model's
// order) but without a pass of reflection and a reparse per entry: a
// 10,000-entry import spent a twentieth of its CPU there. Entry bodies are
// compacted, which also checks they are JSON.
func responseBundle(id, kind string, results []entryResult) []byte {
	buf := bytes.NewBuffer(make([]byte, 0, 64+160*len(results)))
	buf.WriteString(`{"resourceType":"Bundle","id":`)
	buf.Write(fhir.AppendString(nil, id))
	buf.WriteString(`,"type":`)
	buf.Write(fhir.AppendString(nil, kind))
	for i, r := range results {
		if i == 0 {
			buf.WriteString(`,"entry":[`)
		} else {
			buf.WriteByte(',')
		}
		writeResponseEntry(buf, r)
	}
	if len(results) > 0 {
		buf.WriteByte(']')
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

// notJSONEntry replaces an entry whose answer is not JSON.
func notJSONEntry(r entryResult) entryResult {
	return entryResult{status: http.StatusNotAcceptable, body: fhir.OperationOutcome(fhir.Issue{Severity: "error", Code: "not-supported",
		Diagnostics: "the entry's answer (" + r.header.Get("Content-Type") + ", status " + strconv.Itoa(r.status) + ") is not JSON and cannot be part of a Bundle"})}
}

// writeResponseEntry writes one entry of a response Bundle: the resource
// the request answered, if any, and its response (status, location, etag,
// lastModified, outcome: the order of Bundle.entry.response).
func writeResponseEntry(buf *bytes.Buffer, r entryResult) {
	start := buf.Len()
	buf.WriteByte('{')
	var outcome []byte
	if len(r.body) > 0 {
		if r.status >= 400 || r.outcomeAsked {
			// A failure's outcome, or the one Prefer: return=OperationOutcome
			// asked for: it goes to response.outcome, not in place of the
			// resource.
			outcome = r.body
		} else {
			buf.WriteString(`"resource":`)
			if err := json.Compact(buf, r.body); err != nil {
				// An answer that is not JSON (an NDJSON file, say) cannot sit
				// in a Bundle: the entry says so, the others stand.
				buf.Truncate(start)
				writeResponseEntry(buf, notJSONEntry(r))
				return
			}
			buf.WriteByte(',')
		}
	}
	buf.WriteString(`"response":{"status":`)
	buf.Write(fhir.AppendString(nil, strconv.Itoa(r.status)+" "+http.StatusText(r.status)))
	for _, f := range [...]struct{ key, header string }{{"location", "Location"}, {"etag", "ETag"}} {
		if v := r.header.Get(f.header); v != "" {
			buf.WriteString(`,"` + f.key + `":`)
			buf.Write(fhir.AppendString(nil, v))
		}
	}
	if r.lastUpdated != "" {
		buf.WriteString(`,"lastModified":`)
		buf.Write(fhir.AppendString(nil, r.lastUpdated))
	}
	if wo := r.header.Get("X-Write-Outcome"); wo != "" && outcome == nil {
		// The entry's outcome says whether an update made a version, as the
		// header does for a single request.
		outcome = fhir.OperationOutcome(fhir.Issue{Severity: "information", Code: "informational", Diagnostics: wo})
	}
	if outcome != nil {
		buf.WriteString(`,"outcome":`)
		if err := json.Compact(buf, outcome); err != nil {
			buf.Truncate(start)
			writeResponseEntry(buf, notJSONEntry(r))
			return
		}
	}
	buf.WriteString("}}")
}

// linkBinaries ties each Binary of a transaction that a DocumentReference of
// the same transaction points at (content.attachment.url, once rewritten)
// to that DocumentReference: a Binary that names no securityContext gets the
// DocumentReference as its securityContext, so that it is read under the
// document's consent rules (PDSm provide document bundles send the Binary
// without one). An attachment's hash and size, when given, must be those of
// the Binary's bytes.
func linkBinaries(entries []bundleEntry, bodies []json.RawMessage, ids *transactionIDs) error {
	target := func(i int) (typ, id string) {
		typ, id = splitEntryURL(entries[i].Request.URL)
		switch entries[i].Request.Method {
		case "POST":
			return typ, ids.newID[i]
		case "PUT":
			return typ, id
		}
		return "", ""
	}
	binaries := map[string]int{} // Binary/id -> entry
	for i := range entries {
		if typ, id := target(i); typ == "Binary" && id != "" && bodies[i] != nil {
			binaries["Binary/"+id] = i
		}
	}
	if len(binaries) == 0 {
		return nil
	}
	for i := range entries {
		typ, id := target(i)
		if typ != "DocumentReference" || id == "" || bodies[i] == nil {
			continue
		}
		var doc struct {
			Content []struct {
				Attachment struct {
					URL  string          `json:"url"`
					Hash json.RawMessage `json:"hash"`
					Size json.RawMessage `json:"size"`
				} `json:"attachment"`
			} `json:"content"`
		}
		if json.Unmarshal(bodies[i], &doc) != nil {
			continue // the validator answers
		}
		for j, content := range doc.Content {
			b, ok := binaries[content.Attachment.URL]
			if !ok {
				continue
			}
			bin, err := fhir.ParseObject(bodies[b])
			if err != nil {
				continue
			}
			if raw := bin.Get("data"); raw != nil && (content.Attachment.Hash != nil || content.Attachment.Size != nil) {
				at := "Bundle.entry[" + strconv.Itoa(i) + "].resource.content[" + strconv.Itoa(j) + "].attachment"
				data, err := decodeData(raw, "Bundle.entry["+strconv.Itoa(b)+"].resource.data")
				if err != nil {
					return err
				}
				sum := sha1.Sum(data)
				att := fhir.Object{{Key: "hash", Value: content.Attachment.Hash}, {Key: "size", Value: content.Attachment.Size}}
				if content.Attachment.Hash == nil {
					att = att.Without("hash")
				}
				if content.Attachment.Size == nil {
					att = att.Without("size")
				}
				if err := checkAttachment(att, at, base64.StdEncoding.EncodeToString(sum[:]), int64(len(data))); err != nil {
					if fe, ok := fhir.AsError(err); ok {
						for k := range fe.Issues {
							fe.Issues[k].Diagnostics = "entry " + strconv.Itoa(i) + ": " + fe.Issues[k].Diagnostics + " (the Binary of entry " + strconv.Itoa(b) + ")"
						}
					}
					return err
				}
			}
			if bin.Get("securityContext") == nil {
				ref, _ := json.Marshal(map[string]string{"reference": "DocumentReference/" + id})
				if bodies[b], err = bin.Set("securityContext", ref).MarshalJSON(); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
