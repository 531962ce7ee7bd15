package auth

import (
	"testing"
	"time"

	"github.com/dmp-fhir/dmp-fhir/fhir"
)

const (
	doctor    = "810001234567" // authorized
	treating  = "810007654321" // médecin traitant
	blocked   = "810009999999"
	stranger  = "810005555555"
	expired   = "810003333333"
	regulator = "810004444444"
)

func policyFor(emergency Emergency) *Policy {
	p := &Policy{Patient: "p1", Emergency: emergency}
	now := time.Now()
	p.Authorize(doctor, now.Add(-time.Hour), time.Time{})
	p.Authorize(expired, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	p.SetTreatingDoctor(treating)
	p.Block(blocked)
	return p
}

func TestDecideFollowsTheDMPRules(t *testing.T) {
	permitAll := Emergency{ETREAT: true, BTG: true, MASKED: true}
	opposed := Emergency{}
	pract := func(id string) *Caller { return &Caller{Kind: KindPractitioner, ID: id, Profession: "10"} }
	reg := &Caller{Kind: KindPractitioner, ID: regulator, Profession: "10", Regulator: true}
	cases := []struct {
		name      string
		caller    *Caller
		mode      string
		reason    string
		emergency Emergency
		active    bool
		allow     bool
		rule      string
		seeMasked bool
	}{
		{"patient reads own record", &Caller{Kind: KindPatient, ID: "p1"}, "", "", permitAll, true, true, RulePatientSelf, true},
		{"patient reads another record", &Caller{Kind: KindPatient, ID: "p2"}, "", "", permitAll, true, false, RuleOtherPatient, false},
		{"system does not consult", &Caller{Kind: KindSystem, ID: "his"}, "", "", permitAll, true, false, RuleSystemNoRead, false},
		{"authorized professional", pract(doctor), "", "", permitAll, true, true, RuleAuthorized, false},
		{"authorized professional, normal mode named", pract(doctor), ModeNormal, "", permitAll, true, true, RuleAuthorized, false},
		{"expired authorization", pract(expired), "", "", permitAll, true, false, RuleExpired, false},
		{"médecin traitant sees masked", pract(treating), "", "", permitAll, true, true, RuleTreatingDoctor, true},
		{"stranger", pract(stranger), "", "", permitAll, true, false, RuleNotAuthorized, false},
		{"blocked, normal", pract(blocked), "", "", permitAll, true, false, RuleBlocked, false},
		{"blocked, bris de glace", pract(blocked), ModeBrisDeGlace, "coma", permitAll, true, false, RuleBlocked, false},
		{"blocked regulator, centre 15", &Caller{Kind: KindPractitioner, ID: blocked, Regulator: true}, ModeCentre15, "", permitAll, true, false, RuleBlocked, false},
		{"bris de glace with reason", pract(stranger), ModeBrisDeGlace, "unconscious", permitAll, true, true, RuleBrisDeGlace, true},
		{"bris de glace without reason", pract(stranger), ModeBrisDeGlace, "", permitAll, true, false, RuleReasonRequired, false},
		{"bris de glace, patient opposed", pract(stranger), ModeBrisDeGlace, "unconscious", opposed, true, false, RuleEmergencyOpposed, false},
		{"bris de glace, masked denied", pract(stranger), ModeBrisDeGlace, "unconscious", Emergency{BTG: true}, true, true, RuleBrisDeGlace, false},
		{"centre 15 regulator", reg, ModeCentre15, "", permitAll, true, true, RuleCentre15, true},
		{"centre 15 not a regulator", pract(stranger), ModeCentre15, "", permitAll, true, false, RuleRegulatorRequired, false},
		{"centre 15, patient opposed", reg, ModeCentre15, "", Emergency{BTG: true, MASKED: true}, true, false, RuleEmergencyOpposed, false},
		{"unknown mode", pract(doctor), "urgence", "", permitAll, true, false, RuleUnknownMode, false},
		{"closed DMP refuses professionals", pract(treating), "", "", permitAll, false, false, RuleClosed, false},
		{"closed DMP, patient still reads", &Caller{Kind: KindPatient, ID: "p1"}, "", "", permitAll, false, true, RulePatientSelf, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Decide(Request{Caller: c.caller, Mode: c.mode, Reason: c.reason}, policyFor(c.emergency), c.active)
			if v.Allow != c.allow || v.Rule != c.rule || v.SeeMasked != c.seeMasked {
				t.Fatalf("got allow=%v rule=%s seeMasked=%v, want allow=%v rule=%s seeMasked=%v", v.Allow, v.Rule, v.SeeMasked, c.allow, c.rule, c.seeMasked)
			}
		})
	}
	if v := Decide(Request{Caller: pract(doctor)}, nil, true); v.Allow || v.Rule != RuleNoPolicy {
		t.Fatalf("no policy: %+v", v)
	}
}

func TestLabelsHideDocuments(t *testing.T) {
	cases := []struct {
		name    string
		verdict Verdict
		labels  []string
		visible bool
	}{
		{"plain document to an authorized professional", Verdict{Allow: true}, nil, true},
		{"masked document to an authorized professional", Verdict{Allow: true}, []string{LabelMasked}, false},
		{"masked document to the médecin traitant", Verdict{Allow: true, SeeMasked: true}, []string{LabelMasked}, true},
		{"invisible document to the patient", Verdict{Allow: true, SeeMasked: true, HideFromPatient: true}, []string{LabelInvisiblePatient}, false},
		{"invisible-to-patient document to a professional", Verdict{Allow: true}, []string{LabelInvisiblePatient}, true},
		{"masked document to the patient", Verdict{Allow: true, SeeMasked: true, HideFromPatient: true}, []string{LabelMasked}, true},
	}
	for _, c := range cases {
		if ok, _ := c.verdict.VisibleLabels(c.labels); ok != c.visible {
			t.Errorf("%s: visible=%v, want %v", c.name, ok, c.visible)
		}
	}
}

func TestAuthorizationStatus(t *testing.T) {
	p := policyFor(Emergency{})
	for idnps, want := range map[string]string{doctor: "VALIDE", treating: "VALIDE", expired: "EXPIRE", blocked: "INTERDIT", stranger: "NON_EXISTE"} {
		if got := AuthorizationStatus(p, idnps, time.Now()); got != want {
			t.Errorf("%s: %s, want %s", idnps, got, want)
		}
	}
}

// TestPolicyRoundTripsThroughAValidConsent: the Consent a policy is kept
// as passes the R4 validator and reads back as the same policy.
func TestPolicyRoundTripsThroughAValidConsent(t *testing.T) {
	p := policyFor(Emergency{ETREAT: true, BTG: false, MASKED: true})
	body := p.Resource()
	v, err := fhir.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(body); err != nil {
		t.Fatalf("policy Consent is not valid R4: %v\n%s", err, body)
	}
	back, err := ParsePolicy(body)
	if err != nil {
		t.Fatal(err)
	}
	if string(back.Resource()) != string(body) {
		t.Fatalf("round trip differs:\n%s\n%s", body, back.Resource())
	}
	if _, err := ParsePolicy([]byte(`{"resourceType":"Consent","patient":{"reference":"Patient/p1"},"provision":{"type":"permit"}}`)); err == nil {
		t.Fatal("a base-permit Consent was read as a DMP policy")
	}
	ix := fhir.ExtractIndex(body)
	found := false
	for _, r := range ix.References {
		if r.Param == "dmp-actor" && r.Type == "Practitioner" && r.ID == doctor {
			found = true
		}
	}
	if !found {
		t.Fatalf("Consent?dmp-actor=Practitioner/%s would not find the policy: %+v", doctor, ix.References)
	}
}

func TestHabilitationsFollowTheMatrix(t *testing.T) {
	h := DefaultHabilitations()
	cases := []struct {
		profession, code string
		allowed          bool
	}{
		{"10", "89601-9", true},  // a médecin reads a certificat médical
		{"60", "89601-9", false}, // an infirmier does not
		{"60", "11502-2", true},  // but reads lab reports
		{"40", "11488-4", true},
		{"99", "11488-4", true}, // a profession not in the data follows the default
	}
	for _, c := range cases {
		if got := h.Allows(c.profession, c.code); got != c.allowed {
			t.Errorf("profession %s, type %s: %v, want %v", c.profession, c.code, got, c.allowed)
		}
	}
	if _, err := ParseHabilitations([]byte(`{"default":"maybe"}`)); err == nil {
		t.Fatal("a matrix with an unknown default was accepted")
	}
}
