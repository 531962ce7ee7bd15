package auth

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/dmp-fhir/dmp-fhir/fhir"
)

// Access modes of a request (TRE_R248-ModeAcces).
const (
	ModeNormal      = "normal"
	ModeBrisDeGlace = "bris_de_glace"
	ModeCentre15    = "centre_15"
)

// Document visibility labels (TRE_A07-StatutVisibiliteDocument), carried in
// meta.security beside the HL7 confidentiality code N.
const (
	LabelSystem           = "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
	LabelMasked           = "MASQUE_PS"
	LabelInvisiblePatient = "INVISIBLE_PATIENT"
)

// Code systems of the policy's Consent resource.
const (
	idNatPsSystem     = "urn:oid:1.2.250.1.71.4.2.1"
	actReasonSystem   = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	participationType = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	// PurposeSystem and RoleSystem are this server's own codes for what R4
	// has no code for: the MASKED emergency preference and the DMP roles.
	PurposeSystem = "https://dmp-fhir.fr/CodeSystem/dmp-consent-purpose"
	RoleSystem    = "https://dmp-fhir.fr/CodeSystem/dmp-role"
)

// Grant is a professional the patient authorized, from Start until End
// (zero End: no end).
type Grant struct {
	IDNatPs string
	Start   time.Time
	End     time.Time
}

// Emergency holds the patient's three emergency preferences; true is permit.
type Emergency struct {
	ETREAT bool // the SAMU (centre 15) regulating doctor may read
	BTG    bool // any professional may break the glass
	MASKED bool // masked documents are visible in an emergency
}

// Policy is one patient's access settings. It is kept as the FHIR Consent
// resource Consent/dmp-<patient id>, which the patient can read, so that
// the decision and what the patient sees are the same data.
type Policy struct {
	Patient         string
	Authorized      []Grant
	Blocked         []string // idNatPs
	TreatingDoctors []string // idNatPs of the médecins traitants
	Emergency       Emergency
}

// PolicyID is the id of a patient's policy Consent.
func PolicyID(patient string) string { return "dmp-" + patient }

// DefaultPolicy is the policy of a new DMP: nobody authorized, emergency
// access permitted (the patient did not oppose).
func DefaultPolicy(patient string) *Policy {
	return &Policy{Patient: patient, Emergency: Emergency{ETREAT: true, BTG: true, MASKED: true}}
}

// Contains reports whether list holds id.
func contains(list []string, id string) bool {
	for _, x := range list {
		if x == id {
			return true
		}
	}
	return false
}

// Blocks reports whether the patient blocked the professional.
func (p *Policy) Blocks(idnps string) bool { return contains(p.Blocked, idnps) }

// IsTreatingDoctor reports whether the professional is a médecin traitant.
func (p *Policy) IsTreatingDoctor(idnps string) bool { return contains(p.TreatingDoctors, idnps) }

// Grant returns the professional's authorization, if any.
func (p *Policy) Grant(idnps string) (Grant, bool) {
	for _, g := range p.Authorized {
		if g.IDNatPs == idnps {
			return g, true
		}
	}
	return Grant{}, false
}

// Authorize adds or renews a professional's authorization and lifts a block.
func (p *Policy) Authorize(idnps string, start, end time.Time) {
	p.Blocked = remove(p.Blocked, idnps)
	for i, g := range p.Authorized {
		if g.IDNatPs == idnps {
			p.Authorized[i] = Grant{IDNatPs: idnps, Start: start, End: end}
			return
		}
	}
	p.Authorized = append(p.Authorized, Grant{IDNatPs: idnps, Start: start, End: end})
}

// Revoke removes a professional's authorization (a médecin traitant keeps
// the rights of that role until the designation is removed).
func (p *Policy) Revoke(idnps string) {
	out := p.Authorized[:0]
	for _, g := range p.Authorized {
		if g.IDNatPs != idnps {
			out = append(out, g)
		}
	}
	p.Authorized = out
}

// Block refuses a professional whatever else holds; it ends their
// authorization and médecin traitant designation.
func (p *Policy) Block(idnps string) {
	p.Revoke(idnps)
	p.TreatingDoctors = remove(p.TreatingDoctors, idnps)
	if !contains(p.Blocked, idnps) {
		p.Blocked = append(p.Blocked, idnps)
	}
}

// Unblock lifts a block.
func (p *Policy) Unblock(idnps string) { p.Blocked = remove(p.Blocked, idnps) }

// SetTreatingDoctor designates a médecin traitant (and lifts a block).
func (p *Policy) SetTreatingDoctor(idnps string) {
	p.Blocked = remove(p.Blocked, idnps)
	if !contains(p.TreatingDoctors, idnps) {
		p.TreatingDoctors = append(p.TreatingDoctors, idnps)
	}
}

func remove(list []string, id string) []string {
	out := list[:0]
	for _, x := range list {
		if x != id {
			out = append(out, x)
		}
	}
	return out
}

// The Consent resource's JSON shape, as much of it as the policy uses.
type consentJSON struct {
	ResourceType string          `json:"resourceType"`
	ID           string          `json:"id,omitempty"`
	Meta         json.RawMessage `json:"meta,omitempty"`
	Status       string          `json:"status"`
	Scope        codeable        `json:"scope"`
	Category     []codeable      `json:"category"`
	Patient      reference       `json:"patient"`
	DateTime     string          `json:"dateTime,omitempty"`
	PolicyRule   *codeable       `json:"policyRule,omitempty"`
	Provision    provision       `json:"provision"`
}

type coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

type codeable struct {
	Coding []coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

type identifier struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value,omitempty"`
}

type reference struct {
	Reference  string      `json:"reference,omitempty"`
	Identifier *identifier `json:"identifier,omitempty"`
	Display    string      `json:"display,omitempty"`
}

type period struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

type actor struct {
	Role      codeable  `json:"role"`
	Reference reference `json:"reference"`
}

type provision struct {
	Type      string      `json:"type,omitempty"`
	Period    *period     `json:"period,omitempty"`
	Actor     []actor     `json:"actor,omitempty"`
	Purpose   []coding    `json:"purpose,omitempty"`
	Provision []provision `json:"provision,omitempty"`
}

// Roles of the actors in the policy's provisions.
var (
	roleAuthorized = coding{System: participationType, Code: "PRCP", Display: "primary information recipient"}
	roleBlocked    = coding{System: participationType, Code: "IRCP", Display: "information recipient"}
	roleTreating   = coding{System: RoleSystem, Code: "MEDECIN_TRAITANT", Display: "médecin traitant DMP"}
)

func practitionerActor(role coding, idnps string) actor {
	// The reference names the practitioner by idNatPs, so that
	// Consent?actor=Practitioner/<idNatPs> finds every policy that names them.
	return actor{Role: codeable{Coding: []coding{role}}, Reference: reference{
		Reference:  "Practitioner/" + idnps,
		Identifier: &identifier{System: idNatPsSystem, Value: idnps},
	}}
}

func permitOrDeny(b bool) string {
	if b {
		return "permit"
	}
	return "deny"
}

// Resource renders the policy as its FHIR Consent resource: a base deny,
// with nested permit provisions for authorized professionals and médecins
// traitants, deny provisions for blocked ones, and one provision per
// emergency preference.
func (p *Policy) Resource() []byte {
	c := consentJSON{
		ResourceType: "Consent",
		ID:           PolicyID(p.Patient),
		Status:       "active",
		Scope:        codeable{Coding: []coding{{System: "http://terminology.hl7.org/CodeSystem/consentscope", Code: "patient-privacy"}}},
		Category:     []codeable{{Coding: []coding{{System: "http://loinc.org", Code: "59284-0", Display: "Patient Consent"}}}},
		Patient:      reference{Reference: "Patient/" + p.Patient},
		PolicyRule:   &codeable{Coding: []coding{{System: "http://terminology.hl7.org/CodeSystem/v3-ActCode", Code: "OPTIN"}}, Text: "DMP: base deny; professionals the patient authorized may read"},
		Provision:    provision{Type: "deny"},
	}
	grants := append([]Grant(nil), p.Authorized...)
	sort.Slice(grants, func(i, j int) bool { return grants[i].IDNatPs < grants[j].IDNatPs })
	for _, g := range grants {
		pr := provision{Type: "permit", Actor: []actor{practitionerActor(roleAuthorized, g.IDNatPs)}}
		if !g.Start.IsZero() || !g.End.IsZero() {
			pr.Period = &period{}
			if !g.Start.IsZero() {
				pr.Period.Start = g.Start.UTC().Format(time.RFC3339)
			}
			if !g.End.IsZero() {
				pr.Period.End = g.End.UTC().Format(time.RFC3339)
			}
		}
		c.Provision.Provision = append(c.Provision.Provision, pr)
	}
	for _, id := range sorted(p.TreatingDoctors) {
		c.Provision.Provision = append(c.Provision.Provision, provision{Type: "permit", Actor: []actor{practitionerActor(roleTreating, id)}})
	}
	for _, id := range sorted(p.Blocked) {
		c.Provision.Provision = append(c.Provision.Provision, provision{Type: "deny", Actor: []actor{practitionerActor(roleBlocked, id)}})
	}
	c.Provision.Provision = append(c.Provision.Provision,
		provision{Type: permitOrDeny(p.Emergency.ETREAT), Purpose: []coding{{System: actReasonSystem, Code: "ETREAT", Display: "Emergency treatment (SAMU, centre 15)"}}},
		provision{Type: permitOrDeny(p.Emergency.BTG), Purpose: []coding{{System: actReasonSystem, Code: "BTG", Display: "break the glass"}}},
		provision{Type: permitOrDeny(p.Emergency.MASKED), Purpose: []coding{{System: PurposeSystem, Code: "MASKED", Display: "masked documents visible in an emergency"}}},
	)
	b, err := fhir.Marshal(c)
	if err != nil {
		panic(err) // plain structs of strings always marshal
	}
	return b
}

func sorted(list []string) []string {
	out := append([]string(nil), list...)
	sort.Strings(out)
	return out
}

// ParsePolicy reads a policy from its Consent resource. Anything it does
// not recognise is an error rather than a guess: the decision must never
// rest on a misread policy.
func ParsePolicy(body []byte) (*Policy, error) {
	var c consentJSON
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, fmt.Errorf("auth: policy consent: %w", err)
	}
	patient, ok := strings.CutPrefix(c.Patient.Reference, "Patient/")
	if c.ResourceType != "Consent" || !ok || c.Provision.Type != "deny" {
		return nil, fmt.Errorf("auth: Consent/%s is not a DMP policy (base deny for a patient)", c.ID)
	}
	p := &Policy{Patient: patient}
	for _, pr := range c.Provision.Provision {
		switch {
		case len(pr.Purpose) == 1 && len(pr.Actor) == 0:
			permit := pr.Type == "permit"
			switch pr.Purpose[0].Code {
			case "ETREAT":
				p.Emergency.ETREAT = permit
			case "BTG":
				p.Emergency.BTG = permit
			case "MASKED":
				p.Emergency.MASKED = permit
			default:
				return nil, fmt.Errorf("auth: Consent/%s: unknown purpose %q", c.ID, pr.Purpose[0].Code)
			}
		case len(pr.Actor) == 1 && len(pr.Actor[0].Role.Coding) == 1:
			a := pr.Actor[0]
			id, ok := strings.CutPrefix(a.Reference.Reference, "Practitioner/")
			if !ok || id == "" {
				return nil, fmt.Errorf("auth: Consent/%s: actor %q is not a practitioner", c.ID, a.Reference.Reference)
			}
			switch role := a.Role.Coding[0]; {
			case role == roleAuthorized && pr.Type == "permit":
				g := Grant{IDNatPs: id}
				if pr.Period != nil {
					g.Start, _ = time.Parse(time.RFC3339, pr.Period.Start)
					g.End, _ = time.Parse(time.RFC3339, pr.Period.End)
				}
				p.Authorized = append(p.Authorized, g)
			case role == roleTreating && pr.Type == "permit":
				p.TreatingDoctors = append(p.TreatingDoctors, id)
			case role == roleBlocked && pr.Type == "deny":
				p.Blocked = append(p.Blocked, id)
			default:
				return nil, fmt.Errorf("auth: Consent/%s: unknown provision for %s", c.ID, id)
			}
		default:
			return nil, fmt.Errorf("auth: Consent/%s: unknown provision", c.ID)
		}
	}
	return p, nil
}
