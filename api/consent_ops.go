package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/store"
)

func forbidden(rule, msg string) error {
	return fhir.NewError(http.StatusForbidden, "forbidden", "", msg+" ("+rule+")")
}

// mayWrite applies the DMP's feeding rules to a create or update: the
// policy (Consent) changes only through the consent operations, the audit
// trail is append-only, and a patient writes only into their own record.
// Professionals and systems feed a record without the patient's consent
// (DMP rule: consent gates consultation, not feeding).
func (s *Server) mayWrite(c *gin.Context, typ string, body []byte) error {
	a := accessOf(c)
	if a == nil || s.auth.Unrestricted {
		return nil
	}
	switch typ {
	case "Consent":
		return forbidden("consent-operations-only", "a patient's access settings change through the operations $authorize, $revoke, $block, $unblock, $set-treating-doctor, $emergency-preferences and $declare-consent")
	case "AuditEvent":
		if c.Request.Method != http.MethodPost || a.caller.Kind != auth.KindSystem {
			return forbidden("audit-append-only", "the audit trail is written by the server; systems may only append to it")
		}
	}
	if a.caller.Kind == auth.KindPatient {
		r := &store.Resource{Type: typ, ID: c.Param("id"), Body: body}
		patients, in := patientsOf(r)
		if typ == "Patient" || !in || len(patients) != 1 || patients[0] != a.caller.ID {
			return forbidden(auth.RuleOtherPatient, "a patient may add documents to their own record only")
		}
	}
	if typ == "Patient" {
		return s.checkPatientUpdate(c, c.Param("id"), body)
	}
	return s.checkFeeding(c, a, typ, &store.Resource{Type: typ, ID: c.Param("id"), Body: body})
}

// mayDelete keeps the policy and the audit trail out of reach of DELETE,
// and lets only a resource's author delete it.
func (s *Server) mayDelete(c *gin.Context, typ, id string) error {
	a := accessOf(c)
	if a == nil || s.auth.Unrestricted {
		return nil
	}
	if typ == "Consent" || typ == "AuditEvent" {
		return forbidden("not-deletable", typ+" resources are not deleted through the API")
	}
	return s.mayDeleteAuthored(c, a, typ, id)
}

func (s *Server) refuseOrFail(c *gin.Context, rule string, err error) {
	if err != nil {
		s.fail(c, err)
		return
	}
	s.refuseRead(c, rule)
}

// parameters reads a FHIR Parameters body into name -> string values
// (valueString, valueCode, valueId, valueDateTime, valueIdentifier.value ...).
func parameters(body []byte) (map[string]string, error) {
	if len(strings.TrimSpace(string(body))) == 0 {
		return map[string]string{}, nil
	}
	var p struct {
		ResourceType string `json:"resourceType"`
		Parameter    []map[string]json.RawMessage
	}
	if err := json.Unmarshal(body, &p); err != nil || p.ResourceType != "Parameters" {
		return nil, fhir.Invalid("Parameters", "the body must be a FHIR Parameters resource")
	}
	out := map[string]string{}
	for i, pp := range p.Parameter {
		var name string
		json.Unmarshal(pp["name"], &name)
		for k, v := range pp {
			if !strings.HasPrefix(k, "value") {
				continue
			}
			var str string
			if json.Unmarshal(v, &str) == nil {
				out[name] = str
				continue
			}
			var b bool
			if json.Unmarshal(v, &b) == nil {
				out[name] = strconv.FormatBool(b)
				continue
			}
			var id struct {
				Value string `json:"value"`
			}
			if json.Unmarshal(v, &id) == nil && id.Value != "" {
				out[name] = id.Value
				continue
			}
			return nil, fhir.Invalid("Parameters.parameter["+strconv.Itoa(i)+"]", "parameter "+name+" has a value of an unsupported type")
		}
	}
	return out, nil
}

// instanceOperation serves POST /fhir/{type}/{id}/${operation}.
func (s *Server) instanceOperation(c *gin.Context) {
	op := c.Param("operation")
	typ, id := c.Param("type"), c.Param("id")
	if a := accessOf(c); a != nil {
		a.interaction = "operation"
	}
	if op == "$everything" && typ == "Patient" {
		s.everythingPost(c) // everything.go: its parameters are not all strings
		return
	}
	body, err := s.readOptionalBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	params, err := parameters(body)
	if err != nil {
		s.fail(c, err)
		return
	}
	switch op {
	case "$authorize", "$revoke", "$block", "$unblock", "$set-treating-doctor", "$emergency-preferences", "$declare-consent":
		if typ != "Patient" {
			s.fail(c, fhir.NotFound(op+" is an operation on Patient"))
			return
		}
		s.consentOperation(c, op, id, params)
	case "$dmp-close", "$dmp-reopen", "$change-password":
		if typ != "Patient" {
			s.fail(c, fhir.NotFound(op+" is an operation on Patient"))
			return
		}
		if op == "$change-password" {
			s.changePassword(c, id, params)
		} else {
			s.dmpStatusOperation(c, op, id, params)
		}
	case "$mask", "$unmask", "$hide-from-patient", "$show-to-patient":
		s.labelOperation(c, op, typ, id)
	default:
		s.fail(c, fhir.NotFound("unknown operation "+strconv.Quote(op)+" on "+typ))
	}
}

func (s *Server) readOptionalBody(c *gin.Context) ([]byte, error) {
	if c.Request.ContentLength == 0 {
		return nil, nil
	}
	return s.readBody(c)
}

// consentOperation changes a patient's policy: the patient for everything
// but $declare-consent, which a professional calls with the patient in
// front of them (refused if the patient blocked them).
func (s *Server) consentOperation(c *gin.Context, op, patient string, params map[string]string) {
	a := accessOf(c)
	caller := a.caller
	a.touch([]string{patient}, "Consent/"+auth.PolicyID(patient))
	if op == "$declare-consent" {
		if caller.Kind != auth.KindPractitioner {
			s.fail(c, forbidden("practitioner-only", "$declare-consent is called by a professional"))
			return
		}
	} else if caller.Kind != auth.KindPatient || caller.ID != patient {
		s.fail(c, forbidden(auth.RuleOtherPatient, op+" is called by the patient"))
		return
	}
	practitioner := params["practitioner"]
	needsPractitioner := op != "$emergency-preferences" && op != "$declare-consent"
	if needsPractitioner {
		if err := auth.ValidIDNatPs(practitioner); err != nil {
			s.fail(c, fhir.Invalid("Parameters.parameter.practitioner", "practitioner must be an idNatPs ("+err.Error()+")"))
			return
		}
	}
	var start, end time.Time
	for name, t := range map[string]*time.Time{"start": &start, "end": &end} {
		if v := params[name]; v != "" {
			parsed, err := time.Parse(time.RFC3339, v)
			if err != nil {
				if d, err2 := time.Parse("2006-01-02", v); err2 == nil {
					parsed = d
				} else {
					s.fail(c, fhir.Invalid("Parameters.parameter."+name, name+" must be a date or dateTime"))
					return
				}
			}
			*t = parsed
		}
	}
	var prefs map[string]bool
	if op == "$emergency-preferences" {
		prefs = map[string]bool{}
		for _, k := range []string{"ETREAT", "BTG", "MASKED"} {
			switch params[k] {
			case "":
			case "permit":
				prefs[k] = true
			case "deny":
				prefs[k] = false
			default:
				s.fail(c, fhir.Invalid("Parameters.parameter."+k, k+" must be permit or deny"))
				return
			}
		}
	}
	policy, err := s.updatePolicy(c, patient, func(p *auth.Policy) error {
		switch op {
		case "$authorize":
			p.Authorize(practitioner, start, end)
		case "$revoke":
			p.Revoke(practitioner)
		case "$block":
			p.Block(practitioner)
		case "$unblock":
			p.Unblock(practitioner)
		case "$set-treating-doctor":
			p.SetTreatingDoctor(practitioner)
		case "$emergency-preferences":
			for k, v := range prefs {
				switch k {
				case "ETREAT":
					p.Emergency.ETREAT = v
				case "BTG":
					p.Emergency.BTG = v
				case "MASKED":
					p.Emergency.MASKED = v
				}
			}
		case "$declare-consent":
			if p.Blocks(caller.ID) {
				return forbidden(auth.RuleBlocked, "the patient blocked this professional")
			}
			p.Authorize(caller.ID, time.Now().UTC().Truncate(time.Second), time.Time{})
		}
		return nil
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	a.verdict = map[string]auth.Verdict{} // the decision may have changed
	s.writeJSON(c, http.StatusOK, policy)
}

// updatePolicy applies change to a patient's policy with optimistic
// concurrency (If-Match on the Consent's version, retried on a race). A
// patient without a policy has no DMP: 404.
func (s *Server) updatePolicy(ctx context.Context, patient string, change func(*auth.Policy) error) ([]byte, error) {
	if _, err := s.store.Read(ctx, "Patient", patient); err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrDeleted) {
			return nil, fhir.NotFound("no DMP for Patient/" + patient)
		}
		return nil, err
	}
	for attempt := 0; attempt < 10; attempt++ {
		var p *auth.Policy
		var version int64
		cur, err := s.ops(ctx).Read(ctx, "Consent", auth.PolicyID(patient))
		switch {
		case err == nil:
			if p, err = auth.ParsePolicy(cur.Body); err != nil {
				return nil, err
			}
			version = cur.Version
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrDeleted):
			return nil, fhir.NotFound("Patient/" + patient + " has no DMP: it is created with $dmp-create")
		default:
			return nil, err
		}
		if err := change(p); err != nil {
			return nil, err
		}
		r, _, err := s.ops(ctx).Put(ctx, "Consent", auth.PolicyID(patient), p.Resource(), version)
		if errors.Is(err, store.ErrVersionMismatch) || errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return r.Body, nil
	}
	return nil, store.ErrConflict
}

// labelOperation masks or unmasks a document from professionals
// (MASQUE_PS: the patient or a médecin traitant), or hides it from the
// patient for now (INVISIBLE_PATIENT: a professional, e.g. its author,
// pending an announcement consultation).
func (s *Server) labelOperation(c *gin.Context, op, typ, id string) {
	a := accessOf(c)
	r, err := s.ops(c).Read(c, typ, id)
	if err != nil {
		s.failRead(c, r, err)
		return
	}
	patients, _ := patientsOf(r)
	a.touch(patients, typ+"/"+id)
	if len(patients) != 1 {
		s.fail(c, fhir.Unprocessable(typ, "only a resource of one patient's record can carry a visibility label"))
		return
	}
	code, on := auth.LabelMasked, op == "$mask"
	switch op {
	case "$mask", "$unmask":
		allowed := a.caller.Kind == auth.KindPatient && a.caller.ID == patients[0]
		if !allowed && a.caller.Kind == auth.KindPractitioner {
			p, _, err := s.policy(c, patients[0])
			if err != nil {
				s.fail(c, err)
				return
			}
			allowed = p != nil && p.IsTreatingDoctor(a.caller.ID)
		}
		if !allowed {
			s.fail(c, forbidden("patient-or-treating-doctor", op+" is for the patient or a médecin traitant"))
			return
		}
	default:
		code, on = auth.LabelInvisiblePatient, op == "$hide-from-patient"
		if a.caller.Kind == auth.KindPatient || a.caller.MissingScope(typ, auth.OpUpdate) != "" {
			s.fail(c, forbidden("professional-only", op+" is for the professionals who feed the record"))
			return
		}
	}
	body, changed, err := fhir.SetSecurityLabel(r.Body, auth.LabelSystem, code, on)
	if err != nil {
		s.fail(c, err)
		return
	}
	if changed {
		if r, _, err = s.ops(c).Put(c, typ, id, body, r.Version); err != nil {
			s.fail(c, err)
			return
		}
	}
	s.versionHeaders(c, r)
	s.writeOutcome(c, http.StatusOK, fhir.Issue{Severity: "information", Code: "informational", Diagnostics: typ + "/" + id + " is at version " + itoa(r.Version)})
}

// accessDecision serves GET /fhir/Patient/{id}/$access-decision: the
// decision for a professional and a mode, and the rule that made it; for
// the patient about anyone, or a professional about themself.
func (s *Server) accessDecision(c *gin.Context) {
	a := accessOf(c)
	patient := c.Param("id")
	a.interaction = "operation"
	a.touch([]string{patient})
	practitioner := c.Query("practitioner")
	mode := c.DefaultQuery("mode", auth.ModeNormal)
	switch {
	case a.caller.Kind == auth.KindPatient && a.caller.ID == patient:
	case a.caller.Kind == auth.KindPractitioner && (practitioner == "" || practitioner == a.caller.ID):
		practitioner = a.caller.ID
	default:
		s.fail(c, forbidden("self-only", "the patient, or a professional about themself"))
		return
	}
	if err := auth.ValidIDNatPs(practitioner); err != nil {
		s.fail(c, fhir.Invalid("practitioner", "practitioner must be an idNatPs"))
		return
	}
	policy, active, err := s.policy(c, patient)
	if err != nil {
		s.fail(c, err)
		return
	}
	subject := &auth.Caller{Kind: auth.KindPractitioner, ID: practitioner}
	if a.caller.Kind == auth.KindPractitioner {
		subject = a.caller
	}
	v := auth.Decide(auth.Request{Caller: subject, Mode: mode, Reason: c.Query("reason"), Now: time.Now()}, policy, active)
	decision := "deny"
	if v.Allow {
		decision = "permit"
	}
	out := map[string]any{"resourceType": "Parameters", "parameter": []map[string]any{
		{"name": "decision", "valueCode": decision},
		{"name": "rule", "valueCode": v.Rule},
		{"name": "seeMasked", "valueBoolean": v.SeeMasked},
		{"name": "authorizationStatus", "valueCode": auth.AuthorizationStatus(policy, practitioner, time.Now())},
	}}
	b, _ := json.Marshal(out)
	s.writeJSON(c, http.StatusOK, b)
}
