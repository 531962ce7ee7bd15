package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// Auth is the access machinery: who is asking (Verifier), what they may
// see (the consent decision of package auth), and the trace of every
// access (Auditor, Notifier).
type Auth struct {
	Verifier *auth.Verifier
	Auditor  *auth.Auditor
	Notifier auth.Notifier
	// Key signs the tokens of POST /auth/token; Clients are the registered
	// system clients of the client_credentials grant.
	Key      *auth.SigningKey
	Clients  *auth.Clients
	TokenTTL time.Duration
	// Issuer and Audience go into the tokens the server issues.
	Issuer, Audience string
	// Habilitations is the profession x document type matrix; nil: the
	// embedded default (auth/data/habilitations.json).
	Habilitations *auth.Habilitations
	// Unrestricted turns the consent decision and the audit off, leaving
	// authentication and scopes on. For benchmarks that measure their cost
	// and for tests of the REST mechanics only: no configuration of the
	// server sets it.
	Unrestricted bool
}

// access is what the access layer knows of one request: the caller, the
// mode, and what the audit will say.
type access struct {
	caller  *auth.Caller
	mode    string
	reason  string
	verdict map[string]auth.Verdict // per patient id, decided once per request
	// dmps caches, per patient id, the state of the DMP the request's
	// writes feed (a Bundle's entries share their Bundle's).
	dmps map[string]dmpState

	interaction string
	action      string
	refused     string // the rule that refused the request
	patients    []string
	resources   []string
	// written is the version a Bundle entry's write made, with the index
	// values its Bundle extracted ahead (entryIndex), for the audit.
	written *writtenVersion

	// parent is the access of the Bundle an entry belongs to; the entry's
	// AuditEvent waits in the parent's deferred list and is recorded with
	// the Bundle's once the Bundle is processed (an entry of a transaction
	// cannot wait for the audit writer while its transaction holds the
	// store's write lock).
	parent   *access
	deferred []auth.Access
	// streamed: the handler recorded the request's AuditEvent itself and
	// wrote its answer straight to the client (an export file, too large to
	// hold in memory: auditBeforeStreaming).
	streamed bool
}

type writtenVersion struct {
	typ, id string
	version int64
	ix      fhir.Index
}

type accessKey struct{}

// accessOf returns the request's access record.
func accessOf(c context.Context) *access {
	if a, ok := c.Value(accessKey{}).(*access); ok {
		return a
	}
	return nil
}

func (a *access) touch(patients []string, resources ...string) {
	if a == nil {
		return
	}
	for _, p := range patients {
		if !contains(a.patients, p) {
			a.patients = append(a.patients, p)
		}
	}
	a.resources = append(a.resources, resources...)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// bufferedWriter holds a response until the access is audited: nothing
// leaves before its AuditEvent is durable.
type bufferedWriter struct {
	gin.ResponseWriter
	buf    bytes.Buffer
	status int
}

func (w *bufferedWriter) Write(b []byte) (int, error)       { return w.buf.Write(b) }
func (w *bufferedWriter) WriteString(s string) (int, error) { return w.buf.WriteString(s) }
func (w *bufferedWriter) WriteHeader(code int)              { w.status = code }
func (w *bufferedWriter) WriteHeaderNow()                   {}
func (w *bufferedWriter) Status() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}
func (w *bufferedWriter) Size() int     { return w.buf.Len() }
func (w *bufferedWriter) Written() bool { return w.status != 0 || w.buf.Len() > 0 }

// authenticate identifies the caller of every /fhir request but the
// metadata, audits it once it is answered, and only then lets the answer
// go. Entries of a Bundle come with their Bundle's access already set.
func (s *Server) authenticate(c *gin.Context) {
	if parent := accessOf(c.Request.Context()); parent != nil {
		if parent.dmps == nil {
			parent.dmps = map[string]dmpState{}
		}
		a := &access{caller: parent.caller, mode: parent.mode, reason: parent.reason, verdict: parent.verdict, dmps: parent.dmps, parent: parent}
		c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), accessKey{}, a))
		c.Next()
		if !s.auth.Unrestricted && s.auth.Auditor != nil {
			parent.deferred = append(parent.deferred, s.auditEvent(c, a, c.Writer.Status()))
		}
		return
	}
	a := &access{}
	c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), accessKey{}, a))
	raw, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !ok || strings.TrimSpace(raw) == "" {
		s.refuseUnauthenticated(c, a, "this server needs a bearer token (Authorization: Bearer ...)")
		return
	}
	if s.auth.Verifier == nil {
		s.refuseUnauthenticated(c, a, "this server has no token verifier configured")
		return
	}
	caller, err := s.auth.Verifier.Verify(c, strings.TrimSpace(raw))
	if err != nil {
		msg := "the bearer token was refused"
		if errors.Is(err, auth.ErrUnauthenticated) {
			msg = err.Error()
		}
		s.refuseUnauthenticated(c, a, msg)
		return
	}
	a.caller = caller
	a.mode, a.reason = caller.AccessMode, caller.AccessReason
	if m := c.GetHeader("X-Access-Mode"); m != "" {
		a.mode = m
	}
	if r := c.GetHeader("X-Access-Reason"); r != "" {
		a.reason = r
	}
	a.verdict = map[string]auth.Verdict{}
	s.audited(c, a)
}

func (s *Server) refuseUnauthenticated(c *gin.Context, a *access, msg string) {
	a.refused = "unauthenticated"
	s.audited(c, a, func() {
		c.Header("WWW-Authenticate", `Bearer realm="dmp-fhir", error="invalid_token"`)
		s.abortOutcome(c, http.StatusUnauthorized, "login", "", msg)
	})
}

// audited runs the rest of the chain (or the given refusal) with the
// response held back, records the AuditEvent, then sends the response: 503
// instead when the access could not be audited.
func (s *Server) audited(c *gin.Context, a *access, refusal ...func()) {
	if s.auth.Unrestricted || s.auth.Auditor == nil {
		if len(refusal) > 0 {
			refusal[0]()
		} else {
			c.Next()
		}
		return
	}
	orig := c.Writer
	bw := &bufferedWriter{ResponseWriter: orig}
	c.Writer = bw
	if len(refusal) > 0 {
		refusal[0]()
	} else {
		c.Next()
	}
	c.Writer = orig
	if a.streamed {
		return
	}
	status := bw.Status()
	actx, cancel := auditContext(c)
	defer cancel()
	if err := s.recordAll(actx, append(coalesce(a.deferred), s.auditEvent(c, a, status))); err != nil {
		s.log.Error("audit failed: answer withheld", "route", c.FullPath(), "err", err)
		for k := range orig.Header() {
			orig.Header().Del(k)
		}
		s.writeOutcome(c, http.StatusServiceUnavailable, fhir.Issue{Code: "transient", Diagnostics: "the access could not be recorded in the audit trail; retry later"})
		return
	}
	orig.WriteHeader(status)
	orig.Write(bw.buf.Bytes())
}

// coalesce merges the AuditEvents of a Bundle's entries that differ only by
// the resources they name: one event per patient (and outcome, action,
// interaction...) listing the entries' resources, as auth.Access allows,
// instead of one per entry, which cost as much as the entry itself (a
// 700-entry record made 700 AuditEvents). Every entry stays audited: its
// patients are the event's, its resource is listed (or counted past the
// auditor's MaxResources).
func coalesce(events []auth.Access) []auth.Access {
	if len(events) < 2 {
		return events
	}
	var out []auth.Access
	at := map[string]int{}
	for _, ev := range events {
		k := auditKey(ev)
		if i, ok := at[k]; ok {
			out[i].Resources = append(out[i].Resources, ev.Resources...)
			continue
		}
		at[k] = len(out)
		ev.Resources = append([]string(nil), ev.Resources...)
		out = append(out, ev)
	}
	return out
}

// auditKey is what two events must share to be one: everything but their
// resources.
func auditKey(ev auth.Access) string {
	patients := append([]string(nil), ev.PatientIDs...)
	sort.Strings(patients)
	return strings.Join([]string{ev.Time.String(), ev.Action, ev.Interaction, ev.Outcome, ev.OutcomeDesc,
		ev.CallerKind, ev.CallerID, ev.CallerName, ev.Organization, ev.AccessMode, ev.Reason,
		strings.Join(patients, ","), ev.Query, ev.SourceAddr, ev.RequestID}, "\x00")
}

// recordAll records the events of a request (a Bundle's with its entries')
// at once, so that the audit writer's group commit takes them together.
func (s *Server) recordAll(ctx context.Context, events []auth.Access) error {
	if len(events) == 1 {
		return s.auth.Auditor.Record(ctx, events[0])
	}
	errs := make(chan error, len(events))
	for _, ev := range events {
		go func(ev auth.Access) { errs <- s.auth.Auditor.Record(ctx, ev) }(ev)
	}
	var first error
	for range events {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (s *Server) auditEvent(c *gin.Context, a *access, status int) auth.Access {
	ev := auth.Access{
		Action:      a.action,
		Interaction: a.interaction,
		OutcomeDesc: a.refused,
		AccessMode:  a.mode,
		Reason:      a.reason,
		PatientIDs:  a.patients,
		Resources:   a.resources,
		Query:       c.Request.URL.RawQuery,
		SourceAddr:  c.ClientIP(),
		RequestID:   c.GetHeader("X-Request-Id"),
		CallerKind:  auth.AuditCallerAnonymous,
	}
	if ev.Action == "" {
		ev.Action = actionOf(c.Request.Method)
	}
	if ev.Interaction == "" {
		ev.Interaction = "operation"
	}
	switch {
	case status >= 500:
		ev.Outcome = auth.AuditSeriousFailure
	case status >= 400:
		ev.Outcome = auth.AuditMinorFailure
	default:
		ev.Outcome = auth.AuditSuccess
	}
	setCaller(&ev, a.caller)
	return ev
}

// setCaller names the caller in ev (anonymous when nil); an access mode
// and its reason are a professional's only.
func setCaller(ev *auth.Access, c *auth.Caller) {
	if c != nil {
		ev.CallerKind, ev.CallerID, ev.CallerName, ev.Organization = string(c.Kind), c.ID, c.Name, c.Organization
	}
	if ev.CallerKind != auth.AuditCallerPractitioner {
		ev.AccessMode, ev.Reason = "", ""
	}
}

func actionOf(method string) string {
	switch method {
	case http.MethodPost:
		return "C"
	case http.MethodPut, http.MethodPatch:
		return "U"
	case http.MethodDelete:
		return "D"
	}
	return "R"
}

// allow checks the caller's scopes for an interaction on a type and notes
// the interaction for the audit; false means the 403 was written.
func (s *Server) allow(c *gin.Context, typ string, op auth.Interaction, interaction string) bool {
	a := accessOf(c)
	if a == nil {
		return true
	}
	a.interaction = interaction
	if missing := a.caller.MissingScope(typ, op); missing != "" {
		a.refused = "scope"
		s.writeOutcome(c, http.StatusForbidden, fhir.Issue{Code: "forbidden", Diagnostics: "the token's scopes do not allow " + op.String() + " on " + typ + ": it needs " + missing})
		return false
	}
	return true
}

// patientOnlyTypes hold the patient's own settings and trace: only the
// patient reads them through the API.
var patientOnlyTypes = map[string]bool{"Consent": true, "AuditEvent": true}

// patientsOf returns the patients whose record the resource belongs to:
// the Patient itself, or the targets of its patient compartment
// parameters. known is false for a type outside the compartment.
func patientsOf(r *store.Resource) (patients []string, inCompartment bool) {
	return patientsIn(r, accessIndex().Extract(r.Body))
}

// accessIndex extracts what a consent decision reads of a resource: its
// patient compartment references, its security labels and (for the
// habilitations) a document's type. A read costs a third less than with
// the full index. Built on first use (it compiles FHIRPath expressions).
var accessIndex = sync.OnceValue(func() *fhir.IndexSubset {
	return fhir.NewIndexSubset(func(typ, param string) bool {
		rt, _ := fhir.LookupType(typ)
		return param == "_security" || contains(rt.PatientCompartment, param) ||
			typ == "DocumentReference" && param == "type"
	})
})

// patientsIn is patientsOf with the resource's index values already extracted.
func patientsIn(r *store.Resource, ix fhir.Index) (patients []string, inCompartment bool) {
	if r.Type == "Patient" {
		return []string{r.ID}, true
	}
	rt, _ := fhir.LookupType(r.Type)
	if len(rt.PatientCompartment) == 0 {
		return nil, false
	}
	for _, ref := range ix.References {
		if ref.Type == "Patient" && ref.ID != "" && contains(rt.PatientCompartment, ref.Param) && !contains(patients, ref.ID) {
			patients = append(patients, ref.ID)
		}
	}
	return patients, true
}

// verdict decides, once per request, the caller's access to a patient's record.
func (s *Server) verdict(ctx context.Context, a *access, patient string) (auth.Verdict, error) {
	if v, ok := a.verdict[patient]; ok {
		return v, nil
	}
	policy, active, err := s.policy(ctx, patient)
	if err != nil {
		return auth.Verdict{}, err
	}
	v := auth.Decide(auth.Request{Caller: a.caller, Mode: a.mode, Reason: a.reason, Now: time.Now()}, policy, active)
	a.verdict[patient] = v
	s.metrics.Consent(v.Allow, v.Rule)
	if v.Allow && a.caller.Kind == auth.KindPractitioner {
		s.notifyAccess(ctx, a, patient, v)
	}
	return v, nil
}

// notifyAccess tells the patient of every emergency access and of a
// professional's first access to their record. A failed notification is
// logged, not fatal: the access itself is in the audit trail.
func (s *Server) notifyAccess(ctx context.Context, a *access, patient string, v auth.Verdict) {
	if s.auth.Notifier == nil {
		return
	}
	who := a.caller.ID
	if a.caller.Name != "" {
		who = a.caller.Name + " (" + a.caller.ID + ")"
	}
	var n *auth.Notification
	switch {
	case v.Emergency:
		n = &auth.Notification{Kind: auth.NotifyEmergencyAccess, Subject: "Accès d'urgence à votre DMP",
			Body: "Le professionnel " + who + " a consulté votre DMP en mode " + a.mode + "."}
	case s.firstAccess(ctx, patient, a.caller.ID):
		n = &auth.Notification{Kind: auth.NotifyFirstAccess, Subject: "Premier accès d'un professionnel à votre DMP",
			Body: "Le professionnel " + who + " a consulté votre DMP pour la première fois."}
	default:
		return
	}
	n.To, n.Patient, n.Time = s.contactOf(ctx, patient), patient, time.Now().UTC()
	if err := s.auth.Notifier.Notify(ctx, *n); err != nil {
		s.log.Error("notifying a patient", "kind", n.Kind, "err", err)
	}
}

// firstAccess reports whether this is the professional's first allowed
// consultation of the patient's record: nothing in this process's memory
// and no successful read in the audit trail (feeding does not count).
func (s *Server) firstAccess(ctx context.Context, patient, idnps string) bool {
	key := patient + "|" + idnps
	if _, seen := s.seenAccess.LoadOrStore(key, true); seen {
		return false
	}
	if s.auth.Auditor != nil && s.auth.Auditor.Materialize(ctx) != nil {
		return false // unsure: no notification rather than a wrong one
	}
	// One match is enough: counting them all cost seconds on a large trace.
	page, err := s.store.Search(ctx, store.Query{Type: "AuditEvent", Count: 1, Where: []store.Clause{
		{Any: []store.Condition{{Param: "patient", Kind: store.KindReference, RefType: "Patient", RefID: patient}}},
		{Any: []store.Condition{{Param: "altid", Kind: store.KindToken, Code: idnps, AnySystem: true}}},
		{Any: []store.Condition{{Param: "outcome", Kind: store.KindToken, Code: auth.AuditSuccess, AnySystem: true}}},
		{Any: []store.Condition{{Param: "action", Kind: store.KindToken, Code: "R", AnySystem: true}}},
	}})
	return err == nil && len(page.Resources) == 0
}

// policy reads a patient's policy and whether their DMP is active (a
// Patient with active=false is a closed DMP); nil when there is none. The
// policy is shared (policyCache): the caller must not change it.
func (s *Server) policy(ctx context.Context, patient string) (*auth.Policy, bool, error) {
	// The write counts are taken before the reads: a write committed
	// meanwhile moves them after these reads, so its entry is never used.
	pc, pExact := s.store.WriteCount("Patient")
	cc, cExact := s.store.WriteCount("Consent")
	counts := policyCounts{patient: pc, consent: cc, exact: pExact && cExact}
	if counts.exact {
		if e, ok := s.policies.get(patient); ok && e.counts == counts {
			return e.policy, e.active, nil
		}
	}
	pr, err := s.store.Read(ctx, "Patient", patient)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrDeleted) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	cr, err := s.store.Read(ctx, "Consent", auth.PolicyID(patient))
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrDeleted) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	key := policyKey{patientVersion: pr.Version, consentVersion: cr.Version}
	if e, ok := s.policies.get(patient); ok && e.key == key {
		e.counts = counts
		s.policies.put(patient, e)
		return e.policy, e.active, nil
	}
	p, err := auth.ParsePolicy(cr.Body)
	if err != nil {
		return nil, false, err
	}
	var patientActive struct {
		Active *bool `json:"active"`
	}
	if err := json.Unmarshal(pr.Body, &patientActive); err != nil {
		return nil, false, err
	}
	active := patientActive.Active == nil || *patientActive.Active
	s.policies.put(patient, policyEntry{key: key, counts: counts, policy: p, active: active})
	return p, active, nil
}

// policyCache keeps each patient's parsed policy under the versions of the
// Patient and Consent it was read from, and the store's write counts of
// both types when they were read. Where those counts are exact (the
// embedded engine: store.Store.WriteCount), a decision whose counts have
// not moved uses the entry without reading the store: no Patient or
// Consent was written since, by anyone. Elsewhere (MongoDB, which other
// servers write) every decision reads both from the store, and only the
// parsing is saved when the versions are the same. The policies it returns
// are shared: read them, never change them.
type policyCache struct {
	mu sync.Mutex
	m  map[string]policyEntry
}

type policyKey struct{ patientVersion, consentVersion int64 }

// policyCounts are the store's write counts of Patient and Consent before
// an entry was read; exact false never matches a lookup.
type policyCounts struct {
	patient, consent uint64
	exact            bool
}

type policyEntry struct {
	key    policyKey
	counts policyCounts
	policy *auth.Policy
	active bool
}

// policyCacheMax bounds the cache (a few hundred bytes an entry); when it
// is full it starts again empty.
const policyCacheMax = 50_000

func (c *policyCache) get(patient string) (policyEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[patient]
	return e, ok
}

func (c *policyCache) put(patient string, e policyEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= policyCacheMax {
		c.m = make(map[string]policyEntry)
	}
	c.m[patient] = e
}

// securityCodes returns the resource's meta.security codes of the DMP
// visibility system.
func securityCodes(ix fhir.Index) []string {
	var codes []string
	for _, t := range ix.Tokens {
		if t.Param == "_security" && t.System == auth.LabelSystem {
			codes = append(codes, t.Code)
		}
	}
	return codes
}

// mayRead decides whether the caller may see one resource; rule names the
// refusal. Patient-less types (Practitioner, Organization, Medication, ...)
// are open to every authenticated caller.
func (s *Server) mayRead(ctx context.Context, r *store.Resource) (bool, string, error) {
	a := accessOf(ctx)
	if a == nil || s.auth.Unrestricted {
		return true, "", nil
	}
	if r.Type == "Binary" {
		return s.mayReadBinary(ctx, r)
	}
	ix := accessIndex().Extract(r.Body)
	patients, inCompartment := patientsIn(r, ix)
	a.touch(patients, r.Type+"/"+r.ID)
	if patientOnlyTypes[r.Type] && a.caller.Kind != auth.KindPatient {
		return false, auth.RulePatientOnlyType, nil
	}
	if !inCompartment {
		return true, "", nil
	}
	if len(patients) == 0 {
		// In the compartment's types but tied to no patient: only its
		// writers (systems and professionals) may see it.
		if a.caller.Kind == auth.KindPatient {
			return false, auth.RuleNotInRecord, nil
		}
		return true, "", nil
	}
	for _, p := range patients {
		v, err := s.verdict(ctx, a, p)
		if err != nil {
			return false, "", err
		}
		if !v.Allow {
			return false, v.Rule, nil
		}
		if ok, rule := v.VisibleLabels(securityCodes(ix)); !ok {
			return false, rule, nil
		}
	}
	if a.caller.Kind == auth.KindPractitioner && r.Type == "DocumentReference" {
		for _, t := range ix.Tokens {
			if t.Param == "type" && !s.habilitations().Allows(a.caller.Profession, t.Code) {
				return false, auth.RuleHabilitation, nil
			}
		}
	}
	return true, "", nil
}

func (s *Server) habilitations() *auth.Habilitations { return s.auth.Habilitations }

// mayReadBinary follows a Binary's securityContext to the resource it
// belongs to; a Binary with no securityContext is readable by its writers only.
func (s *Server) mayReadBinary(ctx context.Context, r *store.Resource) (bool, string, error) {
	a := accessOf(ctx)
	a.touch(nil, r.Type+"/"+r.ID) // the audit names the Binary, allowed or not
	var bin struct {
		SecurityContext *struct {
			Reference string `json:"reference"`
		} `json:"securityContext"`
	}
	json.Unmarshal(r.Body, &bin)
	if bin.SecurityContext != nil {
		typ, id, ok := strings.Cut(bin.SecurityContext.Reference, "/")
		if !ok || strings.Contains(id, "/") {
			return false, auth.RuleNotAuthorized, nil // a context we cannot follow: deny
		}
		owner, err := s.store.Read(ctx, typ, id)
		if err != nil {
			return false, auth.RuleNotAuthorized, nil
		}
		return s.mayRead(ctx, owner)
	}
	// No securityContext: not tied to a record; its writers may read it.
	if a.caller.Kind == auth.KindPatient {
		return false, auth.RuleNotInRecord, nil
	}
	return true, "", nil
}

// refuseRead answers a refused read: 403 naming the rule (409 on a closed DMP).
func (s *Server) refuseRead(c *gin.Context, rule string) {
	if a := accessOf(c); a != nil {
		a.refused = rule
	}
	if rule == auth.RuleClosed {
		// A closed DMP is a state of the record, not a refusal of this caller.
		s.writeOutcome(c, http.StatusConflict, fhir.Issue{Code: "conflict", Diagnostics: "the patient's DMP is closed: it cannot be consulted until its holder reopens it (" + rule + ")"})
		return
	}
	s.writeOutcome(c, http.StatusForbidden, fhir.Issue{Code: "forbidden", Diagnostics: "access refused by the patient's consent rules: " + rule})
}

// searchScope returns the clauses that restrict a search of typ to what the
// caller may see, or none=true when the caller may see nothing of it. The
// restriction goes inside the store query, so totals and pages are right.
func (s *Server) searchScope(ctx context.Context, typ string, named []string) (clauses []store.Clause, none bool, rule string, err error) {
	a := accessOf(ctx)
	if a == nil || s.auth.Unrestricted {
		return nil, false, "", nil
	}
	if patientOnlyTypes[typ] && a.caller.Kind != auth.KindPatient {
		return nil, true, auth.RulePatientOnlyType, nil
	}
	if typ == "Binary" {
		// A Binary is a patient's document reached through its
		// DocumentReference: read by id, decided on its securityContext.
		return nil, true, "binary-by-reference-only", nil
	}
	rt, _ := fhir.LookupType(typ)
	if len(rt.PatientCompartment) == 0 && typ != "Patient" {
		return nil, false, "", nil
	}
	var candidates []string
	switch {
	case a.caller.Kind == auth.KindPatient:
		candidates = []string{a.caller.ID}
	case a.caller.Kind == auth.KindSystem:
		return nil, true, auth.RuleSystemNoRead, nil
	case len(named) > 0:
		candidates = named
	case a.mode == auth.ModeBrisDeGlace || a.mode == auth.ModeCentre15:
		return nil, true, "emergency-needs-patient", nil
	default:
		if candidates, err = s.patientsAuthorizing(ctx, a.caller.ID); err != nil {
			return nil, false, "", err
		}
	}
	var allowed []string
	hideMasked, hideFromPatient := false, false
	for _, p := range candidates {
		v, err := s.verdict(ctx, a, p)
		if err != nil {
			return nil, false, "", err
		}
		if !v.Allow {
			rule = v.Rule
			continue
		}
		allowed = append(allowed, p)
		hideMasked = hideMasked || !v.SeeMasked
		hideFromPatient = hideFromPatient || v.HideFromPatient
	}
	if len(allowed) == 0 {
		if rule == "" {
			rule = auth.RuleNotAuthorized
		}
		return nil, true, rule, nil
	}
	a.touch(allowed)
	var scope store.Clause
	for _, p := range allowed {
		if typ == "Patient" {
			scope.Any = append(scope.Any, store.Condition{Param: "_id", Kind: store.KindID, Value: p})
			continue
		}
		clause, _ := compartmentClause(typ, p)
		scope.Any = append(scope.Any, clause.Any...)
	}
	clauses = append(clauses, scope)
	if a.caller.Kind == auth.KindPractitioner && typ == "DocumentReference" {
		for _, code := range s.habilitations().Denied(a.caller.Profession) {
			clauses = append(clauses, store.Clause{Any: []store.Condition{{Param: "type", Kind: store.KindToken, Code: code, AnySystem: true, Not: true}}})
		}
	}
	for code, hide := range map[string]bool{auth.LabelMasked: hideMasked, auth.LabelInvisiblePatient: hideFromPatient} {
		if hide {
			clauses = append(clauses, store.Clause{Any: []store.Condition{{Param: "_security", Kind: store.KindToken, System: auth.LabelSystem, Code: code, Not: true}}})
		}
	}
	return clauses, false, "", nil
}

// patientsAuthorizing lists the patients whose policy names the
// professional (authorized, médecin traitant or blocked: the decision sorts
// them out), through the index of the policies' dmp-actor parameter.
func (s *Server) patientsAuthorizing(ctx context.Context, idnps string) ([]string, error) {
	var patients []string
	q := store.Query{Type: "Consent", Count: maxPageSize, Where: []store.Clause{{Any: []store.Condition{{Param: "dmp-actor", Kind: store.KindReference, RefType: "Practitioner", RefID: idnps}}}}}
	for {
		page, err := s.store.Search(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, r := range page.Resources {
			if p, ok := strings.CutPrefix(r.ID, "dmp-"); ok {
				patients = append(patients, p)
			}
		}
		if page.Next == "" {
			return patients, nil
		}
		q.After = page.Next
	}
}

// namedPatients returns the patients a search names explicitly (a
// compartment, or a reference parameter to a Patient), so that the
// decision is made for them only. Naming only picks whom to decide for:
// the scope clause still restricts the results to the allowed records.
func namedPatients(typ string, where []store.Clause) []string {
	rt, _ := fhir.LookupType(typ)
	var out []string
	for _, cl := range where {
		var ids []string
		all := len(cl.Any) > 0
		for _, cond := range cl.Any {
			switch {
			case typ == "Patient" && cond.Kind == store.KindID && !cond.Not:
				ids = append(ids, cond.Value)
			case cond.Kind == store.KindReference && cond.Chain == nil && !cond.Not && cond.Missing == nil &&
				cond.RefID != "" && (cond.RefType == "Patient" || cond.RefType == "" && contains(rt.PatientCompartment, cond.Param)):
				ids = append(ids, cond.RefID)
			default:
				all = false
			}
		}
		if all {
			for _, id := range ids {
				if !contains(out, id) {
					out = append(out, id)
				}
			}
			return out
		}
	}
	return nil
}

// auditVisible makes every access recorded so far visible as AuditEvent
// resources before the trace is read, so that a patient always sees their
// previous requests (the journal writes them to the store in the
// background).
func (s *Server) auditVisible(ctx context.Context, typ string) error {
	if typ != "AuditEvent" || s.auth.Auditor == nil || s.auth.Unrestricted {
		return nil
	}
	return s.auth.Auditor.Materialize(ctx)
}
