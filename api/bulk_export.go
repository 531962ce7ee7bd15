package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// Bulk Data Access (HL7 FHIR Bulk Data Access IG v2): the asynchronous
// $export. The jobs themselves are in bulk_export_job.go.
//
//	GET|POST /fhir/$export                  kick-off, every type (system level)
//	GET|POST /fhir/Patient/$export          kick-off, the Patient compartment
//	GET      /fhir/$export-status/{job}     202 while running, 200 + manifest
//	DELETE   /fhir/$export-status/{job}     cancel, and remove the files
//	GET      /fhir/$export-file/{job}/{n}   one output file (ndjson)
//
// Group/{id}/$export is not served: Group is no type of this server (404).
// Status and files answer only the caller who started the job (the same
// kind and id, whatever the token); anyone else gets 404, as for a job
// that does not exist.

const (
	exportStatusPath = "/$export-status/"
	exportFilePath   = "/$export-file/"
	ndjson           = "application/fhir+ndjson"
	// exportRetryAfter is the Retry-After of a running job, in seconds.
	exportRetryAfter = "2"
)

// exportDocumentation is what the CapabilityStatement says of $export.
const exportDocumentation = "Bulk Data $export (IG v2) on the server and on Patient (Group is not served): Prefer: respond-async; " +
	"_outputFormat application/fhir+ndjson; _type; _since; _typeFilter with one search query per type (no _include, _sort, _count, _summary, _elements); " +
	"patient (POST, Patient/$export). Status at $export-status/{job}, files at $export-file/{job}/{n}, for the caller who started the job only. " +
	"The patient's consent filters the export as it filters a search; Binary is not exported, AuditEvent only when _type names it."

// exportParams are the kick-off parameters read; _format and _pretty are
// the transport's.
var exportParams = map[string]bool{"_outputFormat": true, "_type": true, "_since": true, "_typeFilter": true, "patient": true, "_format": true, "_pretty": true}

// exportRequest is a parsed kick-off.
type exportRequest struct {
	types       []string // nil: the default types of the level
	since       *time.Time
	typeFilters map[string]string
	patients    []string
}

// exportKickoff serves GET|POST /fhir/$export and /fhir/{type}/$export.
func (s *Server) exportKickoff(c *gin.Context) {
	a := accessOf(c)
	a.interaction, a.action = "operation", "E"
	level := "system"
	if typ := c.Param("type"); typ != "" {
		if typ != "Patient" {
			s.fail(c, fhir.NotFound("$export is an operation of the server and of Patient, not of "+typ))
			return
		}
		level = "patient"
	}
	if s.exports == nil {
		s.fail(c, fhir.NewError(http.StatusNotImplemented, "not-supported", "", "this server has no store to export from"))
		return
	}
	if !preferAsync(c) {
		s.fail(c, fhir.NewError(http.StatusBadRequest, "required", "", "$export is asynchronous: send Prefer: respond-async"))
		return
	}
	params, err := s.exportParams(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	req, err := parseExport(params, level, strictHandling(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	caller := a.caller
	types, err := exportTypes(req.types, level, caller)
	if err != nil {
		s.fail(c, err)
		return
	}
	if len(req.patients) > 0 && level != "patient" {
		s.fail(c, fhir.NewError(http.StatusBadRequest, "not-supported", "patient", "the patient parameter is for Patient/$export"))
		return
	}
	if !s.auth.Unrestricted {
		switch {
		case caller.Kind == auth.KindPatient && (len(req.patients) > 1 || len(req.patients) == 1 && req.patients[0] != caller.ID):
			a.refused = auth.RuleNotInRecord
			s.fail(c, fhir.NewError(http.StatusForbidden, "forbidden", "patient", "a patient exports their own record only"))
			return
		case (a.mode == auth.ModeBrisDeGlace || a.mode == auth.ModeCentre15) && len(req.patients) == 0:
			a.refused = "emergency-needs-patient"
			s.fail(c, fhir.NewError(http.StatusForbidden, "forbidden", "", "an emergency access names its patient: POST Patient/$export with the patient parameter"))
			return
		}
		a.touch(req.patients)
	}
	job := &exportJob{ID: newID(), Owner: ownerOf(caller), Level: level, Types: types, Since: req.since, TypeFilters: req.typeFilters,
		Patients: req.patients, Mode: a.mode, Reason: a.reason}
	job.Request = s.base(c) + strings.TrimPrefix(c.Request.URL.Path, "/fhir")
	if c.Request.URL.RawQuery != "" {
		job.Request += "?" + c.Request.URL.RawQuery
	}
	switch err := s.exports.submit(job, caller); {
	case errors.Is(err, errExportBusy):
		c.Header("Retry-After", "30")
		s.writeOutcome(c, http.StatusTooManyRequests, fhir.Issue{Severity: "error", Code: "throttled", Diagnostics: "you already have an export in progress: wait for it to end, or cancel it, before starting another"})
		return
	case errors.Is(err, errExportFull):
		c.Header("Retry-After", "60")
		s.writeOutcome(c, http.StatusServiceUnavailable, fhir.Issue{Severity: "error", Code: "throttled", Diagnostics: "too many exports are waiting; retry later"})
		return
	case err != nil:
		s.fail(c, err)
		return
	}
	noteJob(c, job.ID, "")
	c.Header("Content-Location", s.base(c)+exportStatusPath+job.ID)
	s.writeOutcome(c, http.StatusAccepted, fhir.Issue{Severity: "information", Code: "informational", Diagnostics: "export started: poll the URL in Content-Location"})
}

// noteJob puts the job (and the file) in the request's audit: the query
// of the AuditEvent says which export the request was about.
func noteJob(c *gin.Context, job, file string) {
	note := "export-job=" + job
	if file != "" {
		note += "&file=" + file
	}
	if c.Request.URL.RawQuery != "" {
		note += "&" + c.Request.URL.RawQuery
	}
	c.Request.URL.RawQuery = note
}

// preferAsync says whether the request has Prefer: respond-async.
func preferAsync(c *gin.Context) bool {
	for _, p := range preferences(c.Request.Header) {
		if p.key == "respond-async" {
			return true
		}
	}
	return false
}

// exportParams reads the kick-off's parameters: the query, and for a POST
// the Parameters body (operationParameters: primitives and valueReference).
func (s *Server) exportParams(c *gin.Context) (url.Values, error) {
	params := cloneValues(c.Request.URL.Query())
	if c.Request.Method != http.MethodPost {
		return params, nil
	}
	body, err := s.readOptionalBody(c)
	if err != nil || body == nil {
		return params, err
	}
	fromBody, err := operationParameters(body)
	if err != nil {
		return nil, err
	}
	for k, vs := range fromBody {
		params[k] = append(params[k], vs...)
	}
	return params, nil
}

// parseExport checks the kick-off parameters.
func parseExport(params url.Values, level string, strict bool) (*exportRequest, error) {
	r := &exportRequest{}
	for k, vs := range params {
		switch k {
		case "_outputFormat":
			for _, v := range vs {
				switch strings.ReplaceAll(v, " ", "+") {
				case ndjson, "application/ndjson", "ndjson":
				default:
					return nil, fhir.NewError(http.StatusBadRequest, "not-supported", k, "_outputFormat "+strconv.Quote(v)+" is not supported: use application/fhir+ndjson")
				}
			}
		case "_type":
			types, err := typeList(k, vs, "not-supported")
			if err != nil {
				return nil, err
			}
			for _, t := range types {
				if t == "Binary" {
					return nil, fhir.NewError(http.StatusBadRequest, "not-supported", k, "_type: Binary is not exported; a document's content is read at its attachment's URL")
				}
				if rt, _ := fhir.LookupType(t); level == "patient" && t != "Patient" && len(rt.PatientCompartment) == 0 {
					return nil, fhir.NewError(http.StatusBadRequest, "not-supported", k, "_type: "+t+" is not in the Patient compartment: export it with /$export")
				}
			}
			r.types = types
		case "_since":
			t, err := sinceParam(k, vs[len(vs)-1], true)
			if err != nil {
				return nil, err
			}
			r.since = &t
		case "_typeFilter":
			r.typeFilters = map[string]string{}
			for _, v := range vs {
				for _, f := range splitTypeFilters(v) {
					typ, query, _ := strings.Cut(f, "?")
					if _, ok := fhir.LookupType(typ); !ok {
						return nil, fhir.NewError(http.StatusBadRequest, "not-supported", k, "_typeFilter: "+strconv.Quote(typ)+" is not a resource type this server supports")
					}
					if _, dup := r.typeFilters[typ]; dup {
						return nil, fhir.NewError(http.StatusBadRequest, "not-supported", k, "_typeFilter: one filter per type is supported ("+typ+" has several)")
					}
					values, err := url.ParseQuery(query)
					if err != nil {
						return nil, fhir.NewError(http.StatusBadRequest, "invalid", k, "_typeFilter: "+strconv.Quote(f)+" is not a search query")
					}
					for p := range values {
						if resultParams[p] {
							return nil, fhir.NewError(http.StatusBadRequest, "not-supported", k, "_typeFilter: "+p+" shapes a search's answer and is not supported in an export")
						}
					}
					if _, err := parseSearch(typ, values, "", true); err != nil {
						if fe, ok := fhir.AsError(err); ok && len(fe.Issues) > 0 {
							return nil, fhir.NewError(http.StatusBadRequest, fe.Issues[0].Code, k, "_typeFilter "+typ+": "+fe.Issues[0].Diagnostics)
						}
						return nil, err
					}
					r.typeFilters[typ] = query
				}
			}
		case "patient":
			for _, v := range vs {
				for _, ref := range strings.Split(v, ",") {
					id, ok := strings.CutPrefix(strings.TrimSpace(ref), "Patient/")
					if !ok || !fhir.ValidID(id) {
						return nil, fhir.NewError(http.StatusBadRequest, "invalid", k, "patient must be a reference Patient/{id}")
					}
					if !contains(r.patients, id) {
						r.patients = append(r.patients, id)
					}
				}
			}
		default:
			if exportParams[k] {
				continue
			}
			if strict {
				return nil, fhir.NewError(http.StatusBadRequest, "not-supported", k, "$export has no parameter "+strconv.Quote(k)+" on this server")
			}
		}
	}
	if r.types != nil {
		for typ := range r.typeFilters {
			if !contains(r.types, typ) {
				return nil, fhir.NewError(http.StatusBadRequest, "invalid", "_typeFilter", "_typeFilter: "+typ+" is not among the _type asked for")
			}
		}
	}
	return r, nil
}

// splitTypeFilters splits a _typeFilter value at the commas that separate
// filters: a comma followed by a resource type and '?'.
func splitTypeFilters(v string) []string {
	var out []string
	start := 0
	for i := 0; i < len(v); i++ {
		if v[i] != ',' {
			continue
		}
		rest := v[i+1:]
		if typ, _, ok := strings.Cut(rest, "?"); ok {
			if _, known := fhir.LookupType(typ); known {
				out = append(out, v[start:i])
				start = i + 1
			}
		}
	}
	return append(out, v[start:])
}

// exportTypes are the types a job exports: those asked for (each must be
// covered by the token's scopes: 403 otherwise) or, by default, every type
// of the level the scopes cover (the access history, AuditEvent, only when
// asked for, as with $everything; Binary never: a document's content is
// read at its URL).
func exportTypes(asked []string, level string, caller *auth.Caller) ([]string, error) {
	if asked != nil {
		for _, t := range asked {
			if missing := caller.MissingScope(t, auth.OpSearch); missing != "" {
				return nil, fhir.NewError(http.StatusForbidden, "forbidden", "_type", "the token's scopes do not allow exporting "+t+": it needs "+missing)
			}
		}
		return asked, nil
	}
	out := []string{}
	for _, t := range append([]string{"Patient"}, fhir.TypeNames()...) {
		rt, _ := fhir.LookupType(t)
		switch {
		case t == "Patient" && len(out) > 0, t == "Binary", t == "AuditEvent",
			level == "patient" && t != "Patient" && len(rt.PatientCompartment) == 0,
			caller.MissingScope(t, auth.OpSearch) != "":
			continue
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fhir.NewError(http.StatusForbidden, "forbidden", "", "the token's scopes allow exporting no resource type (it needs e.g. "+caller.MissingScope("Patient", auth.OpSearch)+")")
	}
	return out, nil
}

// ownJob reads the job of the URL for its owner; false when it answered
// 404 (no such job, another caller's, or expired).
func (s *Server) ownJob(c *gin.Context) (*exportJob, int64, bool) {
	a := accessOf(c)
	a.interaction = "operation"
	id := c.Param("job")
	noteJob(c, id, c.Param("file"))
	gone := func() (*exportJob, int64, bool) {
		s.writeOutcome(c, http.StatusNotFound, fhir.Issue{Severity: "error", Code: "not-found", Diagnostics: "no export " + strconv.Quote(id) + " (it may have expired)"})
		return nil, 0, false
	}
	if s.exports == nil || !fhir.ValidID(id) {
		return gone()
	}
	job, version, err := s.loadJob(c, id)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrDeleted) {
		return gone()
	}
	if err != nil {
		s.fail(c, err)
		return nil, 0, false
	}
	if job.Owner != ownerOf(a.caller) || time.Now().After(job.Expires) {
		return gone()
	}
	return job, version, true
}

// exportStatus serves GET /fhir/$export-status/{job}.
func (s *Server) exportStatus(c *gin.Context) {
	job, version, ok := s.ownJob(c)
	if !ok {
		return
	}
	if job.stale(time.Now()) && !s.exports.held(job.ID) {
		s.markDead(plainContext(c), job, version)
	}
	switch job.Status {
	case exportQueued, exportRunning:
		progress := job.Status
		if job.Progress != "" && job.Status == exportRunning {
			progress += ": " + job.Progress
		}
		c.Header("X-Progress", progress)
		c.Header("Retry-After", exportRetryAfter)
		c.Status(http.StatusAccepted)
	case exportFailed:
		status := job.FailStatus
		if status < 400 {
			status = http.StatusInternalServerError
		}
		code := "exception"
		switch status {
		case http.StatusForbidden:
			code = "forbidden"
		case http.StatusConflict:
			code = "conflict"
		}
		s.writeOutcome(c, status, fhir.Issue{Severity: "error", Code: code, Diagnostics: "the export failed: " + job.Failure})
	default:
		s.writeManifest(c, job)
	}
}

// writeManifest answers a finished job's manifest.
func (s *Server) writeManifest(c *gin.Context, job *exportJob) {
	type file struct {
		Type  string `json:"type"`
		URL   string `json:"url"`
		Count int    `json:"count"`
	}
	files := func(outs []exportOutput) []file {
		out := []file{}
		for _, o := range outs {
			out = append(out, file{Type: o.Type, URL: s.base(c) + exportFilePath + job.ID + "/" + strconv.Itoa(o.N), Count: o.Count})
		}
		return out
	}
	m := struct {
		TransactionTime     string `json:"transactionTime"`
		Request             string `json:"request"`
		RequiresAccessToken bool   `json:"requiresAccessToken"`
		Output              []file `json:"output"`
		Error               []file `json:"error"`
	}{job.TxTime.UTC().Format(fhir.InstantFormat), job.Request, true, files(job.Output), files(job.Errors)}
	body, err := json.Marshal(m)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Expires", job.Expires.UTC().Format(http.TimeFormat))
	c.Data(http.StatusOK, "application/json; charset=utf-8", body)
}

// exportCancel serves DELETE /fhir/$export-status/{job}: the job stops and
// its files and record are removed.
func (s *Server) exportCancel(c *gin.Context) {
	accessOf(c).action = "D"
	job, _, ok := s.ownJob(c)
	if !ok {
		return
	}
	if t := s.exports.task(job.ID); t != nil {
		t.cancel()
		if !t.started.Load() {
			s.exports.release(t) // still queued: its worker will skip it
		}
		select { // a running job's worker removes what it wrote
		case <-t.released:
		case <-time.After(30 * time.Second):
		}
	}
	if err := s.removeJob(plainContext(c), job.ID); err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrDeleted) {
		s.fail(c, err)
		return
	}
	s.writeOutcome(c, http.StatusAccepted, fhir.Issue{Severity: "information", Code: "informational", Diagnostics: "export " + job.ID + " cancelled; its files are removed"})
}

// exportFile serves GET /fhir/$export-file/{job}/{n}: one ndjson file, to
// the caller who started the job. The AuditEvent is recorded before the
// first byte goes out; the file then streams from blob storage without
// being held in memory. A download is an access of its own: the token must
// still allow searching the file's type, and the consent is decided again
// under the request's access mode. When a patient's decision changed since
// the job ran (consentChanged), every line is decided again as a read would
// be; a resource given a label since (a mask), which covers its older
// versions too, is decided on its current version (relabelled).
func (s *Server) exportFile(c *gin.Context) {
	job, _, ok := s.ownJob(c)
	if !ok {
		return
	}
	n, err := strconv.Atoi(c.Param("file"))
	out, found := job.file(n)
	if err != nil || job.Status != exportDone || !found {
		s.writeOutcome(c, http.StatusNotFound, fhir.Issue{Severity: "error", Code: "not-found", Diagnostics: "export " + job.ID + " has no file " + strconv.Quote(c.Param("file"))})
		return
	}
	a := accessOf(c)
	a.action = "R"
	if out.Type != "OperationOutcome" && !s.allow(c, out.Type, auth.OpSearch, "operation") {
		return
	}
	recheck, err := s.consentChanged(c, job)
	if err != nil {
		s.fail(c, err)
		return
	}
	var current map[string]*store.Resource
	if out.Type != "OperationOutcome" && !s.auth.Unrestricted {
		if current, err = s.relabelled(c, job, out.Type); err != nil {
			s.fail(c, err)
			return
		}
	}
	// The request's deadline bounds its store work, not the time the client
	// takes to receive the file: the reading goes on without it.
	rc, size, err := s.store.Blobs().Get(context.WithoutCancel(plainContext(c)), out.Blob)
	if err != nil {
		s.fail(c, err)
		return
	}
	defer rc.Close()
	if err := s.auditBeforeStreaming(c); err != nil {
		s.fail(c, err)
		return
	}
	if recheck == nil && len(current) == 0 || out.Type == "OperationOutcome" {
		c.DataFromReader(http.StatusOK, size, ndjson, rc, nil)
		return
	}
	// With the consent unchanged, only the lines changed since the job ran
	// are decided again; the others were decided under that consent.
	decideAll := recheck != nil
	if recheck == nil {
		recheck = s.decideAgain(c, job)
	}
	c.Header("Content-Type", ndjson)
	c.Status(http.StatusOK)
	br := bufio.NewReaderSize(rc, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			var head struct {
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
			}
			if json.Unmarshal(line, &head) == nil {
				cur := current[head.ID]
				ok, derr := true, error(nil)
				if decideAll || cur != nil {
					ok, _, derr = s.mayRead(recheck, &store.Resource{Type: head.ResourceType, ID: head.ID, Body: line})
				}
				if ok && derr == nil && cur != nil {
					// As for a vread: the version exported must be readable,
					// and so must the current one, whose labels (a mask put
					// on since) cover the older versions too.
					ok, _, derr = s.mayRead(recheck, cur)
				}
				if derr == nil && ok {
					if _, werr := c.Writer.Write(line); werr != nil {
						return
					}
				}
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				s.log.Error("export: reading a file", "job", job.ID, "err", err)
			}
			return
		}
	}
}

// consentChanged decides again, for the caller of a download, the access to
// each patient whose record went into the job. Nil when every decision is
// what it was when the job ran (the file is sent as it is); otherwise a
// context whose access decides each line again (mayRead).
func (s *Server) consentChanged(c *gin.Context, job *exportJob) (context.Context, error) {
	if s.auth.Unrestricted || len(job.Exported) == 0 {
		return nil, nil
	}
	ctx := s.decideAgain(c, job)
	fa := accessOf(ctx)
	masked, invisible := map[string]bool{}, map[string]bool{}
	for _, p := range job.Masked {
		masked[p] = true
	}
	for _, p := range job.Invisible {
		invisible[p] = true
	}
	changed := false
	for _, p := range job.Exported {
		v, err := s.verdict(ctx, fa, p)
		if err != nil {
			return nil, err
		}
		if !v.Allow || masked[p] && !v.SeeMasked || invisible[p] && v.HideFromPatient {
			changed = true
		}
	}
	if !changed {
		return nil, nil
	}
	return ctx, nil
}

// decideAgain is a context whose access decides reads for the caller of a
// download under the request's own access mode and reason (an emergency
// access is asserted again, not inherited from the job), apart from the
// request's access so that the lines decided are not each named in its
// AuditEvent.
func (s *Server) decideAgain(c *gin.Context, job *exportJob) context.Context {
	a := accessOf(c)
	fa := &access{caller: a.caller, mode: a.mode, reason: a.reason, verdict: map[string]auth.Verdict{}}
	return context.WithValue(plainContext(c), accessKey{}, fa)
}

// relabelled returns the current version of each resource of typ in the
// job's patients' records changed since the job ran, by id: a label put on
// since (a mask, hidden from the patient) covers the version in the file
// too, as it does for vread.
func (s *Server) relabelled(c *gin.Context, job *exportJob, typ string) (map[string]*store.Resource, error) {
	rt, ok := fhir.LookupType(typ)
	if !ok || len(rt.PatientCompartment) == 0 || len(job.Exported) == 0 {
		return nil, nil
	}
	since := float64(job.TxTime.UnixMilli())
	changed := store.Clause{Any: []store.Condition{{Kind: store.KindLastUpdated, Range: store.Interval{LowAtLeast: &since}}}}
	current := map[string]*store.Resource{}
	// A few patients a query: each names the patient once per compartment
	// parameter, and SQLite bounds an expression's depth.
	for patients := range slices.Chunk(job.Exported, relabelChunk) {
		var scope store.Clause
		for _, p := range patients {
			clause, _ := compartmentClause(typ, p)
			scope.Any = append(scope.Any, clause.Any...)
		}
		q := store.Query{Type: typ, Count: maxPageSize, Where: []store.Clause{scope, changed}}
		for {
			page, err := s.store.Search(plainContext(c), q)
			if err != nil {
				return nil, err
			}
			for _, r := range page.Resources {
				current[r.ID] = r
			}
			if page.Next == "" {
				break
			}
			q.After = page.Next
		}
	}
	return current, nil
}

// relabelChunk is how many patients one query of relabelled names.
const relabelChunk = 40

// auditBeforeStreaming records the request's AuditEvent now, and lets the
// handler write its answer straight to the client: audited would otherwise
// hold the whole answer in memory until the request ends.
func (s *Server) auditBeforeStreaming(c *gin.Context) error {
	a := accessOf(c)
	bw, ok := c.Writer.(*bufferedWriter)
	if s.auth.Unrestricted || s.auth.Auditor == nil || !ok {
		return nil
	}
	actx, cancel := auditContext(c)
	defer cancel()
	if err := s.recordAll(actx, append(a.deferred, s.auditEvent(c, a, http.StatusOK))); err != nil {
		return fhir.NewError(http.StatusServiceUnavailable, "transient", "", "the access could not be recorded in the audit trail; retry later")
	}
	a.deferred, a.streamed = nil, true
	c.Writer = bw.ResponseWriter
	return nil
}
