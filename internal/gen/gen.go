// Package gen generates seeded, Synthea-like French health records for the
// benchmarks (cmd/dmpbench): patients with valid test NIRs, and their
// encounters, observations, reports, prescriptions, immunizations,
// conditions, allergies, documents and reimbursements, as FHIR R4 JSON.
//
// The same dataset name and seed always give the same data, patient by
// patient: Patient(i) does not depend on the other patients, so a
// million-resource dataset is generated one patient at a time.
package gen

import (
	"encoding/base64"
	"fmt"
	"math"
	"math/rand"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dmp-fhir/dmp-fhir/internal/ins"
)

// Dataset is a named size: Patients patients holding about Resources
// clinical resources in all.
type Dataset struct {
	Name      string
	Patients  int
	Resources int
	Seed      int64
}

// DefaultSeed is the seed of the published figures.
const DefaultSeed = 20261126

// Preset returns D0 (10 patients, ~10k resources), D1 (100, ~100k) or D2
// (1,000, ~1M); D00 (3 patients, ~1k) is the small end of the latency
// scaling target (1k to 1M resources); "T" is a tiny set (3 patients, ~300)
// for tests.
func Preset(name string, seed int64) (Dataset, error) {
	d := Dataset{Name: name, Seed: seed}
	switch strings.ToUpper(name) {
	case "T":
		d.Patients, d.Resources = 3, 300
	case "D00":
		d.Patients, d.Resources = 3, 1_000
	case "D0":
		d.Patients, d.Resources = 10, 10_000
	case "D1":
		d.Patients, d.Resources = 100, 100_000
	case "D2":
		d.Patients, d.Resources = 1_000, 1_000_000
	default:
		return d, fmt.Errorf("unknown dataset %q: say D00, D0, D1 or D2", name)
	}
	d.Name = strings.ToUpper(name)
	return d, nil
}

// Patient is one generated person and what their DMP looks like.
type Patient struct {
	Index     int
	System    string // ins.SystemTest
	NIR       string // 15 characters, key included
	Family    string
	Given     string
	Gender    string
	BirthDate string
	Email     string
	// DenyEmergency: the patient refuses emergency access (ETREAT and
	// BTG deny at creation).
	DenyEmergency bool
	// AuthorizeByPatient: the benchmark practitioner is authorized by the
	// patient ($authorize); otherwise the practitioner declares the
	// patient's consent ($declare-consent).
	AuthorizeByPatient bool
	// Size is the number of clinical resources (the Patient not counted).
	Size int
	// Big is one of the few patients 5-10x the median.
	Big bool

	seed int64
}

// Entry is one generated resource of a patient's record.
type Entry struct {
	FullURL string // urn:uuid:...
	Type    string
	Body    []byte
	// Masked: the patient masks this document from professionals ($mask).
	Masked bool
	// VitalSign: an Observation of category vital-signs.
	VitalSign bool
}

// sizes returns each patient's number of resources: a median m, most
// patients within 0.5-1.5 m, about 4% (at least one) 5-10x m, scaled so
// that the total is about d.Resources.
func (d Dataset) sizes() ([]int, []bool) {
	rng := rand.New(rand.NewSource(d.Seed))
	mult := make([]float64, d.Patients)
	big := make([]bool, d.Patients)
	nBig := int(math.Round(float64(d.Patients) * 0.04))
	if nBig < 1 {
		nBig = 1
	}
	for i := range mult {
		mult[i] = 0.5 + rng.Float64()
	}
	for _, i := range rng.Perm(d.Patients)[:nBig] {
		mult[i] = 5 + 5*rng.Float64()
		big[i] = true
	}
	var sum float64
	for _, m := range mult {
		sum += m
	}
	median := float64(d.Resources) / sum
	sizes := make([]int, d.Patients)
	for i, m := range mult {
		sizes[i] = int(math.Round(m * median))
		if sizes[i] < 20 {
			sizes[i] = 20
		}
	}
	return sizes, big
}

// All returns the dataset's patients, without their records.
func (d Dataset) All() []Patient {
	sizes, big := d.sizes()
	out := make([]Patient, d.Patients)
	for i := range out {
		out[i] = d.patient(i, sizes[i], big[i])
	}
	return out
}

// Extra returns a patient outside the dataset (index >= d.Patients) of
// about the median size, for the ingest workloads.
func (d Dataset) Extra(i int) Patient {
	sizes, _ := d.sizes()
	s := append([]int(nil), sizes...)
	sort.Ints(s)
	return d.patient(d.Patients+i, s[len(s)/2], false)
}

var (
	familyNames = []string{"Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois", "Moreau", "Laurent",
		"Simon", "Michel", "Lefèvre", "Leroy", "Roux", "David", "Bertrand", "Morel", "Fournier", "Girard", "Bonnet", "Dupont",
		"Lambert", "Fontaine", "Rousseau", "Vincent", "Müller", "Lefebvre", "Faure", "André", "Mercier", "Blanc", "Guérin",
		"Boyer", "Garnier", "Chevalier", "François", "Legrand", "Gauthier", "Garcia", "Perrin", "Robin", "Clément", "Morin"}
	femaleNames = []string{"Marie", "Camille", "Léa", "Manon", "Chloé", "Inès", "Sarah", "Jeanne", "Hélène", "Élodie",
		"Nathalie", "Isabelle", "Sylvie", "Françoise", "Monique", "Zoé", "Louise", "Anaïs", "Céline", "Margaux"}
	maleNames = []string{"Jean", "Pierre", "Michel", "Lucas", "Hugo", "Louis", "Gabriel", "Arthur", "Jules", "Nicolas",
		"Stéphane", "François", "Thierry", "Julien", "Théo", "Mathis", "Noé", "Raphaël", "Étienne", "Benoît"}
)

func (d Dataset) patient(i, size int, big bool) Patient {
	seed := d.Seed*1_000_003 + int64(i)*7919
	rng := rand.New(rand.NewSource(seed))
	p := Patient{Index: i, System: ins.SystemTest, Size: size, Big: big, seed: seed}
	sex := 1 + rng.Intn(2)
	if sex == 1 {
		p.Gender, p.Given = "male", maleNames[rng.Intn(len(maleNames))]
	} else {
		p.Gender, p.Given = "female", femaleNames[rng.Intn(len(femaleNames))]
	}
	p.Family = familyNames[rng.Intn(len(familyNames))]
	birth := time.Date(1935, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rng.Intn(85*365))
	p.BirthDate = birth.Format("2006-01-02")
	dept := 1 + rng.Intn(95)
	if dept == 20 {
		dept = 21
	}
	// 13 characters: sex(1) year(2) month(2) department(2) commune(3)
	// order(3); commune and order come from the index, so that no two
	// patients of a dataset (and its extra patients) share a NIR.
	first13 := fmt.Sprintf("%d%02d%02d%02d%03d%03d", sex, birth.Year()%100, int(birth.Month()), dept, 100+(i/1000)%900, i%1000)
	p.NIR, _ = ins.WithKey(first13)
	p.Email = strings.ToLower(fmt.Sprintf("patient%d@example.org", i))
	p.DenyEmergency = i%10 == 3
	p.AuthorizeByPatient = i%2 == 0
	return p
}

// uuid returns a deterministic RFC 4122-shaped id from the generator.
func uuid(rng *rand.Rand) string {
	a, b := rng.Uint64(), rng.Uint64()
	b = b&^(0xc000000000000000) | 0x8000000000000000
	a = a&^(0xf000) | 0x4000
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}

// Codes, with French displays.
type code struct{ system, code, display string }

const (
	loinc   = "http://loinc.org"
	snomed  = "http://snomed.info/sct"
	ucum    = "http://unitsofmeasure.org"
	obsCat  = "http://terminology.hl7.org/CodeSystem/observation-category"
	actCode = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	cim10   = "http://hl7.org/fhir/sid/icd-10"
	atc     = "http://www.whocc.no/atc"
)

type vital struct {
	code     code
	unit     string
	min, max float64
}

var (
	vitals = []vital{
		{code{loinc, "8867-4", "Fréquence cardiaque"}, "/min", 50, 110},
		{code{loinc, "9279-1", "Fréquence respiratoire"}, "/min", 10, 24},
		{code{loinc, "8310-5", "Température corporelle"}, "Cel", 36, 39.5},
		{code{loinc, "29463-7", "Poids corporel"}, "kg", 45, 120},
		{code{loinc, "8302-2", "Taille"}, "cm", 150, 195},
		{code{loinc, "39156-5", "Indice de masse corporelle"}, "kg/m2", 18, 35},
		{code{loinc, "2708-6", "Saturation en oxygène"}, "%", 90, 100},
	}
	bloodPressure = code{loinc, "85354-9", "Pression artérielle"}
	labs          = []vital{
		{code{loinc, "718-7", "Hémoglobine"}, "g/dL", 10, 17},
		{code{loinc, "2339-0", "Glucose"}, "mg/dL", 70, 180},
		{code{loinc, "2093-3", "Cholestérol total"}, "mg/dL", 140, 280},
		{code{loinc, "2160-0", "Créatinine"}, "mg/dL", 0.5, 1.5},
		{code{loinc, "6690-2", "Leucocytes"}, "10*3/uL", 3.5, 12},
		{code{loinc, "777-3", "Plaquettes"}, "10*3/uL", 150, 400},
		{code{loinc, "4548-4", "Hémoglobine A1c"}, "%", 4.5, 9},
		{code{loinc, "2823-3", "Potassium"}, "mmol/L", 3.4, 5.2},
	}
	encounterTypes = []code{
		{snomed, "185349003", "Consultation de médecine générale"},
		{snomed, "390906007", "Consultation de suivi"},
		{snomed, "50849002", "Passage aux urgences"},
		{snomed, "183452005", "Hospitalisation programmée"},
		{snomed, "410620009", "Consultation de suivi de l'enfant"},
	}
	conditions = []code{
		{cim10, "I10", "Hypertension essentielle (primitive)"},
		{cim10, "E11.9", "Diabète sucré de type 2, sans complication"},
		{cim10, "J45.9", "Asthme, sans précision"},
		{cim10, "J06.9", "Infection aiguë des voies respiratoires supérieures"},
		{cim10, "M54.5", "Lombalgie basse"},
		{cim10, "F41.1", "Anxiété généralisée"},
		{cim10, "E78.0", "Hypercholestérolémie essentielle"},
		{cim10, "K21.9", "Reflux gastro-œsophagien sans œsophagite"},
	}
	medications = []code{
		{atc, "N02BE01", "Paracétamol"},
		{atc, "C09AA05", "Ramipril"},
		{atc, "A10BA02", "Metformine"},
		{atc, "C10AA05", "Atorvastatine"},
		{atc, "R03AC02", "Salbutamol"},
		{atc, "J01CA04", "Amoxicilline"},
		{atc, "A02BC01", "Oméprazole"},
		{atc, "M01AE01", "Ibuprofène"},
	}
	vaccines = []code{
		{"http://hl7.org/fhir/sid/cvx", "140", "Grippe saisonnière"},
		{"http://hl7.org/fhir/sid/cvx", "115", "Diphtérie, tétanos, coqueluche (dTca)"},
		{"http://hl7.org/fhir/sid/cvx", "133", "Pneumocoque conjugué"},
		{"http://hl7.org/fhir/sid/cvx", "208", "COVID-19 ARNm"},
		{"http://hl7.org/fhir/sid/cvx", "43", "Hépatite B"},
	}
	allergies = []code{
		{snomed, "91936005", "Allergie à la pénicilline"},
		{snomed, "300913006", "Allergie aux crustacés"},
		{snomed, "91935009", "Allergie à l'arachide"},
		{snomed, "418689008", "Allergie aux graminées"},
	}
	documents = []code{
		{loinc, "11488-4", "Compte rendu de consultation"},
		{loinc, "34133-9", "Synthèse d'épisode de soins"},
		{loinc, "11502-2", "Compte rendu d'examens biologiques"},
		{loinc, "57833-6", "Prescription de médicaments"},
		{loinc, "18748-4", "Compte rendu d'imagerie médicale"},
	}
	cpams = []string{"CPAM de Paris", "CPAM du Rhône", "CPAM des Bouches-du-Rhône", "CPAM de la Gironde", "CPAM du Nord"}
)

// Resources returns the patient's record, its clinical resources pointing
// at patientRef (a "Patient/id", a urn:uuid fullUrl of the Patient, or a
// conditional reference). Entries in one record reference each other by
// their urn:uuid fullUrls (DiagnosticReport.result, encounter).
func (p Patient) Resources(patientRef string) []Entry {
	rng := rand.New(rand.NewSource(p.seed ^ 0x5eed))
	g := &record{rng: rng, patient: patientRef}
	// Encounters from the age of 18 (a child's from birth), not before 2008,
	// to 2026, in date order.
	birth, _ := time.Parse("2006-01-02", p.BirthDate)
	from := birth.AddDate(18, 0, 0)
	if min := time.Date(2008, 1, 1, 0, 0, 0, 0, time.UTC); from.Before(min) {
		from = min
	}
	end := time.Date(2026, 10, 31, 0, 0, 0, 0, time.UTC)
	if !from.Before(end.AddDate(-1, 0, 0)) { // a child: from birth
		from = birth
	}
	span := end.Sub(from)
	// About 15.3 resources an encounter (9 observations).
	n := p.Size/15 + 1
	times := make([]time.Time, n)
	for i := range times {
		times[i] = from.Add(time.Duration(rng.Int63n(int64(span)))).Truncate(time.Second)
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	for i := 0; len(g.out) < p.Size; i++ {
		t := times[i%n]
		if i >= n {
			t = t.Add(time.Duration(i/n) * time.Hour)
		}
		g.encounter(t, p.Size)
	}
	return g.out[:p.Size]
}

type record struct {
	rng     *rand.Rand
	patient string
	out     []Entry
}

func (g *record) add(typ string, body obj, vitalSign bool) string {
	u := "urn:uuid:" + uuid(g.rng)
	g.out = append(g.out, Entry{FullURL: u, Type: typ, Body: body.json(), VitalSign: vitalSign})
	return u
}

func (g *record) pick(list []code) code { return list[g.rng.Intn(len(list))] }

func (g *record) chance(p float64) bool { return g.rng.Float64() < p }

func cc(c code) obj {
	return obj{{"coding", arr{obj{{"system", c.system}, {"code", c.code}, {"display", c.display}}}}, {"text", c.display}}
}

func ref(r string) obj { return obj{{"reference", r}} }

func instant(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func (g *record) quantity(v vital) obj {
	val := round(v.min+g.rng.Float64()*(v.max-v.min), 1)
	return obj{{"value", val}, {"unit", v.unit}, {"system", ucum}, {"code", v.unit}}
}

func category(c string) arr {
	return arr{obj{{"coding", arr{obj{{"system", obsCat}, {"code", c}}}}}}
}

// encounter adds one encounter and what happened during it, stopping at
// limit resources.
func (g *record) encounter(t time.Time, limit int) {
	full := func() bool { return len(g.out) >= limit }
	typ := g.pick(encounterTypes)
	class := "AMB"
	if typ.code == "50849002" {
		class = "EMER"
	} else if typ.code == "183452005" {
		class = "IMP"
	}
	enc := g.add("Encounter", obj{
		{"resourceType", "Encounter"}, {"status", "finished"},
		{"class", obj{{"system", actCode}, {"code", class}}},
		{"type", arr{cc(typ)}},
		{"subject", ref(g.patient)},
		{"period", obj{{"start", instant(t)}, {"end", instant(t.Add(time.Duration(20+g.rng.Intn(100)) * time.Minute))}}},
		{"serviceProvider", obj{{"display", "Centre hospitalier de démonstration"}}},
	}, false)
	// Vital signs: 5 of them, blood pressure with its two components.
	for k := 0; k < 5 && !full(); k++ {
		o := obj{{"resourceType", "Observation"}, {"status", "final"}, {"category", category("vital-signs")}}
		if k == 0 {
			o = append(o, field{"code", cc(bloodPressure)}, field{"subject", ref(g.patient)}, field{"encounter", ref(enc)},
				field{"effectiveDateTime", instant(t)}, field{"component", arr{
					obj{{"code", cc(code{loinc, "8480-6", "Pression artérielle systolique"})}, {"valueQuantity", g.quantity(vital{unit: "mm[Hg]", min: 100, max: 160})}},
					obj{{"code", cc(code{loinc, "8462-4", "Pression artérielle diastolique"})}, {"valueQuantity", g.quantity(vital{unit: "mm[Hg]", min: 60, max: 100})}},
				}})
		} else {
			v := vitals[g.rng.Intn(len(vitals))]
			o = append(o, field{"code", cc(v.code)}, field{"subject", ref(g.patient)}, field{"encounter", ref(enc)},
				field{"effectiveDateTime", instant(t.Add(time.Duration(k) * time.Minute))}, field{"valueQuantity", g.quantity(v)})
		}
		g.add("Observation", o, true)
	}
	// Laboratory: 4 results and their report.
	var results arr
	for k := 0; k < 4 && !full(); k++ {
		v := labs[g.rng.Intn(len(labs))]
		u := g.add("Observation", obj{{"resourceType", "Observation"}, {"status", "final"}, {"category", category("laboratory")},
			{"code", cc(v.code)}, {"subject", ref(g.patient)}, {"encounter", ref(enc)},
			{"effectiveDateTime", instant(t.Add(time.Hour))}, {"issued", instant(t.Add(5 * time.Hour))}, {"valueQuantity", g.quantity(v)}}, false)
		results = append(results, ref(u))
	}
	if full() {
		return
	}
	g.add("DiagnosticReport", obj{{"resourceType", "DiagnosticReport"}, {"status", "final"},
		{"category", arr{obj{{"coding", arr{obj{{"system", "http://terminology.hl7.org/CodeSystem/v2-0074"}, {"code", "LAB"}}}}}}},
		{"code", cc(code{loinc, "11502-2", "Compte rendu d'examens biologiques"})}, {"subject", ref(g.patient)}, {"encounter", ref(enc)},
		{"effectiveDateTime", instant(t.Add(time.Hour))}, {"issued", instant(t.Add(5 * time.Hour))}, {"result", results}}, false)
	for k, n := 0, 1+g.rng.Intn(2); k < n && !full(); k++ {
		m := g.pick(medications)
		g.add("MedicationRequest", obj{{"resourceType", "MedicationRequest"}, {"status", []string{"active", "completed", "stopped"}[g.rng.Intn(3)]},
			{"intent", "order"}, {"medicationCodeableConcept", cc(m)}, {"subject", ref(g.patient)}, {"encounter", ref(enc)},
			{"authoredOn", instant(t)}, {"dosageInstruction", arr{obj{{"text", strconv.Itoa(1+g.rng.Intn(3)) + " prise(s) par jour pendant " + strconv.Itoa(5+g.rng.Intn(25)) + " jours"}}}}}, false)
	}
	if g.chance(0.6) && !full() {
		v := g.pick(vaccines)
		g.add("Immunization", obj{{"resourceType", "Immunization"}, {"status", "completed"}, {"vaccineCode", cc(v)},
			{"patient", ref(g.patient)}, {"encounter", ref(enc)}, {"occurrenceDateTime", instant(t)}, {"primarySource", true},
			{"lotNumber", fmt.Sprintf("LOT%06d", g.rng.Intn(1000000))}}, false)
	}
	if g.chance(0.6) && !full() {
		c := g.pick(conditions)
		g.add("Condition", obj{{"resourceType", "Condition"},
			{"clinicalStatus", obj{{"coding", arr{obj{{"system", "http://terminology.hl7.org/CodeSystem/condition-clinical"}, {"code", []string{"active", "resolved"}[g.rng.Intn(2)]}}}}}},
			{"verificationStatus", obj{{"coding", arr{obj{{"system", "http://terminology.hl7.org/CodeSystem/condition-ver-status"}, {"code", "confirmed"}}}}}},
			{"category", arr{obj{{"coding", arr{obj{{"system", "http://terminology.hl7.org/CodeSystem/condition-category"}, {"code", "encounter-diagnosis"}}}}}}},
			{"code", cc(c)}, {"subject", ref(g.patient)}, {"encounter", ref(enc)}, {"onsetDateTime", instant(t)}, {"recordedDate", instant(t)}}, false)
	}
	if g.chance(0.15) && !full() {
		a := g.pick(allergies)
		g.add("AllergyIntolerance", obj{{"resourceType", "AllergyIntolerance"},
			{"clinicalStatus", obj{{"coding", arr{obj{{"system", "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"}, {"code", "active"}}}}}},
			{"verificationStatus", obj{{"coding", arr{obj{{"system", "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"}, {"code", "confirmed"}}}}}},
			{"type", "allergy"}, {"category", arr{[]string{"medication", "food", "environment"}[g.rng.Intn(3)]}}, {"criticality", "low"},
			{"code", cc(a)}, {"patient", ref(g.patient)}, {"recordedDate", instant(t)}}, false)
	}
	if g.chance(0.6) && !full() {
		d := g.pick(documents)
		text := "Compte rendu du " + t.Format("02/01/2006") + ". Patient vu en " + strings.ToLower(typ.display) +
			". Examen clinique sans particularité. Conduite à tenir : poursuite du traitement, contrôle dans trois mois."
		g.add("DocumentReference", obj{{"resourceType", "DocumentReference"}, {"status", "current"}, {"type", cc(d)},
			{"category", arr{obj{{"coding", arr{obj{{"system", "http://loinc.org"}, {"code", "11488-4"}}}}}}},
			{"subject", ref(g.patient)}, {"date", instant(t.Add(2 * time.Hour))},
			{"author", arr{obj{{"display", "Dr " + familyNames[g.rng.Intn(len(familyNames))]}}}},
			{"content", arr{obj{{"attachment", obj{{"contentType", "text/plain"}, {"language", "fr-FR"},
				{"data", base64.StdEncoding.EncodeToString([]byte(text))}, {"title", d.display}}}}}},
			{"context", obj{{"encounter", arr{ref(enc)}}}}}, false)
		g.out[len(g.out)-1].Masked = g.chance(0.1)
	}
	if !full() {
		amount := round(25+g.rng.Float64()*200, 2)
		g.add("ExplanationOfBenefit", obj{{"resourceType", "ExplanationOfBenefit"}, {"status", "active"},
			{"type", obj{{"coding", arr{obj{{"system", "http://terminology.hl7.org/CodeSystem/claim-type"}, {"code", "professional"}}}}}},
			{"use", "claim"}, {"patient", ref(g.patient)}, {"created", instant(t.Add(24 * time.Hour))},
			{"insurer", obj{{"display", cpams[g.rng.Intn(len(cpams))]}}}, {"provider", obj{{"display", "Centre hospitalier de démonstration"}}},
			{"outcome", "complete"},
			{"insurance", arr{obj{{"focal", true}, {"coverage", obj{{"display", "Assurance maladie obligatoire"}}}}}},
			{"item", arr{obj{{"sequence", 1}, {"productOrService", cc(typ)}, {"encounter", arr{ref(enc)}},
				{"net", obj{{"value", amount}, {"currency", "EUR"}}}}}},
			{"total", arr{obj{{"category", obj{{"coding", arr{obj{{"system", "http://terminology.hl7.org/CodeSystem/adjudication"}, {"code", "submitted"}}}}}}, {"amount", obj{{"value", amount}, {"currency", "EUR"}}}}}},
			{"payment", obj{{"amount", obj{{"value", round(amount*0.7, 2)}, {"currency", "EUR"}}}}}}, false)
	}
}

// PatientResource is the Patient of a record file (the DMP's own Patient
// is made by $dmp-create).
func (p Patient) PatientResource() []byte {
	return obj{{"resourceType", "Patient"},
		{"identifier", arr{obj{{"use", "official"},
			{"type", obj{{"coding", arr{obj{{"system", "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"}, {"code", ins.TypeCode[p.System]}}}}}},
			{"system", p.System}, {"value", p.NIR}}}},
		{"active", true}, {"name", arr{obj{{"use", "official"}, {"family", p.Family}, {"given", arr{p.Given}}}}},
		{"gender", p.Gender}, {"birthDate", p.BirthDate},
		{"telecom", arr{obj{{"system", "email"}, {"value", p.Email}}}}}.json()
}

// Transactions packs entries into transaction Bundles of at most max
// entries each (POST of every entry). An entry's references to entries of
// another Bundle would not resolve, so a split happens only at an
// Encounter, which starts a group that references nothing before it.
func Transactions(entries []Entry, max int) [][]byte {
	var out [][]byte
	start := 0
	for start < len(entries) {
		end := start + max
		if end >= len(entries) {
			end = len(entries)
		} else {
			for end > start+1 && entries[end].Type != "Encounter" {
				end--
			}
			if end == start+1 { // no Encounter to split at: cut anyway
				end = start + max
			}
		}
		out = append(out, Transaction(entries[start:end]))
		start = end
	}
	return out
}

// Transaction is one transaction Bundle that POSTs every entry.
func Transaction(entries []Entry) []byte {
	var b strings.Builder
	b.Grow(len(entries) * 900)
	b.WriteString(`{"resourceType":"Bundle","type":"transaction","entry":[`)
	for i, e := range entries {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"fullUrl":"`)
		b.WriteString(e.FullURL)
		b.WriteString(`","resource":`)
		b.Write(e.Body)
		b.WriteString(`,"request":{"method":"POST","url":"`)
		b.WriteString(e.Type)
		b.WriteString(`"}}`)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}
