package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/store"
)

const (
	// cursorLifetime bounds how long a next/prev link stays valid.
	cursorLifetime = time.Hour
	// maxPrevPages is how many pages back prev links can go.
	maxPrevPages = 16
	// maxIncluded caps the resources _include and _revinclude add to one page.
	maxIncluded = 1000
)

// search serves GET /fhir/{type}.
func (s *Server) search(c *gin.Context) {
	if c.Param("type") == "Patient" && s.dmpLookup(c, c.Request.URL.Query()) {
		return
	}
	s.runSearch(c, c.Param("type"), c.Request.URL.Query(), nil)
}

// searchPost serves POST /fhir/{type}/_search: parameters in the form body
// and the URL alike.
func (s *Server) searchPost(c *gin.Context) {
	ct := c.GetHeader("Content-Type")
	if ct != "" && !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		s.fail(c, fhir.NewError(http.StatusUnsupportedMediaType, "not-supported", "", "POST _search takes an application/x-www-form-urlencoded body"))
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes)
	if err := c.Request.ParseForm(); err != nil {
		s.fail(c, fhir.Invalid("", "unreadable form body: "+err.Error()))
		return
	}
	if c.Param("type") == "Patient" && s.dmpLookup(c, c.Request.Form) {
		return
	}
	s.runSearch(c, c.Param("type"), c.Request.Form, nil)
}

// compartmentSearch serves GET /fhir/Patient/{id}/{type}.
func (s *Server) compartmentSearch(c *gin.Context) {
	if c.Param("type") != "Patient" {
		s.fail(c, fhir.NotFound("compartment searches are served for Patient only"))
		return
	}
	target := c.Param("compartmentType")
	if target == "$access-decision" {
		s.accessDecision(c)
		return
	}
	if target == "$everything" || target == "$summary" {
		s.patientRecordOperation(c, target) // everything.go, summary.go
		return
	}
	if _, ok := fhir.LookupType(target); !ok {
		s.fail(c, fhir.NotFound("resource type "+strconv.Quote(target)+" is not supported by this server"))
		return
	}
	clause, ok := compartmentClause(target, c.Param("id"))
	if !ok {
		s.fail(c, fhir.NotFound(target+" is not in the Patient compartment"))
		return
	}
	s.runSearch(c, target, c.Request.URL.Query(), &clause)
}

func strictHandling(c *gin.Context) bool {
	for _, p := range preferences(c.Request.Header) {
		if p.key == "handling" && strings.EqualFold(p.value, "strict") {
			return true
		}
	}
	return false
}

func (s *Server) searcher() (store.Searcher, bool) { return s.store, s.store != nil }

func (s *Server) runSearch(c *gin.Context, typ string, params url.Values, scope *store.Clause) {
	searcher, ok := s.searcher()
	if !ok {
		s.fail(c, fhir.NewError(http.StatusNotImplemented, "not-supported", "", "this store cannot search"))
		return
	}
	base := s.base(c)
	sr, err := parseSearch(typ, params, base, strictHandling(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	if scope != nil {
		sr.Query.Where = append([]store.Clause{*scope}, sr.Query.Where...)
	}
	if (typ == "DocumentReference" || typ == "List") && !mentions(params, "archived") {
		// Archived documents leave the default searches (PDSm's
		// isArchived); archived=true or archived=false asks for them.
		sr.Query.Where = append(sr.Query.Where, store.Clause{Any: []store.Condition{{Param: "archived", Kind: store.KindToken, Code: "true", AnySystem: true, Not: true}}})
	}
	// The path and the parameters but the cursor identify the search a
	// cursor belongs to.
	selfParams := cloneValues(params)
	selfParams.Del("_cursor")
	fingerprint := c.Request.URL.Path + "?" + selfParams.Encode()
	var cur pageCursor
	if sr.Cursor != "" {
		if cur, err = s.openCursor(sr.Cursor, fingerprint); err != nil {
			s.fail(c, err)
			return
		}
		sr.Query.After = cur.After
	}
	if !s.allow(c, typ, auth.OpSearch, "search-type") {
		return
	}
	if err := s.auditVisible(c, typ); err != nil {
		s.fail(c, err)
		return
	}
	if err := s.resolvePatientChains(c, typ, sr.Query.Where); err != nil {
		s.fail(c, err)
		return
	}
	named := namedPatients(typ, sr.Query.Where)
	page, rule, err := s.scopedSearch(c, sr.Query, named)
	if err != nil {
		s.fail(c, err)
		return
	}
	if page == nil {
		if len(named) > 0 {
			s.refuseRead(c, rule) // the patients the search names refuse this caller
			return
		}
		page = &store.Page{Total: 0} // nothing this caller may see
	}
	if a := accessOf(c); a != nil {
		for _, r := range page.Resources {
			a.resources = append(a.resources, r.Type+"/"+r.ID)
		}
	}

	bundle := models.Bundle{Type: models.BundleTypeSearchset}
	bid := newID()
	ts := time.Now().UTC().Format(fhir.InstantFormat)
	bundle.Id, bundle.Timestamp = &bid, &ts
	switch {
	case page.Total >= 0 && sr.TotalMode != "none":
		total := page.Total
		bundle.Total = &total
	case page.Next == "" && cur.After == "" && sr.TotalMode != "none":
		total := len(page.Resources) // the whole result is on this first page
		bundle.Total = &total
	}
	selfURL := base + strings.TrimPrefix(c.Request.URL.Path, "/fhir")
	link := func(rel string, pc *pageCursor) models.BundleLink {
		q := cloneValues(selfParams)
		if pc != nil {
			q.Set("_cursor", s.sealCursor(*pc, fingerprint))
		}
		return models.BundleLink{Relation: rel, Url: selfURL + queryString(q)}
	}
	if sr.Cursor != "" {
		bundle.Link = append(bundle.Link, link("self", &cur))
	} else {
		bundle.Link = append(bundle.Link, link("self", nil))
	}
	if page.Next != "" {
		next := pageCursor{After: page.Next, Prev: append(append([]string(nil), cur.Prev...), cur.After), Deep: cur.Deep}
		if next.Deep || len(next.Prev) > maxPrevPages {
			next.Deep, next.Prev = true, nil // too deep to go back: no prev links from here on
		}
		bundle.Link = append(bundle.Link, link("next", &next))
	}
	if n := len(cur.Prev); sr.Cursor != "" && !cur.Deep && n > 0 {
		if n == 1 && cur.Prev[0] == "" {
			bundle.Link = append(bundle.Link, link("prev", nil)) // the first page
		} else {
			bundle.Link = append(bundle.Link, link("prev", &pageCursor{After: cur.Prev[n-1], Prev: cur.Prev[:n-1]}))
		}
	}

	for _, r := range page.Resources {
		entry, err := s.searchEntry(base, r, "match", sr)
		if err != nil {
			s.fail(c, err)
			return
		}
		bundle.Entry = append(bundle.Entry, entry)
	}
	included, warning, err := s.includes(c, searcher, sr, page.Resources)
	if err != nil {
		s.fail(c, err)
		return
	}
	for _, r := range included {
		entry, err := s.searchEntry(base, r, "include", sr)
		if err != nil {
			s.fail(c, err)
			return
		}
		bundle.Entry = append(bundle.Entry, entry)
	}
	var issues []fhir.Issue
	for _, p := range sr.Ignored {
		issues = append(issues, fhir.Issue{Severity: "warning", Code: "not-supported", Expression: p, Diagnostics: "unknown or unsupported search parameter " + strconv.Quote(p) + " was ignored"})
	}
	if warning != "" {
		issues = append(issues, fhir.Issue{Severity: "warning", Code: "too-costly", Diagnostics: warning})
	}
	if len(issues) > 0 {
		mode := models.SearchEntryModeOutcome
		bundle.Entry = append(bundle.Entry, models.BundleEntry{Resource: fhir.OperationOutcome(issues...), Search: &models.BundleEntrySearch{Mode: &mode}})
	}
	body, err := marshalBundle(bundle)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.writeJSON(c, http.StatusOK, body)
}

// marshalBundle encodes a Bundle as fhir.Marshal does (resourceType first,
// then the model's order), but writes each entry's resource as its bytes
// are rather than decoding and encoding it again: a stored body is already
// a resource's JSON (the store wrote it), and re-encoding fifty or a
// hundred of them was the largest cost of a searchset after the store's
// query. The searchset's own fields (id, type, timestamp, total, links)
// and its entries (fullUrl, resource, search mode) are written directly,
// which is all a searchset of this server holds; a Bundle or an entry with
// any other field is left to fhir.Marshal.
func marshalBundle(b models.Bundle) ([]byte, error) {
	if b.Meta != nil || b.ImplicitRules != nil || b.Language != nil || b.Identifier != nil || b.Signature != nil ||
		slices.ContainsFunc(b.Link, func(l models.BundleLink) bool { return l.Id != nil || l.Extension != nil || l.ModifierExtension != nil }) ||
		slices.ContainsFunc(b.Entry, func(e models.BundleEntry) bool { return !plainEntry(e) }) {
		return fhir.Marshal(b)
	}
	size := 256
	for _, l := range b.Link {
		size += len(l.Url) + 32
	}
	for _, e := range b.Entry {
		size += len(e.Resource) + 96
		if e.FullUrl != nil {
			size += len(*e.FullUrl)
		}
	}
	out := make([]byte, 0, size)
	out = append(out, `{"resourceType":"Bundle"`...)
	if b.Id != nil {
		out = fhir.AppendString(append(out, `,"id":`...), *b.Id)
	}
	out = fhir.AppendString(append(out, `,"type":`...), b.Type.Code())
	if b.Timestamp != nil {
		out = fhir.AppendString(append(out, `,"timestamp":`...), *b.Timestamp)
	}
	if b.Total != nil {
		out = strconv.AppendInt(append(out, `,"total":`...), int64(*b.Total), 10)
	}
	for i, l := range b.Link {
		if i == 0 {
			out = append(out, `,"link":[`...)
		} else {
			out = append(out, ',')
		}
		out = fhir.AppendString(append(out, `{"relation":`...), l.Relation)
		out = fhir.AppendString(append(out, `,"url":`...), l.Url)
		out = append(out, '}')
	}
	if len(b.Link) > 0 {
		out = append(out, ']')
	}
	for i, e := range b.Entry {
		if i == 0 {
			out = append(out, `,"entry":[`...)
		} else {
			out = append(out, ',')
		}
		out = appendEntry(out, e)
	}
	if len(b.Entry) > 0 {
		out = append(out, ']')
	}
	return append(out, '}'), nil
}

// plainEntry reports whether a Bundle entry holds only what appendEntry
// writes: fullUrl, resource and search.mode.
func plainEntry(e models.BundleEntry) bool {
	return e.Id == nil && e.Extension == nil && e.ModifierExtension == nil && e.Link == nil && e.Request == nil && e.Response == nil &&
		(e.Search == nil || e.Search.Id == nil && e.Search.Extension == nil && e.Search.ModifierExtension == nil && e.Search.Score == nil)
}

// appendEntry appends the JSON of one plain Bundle entry, its resource as
// it is.
func appendEntry(out []byte, e models.BundleEntry) []byte {
	out = append(out, '{')
	sep := false
	if e.FullUrl != nil {
		out = fhir.AppendString(append(out, `"fullUrl":`...), *e.FullUrl)
		sep = true
	}
	if len(e.Resource) > 0 {
		if sep {
			out = append(out, ',')
		}
		out = append(append(out, `"resource":`...), e.Resource...)
		sep = true
	}
	if e.Search != nil {
		if sep {
			out = append(out, ',')
		}
		out = append(out, `"search":{`...)
		if e.Search.Mode != nil {
			out = fhir.AppendString(append(out, `"mode":`...), e.Search.Mode.Code())
		}
		out = append(out, '}')
	}
	return append(out, '}')
}

func (s *Server) searchEntry(base string, r *store.Resource, mode string, sr *searchRequest) (models.BundleEntry, error) {
	full := base + "/" + r.Type + "/" + r.ID
	body, err := fhir.Summarize(r.Body, sr.Summary, sr.Elements)
	if err != nil {
		return models.BundleEntry{}, err
	}
	m := models.SearchEntryModeMatch
	if mode == "include" {
		m = models.SearchEntryModeInclude
	}
	return models.BundleEntry{FullUrl: &full, Resource: body, Search: &models.BundleEntrySearch{Mode: &m}}, nil
}

// includes resolves _include and _revinclude (with one :iterate round) for
// the matches of a page, as further store queries: whatever filter the
// store applies to searches applies to them too.
func (s *Server) includes(ctx context.Context, searcher store.Searcher, sr *searchRequest, matches []*store.Resource) ([]*store.Resource, string, error) {
	if len(sr.Includes) == 0 && len(sr.RevIncludes) == 0 {
		return nil, "", nil
	}
	seen := map[string]bool{}
	for _, r := range matches {
		seen[r.Type+"/"+r.ID] = true
	}
	var out []*store.Resource
	warning := ""
	add := func(rs []*store.Resource) []*store.Resource {
		var added []*store.Resource
		for _, r := range rs {
			k := r.Type + "/" + r.ID
			if seen[k] {
				continue
			}
			if len(out) >= maxIncluded {
				warning = "more than " + strconv.Itoa(maxIncluded) + " resources to include: the list was cut; ask for a smaller _count"
				break
			}
			seen[k] = true
			out = append(out, r)
			added = append(added, r)
		}
		return added
	}
	round := func(from []*store.Resource, iterate bool) ([]*store.Resource, error) {
		var added []*store.Resource
		for _, inc := range sr.Includes {
			if inc.Iterate != iterate {
				continue
			}
			rs, err := s.forwardInclude(ctx, searcher, inc, from)
			if err != nil {
				return nil, err
			}
			added = append(added, add(rs)...)
		}
		for _, inc := range sr.RevIncludes {
			if inc.Iterate != iterate {
				continue
			}
			rs, err := s.reverseInclude(ctx, searcher, inc, from)
			if err != nil {
				return nil, err
			}
			added = append(added, add(rs)...)
		}
		return added, nil
	}
	first, err := round(matches, false)
	if err != nil {
		return nil, "", err
	}
	if _, err := round(append(append([]*store.Resource(nil), matches...), first...), true); err != nil {
		return nil, "", err
	}
	return out, warning, nil
}

// forwardInclude reads the resources that inc's reference parameter of the
// given resources points to.
func (s *Server) forwardInclude(ctx context.Context, searcher store.Searcher, inc include, from []*store.Resource) ([]*store.Resource, error) {
	byType := map[string][]string{}
	for _, r := range from {
		if r.Type != inc.SourceType {
			continue
		}
		for _, ref := range fhir.ExtractIndex(r.Body).References {
			if ref.Param != inc.Param || ref.Type == "" || ref.ID == "" {
				continue
			}
			if inc.TargetType != "" && ref.Type != inc.TargetType {
				continue
			}
			if _, ok := fhir.LookupType(ref.Type); ok {
				byType[ref.Type] = append(byType[ref.Type], ref.ID)
			}
		}
	}
	var out []*store.Resource
	types := make([]string, 0, len(byType))
	for t := range byType {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		var clause store.Clause
		for _, id := range dedupe(byType[t]) {
			clause.Any = append(clause.Any, store.Condition{Param: "_id", Kind: store.KindID, Value: id})
		}
		page, _, err := s.scopedSearch(ctx, store.Query{Type: t, Where: []store.Clause{clause}, Count: maxIncluded}, allowedPatients(ctx))
		if err != nil {
			return nil, err
		}
		if page != nil {
			out = append(out, page.Resources...)
		}
	}
	return out, nil
}

// reverseInclude reads the resources of inc.SourceType whose reference
// parameter points to one of the given resources.
func (s *Server) reverseInclude(ctx context.Context, searcher store.Searcher, inc include, from []*store.Resource) ([]*store.Resource, error) {
	var clause store.Clause
	for _, r := range from {
		if inc.TargetType != "" && r.Type != inc.TargetType {
			continue
		}
		clause.Any = append(clause.Any, store.Condition{Param: inc.Param, Kind: store.KindReference, RefType: r.Type, RefID: r.ID})
	}
	if len(clause.Any) == 0 {
		return nil, nil
	}
	page, _, err := s.scopedSearch(ctx, store.Query{Type: inc.SourceType, Where: []store.Clause{clause}, Count: maxIncluded}, allowedPatients(ctx))
	if err != nil || page == nil {
		return nil, err
	}
	return page.Resources, nil
}

func dedupe(ids []string) []string {
	sort.Strings(ids)
	out := ids[:0]
	for i, id := range ids {
		if i == 0 || id != ids[i-1] {
			out = append(out, id)
		}
	}
	return out
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// pageCursor is what a next or previous link carries: the engine's keyset
// position and the positions of the pages before it (for previous links).
type pageCursor struct {
	After string   `json:"a,omitempty"`
	Prev  []string `json:"p,omitempty"`
	Deep  bool     `json:"d,omitempty"` // past maxPrevPages: no previous links
	Query string   `json:"q"`           // fingerprint of the search it belongs to
	Exp   int64    `json:"x"`           // expiry, Unix seconds
}

// sealCursor signs a cursor for one search so that a client can neither
// forge a position nor reuse it for another search.
func (s *Server) sealCursor(pc pageCursor, fingerprint string) string {
	sum := sha256.Sum256([]byte(fingerprint))
	pc.Query = base64.RawURLEncoding.EncodeToString(sum[:12])
	pc.Exp = time.Now().Add(cursorLifetime).Unix()
	payload, _ := json.Marshal(pc)
	p := base64.RawURLEncoding.EncodeToString(payload)
	return p + "." + s.mac(p)
}

func (s *Server) mac(p string) string {
	h := hmac.New(sha256.New, s.cursorKey)
	h.Write([]byte(p))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:18])
}

func (s *Server) openCursor(token, fingerprint string) (pageCursor, error) {
	bad := func(msg string) (pageCursor, error) {
		return pageCursor{}, fhir.NewError(http.StatusBadRequest, "invalid", "_cursor", msg)
	}
	p, sig, ok := strings.Cut(token, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(s.mac(p))) {
		return bad("the paging cursor is not valid; start the search again")
	}
	payload, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return bad("the paging cursor is not valid; start the search again")
	}
	var pc pageCursor
	if err := json.Unmarshal(payload, &pc); err != nil {
		return bad("the paging cursor is not valid; start the search again")
	}
	sum := sha256.Sum256([]byte(fingerprint))
	if pc.Query != base64.RawURLEncoding.EncodeToString(sum[:12]) {
		return bad("the paging cursor belongs to another search")
	}
	if time.Now().Unix() > pc.Exp {
		return bad("the paging cursor has expired; start the search again")
	}
	return pc, nil
}

// searchParamsByType lists, for the CapabilityStatement, the search
// parameters served for each type.
func searchParamsByType() map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, typ := range fhir.TypeNames() {
		m := map[string]string{"_id": "token", "_lastUpdated": "date"}
		for _, sp := range fhir.SearchParams(typ) {
			if sp.Type != "composite" && sp.Type != "special" {
				m[sp.Name] = sp.Type
			}
		}
		out[typ] = m
	}
	return out
}

// scopedSearch runs q restricted to what the caller may see (the
// restriction is part of the store query). A nil page means the caller may
// see nothing of it, for the reason rule.
func (s *Server) scopedSearch(ctx context.Context, q store.Query, named []string) (*store.Page, string, error) {
	clauses, none, rule, err := s.searchScope(ctx, q.Type, named)
	if err != nil || none {
		return nil, rule, err
	}
	q.Where = append(append([]store.Clause(nil), q.Where...), clauses...)
	page, err := s.store.Search(ctx, q)
	return page, "", err
}

// allowedPatients are the patients whose records this request was already
// allowed to read: included resources are looked for in them.
func allowedPatients(ctx context.Context) []string {
	a := accessOf(ctx)
	if a == nil {
		return nil
	}
	var out []string
	for p, v := range a.verdict {
		if v.Allow {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// mentions says whether params has the search parameter name, with or
// without a modifier.
func mentions(params url.Values, name string) bool {
	for k := range params {
		if k == name || strings.HasPrefix(k, name+":") {
			return true
		}
	}
	return false
}

// maxChainedPatients bounds how many patients a chained patient parameter
// is resolved to before the search (more: it stays a chain).
const maxChainedPatients = 20

// resolvePatientChains turns a chained patient parameter
// (patient.identifier=sys|value, the DMP's way of naming the record, TD3.1a)
// into the references of the Patients it selects, in place, so that the
// consent decision knows whose record is searched: an emergency access may
// then name the patient this way, and a refused or closed record is
// answered 403 or 409 rather than an empty page. The result is the same
// set of resources.
func (s *Server) resolvePatientChains(ctx context.Context, typ string, where []store.Clause) error {
	a := accessOf(ctx)
	if a == nil || s.auth.Unrestricted {
		return nil
	}
	rt, _ := fhir.LookupType(typ)
	for ci := range where {
		for i, cond := range where[ci].Any {
			if cond.Kind != store.KindReference || cond.Chain == nil || cond.Chain.Type != "Patient" || cond.Not || cond.Missing != nil ||
				!(cond.RefType == "Patient" || contains(rt.PatientCompartment, cond.Param)) {
				continue
			}
			q := *cond.Chain
			q.Count, q.Total, q.Sort, q.After = maxChainedPatients+1, false, nil, ""
			page, err := s.store.Search(ctx, q)
			if err != nil {
				return err
			}
			if len(page.Resources) == 0 || len(page.Resources) > maxChainedPatients {
				continue
			}
			refs := make([]store.Condition, 0, len(page.Resources))
			for _, p := range page.Resources {
				refs = append(refs, store.Condition{Param: cond.Param, Kind: store.KindReference, RefType: "Patient", RefID: p.ID})
			}
			if len(where[ci].Any) == 1 {
				where[ci].Any = refs
			} else {
				where[ci].Any = append(append(append([]store.Condition{}, where[ci].Any[:i]...), refs...), where[ci].Any[i+1:]...)
			}
			break // the clause changed: its other conditions are left as they are
		}
	}
	return nil
}
