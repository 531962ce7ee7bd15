package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/internal/ins"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// The DMP's lifecycle (issue #5, DOMAIN.md §1.1-1.2): creation online with a
// one-time code or at a professional's desk with the patient's agreement,
// the patient's sign-in, closing and reopening.

const (
	// ClosureExtension is the draft PDSm4DMP dmp-fermeture extension of a
	// closed DMP's Patient (date, reason code, free text); the draft gives no
	// canonical URL, so it is dmp-fhir's.
	ClosureExtension     = "https://dmp-fhir.fr/StructureDefinition/dmp-fermeture"
	closureReasonCodes   = "https://mos.esante.gouv.fr/NOS/TRE_R290-MotifFermetureDMP/FHIR/TRE-R290-MotifFermetureDMP"
	frCoreIdentifierType = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
	// Extensions of the TD0.2 answer: the caller's authorization status and
	// whether the caller is one of the patient's médecins traitants.
	AuthorizationStatusExtension = "https://dmp-fhir.fr/StructureDefinition/dmp-authorization-status"
	TreatingDoctorExtension      = "https://dmp-fhir.fr/StructureDefinition/dmp-treating-doctor"
)

// Kinds of notifications of the lifecycle.
const (
	notifyCode     = "dmp-code"
	notifyReopened = "dmp-reopened"
)

// anonymous lets a request through without a token (the online creation
// of a DMP), audited as an anonymous access.
func (s *Server) anonymous(c *gin.Context) {
	a := &access{verdict: map[string]auth.Verdict{}, interaction: "operation"}
	c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), accessKey{}, a))
	s.audited(c, a)
}

// optionalAuthenticate authenticates a request that carries a token and
// lets an anonymous one through (the desk and the online creation share
// $dmp-create).
func (s *Server) optionalAuthenticate(c *gin.Context) {
	if c.GetHeader("Authorization") != "" {
		s.authenticate(c)
		return
	}
	s.anonymous(c)
}

// dmpParams reads the Parameters of a lifecycle operation.
func (s *Server) dmpParams(c *gin.Context) (map[string]string, bool) {
	body, err := s.readOptionalBody(c)
	if err == nil {
		var p map[string]string
		if p, err = parameters(body); err == nil {
			return p, true
		}
	}
	s.fail(c, err)
	return nil, false
}

func paramError(name, msg string) error {
	return fhir.Unprocessable("Parameters.parameter."+name, msg)
}

// insOf reads and checks the INS of the parameters: nir, and system (the
// INS-NIR authority unless told).
func insOf(p map[string]string) (system, value string, err error) {
	system = p["system"]
	if system == "" {
		system = ins.SystemNIR
	}
	if !ins.IsSystem(system) {
		return "", "", paramError("system", "system must be one of the INS authorities ("+ins.SystemNIR+", "+ins.SystemNIA+", "+ins.SystemTest+", "+ins.SystemDemo+")")
	}
	value = strings.ToUpper(strings.ReplaceAll(p["nir"], " ", ""))
	if value == "" {
		return "", "", paramError("nir", "nir is required: the 15-character social-security number (INS matricule)")
	}
	if err := ins.Validate(value); err != nil {
		return "", "", paramError("nir", err.Error())
	}
	return system, value, nil
}

var (
	emailPattern = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
	phonePattern = regexp.MustCompile(`^\+?[0-9][0-9 .-]{7,18}$`)
)

// channelOf returns the address the patient gave (e-mail, else phone).
func channelOf(p map[string]string, required bool) (string, error) {
	email, phone := p["email"], p["phone"]
	switch {
	case email != "":
		if !emailPattern.MatchString(email) {
			return "", paramError("email", "email is not an e-mail address")
		}
		return email, nil
	case phone != "":
		if !phonePattern.MatchString(phone) {
			return "", paramError("phone", "phone is not a phone number")
		}
		return phone, nil
	case required:
		return "", paramError("email", "an email or a phone is required, to send the code to")
	}
	return "", nil
}

func birthDateOf(p map[string]string) (string, error) {
	d := p["birthDate"]
	if _, err := time.Parse("2006-01-02", d); err != nil {
		return "", paramError("birthDate", "birthDate is required, as YYYY-MM-DD")
	}
	return d, nil
}

// dmpRequestCode serves POST /fhir/Patient/$dmp-request-code: a one-time
// code goes to the address given. The answer is the same 202 whatever the
// number, so that nobody learns from it who has a DMP.
func (s *Server) dmpRequestCode(c *gin.Context) {
	p, ok := s.dmpParams(c)
	if !ok {
		return
	}
	system, nir, err := insOf(p)
	if err == nil {
		_, err = birthDateOf(p)
	}
	var to string
	if err == nil {
		to, err = channelOf(p, true)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	if s.auth.Notifier == nil {
		s.writeOutcome(c, http.StatusServiceUnavailable, fhir.Issue{Code: "transient", Diagnostics: "no notifier is configured to send the code"})
		return
	}
	now := time.Now().UTC()
	code, rec, err := auth.NewOneTimeCode(p["birthDate"], now)
	if err != nil {
		s.fail(c, err)
		return
	}
	// A new request replaces the pending code (and its attempts).
	if err := auth.WriteRecord(c, s.store, auth.TypeCode, auth.IdentityKey(system, nir), rec, 0, false); err != nil {
		s.fail(c, err)
		return
	}
	n := auth.Notification{To: to, Kind: notifyCode, Time: now, Subject: "Votre code de création de DMP",
		Body: "Votre code de création de DMP est " + code + ". Il expire dans 15 minutes. Si vous n'avez rien demandé, ignorez ce message."}
	if err := s.auth.Notifier.Notify(c, n); err != nil {
		s.log.Error("sending a DMP creation code", "err", err)
		s.writeOutcome(c, http.StatusServiceUnavailable, fhir.Issue{Code: "transient", Diagnostics: "the code could not be sent; retry later"})
		return
	}
	s.writeOutcome(c, http.StatusAccepted, fhir.Issue{Severity: "information", Code: "informational",
		Diagnostics: "if this number may have a DMP, a one-time code was sent to the address given; it expires in 15 minutes and allows 5 attempts"})
}

// checkCode spends one attempt of the pending code of an INS; the error
// tells the person what to do next.
func (s *Server) checkCode(ctx context.Context, key, code, birthDate string) error {
	for range 5 {
		var rec auth.OneTimeCode
		version, err := auth.ReadRecord(ctx, s.store, auth.TypeCode, key, &rec)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrDeleted) || (err == nil && !time.Now().Before(rec.Expires)) {
			return paramError("code", "no valid code for this number: request one with $dmp-request-code (a code expires after 15 minutes)")
		}
		if err != nil {
			return err
		}
		if rec.Attempts >= auth.MaxCodeAttempts {
			return paramError("code", "too many wrong codes: request a new code with $dmp-request-code")
		}
		if rec.Matches(code) && rec.BirthDate == birthDate {
			return nil
		}
		rec.Attempts++
		err = auth.WriteRecord(ctx, s.store, auth.TypeCode, key, &rec, version, false)
		if errors.Is(err, store.ErrVersionMismatch) || errors.Is(err, store.ErrConflict) {
			continue // another attempt at the same time: count again
		}
		if err != nil {
			return err
		}
		left := auth.MaxCodeAttempts - rec.Attempts
		if left == 0 {
			return paramError("code", "wrong code or birth date; no attempt left: request a new code with $dmp-request-code")
		}
		return paramError("code", "wrong code or birth date; "+strconv.Itoa(left)+" attempt(s) left")
	}
	return store.ErrConflict
}

// dmpCreate serves POST /fhir/Patient/$dmp-create: online with the code
// (no token), or at a desk (a professional's or a system's token) with
// patientConsent=true. It answers 201 with the Patient and the credentials,
// shown this once.
func (s *Server) dmpCreate(c *gin.Context) {
	a := accessOf(c)
	a.interaction, a.action = "operation", "C"
	online := a.caller == nil
	if !online {
		if a.caller.Kind == auth.KindPatient {
			s.fail(c, forbidden("desk-or-online", "a DMP is created online by its holder (no token, with a code) or at a professional's desk"))
			return
		}
		if !s.allow(c, "Patient", auth.OpCreate, "operation") {
			return
		}
	}
	p, ok := s.dmpParams(c)
	if !ok {
		return
	}
	system, nir, err := insOf(p)
	if err != nil {
		s.fail(c, err)
		return
	}
	patient, prefs, to, err := s.newDMPPatient(p, system, nir)
	if err != nil {
		s.fail(c, err)
		return
	}
	key := auth.IdentityKey(system, nir)
	if online {
		if p["code"] == "" {
			s.fail(c, paramError("code", "code is required: the one-time code sent after $dmp-request-code"))
			return
		}
		if err := s.checkCode(c, key, p["code"], p["birthDate"]); err != nil {
			s.fail(c, err)
			return
		}
	} else if p["patientConsent"] != "true" {
		s.fail(c, paramError("patientConsent", "the patient's explicit agreement is required: patientConsent=true once the patient agreed to the creation of their DMP"))
		return
	}

	pid := newID()
	patient, err = withAuthor(patient, authorOf(a.caller, pid))
	if err != nil {
		s.fail(c, err)
		return
	}
	policy := auth.DefaultPolicy(pid)
	policy.Emergency = prefs
	login, password, err := auth.NewCredentials()
	if err != nil {
		s.fail(c, err)
		return
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		s.fail(c, err)
		return
	}
	now := time.Now().UTC()
	var created *store.Resource
	err = s.atomically(c, func(ops store.Ops) error {
		ident := &auth.Identity{ResourceType: auth.TypeIdentity, Patient: pid, Account: login, Created: now}
		err := auth.WriteRecord(c, ops, auth.TypeIdentity, key, ident, 0, true)
		if errors.Is(err, store.ErrExists) {
			// One DMP per INS; an identity whose Patient is missing is what
			// an interrupted creation left on an engine without
			// transactions, and is taken over.
			var old auth.Identity
			version, rerr := auth.ReadRecord(c, ops, auth.TypeIdentity, key, &old)
			if rerr != nil {
				return rerr
			}
			if _, perr := ops.Read(c, "Patient", old.Patient); !errors.Is(perr, store.ErrNotFound) {
				return fhir.NewError(http.StatusConflict, "duplicate", "Parameters.parameter.nir", "a DMP already exists for this INS")
			}
			err = auth.WriteRecord(c, ops, auth.TypeIdentity, key, ident, version, false)
		}
		if err != nil {
			return err
		}
		if created, err = ops.Create(c, "Patient", pid, patient); err != nil {
			return err
		}
		if _, err = ops.Create(c, "Consent", auth.PolicyID(pid), policy.Resource()); err != nil {
			return err
		}
		acct := &auth.Account{ResourceType: auth.TypeAccount, Patient: pid, PasswordHash: hash, Changed: now}
		if err := auth.WriteRecord(c, ops, auth.TypeAccount, login, acct, 0, true); err != nil {
			return err
		}
		if online {
			_, _, err = ops.Delete(c, auth.TypeCode, key, 0) // spent
		}
		return err
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	a.touch([]string{pid}, "Patient/"+pid)
	s.notifyPatient(c, pid, to, auth.NotifyDMPCreated, "Votre DMP a été créé",
		"Votre Dossier Médical Partagé a été créé. Connectez-vous avec l'identifiant et le mot de passe qui vous ont été remis.")
	out, err := dmpCreated(created.Body, login, password)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Location", s.base(c)+"/Patient/"+pid+"/_history/"+strconv.FormatInt(created.Version, 10))
	c.Header("Cache-Control", "no-store")
	s.writeJSON(c, http.StatusCreated, out)
}

// newDMPPatient builds the Patient of a new DMP from the parameters, and
// reads the emergency preferences and the address to notify.
func (s *Server) newDMPPatient(p map[string]string, system, nir string) ([]byte, auth.Emergency, string, error) {
	prefs := auth.Emergency{ETREAT: true, BTG: true, MASKED: true}
	for name, pref := range map[string]*bool{"ETREAT": &prefs.ETREAT, "BTG": &prefs.BTG, "MASKED": &prefs.MASKED} {
		switch p[name] {
		case "", "permit":
		case "deny":
			*pref = false
		default:
			return nil, prefs, "", paramError(name, name+" must be permit or deny")
		}
	}
	birthDate, err := birthDateOf(p)
	if err != nil {
		return nil, prefs, "", err
	}
	family, given := strings.TrimSpace(p["family"]), strings.TrimSpace(p["given"])
	if family == "" {
		return nil, prefs, "", paramError("family", "family (the birth name) is required")
	}
	if given == "" {
		return nil, prefs, "", paramError("given", "given (the first given name) is required")
	}
	gender := p["gender"]
	switch gender {
	case "male", "female", "other", "unknown":
	default:
		return nil, prefs, "", paramError("gender", "gender must be male, female, other or unknown")
	}
	to, err := channelOf(p, false)
	if err != nil {
		return nil, prefs, "", err
	}
	type coding struct {
		System string `json:"system"`
		Code   string `json:"code"`
	}
	type telecom struct {
		System string `json:"system"`
		Value  string `json:"value"`
	}
	pt := map[string]any{
		"resourceType": "Patient",
		"identifier": []any{map[string]any{
			"use":    "official",
			"type":   map[string]any{"coding": []coding{{frCoreIdentifierType, ins.TypeCode[system]}}},
			"system": system, "value": nir,
		}},
		"active":    true,
		"name":      []any{map[string]any{"use": "official", "family": family, "given": strings.Fields(given)}},
		"gender":    gender,
		"birthDate": birthDate,
	}
	var tel []telecom
	if e := p["email"]; e != "" {
		tel = append(tel, telecom{"email", e})
	}
	if ph := p["phone"]; ph != "" {
		tel = append(tel, telecom{"phone", ph})
	}
	if len(tel) > 0 {
		pt["telecom"] = tel
	}
	body, err := fhir.Marshal(pt)
	if err != nil {
		return nil, prefs, "", err
	}
	if err := s.validator.Validate(body); err != nil {
		return nil, prefs, "", err
	}
	return body, prefs, to, nil
}

// dmpCreated is the answer of $dmp-create: the Patient and the credentials.
func dmpCreated(patient []byte, login, password string) ([]byte, error) {
	return json.Marshal(map[string]any{
		"resourceType": "Parameters",
		"parameter": []any{
			map[string]any{"name": "patient", "resource": json.RawMessage(patient)},
			map[string]any{"name": "dmpIdentifier", "valueString": login},
			map[string]any{"name": "password", "valueString": password},
		},
	})
}

// notifyPatient sends a lifecycle message to the address given (else the
// patient's e-mail or phone on record, else their id). A failure is logged:
// the action itself is in the audit trail.
func (s *Server) notifyPatient(ctx context.Context, patient, to, kind, subject, body string) {
	if s.auth.Notifier == nil {
		return
	}
	if to == "" {
		to = s.contactOf(ctx, patient)
	}
	n := auth.Notification{To: to, Patient: patient, Kind: kind, Subject: subject, Body: body, Time: time.Now().UTC()}
	if err := s.auth.Notifier.Notify(ctx, n); err != nil {
		s.log.Error("notifying a patient", "kind", kind, "err", err)
	}
}

// dmpStatusOperation serves $dmp-close and $dmp-reopen: the patient closes
// or reopens their DMP. Data are kept either way.
func (s *Server) dmpStatusOperation(c *gin.Context, op, patient string, p map[string]string) {
	a := accessOf(c)
	a.touch([]string{patient}, "Patient/"+patient)
	a.action = "U"
	if a.caller.Kind != auth.KindPatient || a.caller.ID != patient {
		s.fail(c, forbidden(auth.RuleOtherPatient, op+" is called by the patient"))
		return
	}
	closing := op == "$dmp-close"
	reason := strings.TrimSpace(p["reason"])
	if closing && reason == "" {
		s.fail(c, paramError("reason", "reason is required: why the DMP is closed"))
		return
	}
	now := time.Now().UTC()
	r, err := s.modify(c, "Patient", patient, func(obj fhir.Object) (fhir.Object, error) {
		obj = obj.Set("active", json.RawMessage(strconv.FormatBool(!closing)))
		var exts []json.RawMessage
		if raw := obj.Get("extension"); raw != nil {
			json.Unmarshal(raw, &exts)
		}
		kept := exts[:0]
		for _, e := range exts {
			var x struct{ URL string }
			if json.Unmarshal(e, &x) == nil && x.URL == ClosureExtension {
				continue
			}
			kept = append(kept, e)
		}
		if closing {
			closure, _ := json.Marshal(map[string]any{"url": ClosureExtension, "extension": []any{
				map[string]any{"url": "dateFermeture", "valueDate": now.Format("2006-01-02")},
				map[string]any{"url": "motifFermeture", "valueCoding": map[string]string{"system": closureReasonCodes, "code": "FERMETURE_DEMANDE_PATIENT"}},
				map[string]any{"url": "raisonFermeture", "valueString": reason},
			}})
			kept = append(kept, closure)
		}
		if len(kept) == 0 {
			return obj.Without("extension"), nil
		}
		raw, _ := json.Marshal(kept)
		return obj.Set("extension", raw), nil
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	delete(a.dmps, patient) // later entries of the same Bundle see the new state
	if closing {
		s.notifyPatient(c, patient, "", auth.NotifyDMPClosed, "Votre DMP a été fermé",
			"Votre DMP a été fermé à votre demande. Ses données sont conservées ; vous pouvez le rouvrir.")
	} else {
		s.notifyPatient(c, patient, "", notifyReopened, "Votre DMP a été rouvert", "Votre DMP est de nouveau ouvert.")
	}
	s.writeJSON(c, http.StatusOK, r.Body)
}

// modify applies change to the current version of a resource, with
// optimistic concurrency (retried when another writer came first).
func (s *Server) modify(ctx context.Context, typ, id string, change func(fhir.Object) (fhir.Object, error)) (*store.Resource, error) {
	for range 10 {
		cur, err := s.ops(ctx).Read(ctx, typ, id)
		if err != nil {
			return nil, err
		}
		obj, err := fhir.ParseObject(cur.Body)
		if err != nil {
			return nil, err
		}
		if obj, err = change(obj); err != nil {
			return nil, err
		}
		body, err := obj.MarshalJSON()
		if err != nil {
			return nil, err
		}
		r, _, err := s.ops(ctx).Put(ctx, typ, id, body, cur.Version)
		if errors.Is(err, store.ErrVersionMismatch) || errors.Is(err, store.ErrConflict) {
			continue
		}
		return r, err
	}
	return nil, store.ErrConflict
}

// accountOf finds the sign-in of a patient through their INS.
func (s *Server) accountOf(ctx context.Context, patient string) (string, error) {
	r, err := s.store.Read(ctx, "Patient", patient)
	if err != nil {
		return "", err
	}
	var pt struct {
		Identifier []struct{ System, Value string }
	}
	json.Unmarshal(r.Body, &pt)
	for _, id := range pt.Identifier {
		if !ins.IsSystem(id.System) {
			continue
		}
		var ident auth.Identity
		if _, err := auth.ReadRecord(ctx, s.store, auth.TypeIdentity, auth.IdentityKey(id.System, id.Value), &ident); err == nil && ident.Patient == patient {
			return ident.Account, nil
		}
	}
	return "", fhir.NotFound("Patient/" + patient + " has no DMP account")
}

// signIn checks a DMP identifier and password, counting failures and
// locking the account after MaxPasswordFailures; it returns the patient.
func (s *Server) signIn(ctx context.Context, login, password string) (string, error) {
	for range 5 {
		var acct auth.Account
		var version int64
		var err error
		if fhir.ValidID(login) {
			version, err = auth.ReadRecord(ctx, s.store, auth.TypeAccount, login, &acct)
		} else {
			err = store.ErrNotFound
		}
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrDeleted) {
			auth.CheckPassword("", password) // as long as a wrong password
			return "", auth.ErrNoAccount
		}
		if err != nil {
			return "", err
		}
		now := time.Now()
		if acct.Locked(now) {
			return "", errLocked(acct.LockedUntil)
		}
		if auth.CheckPassword(acct.PasswordHash, password) {
			if acct.Failures > 0 {
				acct.Failures = 0
				if err := auth.WriteRecord(ctx, s.store, auth.TypeAccount, login, &acct, version, false); err != nil && !errors.Is(err, store.ErrVersionMismatch) {
					return "", err
				}
			}
			return acct.Patient, nil
		}
		acct.Failed(now)
		err = auth.WriteRecord(ctx, s.store, auth.TypeAccount, login, &acct, version, false)
		if errors.Is(err, store.ErrVersionMismatch) || errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return "", err
		}
		if acct.Locked(now) {
			return "", errLocked(acct.LockedUntil)
		}
		return "", auth.ErrNoAccount
	}
	return "", store.ErrConflict
}

type lockedError struct{ until time.Time }

func (e lockedError) Error() string {
	return "too many failed sign-ins: the account is locked until " + e.until.UTC().Format(time.RFC3339)
}

func errLocked(until time.Time) error { return lockedError{until} }

// changePassword serves $change-password: the patient, with the current password.
func (s *Server) changePassword(c *gin.Context, patient string, p map[string]string) {
	a := accessOf(c)
	a.touch([]string{patient}, "Patient/"+patient)
	a.action = "U"
	if a.caller.Kind != auth.KindPatient || a.caller.ID != patient {
		s.fail(c, forbidden(auth.RuleOtherPatient, "$change-password is called by the patient"))
		return
	}
	if msg := auth.PasswordProblem(p["newPassword"]); msg != "" {
		s.fail(c, paramError("newPassword", msg))
		return
	}
	login, err := s.accountOf(c, patient)
	if err != nil {
		s.fail(c, err)
		return
	}
	owner, err := s.signIn(c, login, p["currentPassword"])
	var locked lockedError
	switch {
	case errors.As(err, &locked):
		s.fail(c, fhir.NewError(http.StatusForbidden, "security", "Parameters.parameter.currentPassword", locked.Error()))
		return
	case errors.Is(err, auth.ErrNoAccount):
		s.fail(c, fhir.NewError(http.StatusForbidden, "security", "Parameters.parameter.currentPassword", "the current password is wrong"))
		return
	case err != nil:
		s.fail(c, err)
		return
	case owner != patient:
		s.fail(c, forbidden(auth.RuleOtherPatient, "this account is another patient's"))
		return
	}
	hash, err := auth.HashPassword(p["newPassword"])
	if err != nil {
		s.fail(c, err)
		return
	}
	for range 5 {
		var acct auth.Account
		version, err := auth.ReadRecord(c, s.store, auth.TypeAccount, login, &acct)
		if err != nil {
			s.fail(c, err)
			return
		}
		acct.PasswordHash, acct.Failures, acct.Changed = hash, 0, time.Now().UTC()
		err = auth.WriteRecord(c, s.store, auth.TypeAccount, login, &acct, version, false)
		if errors.Is(err, store.ErrVersionMismatch) || errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			s.fail(c, err)
			return
		}
		s.writeOutcome(c, http.StatusOK, fhir.Issue{Severity: "information", Code: "informational", Diagnostics: "the password was changed"})
		return
	}
	s.fail(c, store.ErrConflict)
}

// contactOf is where a patient is reached: the e-mail of their Patient
// resource, else its phone, else their id (which only the outbox can keep).
func (s *Server) contactOf(ctx context.Context, patient string) string {
	r, err := s.store.Read(ctx, "Patient", patient)
	if err != nil {
		return patient
	}
	var p struct {
		Telecom []struct{ System, Value string }
	}
	json.Unmarshal(r.Body, &p)
	for _, want := range []string{"email", "sms", "phone"} {
		for _, t := range p.Telecom {
			if t.System == want && t.Value != "" {
				return t.Value
			}
		}
	}
	return patient
}
