package auth

import "time"

// Rules name why a decision went the way it did. A 403 names the rule
// without revealing data; $access-decision explains it.
const (
	RulePatientSelf        = "patient-self"           // the patient reads their own record
	RuleOtherPatient       = "other-patient"          // a patient may not read another patient's record
	RuleBlocked            = "blocked"                // the patient blocked this professional (whatever else holds)
	RuleTreatingDoctor     = "treating-doctor"        // a médecin traitant: everything, masked documents included
	RuleAuthorized         = "authorized"             // the patient authorized this professional
	RuleExpired            = "authorization-expired"  // the authorization ended (status EXPIRE)
	RuleNotAuthorized      = "not-authorized"         // no authorization (status NON_EXISTE)
	RuleCentre15           = "centre-15"              // the SAMU regulator, the patient did not oppose
	RuleBrisDeGlace        = "bris-de-glace"          // break the glass, with a reason, the patient did not oppose
	RuleEmergencyOpposed   = "emergency-opposed"      // the patient opposed this emergency access
	RuleRegulatorRequired  = "regulator-required"     // centre 15 mode by someone not flagged as SAMU regulator
	RuleReasonRequired     = "reason-required"        // bris de glace without a reason
	RuleUnknownMode        = "unknown-access-mode"    // an access mode other than normal, bris_de_glace, centre_15
	RuleSystemNoRead       = "system-no-consultation" // a system client feeds the DMP but does not consult it
	RuleNoPolicy           = "no-dmp"                 // no DMP (no policy) for this patient
	RuleClosed             = "dmp-closed"             // the DMP is closed
	RuleNotInRecord        = "not-patient-data"       // the resource belongs to no patient's record
	RulePatientOnlyType    = "patient-only-type"      // Consent and AuditEvent: the patient only
	RuleMaskedHidden       = "masked"                 // a document the patient masked from professionals
	RuleInvisibleToPatient = "invisible-to-patient"   // a document its author keeps from the patient for now
)

// Verdict is the decision for one caller on one patient's record.
type Verdict struct {
	Allow bool
	Rule  string
	// SeeMasked: documents labelled MASQUE_PS are visible.
	SeeMasked bool
	// HideFromPatient: documents labelled INVISIBLE_PATIENT are hidden.
	HideFromPatient bool
	// Emergency: the access is a centre 15 or bris de glace access (the
	// patient is notified of each).
	Emergency bool
}

// Request is who asks and how.
type Request struct {
	Caller *Caller
	Mode   string // normal | bris_de_glace | centre_15 ("" = normal)
	Reason string
	Now    time.Time
}

// Decide is the decision procedure of DOMAIN.md §4.2 for reading a
// patient's record: the patient sees everything but what is invisible to
// them; a blocked professional is refused whatever else holds; the SAMU
// regulator and bris de glace need the patient's non-opposition (and bris
// de glace a reason); otherwise a médecin traitant or an authorized
// professional. Masked documents: the patient, médecins traitants, and
// emergencies when the patient permits it. Any doubt: deny.
func Decide(r Request, p *Policy, active bool) Verdict {
	deny := func(rule string) Verdict { return Verdict{Rule: rule} }
	c := r.Caller
	if c == nil {
		return deny(RuleNotAuthorized)
	}
	if p == nil {
		return deny(RuleNoPolicy)
	}
	switch c.Kind {
	case KindPatient:
		if c.ID != p.Patient {
			return deny(RuleOtherPatient)
		}
		return Verdict{Allow: true, Rule: RulePatientSelf, SeeMasked: true, HideFromPatient: true}
	case KindSystem:
		return deny(RuleSystemNoRead)
	case KindPractitioner:
	default:
		return deny(RuleNotAuthorized)
	}
	if !active {
		return deny(RuleClosed)
	}
	if p.Blocks(c.ID) {
		return deny(RuleBlocked)
	}
	switch r.Mode {
	case ModeCentre15:
		if !c.Regulator {
			return deny(RuleRegulatorRequired)
		}
		if !p.Emergency.ETREAT {
			return deny(RuleEmergencyOpposed)
		}
		return Verdict{Allow: true, Rule: RuleCentre15, SeeMasked: p.Emergency.MASKED, Emergency: true}
	case ModeBrisDeGlace:
		if r.Reason == "" {
			return deny(RuleReasonRequired)
		}
		if !p.Emergency.BTG {
			return deny(RuleEmergencyOpposed)
		}
		return Verdict{Allow: true, Rule: RuleBrisDeGlace, SeeMasked: p.Emergency.MASKED, Emergency: true}
	case ModeNormal, "":
	default:
		return deny(RuleUnknownMode)
	}
	if p.IsTreatingDoctor(c.ID) {
		return Verdict{Allow: true, Rule: RuleTreatingDoctor, SeeMasked: true}
	}
	if g, ok := p.Grant(c.ID); ok {
		now := r.Now
		if now.IsZero() {
			now = time.Now()
		}
		if (!g.Start.IsZero() && now.Before(g.Start)) || (!g.End.IsZero() && !now.Before(g.End)) {
			return deny(RuleExpired)
		}
		return Verdict{Allow: true, Rule: RuleAuthorized}
	}
	return deny(RuleNotAuthorized)
}

// AuthorizationStatus is the DMP's status of a professional for a patient
// (TD0.2): VALIDE, EXPIRE, INTERDIT or NON_EXISTE.
func AuthorizationStatus(p *Policy, idnps string, now time.Time) string {
	switch v := Decide(Request{Caller: &Caller{Kind: KindPractitioner, ID: idnps}, Now: now}, p, true); {
	case v.Rule == RuleBlocked:
		return "INTERDIT"
	case v.Allow:
		return "VALIDE"
	case v.Rule == RuleExpired:
		return "EXPIRE"
	}
	return "NON_EXISTE"
}

// VisibleLabels says whether a resource with these meta.security codes of
// LabelSystem may be shown under the verdict, and the rule when not.
func (v Verdict) VisibleLabels(codes []string) (bool, string) {
	for _, code := range codes {
		switch {
		case code == LabelMasked && !v.SeeMasked:
			return false, RuleMaskedHidden
		case code == LabelInvisiblePatient && v.HideFromPatient:
			return false, RuleInvisibleToPatient
		}
	}
	return true, ""
}
