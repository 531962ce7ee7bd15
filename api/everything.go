package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

// GET|POST /fhir/Patient/{id}/$everything (FHIR R4 Patient-everything).
//
// The result is read in phases, one resource type each: the Patient, the
// types of the patient compartment (AuditEvent, the access history, only
// when _type names it), then the types outside it that those resources
// refer to (Location, Medication, Organization, Practitioner,
// PractitionerRole: one level, any reference element). A compartment phase
// is one store query with the caller's scope inside it, as a search's is
// (scopedSearch), paged on the store's keyset. A referenced type's phase
// reads the ids that the compartment's resources the caller may see refer
// to (collected once a request, when a page gets there), in id order, by
// chunks of ids. So every resource comes once, nothing is fetched then
// dropped, and a next link's signed cursor holds the phase and the
// position in it. The Binary a DocumentReference or DiagnosticReport
// attachment points to comes right after it (search mode include),
// decided on its own securityContext as a read is, with its data when the
// row holds it (content in blob storage is read at the Binary's URL).
// Archived and superseded documents are part of everything.

const (
	defaultEverythingCount = 100
	// everythingCursorSep separates the phase's type from the store's
	// position in a cursor (store positions are base64url).
	everythingCursorSep = "|"
)

// everythingRequest is a parsed $everything.
type everythingRequest struct {
	count      int
	types      map[string]bool // _type; nil: every type
	since      *time.Time
	start, end *int64 // care dates, Unix ms
	totalMode  string
	cursor     string
	ignored    []string
}

// typeList reads the resource types of a _type parameter (comma-separated,
// possibly repeated), in order, once each; a type this server does not
// know is refused with code.
func typeList(k string, vs []string, code string) ([]string, error) {
	var types []string
	for _, v := range vs {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if _, ok := fhir.LookupType(t); !ok {
				return nil, fhir.NewError(http.StatusBadRequest, code, k, "_type: "+strconv.Quote(t)+" is not a resource type this server supports")
			}
			if !slices.Contains(types, t) {
				types = append(types, t)
			}
		}
	}
	return types, nil
}

// sinceParam reads a _since instant; withTime also refuses a date alone
// (the Bulk Data IG asks for an instant).
func sinceParam(k, v string, withTime bool) (time.Time, error) {
	t, err := parseInstant(v)
	if err != nil || withTime && !strings.Contains(v, "T") {
		return time.Time{}, searchError(k, "_since must be an instant such as 2024-01-31T10:00:00Z")
	}
	return t, nil
}

func (r *everythingRequest) wants(typ string) bool { return r.types == nil || r.types[typ] }

// everythingParams are the parameters $everything reads; _format and
// _pretty are the transport's.
var everythingParams = map[string]bool{"_count": true, "_type": true, "_since": true, "start": true, "end": true,
	"_total": true, "_cursor": true, "_format": true, "_pretty": true}

func parseEverything(params url.Values, strict bool) (*everythingRequest, error) {
	r := &everythingRequest{count: defaultEverythingCount}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vs := params[k]
		last := vs[len(vs)-1]
		switch k {
		case "_count":
			n, err := strconv.Atoi(last)
			if err != nil || n < 0 {
				return nil, searchError(k, "_count must be a non-negative integer")
			}
			r.count = min(n, maxPageSize)
		case "_type":
			types, err := typeList(k, vs, "invalid")
			if err != nil {
				return nil, err
			}
			r.types = map[string]bool{}
			for _, t := range types {
				r.types[t] = true
			}
		case "_since":
			t, err := sinceParam(k, last, false)
			if err != nil {
				return nil, err
			}
			r.since = &t
		case "start", "end":
			low, high, ok := fhir.DateRange(last)
			if !ok {
				return nil, searchError(k, k+" must be a date such as 2024, 2024-01 or 2024-01-31, or a dateTime")
			}
			if k == "start" {
				r.start = &low
			} else {
				r.end = &high
			}
		case "_total":
			switch last {
			case "none", "estimate", "accurate":
				r.totalMode = last
			default:
				return nil, searchError(k, "_total must be none, estimate or accurate")
			}
		case "_cursor":
			r.cursor = last
		default:
			if everythingParams[k] {
				continue
			}
			if strict {
				return nil, fhir.NewError(http.StatusBadRequest, "not-supported", k, "$everything has no parameter "+strconv.Quote(k))
			}
			r.ignored = append(r.ignored, k)
		}
	}
	if r.start != nil && r.end != nil && *r.start > *r.end {
		return nil, searchError("start", "start is after end")
	}
	return r, nil
}

// everythingPhase is the query of one type of the result.
type everythingPhase struct {
	typ   string
	where []store.Clause // the caller's scope is added by scopedSearch
	// emit is false for a DocumentReference or DiagnosticReport phase run
	// only for the Binaries of their attachments (_type=Binary).
	emit bool
	// referenced: a type outside the compartment, read by the ids the
	// compartment's resources refer to; its cursor position is the last id.
	referenced bool
}

// careClause selects the resources of typ whose care date overlaps
// [start, end], or that have none.
func (r *everythingRequest) careClause(typ string) []store.Clause {
	p := fhir.CareDateParam(typ)
	if p == "" || (r.start == nil && r.end == nil) {
		return nil
	}
	in := store.Condition{Param: p, Kind: store.KindDate}
	if r.end != nil {
		v := float64(*r.end)
		in.Range.LowAtMost = &v
	}
	if r.start != nil {
		v := float64(*r.start)
		in.Range.HighAtLeast = &v
	}
	missing := true
	return []store.Clause{{Any: []store.Condition{in, {Param: p, Kind: store.KindDate, Missing: &missing}}}}
}

func (r *everythingRequest) sinceClause() []store.Clause {
	if r.since == nil {
		return nil
	}
	v := float64(r.since.UnixMilli())
	return []store.Clause{{Any: []store.Condition{{Param: "_lastUpdated", Kind: store.KindLastUpdated, Range: store.Interval{HighAtLeast: &v}}}}}
}

// compartmentTypes are the types of the patient compartment in the order
// of the result: the Patient first. The access history only when asked for.
func compartmentTypes(r *everythingRequest) []string {
	out := []string{"Patient"}
	for _, t := range fhir.TypeNames() {
		rt, _ := fhir.LookupType(t)
		if t == "Patient" || len(rt.PatientCompartment) == 0 {
			continue
		}
		if t == "AuditEvent" && (r.types == nil || !r.types[t]) {
			continue
		}
		out = append(out, t)
	}
	return out
}

// referencedTypes are the types outside the patient compartment that its
// resources refer to, but Binary (reached through attachments).
func referencedTypes() []string {
	var out []string
	for _, t := range fhir.TypeNames() {
		rt, _ := fhir.LookupType(t)
		if t != "Patient" && t != "Binary" && len(rt.PatientCompartment) == 0 {
			out = append(out, t)
		}
	}
	return out
}

// mayScope says whether the caller's token allows op on typ.
func mayScope(ctx context.Context, typ string, op auth.Interaction) bool {
	a := accessOf(ctx)
	return a == nil || a.caller == nil || a.caller.MissingScope(typ, op) == ""
}

// everythingRun is one $everything page being built.
type everythingRun struct {
	s       *Server
	ctx     context.Context
	patient string
	req     *everythingRequest
	base    string
	phases  []everythingPhase
	// sources are the compartment types whose resources' references make
	// the referenced types' phases (not the access history).
	sources []string
	refs    map[string][]string // referenced type -> sorted ids; nil until needed
}

func (s *Server) newEverythingRun(ctx context.Context, patient string, r *everythingRequest, base string) *everythingRun {
	run := &everythingRun{s: s, ctx: ctx, patient: patient, req: r, base: base}
	binaries := r.wants("Binary") && mayScope(ctx, "Binary", auth.OpRead)
	for _, t := range compartmentTypes(r) {
		if !mayScope(ctx, t, auth.OpSearch) {
			continue
		}
		if t != "AuditEvent" {
			run.sources = append(run.sources, t)
		}
		emit := r.wants(t)
		if !emit && !(binaries && hasAttachments(t)) {
			continue
		}
		clause, _ := compartmentClause(t, patient)
		where := append([]store.Clause{clause}, r.careClause(t)...)
		if emit {
			where = append(where, r.sinceClause()...)
		}
		run.phases = append(run.phases, everythingPhase{typ: t, where: where, emit: emit})
	}
	for _, t := range referencedTypes() {
		if r.wants(t) && mayScope(ctx, t, auth.OpSearch) {
			run.phases = append(run.phases, everythingPhase{typ: t, emit: true, referenced: true})
		}
	}
	return run
}

// referencedIDs reads, once a request, every resource of the compartment
// the caller may see (within start and end) and collects the ids of the
// referenced types they refer to: one level, any reference element
// (contained resources' included), relative or to this server.
func (run *everythingRun) referencedIDs() (map[string][]string, error) {
	if run.refs != nil {
		return run.refs, nil
	}
	wanted := map[string]bool{}
	for _, ph := range run.phases {
		if !ph.referenced {
			continue
		}
		// No resource of the type at all: nothing can be referred to, and
		// the record need not be read for it (a store without
		// Practitioners or Organizations reads none).
		page, err := run.s.store.Search(run.ctx, store.Query{Type: ph.typ, Count: 1})
		if err != nil {
			return nil, err
		}
		if len(page.Resources) > 0 {
			wanted[ph.typ] = true
		}
	}
	found := map[string]map[string]bool{}
	for _, src := range run.sources {
		if len(wanted) == 0 {
			break
		}
		clause, _ := compartmentClause(src, run.patient)
		q := store.Query{Type: src, Where: append([]store.Clause{clause}, run.req.careClause(src)...), Count: maxPageSize}
		for {
			page, _, err := run.s.scopedSearch(run.ctx, q, []string{run.patient})
			if err != nil {
				return nil, err
			}
			if page == nil {
				break
			}
			for _, r := range page.Resources {
				for _, ref := range localReferences(r.Body, run.base) {
					typ, id, _ := strings.Cut(ref, "/")
					if wanted[typ] {
						if found[typ] == nil {
							found[typ] = map[string]bool{}
						}
						found[typ][id] = true
					}
				}
			}
			if page.Next == "" {
				break
			}
			q.After = page.Next
		}
	}
	run.refs = map[string][]string{}
	for typ, ids := range found {
		for id := range ids {
			run.refs[typ] = append(run.refs[typ], id)
		}
		sort.Strings(run.refs[typ])
	}
	return run.refs, nil
}

// localReferences returns the Type/id of every reference in a resource body
// that points to this server: relative (Type/id, Type/id/_history/n) or
// absolute under base.
func localReferences(body []byte, base string) []string {
	var out []string
	for _, ref := range fhir.ReferenceValues(body) {
		parts := strings.Split(strings.TrimPrefix(ref, base+"/"), "/")
		if (len(parts) == 2 || len(parts) == 4 && parts[2] == "_history") && fhir.ValidID(parts[1]) {
			if _, known := fhir.LookupType(parts[0]); known {
				out = append(out, parts[0]+"/"+parts[1])
			}
		}
	}
	return out
}

// refChunk bounds the ids of one query of a referenced type (SQLite's
// expression depth).
const refChunk = 200

// read runs phase i from position after (the store's keyset position, or
// for a referenced type the last id given), for at most count resources.
// more says whether the phase has resources after the ones returned, and
// next is the position to continue from.
func (run *everythingRun) read(i int, after string, count int) (rs []*store.Resource, next string, more bool, err error) {
	ph := run.phases[i]
	named := []string{run.patient}
	if !ph.referenced {
		page, _, err := run.s.scopedSearch(run.ctx, store.Query{Type: ph.typ, Where: ph.where, Count: count, After: after}, named)
		if err != nil || page == nil {
			return nil, "", false, err
		}
		return page.Resources, page.Next, page.Next != "", nil
	}
	refs, err := run.referencedIDs()
	if err != nil {
		return nil, "", false, err
	}
	ids := refs[ph.typ]
	pos := sort.SearchStrings(ids, after)
	if pos < len(ids) && ids[pos] == after {
		pos++
	}
	for pos < len(ids) && len(rs) < count {
		chunk := ids[pos:min(len(ids), pos+min(count-len(rs), refChunk))]
		var byID store.Clause
		for _, id := range chunk {
			byID.Any = append(byID.Any, store.Condition{Param: "_id", Kind: store.KindID, Value: id})
		}
		page, _, err := run.s.scopedSearch(run.ctx, store.Query{Type: ph.typ, Where: append([]store.Clause{byID}, run.req.sinceClause()...), Count: len(chunk)}, named)
		if err != nil {
			return nil, "", false, err
		}
		if page != nil {
			rs = append(rs, page.Resources...)
		}
		pos += len(chunk)
		next = chunk[len(chunk)-1]
	}
	return rs, next, pos < len(ids), nil
}

// total counts the matches of every emitted phase.
func (run *everythingRun) total() (int, error) {
	n := 0
	for i, ph := range run.phases {
		if !ph.emit {
			continue
		}
		if ph.referenced {
			after := ""
			for {
				rs, next, more, err := run.read(i, after, maxPageSize)
				if err != nil {
					return 0, err
				}
				n += len(rs)
				if !more {
					break
				}
				after = next
			}
			continue
		}
		page, _, err := run.s.scopedSearch(run.ctx, store.Query{Type: ph.typ, Where: ph.where, Count: 0, Total: true}, []string{run.patient})
		if err != nil {
			return 0, err
		}
		if page != nil {
			n += page.Total
		}
	}
	return n, nil
}

func hasAttachments(typ string) bool { return typ == "DocumentReference" || typ == "DiagnosticReport" }

// everythingGet serves GET /fhir/Patient/{id}/$everything.
func (s *Server) everythingGet(c *gin.Context) { s.everything(c, c.Request.URL.Query()) }

// everythingPost serves POST /fhir/Patient/{id}/$everything: the parameters
// in a Parameters body, and in the URL.
func (s *Server) everythingPost(c *gin.Context) {
	params := cloneValues(c.Request.URL.Query())
	body, err := s.readOptionalBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		fromBody, err := operationParameters(body)
		if err != nil {
			s.fail(c, err)
			return
		}
		for k, vs := range fromBody {
			params[k] = append(params[k], vs...)
		}
	}
	s.everything(c, params)
}

// operationParameters reads a Parameters body whose values are primitives
// (string, code, id, uri, date, dateTime, instant, integer, ...) or
// References (valueReference: its reference).
func operationParameters(body []byte) (url.Values, error) {
	var p struct {
		ResourceType string                       `json:"resourceType"`
		Parameter    []map[string]json.RawMessage `json:"parameter"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.ResourceType != "Parameters" {
		return nil, fhir.Invalid("Parameters", "the body must be a FHIR Parameters resource")
	}
	out := url.Values{}
	for i, pp := range p.Parameter {
		where := "Parameters.parameter[" + strconv.Itoa(i) + "]"
		var name string
		if json.Unmarshal(pp["name"], &name) != nil || name == "" {
			return nil, fhir.Invalid(where+".name", "a parameter needs a name")
		}
		found := false
		for k, raw := range pp {
			if !strings.HasPrefix(k, "value") {
				continue
			}
			var str string
			var num json.Number
			var ref struct{ Reference *string }
			switch {
			case json.Unmarshal(raw, &str) == nil:
			case json.Unmarshal(raw, &num) == nil:
				str = num.String()
			case k == "valueReference" && json.Unmarshal(raw, &ref) == nil && ref.Reference != nil:
				str = *ref.Reference
			default:
				return nil, fhir.Invalid(where+"."+k, "parameter "+name+" must have a primitive value or a reference")
			}
			out.Add(name, str)
			found = true
		}
		if !found {
			return nil, fhir.Invalid(where, "parameter "+name+" has no value")
		}
	}
	return out, nil
}

func (s *Server) everything(c *gin.Context, params url.Values) {
	a := accessOf(c)
	if a != nil {
		a.action = "R" // a read, whether by GET or POST
	}
	if !s.allow(c, "Patient", auth.OpRead, "operation") {
		return
	}
	patient := c.Param("id")
	a.touch([]string{patient}) // the record asked for, allowed or not, in the audit
	req, err := parseEverything(params, strictHandling(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	selfParams := cloneValues(params)
	selfParams.Del("_cursor")
	fingerprint := c.Request.URL.Path + "?" + selfParams.Encode()
	var cur pageCursor
	if req.cursor != "" {
		if cur, err = s.openCursor(req.cursor, fingerprint); err != nil {
			s.fail(c, err)
			return
		}
	}
	if a != nil && a.caller != nil && a.caller.Kind == auth.KindPatient && a.caller.ID != patient && !s.auth.Unrestricted {
		s.refuseRead(c, auth.RuleOtherPatient)
		return
	}
	// As a compartment search: a professional the patient has not
	// authorized is refused.
	if _, none, rule, err := s.searchScope(c, "Patient", []string{patient}); err != nil {
		s.fail(c, err)
		return
	} else if none {
		s.refuseRead(c, rule)
		return
	}
	if req.types["AuditEvent"] {
		// The access history asked for: every access so far in it.
		if err := s.auditVisible(c, "AuditEvent"); err != nil {
			s.fail(c, err)
			return
		}
	}
	base := s.base(c)
	run := s.newEverythingRun(c, patient, req, base)
	phases := run.phases
	first, after := 0, ""
	if req.cursor != "" {
		typ, pos, _ := strings.Cut(cur.After, everythingCursorSep)
		first = -1
		for i, ph := range phases {
			if ph.typ == typ {
				first = i
			}
		}
		if first < 0 {
			s.fail(c, fhir.NewError(http.StatusBadRequest, "invalid", "_cursor", "the paging cursor is not valid; start again"))
			return
		}
		after = pos
	}
	bundle := models.Bundle{Type: models.BundleTypeSearchset}
	bid := newID()
	ts := time.Now().UTC().Format(fhir.InstantFormat)
	bundle.Id, bundle.Timestamp = &bid, &ts
	var entries []models.BundleEntry
	onPage := map[string]bool{}
	add := func(r *store.Resource, mode models.SearchEntryMode) {
		full := base + "/" + r.Type + "/" + r.ID
		m := mode
		entries = append(entries, models.BundleEntry{FullUrl: &full, Resource: r.Body, Search: &models.BundleEntrySearch{Mode: &m}})
		onPage[r.Type+"/"+r.ID] = true
		if a != nil {
			a.resources = append(a.resources, r.Type+"/"+r.ID)
		}
	}

	next := ""
	matches := 0
	remaining := req.count
	last := first
	for i := first; i < len(phases) && remaining > 0; i++ {
		last = i
		ph := phases[i]
		pos := ""
		if i == first {
			pos = after
		}
		rs, nextPos, more, err := run.read(i, pos, remaining)
		if err != nil {
			s.fail(c, err)
			return
		}
		remaining -= len(rs)
		for _, r := range rs {
			if ph.emit {
				add(r, models.SearchEntryModeMatch)
				matches++
			}
			if err := s.addBinaries(c, r, req, base, onPage, add); err != nil {
				s.fail(c, err)
				return
			}
		}
		if more {
			next = ph.typ + everythingCursorSep + nextPos
			break
		}
	}
	if next == "" && remaining == 0 && req.count > 0 {
		// The page ended with a phase: is there more after it?
		for j := last + 1; j < len(phases) && next == ""; j++ {
			rs, _, more, err := run.read(j, "", 1)
			if err != nil {
				s.fail(c, err)
				return
			}
			if len(rs) > 0 || more {
				next = phases[j].typ + everythingCursorSep
			}
		}
	}

	switch {
	case req.totalMode == "accurate" || req.totalMode == "estimate" || req.count == 0:
		total, err := run.total()
		if err != nil {
			s.fail(c, err)
			return
		}
		bundle.Total = &total
	case req.cursor == "" && next == "" && req.totalMode != "none":
		bundle.Total = &matches // the whole result is on this first page
	}

	selfURL := base + strings.TrimPrefix(c.Request.URL.Path, "/fhir")
	link := func(rel string, pc *pageCursor) models.BundleLink {
		q := cloneValues(selfParams)
		if pc != nil {
			q.Set("_cursor", s.sealCursor(*pc, fingerprint))
		}
		return models.BundleLink{Relation: rel, Url: selfURL + queryString(q)}
	}
	if req.cursor != "" {
		bundle.Link = append(bundle.Link, link("self", &cur))
	} else {
		bundle.Link = append(bundle.Link, link("self", nil))
	}
	if next != "" {
		bundle.Link = append(bundle.Link, link("next", &pageCursor{After: next}))
	}
	bundle.Entry = entries
	var issues []fhir.Issue
	for _, p := range req.ignored {
		issues = append(issues, fhir.Issue{Severity: "warning", Code: "not-supported", Expression: p, Diagnostics: "$everything has no parameter " + strconv.Quote(p) + "; it was ignored"})
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

// addBinaries adds, after a DocumentReference or a DiagnosticReport, the
// Binaries of this server its attachments point to, that the caller may
// read, once a page.
func (s *Server) addBinaries(ctx context.Context, r *store.Resource, req *everythingRequest, base string, onPage map[string]bool, add func(*store.Resource, models.SearchEntryMode)) error {
	if !hasAttachments(r.Type) || !req.wants("Binary") || !mayScope(ctx, "Binary", auth.OpRead) {
		return nil
	}
	for _, id := range binaryIDs(r.Body, base) {
		if onPage["Binary/"+id] {
			continue
		}
		b, err := s.store.Read(ctx, "Binary", id)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrDeleted) {
			continue // a dangling attachment
		}
		if err != nil {
			return err
		}
		if req.since != nil && b.LastUpdated.Before(*req.since) {
			continue
		}
		ok, _, err := s.mayRead(ctx, b)
		if err != nil {
			return err
		}
		if ok {
			// Its data when kept in the row; bytes in blob storage are
			// read at its URL (GET /fhir/Binary/{id}).
			add(clientView(b), models.SearchEntryModeInclude)
		}
	}
	return nil
}

// binaryIDs returns the ids of the Binaries of this server that a
// DocumentReference's content or a DiagnosticReport's presentedForm points
// to (Binary/{id}, or the absolute URL of it on this server).
func binaryIDs(body []byte, base string) []string {
	// A body that never spells "Binary" points to none: most attachments
	// carry their data inline, and decoding them to find that out was 4% of
	// $everything's CPU. An escape could spell it otherwise (\u0042inary):
	// a body with any \u escape is decoded.
	if !bytes.Contains(body, []byte("Binary")) && !bytes.Contains(body, []byte(`\u`)) {
		return nil
	}
	type attachment struct {
		URL string `json:"url"`
	}
	var r struct {
		Content []struct {
			Attachment attachment `json:"attachment"`
		} `json:"content"`
		PresentedForm []attachment `json:"presentedForm"`
	}
	if json.Unmarshal(body, &r) != nil {
		return nil
	}
	urls := make([]string, 0, len(r.Content)+len(r.PresentedForm))
	for _, c := range r.Content {
		urls = append(urls, c.Attachment.URL)
	}
	for _, p := range r.PresentedForm {
		urls = append(urls, p.URL)
	}
	var ids []string
	for _, u := range urls {
		u = strings.TrimPrefix(u, base+"/")
		if id, ok := strings.CutPrefix(u, "Binary/"); ok && fhir.ValidID(id) && !contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// patientRecordOperation serves GET /fhir/Patient/{id}/$everything and
// $summary (routed by compartmentSearch).
func (s *Server) patientRecordOperation(c *gin.Context, op string) {
	if op == "$summary" {
		s.summary(c)
		return
	}
	s.everythingGet(c)
}
