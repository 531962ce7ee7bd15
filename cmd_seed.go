package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/dmp-fhir/dmp-fhir/api"
	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/internal/ins"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// The "seed" command loads demonstration DMPs through the server's own
// handlers (validation, consent, audit, author stamps): professionals and
// their organizations, five patients on the test INS authority created at a
// desk, their consent settings, and every DMP category of their record
// (DOMAIN.md §2.5 and §3) with French content. Everything is fixed (NIRs,
// names, dates, resource ids) but the Patient ids and the passwords, which
// the server draws.

// Code systems of the demo content.
const (
	sysLOINC        = "http://loinc.org"
	sysUCUM         = "http://unitsofmeasure.org"
	sysSNOMED       = "http://snomed.info/sct"
	sysCIM10        = "https://smt.esante.gouv.fr/terminologie-cim-10"
	sysCCAM         = "https://smt.esante.gouv.fr/terminologie-ccam"
	sysATC          = "http://www.whocc.no/atc"
	sysUCD          = "http://data.esante.gouv.fr/ansm/medicament/UCD"
	sysCVX          = "http://hl7.org/fhir/sid/cvx"
	sysEDQM         = "http://standardterms.edqm.eu"
	sysClassCode    = "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
	sysSector       = "https://mos.esante.gouv.fr/NOS/TRE_R02-SecteurActivite/FHIR/TRE-R02-SecteurActivite"
	sysProfession   = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
	sysSpecialty    = "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"
	sysFormatCode   = "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode"
	sysIdentType    = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
	sysIDNatPs      = "urn:oid:1.2.250.1.71.4.2.1"
	sysIDNatSt      = "urn:oid:1.2.250.1.71.4.2.2"
	sysFINESS       = "https://finess.esante.gouv.fr"
	sysRPPS         = "https://rpps.esante.gouv.fr"
	sysADELI        = "https://adeli.esante.gouv.fr"
	sysDICOM        = "http://dicom.nema.org/resources/ontology/DCM"
	sysObsCategory  = "http://terminology.hl7.org/CodeSystem/observation-category"
	sysInterp       = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
	sysAdjudication = "http://terminology.hl7.org/CodeSystem/adjudication"
)

// seedPro is a demo professional: a Practitioner whose id is its idNatPs
// (the patients' Consent names professionals as Practitioner/<idNatPs>), a
// PractitionerRole, and the token claims of the printed token command.
type seedPro struct {
	key, idnps, rpps, adeli    string
	prefix, given, family      string
	profession, professionName string
	specialty, specialtyName   string
	org, finess, role          string
	regulator                  bool
	about                      string
	tokenFlags                 string // extra flags of the printed command
	mailbox                    string
	gender                     string
}

func (p seedPro) name() string {
	return strings.TrimSpace(p.prefix + " " + p.given + " " + p.family)
}

var seedPros = []seedPro{
	{key: "durand", idnps: "810002345675", rpps: "10002345675", prefix: "Dr", given: "Claire", family: "Durand", gender: "female",
		profession: "10", professionName: "Médecin", specialty: "SM26", specialtyName: "Qualifié en médecine générale",
		role: "Médecin généraliste, cabinet des Cinq-Avenues (Marseille)", mailbox: "claire.durand@medecin.mssante.example",
		about: "general practitioner, médecin traitant of every demo patient (sees masked documents)"},
	{key: "roux", idnps: "810003456786", rpps: "10003456786", given: "Julien", family: "Roux", gender: "male",
		profession: "21", professionName: "Pharmacien", org: "pharmacie-vieux-port", finess: "130045677",
		role: "Pharmacien titulaire, Pharmacie du Vieux-Port", mailbox: "julien.roux@pharmacien.mssante.example",
		about: "pharmacist, authorized by Santoni and Benali"},
	{key: "haddad", idnps: "810004567896", rpps: "10004567896", prefix: "Dr", given: "Karim", family: "Haddad", gender: "male",
		profession: "10", professionName: "Médecin", org: "ch-cote-bleue", finess: "130789126", regulator: true,
		role: "Médecin urgentiste, régulateur du SAMU 13 (centre 15)", mailbox: "karim.haddad@ch-cote-bleue.mssante.example",
		tokenFlags: "--regulator --access-mode centre_15",
		about:      "emergency doctor and SAMU regulator (or: --access-mode bris_de_glace --reason \"...\")"},
	{key: "lambert", idnps: "0136012345", adeli: "136012345", given: "Sophie", family: "Lambert", gender: "female",
		profession: "60", professionName: "Infirmier", role: "Infirmière libérale, soins à domicile", mailbox: "sophie.lambert@infirmier.mssante.example",
		about: "nurse, authorized by Moreau and Girard (her authorization by Lefèvre expired)"},
	{key: "lemaire", idnps: "810005678908", rpps: "10005678908", prefix: "Dr", given: "Bernard", family: "Lemaire", gender: "male",
		profession: "10", professionName: "Médecin", specialty: "SM04", specialtyName: "Cardiologie et maladies vasculaires",
		org: "ch-cote-bleue", finess: "130789126", role: "Cardiologue, service de cardiologie", mailbox: "bernard.lemaire@ch-cote-bleue.mssante.example",
		about: "cardiologist, blocked by Santoni"},
}

// seedSystem is a system client feeding the DMPs (a hospital's information
// system, a lab, an imaging centre, the Assurance Maladie).
type seedSystem struct {
	key, client, name, finess, about string
}

var seedSystems = []seedSystem{
	{key: "annuaire", client: "dmp-fhir-seed", name: "Annuaire de démonstration"},
	{key: "dpi", client: "ch-cote-bleue-dpi", name: "DPI du Centre hospitalier de la Côte Bleue", finess: "130789126", about: "the hospital's system: hospital reports"},
	{key: "biolab", client: "biolab-provence", name: "Laboratoire Biolab Provence", finess: "130056781", about: "lab results"},
	{key: "imagerie", client: "imagerie-prado", name: "Centre d'imagerie du Prado", finess: "130067895", about: "imaging"},
	{key: "cnam", client: "assurance-maladie", name: "Assurance Maladie, CPAM des Bouches-du-Rhône", about: "reimbursements (and a DMP created at its desk)"},
}

type seedOrg struct {
	id, name, finess, kind, kindName, line, postal, city string
}

var seedOrgs = []seedOrg{
	{id: "ch-cote-bleue", name: "Centre hospitalier de la Côte Bleue", finess: "130789126", kind: "prov", kindName: "Healthcare Provider", line: "40 boulevard de la Côte Bleue", postal: "13016", city: "Marseille"},
	{id: "pharmacie-vieux-port", name: "Pharmacie du Vieux-Port", finess: "130045677", kind: "prov", kindName: "Healthcare Provider", line: "3 quai du Port", postal: "13002", city: "Marseille"},
	{id: "biolab-provence", name: "Laboratoire de biologie médicale Biolab Provence", finess: "130056781", kind: "prov", kindName: "Healthcare Provider", line: "18 rue de Rome", postal: "13006", city: "Marseille"},
	{id: "imagerie-prado", name: "Centre d'imagerie médicale du Prado", finess: "130067895", kind: "prov", kindName: "Healthcare Provider", line: "150 avenue du Prado", postal: "13008", city: "Marseille"},
	{id: "cpam-13", name: "CPAM des Bouches-du-Rhône (Assurance Maladie)", kind: "ins", kindName: "Insurance Company", line: "8 rue Jules Moulet", postal: "13006", city: "Marseille"},
}

// The demo patients and their records.

type seedGrant struct{ pro, start, end string }

type seedPatient struct {
	key, nir, family, given, birthDate, gender string
	email, phone, birthPlace                   string
	desk                                       string // who creates the DMP: a professional's or a system's key
	prefs                                      map[string]string
	grants                                     []seedGrant
	blocks                                     []string
	closeReason                                string
	settings                                   string // for the table
	record                                     seedRecord
}

func (p *seedPatient) name() string { return p.given + " " + p.family }

type seedRecord struct {
	conditions    []seedCondition
	procedures    []seedProcedure
	allergies     []seedAllergy
	prescription  seedPrescription
	documents     []seedDocument
	lab           seedLab
	imaging       seedImaging
	immunizations []seedImmunization
	claims        []seedClaim
	vitals        seedVitals
}

type seedCondition struct{ slug, code, display, onset, abatement, note string }

type seedProcedure struct{ slug, code, display, text, date, performer, note string }

type seedAllergy struct {
	slug, code, display, category, criticality, onset string
	reaction, reactionDisplay, severity, description  string
}

type seedMed struct{ ucd, ucdDisplay, atc, atcDisplay, text, dosage string }

type seedPrescription struct {
	date, author, note string
	repeats            int
	lines              []seedMed
}

// seedDocument is a DocumentReference: written by writer (a token key), its
// author a Practitioner (author) or an Organization (authorOrg); as a PDF
// Binary or as text.
type seedDocument struct {
	slug, typ, title, date, start, end string
	author, authorOrg, writer, sector  string
	pdf                                bool
	body                               string
	masked, hidden, archived           bool
	replaces                           string // slug of the document this one replaces
}

type seedResult struct {
	slug, loinc, display string
	value                float64
	unit, unitName       string
	low, high            float64
	interp               string
}

type seedLab struct {
	slug, date, conclusion string
	results                []seedResult
}

type seedSeries struct {
	modality, modalityName, description, site, siteName string
	instances                                           int
}

type seedImaging struct {
	slug, date, writer, org, title, ccam, ccamName, conclusion, report string
	series                                                             []seedSeries
}

type seedImmunization struct {
	slug, cvx, cvxName, text, date, lot, site, route, performer, writer string
	dose                                                                int
}

type seedClaimItem struct {
	text, ccam         string
	submitted, benefit float64
}

type seedClaim struct {
	slug, date, kind, provider, providerOrg, note string
	items                                         []seedClaimItem
}

type seedVitals struct {
	date, author                                  string
	systolic, diastolic, hr, weight, height, spo2 float64
}

// seedDocTypes: DocumentReference.type (LOINC, JDV_J07 display) and its
// class (TRE_A03, per ASS_X04).
var seedDocTypes = map[string][4]string{
	"prescription":  {"57833-6", "Prescription de produits de santé", "42", "Prescription"},
	"consultation":  {"11488-4", "CR ou fiche de consultation ou de visite", "10", "Compte rendu"},
	"hospital-stay": {"34112-3", "CR hospitalier (séjour)", "10", "Compte rendu"},
	"discharge":     {"11490-0", "Lettre de liaison à la sortie d'un établissement de soins", "10", "Compte rendu"},
	"emergency":     {"15507-7", "CR de passage aux urgences", "10", "Compte rendu"},
	"operative":     {"34874-8", "CR opératoire", "10", "Compte rendu"},
	"pathology":     {"60568-3", "CR d'anatomie et de cytologie pathologiques", "10", "Compte rendu"},
}

var seedPatients = []*seedPatient{seedSantoni(), seedLefevre(), seedMoreau(), seedBenali(), seedGirard()}

func seedSantoni() *seedPatient {
	return &seedPatient{
		key: "santoni", nir: "158032A00408725", family: "Santoni", given: "Jean-Pierre", birthDate: "1958-03-14", gender: "male",
		email: "jp.santoni@example.org", birthPlace: "Ajaccio (2A)", desk: "durand",
		grants:   []seedGrant{{pro: "roux", start: "2026-02-02"}},
		blocks:   []string{"lemaire"},
		settings: "treating doctor Durand; pharmacist Roux authorized; cardiologist Lemaire blocked; one document masked",
		record: seedRecord{
			conditions: []seedCondition{
				{slug: "diabete", code: "E11.9", display: "Diabète sucré de type 2, sans complication", onset: "2012-05-10", note: "ALD 8, sous antidiabétiques oraux."},
				{slug: "hta", code: "I10", display: "Hypertension essentielle (primitive)", onset: "2015-01-20"},
				{slug: "hypercholesterolemie", code: "E78.0", display: "Hypercholestérolémie essentielle", onset: "2015-01-20"},
			},
			procedures: []seedProcedure{{slug: "cataracte-od", code: "BFGA004", display: "Extraction extracapsulaire du cristallin par phacoémulsification, avec implantation de cristallin artificiel dans la chambre postérieure de l'œil",
				text: "Chirurgie de la cataracte de l'œil droit", date: "2023-05-16", performer: "ch-cote-bleue"}},
			allergies: []seedAllergy{{slug: "penicilline", code: "91936005", display: "Allergie à la pénicilline", category: "medication", criticality: "high", onset: "1990",
				reaction: "126485001", reactionDisplay: "Urticaire", severity: "moderate", description: "Urticaire généralisée après une injection de pénicilline (1990)."}},
			prescription: seedPrescription{date: "2026-10-06", author: "durand", repeats: 2, note: "Prescriptions relatives au traitement de l'affection de longue durée (ALD 8).", lines: []seedMed{
				{ucd: "3400890020275", ucdDisplay: "METFORMINE ACC 1000MG CPR", atc: "A10BA02", atcDisplay: "metformine", text: "Metformine 1000 mg, comprimé", dosage: "1 comprimé matin et soir, au milieu des repas"},
				{ucd: "3400893541364", ucdDisplay: "GLICLAZIDE ARW 30MG CPR LM", atc: "A10BB09", atcDisplay: "gliclazide", text: "Gliclazide 30 mg, comprimé à libération modifiée", dosage: "2 comprimés le matin, au petit-déjeuner"},
				{atc: "C09AA05", atcDisplay: "ramipril", text: "Ramipril 5 mg, comprimé", dosage: "1 comprimé le matin"},
				{atc: "C10AA05", atcDisplay: "atorvastatine", text: "Atorvastatine 20 mg, comprimé pelliculé", dosage: "1 comprimé le soir"},
			}},
			documents: []seedDocument{
				{slug: "cr-consultation-2026-10-06", typ: "consultation", title: "Consultation de suivi : diabète de type 2 et hypertension", date: "2026-10-06 09:30", start: "2026-10-06 09:00", end: "2026-10-06 09:30",
					author: "durand", writer: "durand", sector: "SA07", body: `Motif : suivi trimestriel du diabète de type 2 et de l'hypertension artérielle (ALD 8).

Patient de 68 ans, diabétique depuis 2012, sous metformine et gliclazide. Pas d'hypoglycémie ressentie. Bonne observance.

Examen : PA 142/86 mmHg (138/84 mmHg au contrôle après 5 minutes), FC 72/min, poids 88 kg (IMC 28,7). Pieds : monofilament perçu, pouls pédieux présents, pas de plaie.

Biologie du 28/09/2026 : HbA1c 7,4 % (7,1 % en juin), LDL-cholestérol 1,12 g/L, DFG 76 mL/min/1,73 m².

Conclusion : équilibre glycémique insuffisant, objectif HbA1c < 7 %. Renforcement des mesures hygiéno-diététiques, 30 minutes de marche par jour. Traitement renouvelé sans changement ; un inhibiteur de SGLT2 sera discuté si l'HbA1c reste au-dessus de 7 % dans 3 mois.

À prévoir : fond d'œil annuel (rendez-vous le 12/11/2026), HbA1c dans 3 mois.`},
				{slug: "cr-addictologie-2026-06-15", typ: "consultation", title: "Consultation de suivi en addictologie", date: "2026-06-15 18:00", start: "2026-06-15 17:30", end: "2026-06-15 18:00",
					author: "durand", writer: "durand", sector: "SA07", masked: true, body: `Motif : suivi du sevrage alcoolique débuté en février 2026.

Le patient rapporte une abstinence complète depuis 4 mois, avec le soutien d'un groupe d'entraide. Sommeil amélioré, pas d'envie irrépressible de boire.

Traitement : acamprosate arrêté en mai 2026 au terme de la durée prévue. Pas de benzodiazépine.

Examen : pas de tremblement, pas de signe de sevrage. GGT en baisse (89 U/L contre 142 U/L en février).

Conclusion : abstinence maintenue. Suivi mensuel poursuivi ; un accompagnement psychologique est proposé.`},
				{slug: "cr-cardiologie-2025-11-18", typ: "consultation", title: "Consultation de cardiologie", date: "2025-11-18 11:00", start: "2025-11-18 10:30", end: "2025-11-18 11:00",
					author: "lemaire", writer: "lemaire", sector: "SA01", body: `Consultation de cardiologie, Centre hospitalier de la Côte Bleue.
Adressé par le Dr Claire Durand pour un bilan cardiovasculaire : diabète de type 2, hypertension, hypercholestérolémie. Tabagisme sevré depuis 2010 (20 paquets-années).

Pas de douleur thoracique, pas de dyspnée d'effort (NYHA I), pas de palpitation.
Examen : PA 146/88 mmHg, FC 70/min, auscultation cardiaque normale, pas de souffle carotidien.
ECG : rythme sinusal à 68/min, PR 160 ms, QRS fins, pas de trouble de la repolarisation.
Échocardiographie : FEVG 62 %, hypertrophie ventriculaire gauche modérée, pas de valvulopathie.

Conclusion : cardiopathie hypertensive débutante. Objectif tensionnel < 130/80 mmHg : ramipril porté à 5 mg. Épreuve d'effort à prévoir en 2026.`},
				{slug: "cr-operatoire-2023-05-16", typ: "operative", title: "Compte rendu opératoire : cataracte de l'œil droit", date: "2023-05-16 14:00", start: "2023-05-16 08:00", end: "2023-05-16 17:00",
					authorOrg: "ch-cote-bleue", writer: "dpi", sector: "SA01", pdf: true, body: `Service d'ophtalmologie, Centre hospitalier de la Côte Bleue
Intervention du 16/05/2023, en chirurgie ambulatoire.

Intervention : phacoémulsification de l'œil droit avec implantation d'une lentille intraoculaire pliable dans le sac capsulaire.
Indication : cataracte nucléaire de l'œil droit, acuité visuelle 3/10.
Précaution : allergie à la pénicilline.
Anesthésie : topique et intracamérulaire.

Déroulement : incision cornéenne temporale de 2,2 mm, capsulorhexis circulaire continu, phacoémulsification du noyau, aspiration des masses, implant acrylique hydrophobe de 21,5 dioptries dans le sac. Injection intracamérulaire de moxifloxacine. Aucun incident.

Suites : collyre dexaméthasone-tobramycine 4 fois par jour pendant 3 semaines. Contrôle à J7 et à 1 mois.`},
			},
			lab: seedLab{slug: "bilan-2026-09-28", date: "2026-09-28", conclusion: "Équilibre glycémique insuffisant (HbA1c 7,4 %). LDL-cholestérol au-dessus de la cible. GGT modérément élevées. Fonction rénale conservée.", results: []seedResult{
				{slug: "hba1c", loinc: "4548-4", display: "Hémoglobine glyquée (HbA1c)", value: 7.4, unit: "%", unitName: "%", low: 4, high: 6, interp: "H"},
				{slug: "glycemie", loinc: "14771-0", display: "Glycémie à jeun", value: 8.1, unit: "mmol/L", unitName: "mmol/L", low: 3.9, high: 5.5, interp: "H"},
				{slug: "creatinine", loinc: "14682-9", display: "Créatinine", value: 92, unit: "umol/L", unitName: "µmol/L", low: 64, high: 104, interp: "N"},
				{slug: "dfg", loinc: "62238-1", display: "Débit de filtration glomérulaire estimé (CKD-EPI)", value: 76, unit: "mL/min/{1.73_m2}", unitName: "mL/min/1,73 m²", low: 60, interp: "N"},
				{slug: "ldl", loinc: "13457-7", display: "Cholestérol LDL (calculé)", value: 1.12, unit: "g/L", unitName: "g/L", high: 1.0, interp: "H"},
				{slug: "ggt", loinc: "2324-2", display: "Gamma-glutamyltransférase (GGT)", value: 68, unit: "U/L", unitName: "U/L", low: 8, high: 61, interp: "H"},
			}},
			imaging: seedImaging{slug: "echographie-abdominale-2026-07-03", date: "2026-07-03 10:15", writer: "imagerie", org: "imagerie-prado", title: "Échographie abdominale",
				conclusion: "Stéatose hépatique modérée, sans lésion focale. Vésicule alithiasique.",
				report: `Échographie abdominale du 03/07/2026, centre d'imagerie du Prado.
Indication : élévation des GGT chez un patient diabétique.
Résultat : foie de taille normale, hyperéchogène de façon homogène, évoquant une stéatose modérée. Pas de lésion focale. Vésicule alithiasique à paroi fine. Voies biliaires non dilatées. Pancréas, rate et reins sans particularité.
Conclusion : stéatose hépatique modérée.`,
				series: []seedSeries{{modality: "US", modalityName: "Ultrasound", description: "Échographie abdominale", site: "113345001", siteName: "Abdomen", instances: 24}}},
			immunizations: []seedImmunization{
				{slug: "grippe-2025-10-21", cvx: "141", cvxName: "Influenza, seasonal, injectable", text: "Vaccin grippal inactivé, saison 2025-2026", date: "2025-10-21 16:20", lot: "GRP25A117", site: "LD", route: "IM", performer: "roux", writer: "roux", dose: 1},
				{slug: "dtpolio-2023-04-11", cvx: "113", cvxName: "Td (adult) preservative free", text: "Revaxis (diphtérie, tétanos, poliomyélite) : rappel des 65 ans", date: "2023-04-11 10:00", lot: "RVX22C031", site: "LD", route: "IM", performer: "durand", writer: "durand", dose: 1},
			},
			claims: []seedClaim{
				{slug: "consultation-2026-10-06", date: "2026-10-06", kind: "professional", provider: "durand", note: "ALD 8 : prise en charge à 100 %, participation forfaitaire de 2 € déduite.",
					items: []seedClaimItem{{text: "Consultation de médecine générale (G)", submitted: 30, benefit: 28}}},
				{slug: "pharmacie-2026-10-08", date: "2026-10-08", kind: "pharmacy", providerOrg: "pharmacie-vieux-port", note: "ALD 8 : prise en charge à 100 %, franchise médicale de 1 € par boîte déduite.",
					items: []seedClaimItem{{text: "Metformine 1000 mg, boîte de 60", submitted: 5.87, benefit: 4.87}, {text: "Gliclazide 30 mg LM, boîte de 60", submitted: 6.22, benefit: 5.22},
						{text: "Ramipril 5 mg, boîte de 30", submitted: 4.70, benefit: 3.70}, {text: "Atorvastatine 20 mg, boîte de 30", submitted: 6.04, benefit: 5.04}}},
			},
			vitals: seedVitals{date: "2026-10-06 09:10", author: "durand", systolic: 142, diastolic: 86, hr: 72, weight: 88, height: 175},
		},
	}
}

func seedLefevre() *seedPatient {
	return &seedPatient{
		key: "lefevre", nir: "285097511214648", family: "Lefèvre", given: "Marie-Claire", birthDate: "1985-09-02", gender: "female",
		email: "mc.lefevre@example.org", birthPlace: "Paris 12e (75)", desk: "cnam",
		prefs:    map[string]string{"MASKED": "deny"},
		grants:   []seedGrant{{pro: "lambert", start: "2025-01-06", end: "2025-07-06"}},
		settings: "treating doctor Durand; nurse Lambert's authorization expired; MASKED denied; one document hidden from her",
		record: seedRecord{
			conditions: []seedCondition{
				{slug: "rhinite", code: "J30.1", display: "Rhinite allergique due au pollen", onset: "2005-04-01"},
				{slug: "appendicite", code: "K35.8", display: "Appendicite aiguë, autre et sans précision", onset: "2004-04-11", abatement: "2004-04-12"},
			},
			procedures: []seedProcedure{{slug: "appendicectomie", code: "HHFA016", display: "Appendicectomie, par cœlioscopie ou par laparotomie avec préparation par cœlioscopie",
				text: "Appendicectomie", date: "2004-04-12", note: "Opérée à Paris ; suites simples."}},
			allergies: []seedAllergy{
				{slug: "acariens", code: "232350006", display: "Allergie aux acariens de la poussière de maison", category: "environment", criticality: "low", onset: "2005",
					reaction: "76067001", reactionDisplay: "Éternuements", severity: "mild", description: "Rhinite et éternuements en salve, prick-tests positifs (2005)."},
				{slug: "graminees", code: "418689008", display: "Allergie au pollen de graminées", category: "environment", criticality: "low", onset: "2005",
					reaction: "76067001", reactionDisplay: "Éternuements", severity: "mild", description: "Rhinoconjonctivite saisonnière d'avril à juin."},
			},
			prescription: seedPrescription{date: "2026-04-14", author: "durand", lines: []seedMed{
				{atc: "R06AX27", atcDisplay: "desloratadine", text: "Desloratadine 5 mg, comprimé pelliculé", dosage: "1 comprimé par jour pendant la saison pollinique"},
				{atc: "R01AD08", atcDisplay: "fluticasone", text: "Fluticasone 50 µg/dose, suspension pour pulvérisation nasale", dosage: "2 pulvérisations dans chaque narine le matin"},
			}},
			documents: []seedDocument{
				{slug: "cr-consultation-2026-09-15", typ: "consultation", title: "Consultation : nodule du sein gauche", date: "2026-09-15 17:45", start: "2026-09-15 17:20", end: "2026-09-15 17:45",
					author: "durand", writer: "durand", sector: "SA07", body: `Motif : nodule du sein gauche découvert par la patiente il y a 3 semaines.

Antécédents : appendicectomie (2004), rhinite allergique. Pas d'antécédent familial de cancer du sein ou de l'ovaire. Une grossesse. Contraception par dispositif intra-utérin au cuivre.

Examen : nodule d'environ 1,5 cm du quadrant supéro-externe gauche, ferme, mobile, indolore. Pas d'adénopathie axillaire ni sus-claviculaire. Sein droit normal.

Conclusion : nodule mammaire à explorer. Mammographie bilatérale et échographie mammaire prescrites (rendez-vous le 22/09/2026 au centre d'imagerie du Prado). Revoir la patiente avec les résultats.`},
				{slug: "cr-senologie-2026-09-29", typ: "consultation", title: "Consultation de sénologie et microbiopsie", date: "2026-09-29 11:30", start: "2026-09-29 10:45", end: "2026-09-29 11:30",
					authorOrg: "ch-cote-bleue", writer: "dpi", sector: "SA01", body: `Consultation de sénologie, Centre hospitalier de la Côte Bleue.
Adressée par le Dr Claire Durand pour une opacité du sein gauche classée ACR 4.

Microbiopsie échoguidée réalisée ce jour : 4 prélèvements au pistolet 14 G de la lésion du quadrant supéro-externe gauche, pose d'un clip repère. Pas de complication.

Les résultats seront remis à la patiente lors d'une consultation dédiée, le 08/10/2026.`},
				{slug: "cr-anapath-2026-10-02", typ: "pathology", title: "Compte rendu d'anatomie et de cytologie pathologiques : microbiopsies du sein gauche", date: "2026-10-02 15:00", start: "2026-09-29 11:00", end: "2026-10-02 15:00",
					authorOrg: "ch-cote-bleue", writer: "dpi", sector: "SA01", pdf: true, hidden: true, body: `Laboratoire d'anatomie et de cytologie pathologiques, Centre hospitalier de la Côte Bleue

Prélèvement : microbiopsies échoguidées du sein gauche, quadrant supéro-externe (4 carottes), reçues le 29/09/2026.
Macroscopie : 4 carottes biopsiques de 12 à 15 mm.
Microscopie : prolifération carcinomateuse infiltrante d'architecture canalaire. Grade histopronostique SBR II (3+2+1). Pas d'embole vasculaire visible sur ce matériel. Composante intracanalaire minime.
Immunohistochimie : récepteurs aux œstrogènes positifs (90 %), récepteurs à la progestérone positifs (60 %), HER2 score 1+ (négatif), Ki67 15 %.

Conclusion : carcinome infiltrant de type non spécifique du sein gauche, grade SBR II, RE+ RP+ HER2 négatif.
Dossier présenté en réunion de concertation pluridisciplinaire le 06/10/2026. Résultat à annoncer à la patiente en consultation d'annonce.`},
			},
			lab: seedLab{slug: "bilan-2026-09-25", date: "2026-09-25", conclusion: "Numération formule sanguine, ferritine et TSH normales.", results: []seedResult{
				{slug: "hemoglobine", loinc: "718-7", display: "Hémoglobine", value: 12.9, unit: "g/dL", unitName: "g/dL", low: 12, high: 16, interp: "N"},
				{slug: "leucocytes", loinc: "6690-2", display: "Leucocytes", value: 6.8, unit: "10*9/L", unitName: "G/L", low: 4, high: 10, interp: "N"},
				{slug: "plaquettes", loinc: "777-3", display: "Plaquettes", value: 265, unit: "10*9/L", unitName: "G/L", low: 150, high: 400, interp: "N"},
				{slug: "ferritine", loinc: "2276-4", display: "Ferritine", value: 18, unit: "ug/L", unitName: "µg/L", low: 15, high: 150, interp: "N"},
				{slug: "tsh", loinc: "3016-3", display: "Thyréostimuline (TSH)", value: 1.8, unit: "m[IU]/L", unitName: "mUI/L", low: 0.4, high: 4, interp: "N"},
			}},
			imaging: seedImaging{slug: "mammographie-2026-09-22", date: "2026-09-22 14:30", writer: "imagerie", org: "imagerie-prado", title: "Mammographie bilatérale et échographie mammaire",
				ccam: "QEQK004", ccamName: "Mammographie bilatérale",
				conclusion: "Opacité spiculée de 14 mm du quadrant supéro-externe du sein gauche, ACR 4. Sein droit ACR 1. Microbiopsie échoguidée recommandée.",
				report: `Mammographie bilatérale (2 incidences par sein) et échographie mammaire du 22/09/2026.
Indication : nodule palpé du sein gauche.
Seins de densité B. À gauche, opacité spiculée de 14 mm du quadrant supéro-externe, correspondant en échographie à une masse hypoéchogène irrégulière à grand axe vertical, sans adénopathie axillaire. Sein droit sans anomalie.
Conclusion : sein gauche ACR 4, sein droit ACR 1. Microbiopsie échoguidée recommandée ; la patiente est adressée en consultation de sénologie.`,
				series: []seedSeries{
					{modality: "MG", modalityName: "Mammography", description: "Mammographie bilatérale, face et oblique", site: "76752008", siteName: "Sein", instances: 4},
					{modality: "US", modalityName: "Ultrasound", description: "Échographie mammaire bilatérale", site: "76752008", siteName: "Sein", instances: 12},
				}},
			immunizations: []seedImmunization{
				{slug: "grippe-2025-11-05", cvx: "141", cvxName: "Influenza, seasonal, injectable", text: "Vaccin grippal inactivé, saison 2025-2026", date: "2025-11-05 08:40", lot: "GRP25B204", site: "LD", route: "IM", performer: "lambert", writer: "lambert", dose: 1},
				{slug: "covid-2024-10-20", cvx: "213", cvxName: "SARS-COV-2 (COVID-19) vaccine, UNSPECIFIED FORMULATION", text: "Comirnaty (vaccin à ARNm contre la COVID-19), rappel automnal", date: "2024-10-20 11:00", lot: "CMN24K88", site: "LD", route: "IM", performer: "roux", writer: "roux", dose: 4},
			},
			claims: []seedClaim{
				{slug: "consultation-2026-09-15", date: "2026-09-15", kind: "professional", provider: "durand", note: "Remboursement à 70 %, participation forfaitaire de 2 € déduite.",
					items: []seedClaimItem{{text: "Consultation de médecine générale (G)", submitted: 30, benefit: 19}}},
				{slug: "imagerie-2026-09-22", date: "2026-09-22", kind: "professional", providerOrg: "imagerie-prado", note: "Remboursement à 70 %, participation forfaitaire de 2 € déduite par acte.",
					items: []seedClaimItem{{text: "Mammographie bilatérale", ccam: "QEQK004", submitted: 66.42, benefit: 44.49}, {text: "Échographie mammaire bilatérale", submitted: 41.58, benefit: 27.11}}},
			},
			vitals: seedVitals{date: "2026-09-15 17:25", author: "durand", systolic: 118, diastolic: 74, hr: 68, weight: 62, height: 168},
		},
	}
}

func seedMoreau() *seedPatient {
	return &seedPatient{
		key: "moreau", nir: "116066938321550", family: "Moreau", given: "Lucas", birthDate: "2016-06-21", gender: "male",
		email: "famille.moreau@example.org", birthPlace: "Lyon 3e (69)", desk: "durand",
		grants:   []seedGrant{{pro: "lambert", start: "2026-03-01"}},
		settings: "treating doctor Durand; nurse Lambert authorized",
		record: seedRecord{
			conditions: []seedCondition{
				{slug: "asthme", code: "J45.9", display: "Asthme, sans précision", onset: "2019-09-15"},
				{slug: "dermatite-atopique", code: "L20.9", display: "Dermite atopique, sans précision", onset: "2017-01-10"},
			},
			procedures: []seedProcedure{{slug: "adenoidectomie", display: "Adénoïdectomie", text: "Adénoïdectomie (ablation des végétations adénoïdes) pour otites séreuses récidivantes",
				date: "2020-02-11", performer: "ch-cote-bleue"}},
			allergies: []seedAllergy{{slug: "arachide", code: "91935009", display: "Allergie à l'arachide", category: "food", criticality: "high", onset: "2018-05-20",
				reaction: "39579001", reactionDisplay: "Anaphylaxie", severity: "severe", description: "Œdème des lèvres, urticaire généralisée et gêne respiratoire 10 minutes après un biscuit contenant de l'arachide (2018)."}},
			prescription: seedPrescription{date: "2026-10-20", author: "durand", repeats: 2, lines: []seedMed{
				{atc: "R03AC02", atcDisplay: "salbutamol", text: "Salbutamol 100 µg/dose, suspension pour inhalation en flacon pressurisé", dosage: "2 bouffées avec chambre d'inhalation en cas de gêne respiratoire, jusqu'à 8 bouffées par jour"},
				{atc: "R03BA05", atcDisplay: "fluticasone", text: "Fluticasone 50 µg/dose, suspension pour inhalation en flacon pressurisé", dosage: "2 bouffées matin et soir avec chambre d'inhalation, se rincer la bouche après"},
				{atc: "C01CA24", atcDisplay: "épinéphrine", text: "Adrénaline 0,15 mg, solution injectable en stylo prérempli (2 stylos)", dosage: "1 injection dans la face antérolatérale de la cuisse en cas de réaction allergique grave, puis appeler le 15"},
			}},
			documents: []seedDocument{
				{slug: "cr-consultation-2026-10-20", typ: "consultation", title: "Consultation : suivi de l'asthme et de l'allergie à l'arachide", date: "2026-10-20 16:50", start: "2026-10-20 16:30", end: "2026-10-20 16:50",
					author: "durand", writer: "durand", sector: "SA07", body: `Motif : suivi de l'asthme et de l'allergie à l'arachide, renouvellement du projet d'accueil individualisé (PAI) pour l'école.

Depuis le passage aux urgences de février 2026 : une gêne à l'effort, cédant au salbutamol. Pas de réveil nocturne. Bonne technique d'inhalation avec la chambre.

Examen : poids 32 kg, taille 138 cm, auscultation pulmonaire normale, SpO2 98 %. Eczéma modéré des plis des coudes.

Conclusion : asthme partiellement contrôlé. Poursuite de la fluticasone inhalée ; plan d'action écrit remis aux parents. Allergie à l'arachide avec antécédent d'anaphylaxie : éviction stricte, deux stylos d'adrénaline (domicile et école), PAI renouvelé et signé.

Prochaine consultation dans 3 mois ; avis d'allergologie pédiatrique demandé.`},
				{slug: "cr-urgences-2026-02-08", typ: "emergency", title: "Compte rendu de passage aux urgences pédiatriques", date: "2026-02-09 02:30", start: "2026-02-08 21:40", end: "2026-02-09 02:15",
					author: "haddad", writer: "dpi", sector: "SA01", pdf: true, body: `Urgences pédiatriques, Centre hospitalier de la Côte Bleue
Arrivée le 08/02/2026 à 21 h 40, amené par ses parents. Sortie le 09/02/2026 à 02 h 15.

Motif : gêne respiratoire depuis 24 heures au cours d'une rhinopharyngite.
Antécédents : asthme, dermatite atopique, allergie à l'arachide (anaphylaxie en 2018).
À l'arrivée : FR 32/min, SpO2 92 % en air ambiant, sibilants diffus, tirage intercostal modéré, parole possible. Apyrétique.
Radiographie du thorax : distension thoracique, pas de foyer.

Traitement : 3 nébulisations de salbutamol 2,5 mg avec ipratropium, prednisolone 1 mg/kg per os. Nette amélioration : SpO2 97 %, disparition du tirage.
Diagnostic : crise d'asthme modérée déclenchée par une infection virale.

Sortie : salbutamol 4 bouffées toutes les 4 heures pendant 48 heures puis à la demande, prednisolone 30 mg par jour pendant 3 jours. Consulter le médecin traitant dans les 7 jours.
Dr Karim Haddad, médecin urgentiste`},
			},
			lab: seedLab{slug: "bilan-2026-03-10", date: "2026-03-10", conclusion: "Sensibilisation à l'arachide (IgE spécifiques f13 à 18,5 kUA/L). Hyperéosinophilie modérée. Terrain atopique.", results: []seedResult{
				{slug: "ige-totales", loinc: "19113-0", display: "IgE totales", value: 420, unit: "k[IU]/L", unitName: "kUI/L", high: 90, interp: "H"},
				{slug: "ige-arachide", loinc: "6206-7", display: "IgE spécifiques arachide (f13)", value: 18.5, unit: "k[IU]/L", unitName: "kUA/L", high: 0.35, interp: "H"},
				{slug: "eosinophiles", loinc: "711-2", display: "Polynucléaires éosinophiles", value: 0.9, unit: "10*9/L", unitName: "G/L", high: 0.5, interp: "H"},
				{slug: "hemoglobine", loinc: "718-7", display: "Hémoglobine", value: 12.8, unit: "g/dL", unitName: "g/dL", low: 11.5, high: 15.5, interp: "N"},
			}},
			imaging: seedImaging{slug: "radio-thorax-2026-02-08", date: "2026-02-08 22:30", writer: "dpi", org: "ch-cote-bleue", title: "Radiographie du thorax de face",
				ccam: "ZBQK002", ccamName: "Radiographie du thorax",
				conclusion: "Distension thoracique modérée avec épaississement péribronchique. Pas de foyer, pas de pneumothorax.",
				report: `Radiographie du thorax de face, urgences pédiatriques, 08/02/2026.
Indication : crise d'asthme, recherche de complication.
Distension thoracique modérée, épaississement péribronchique bilatéral. Pas de foyer de condensation, pas d'épanchement, pas de pneumothorax. Silhouette cardiaque normale.`,
				series: []seedSeries{{modality: "DX", modalityName: "Digital Radiography", description: "Thorax de face", site: "51185008", siteName: "Thorax", instances: 1}}},
			immunizations: []seedImmunization{
				{slug: "hexavalent-2016-08-22", cvx: "146", cvxName: "DTaP,IPV,Hib,HepB", text: "Infanrix Hexa (diphtérie, tétanos, coqueluche, poliomyélite, Haemophilus influenzae b, hépatite B)", date: "2016-08-22 10:00", lot: "A21CB812A", site: "LT", route: "IM", performer: "durand", writer: "durand", dose: 1},
				{slug: "ror-2017-06-26", cvx: "03", cvxName: "MMR", text: "Priorix (rougeole, oreillons, rubéole)", date: "2017-06-26 10:00", lot: "A69CC519A", site: "LT", route: "IM", performer: "durand", writer: "durand", dose: 1},
				{slug: "dtcapolio-2022-06-27", cvx: "130", cvxName: "DTaP-IPV", text: "Tetravac (diphtérie, tétanos, coqueluche, poliomyélite) : rappel des 6 ans", date: "2022-06-27 17:00", lot: "T3E501V", site: "LD", route: "IM", performer: "durand", writer: "durand", dose: 4},
			},
			claims: []seedClaim{
				{slug: "consultation-2026-10-20", date: "2026-10-20", kind: "professional", provider: "durand", note: "Enfant de moins de 18 ans : pas de participation forfaitaire.",
					items: []seedClaimItem{{text: "Consultation de médecine générale (G)", submitted: 30, benefit: 21}}},
				{slug: "pharmacie-2026-10-21", date: "2026-10-21", kind: "pharmacy", providerOrg: "pharmacie-vieux-port", note: "Remboursement à 65 %.",
					items: []seedClaimItem{{text: "Salbutamol 100 µg/dose, 1 flacon", submitted: 4.72, benefit: 3.07}, {text: "Fluticasone 50 µg/dose, 1 flacon", submitted: 7.87, benefit: 5.12},
						{text: "Adrénaline 0,15 mg, 2 stylos", submitted: 76.66, benefit: 49.83}}},
			},
			vitals: seedVitals{date: "2026-10-20 16:35", author: "durand", hr: 88, weight: 32, height: 138, spo2: 98},
		},
	}
}

func seedBenali() *seedPatient {
	return &seedPatient{
		key: "benali", nir: "272111320506372", family: "Benali", given: "Fatima", birthDate: "1972-11-30", gender: "female",
		email: "f.benali@example.org", birthPlace: "Marseille 5e (13)", desk: "roux",
		prefs:    map[string]string{"BTG": "deny"},
		grants:   []seedGrant{{pro: "roux", start: "2026-01-12"}},
		settings: "treating doctor Durand; pharmacist Roux authorized; break-the-glass denied; one document archived, one replaced",
		record: seedRecord{
			conditions: []seedCondition{
				{slug: "hypothyroidie", code: "E03.9", display: "Hypothyroïdie, sans précision", onset: "2010-03-01"},
				{slug: "migraine", code: "G43.9", display: "Migraine, sans précision", onset: "1995-01-01"},
				{slug: "lithiase-vesiculaire", code: "K80.2", display: "Calcul de la vésicule biliaire sans cholécystite", onset: "2019-01-15", abatement: "2019-03-18"},
			},
			procedures: []seedProcedure{{slug: "cholecystectomie", code: "HMFC004", display: "Cholécystectomie, par cœlioscopie", text: "Cholécystectomie par cœlioscopie",
				date: "2019-03-18", performer: "ch-cote-bleue"}},
			allergies: []seedAllergy{{slug: "latex", code: "300916003", display: "Allergie au latex", category: "environment", criticality: "high", onset: "2008",
				reaction: "126485001", reactionDisplay: "Urticaire", severity: "moderate", description: "Urticaire de contact au contact de gants en latex ; matériel sans latex pour tout soin."}},
			prescription: seedPrescription{date: "2026-08-25", author: "durand", repeats: 5, lines: []seedMed{
				{atc: "H03AA01", atcDisplay: "lévothyroxine sodique", text: "Lévothyroxine sodique 100 µg, comprimé sécable", dosage: "1 comprimé le matin à jeun, 30 minutes avant le petit-déjeuner"},
				{atc: "N02CC01", atcDisplay: "sumatriptan", text: "Sumatriptan 50 mg, comprimé pelliculé", dosage: "1 comprimé dès le début d'une crise de migraine, à renouveler après 2 heures si besoin, au plus 2 prises par 24 heures"},
			}},
			documents: []seedDocument{
				{slug: "cr-consultation-2026-08-25", typ: "consultation", title: "Consultation : suivi de l'hypothyroïdie", date: "2026-08-25 10:20", start: "2026-08-25 10:00", end: "2026-08-25 10:20",
					author: "durand", writer: "durand", sector: "SA07", body: `Motif : suivi de l'hypothyroïdie et renouvellement du traitement.

Pas de signe clinique de dysthyroïdie. Migraines : 2 crises par mois, soulagées par le sumatriptan, pas d'abus médicamenteux.

Examen : PA 124/78 mmHg, FC 70/min, poids 70 kg.
Biologie du 20/08/2026 : TSH 2,1 mUI/L, T4 libre 15,2 pmol/L.

Conclusion : hypothyroïdie équilibrée sous lévothyroxine 100 µg. Traitement renouvelé, TSH de contrôle dans 6 mois. Rappel : allergie au latex à signaler avant tout soin.`},
				{slug: "cr-consultation-2023-02-14", typ: "consultation", title: "Consultation : céphalées récidivantes", date: "2023-02-14 18:30", start: "2023-02-14 18:10", end: "2023-02-14 18:30",
					author: "durand", writer: "durand", sector: "SA07", archived: true, body: `Motif : céphalées récidivantes.

Céphalées hémicrâniennes pulsatiles avec nausées et photophobie, 3 à 4 fois par mois, durant 12 à 24 heures, depuis l'adolescence, plus fréquentes depuis 6 mois. Examen neurologique normal.

Conclusion : migraine sans aura. Agenda des crises, sumatriptan 50 mg en cas de crise. Imagerie cérébrale non indiquée à ce stade, à discuter si les céphalées changent de caractère.`},
				{slug: "cr-operatoire-2019-03-18", typ: "operative", title: "Compte rendu opératoire : cholécystectomie par cœlioscopie", date: "2019-03-18 13:00", start: "2019-03-18 10:30", end: "2019-03-18 12:15",
					authorOrg: "ch-cote-bleue", writer: "dpi", sector: "SA01", pdf: true, body: `Service de chirurgie viscérale, Centre hospitalier de la Côte Bleue
Intervention du 18/03/2019 : cholécystectomie par cœlioscopie.

Indication : lithiase vésiculaire symptomatique (coliques hépatiques récidivantes).
Précaution : allergie au latex, salle et matériel sans latex.
Anesthésie générale.

Open-cœlioscopie ombilicale, 3 trocarts. Vésicule lithiasique à paroi fine. Dissection du triangle de Calot jusqu'à la vue critique de sécurité. Clips sur l'artère et le canal cystiques. Cholécystectomie rétrograde, extraction dans un sac. Pas de cholangiographie (bilan hépatique normal, voie biliaire principale fine). Hémostase contrôlée, pas de drainage.

Suites prévues : reprise de l'alimentation le soir, sortie le lendemain. Examen anatomopathologique demandé.`},
				{slug: "lettre-liaison-2019-03-19", typ: "discharge", title: "Lettre de liaison à la sortie : chirurgie viscérale", date: "2019-03-19 11:00", start: "2019-03-18 08:00", end: "2019-03-19 11:00",
					authorOrg: "ch-cote-bleue", writer: "dpi", sector: "SA01", body: `Lettre de liaison à la sortie, chirurgie viscérale.

Patiente hospitalisée du 18/03/2019 au 19/03/2019 pour une cholécystectomie par cœlioscopie (lithiase vésiculaire symptomatique). Suites simples.

Traitement de sortie : paracétamol 1 g jusqu'à 4 fois par jour si douleur pendant 5 jours ; lévothyroxine 150 µg le matin.
Soins : pansements secs tous les 2 jours par une infirmière, ablation des fils à J10.
Consultation de contrôle avec le chirurgien dans 1 mois.`},
				{slug: "lettre-liaison-2019-03-19-v2", typ: "discharge", title: "Lettre de liaison à la sortie : chirurgie viscérale (version corrigée)", date: "2019-03-20 09:00", start: "2019-03-18 08:00", end: "2019-03-19 11:00",
					authorOrg: "ch-cote-bleue", writer: "dpi", sector: "SA01", replaces: "lettre-liaison-2019-03-19", body: `Lettre de liaison à la sortie, chirurgie viscérale (version corrigée).

Patiente hospitalisée du 18/03/2019 au 19/03/2019 pour une cholécystectomie par cœlioscopie (lithiase vésiculaire symptomatique). Suites simples.

Traitement de sortie : paracétamol 1 g jusqu'à 4 fois par jour si douleur pendant 5 jours ; lévothyroxine 100 µg le matin, traitement habituel inchangé.
Soins : pansements secs tous les 2 jours par une infirmière, ablation des fils à J10.
Consultation de contrôle avec le chirurgien dans 1 mois.

Cette version remplace celle du 19/03/2019, qui indiquait par erreur une posologie de lévothyroxine de 150 µg.`},
			},
			lab: seedLab{slug: "bilan-2026-08-20", date: "2026-08-20", conclusion: "Bilan thyroïdien normal sous traitement. Pas de syndrome inflammatoire.", results: []seedResult{
				{slug: "tsh", loinc: "3016-3", display: "Thyréostimuline (TSH)", value: 2.1, unit: "m[IU]/L", unitName: "mUI/L", low: 0.4, high: 4, interp: "N"},
				{slug: "t4l", loinc: "14920-3", display: "Thyroxine libre (T4L)", value: 15.2, unit: "pmol/L", unitName: "pmol/L", low: 9, high: 19, interp: "N"},
				{slug: "ferritine", loinc: "2276-4", display: "Ferritine", value: 35, unit: "ug/L", unitName: "µg/L", low: 15, high: 150, interp: "N"},
				{slug: "crp", loinc: "1988-5", display: "Protéine C réactive (CRP)", value: 2, unit: "mg/L", unitName: "mg/L", high: 5, interp: "N"},
			}},
			imaging: seedImaging{slug: "irm-cerebrale-2025-12-04", date: "2025-12-04 18:00", writer: "imagerie", org: "imagerie-prado", title: "IRM cérébrale sans injection",
				conclusion: "IRM cérébrale normale.",
				report: `IRM cérébrale sans injection du 04/12/2025 (séquences T1, T2, FLAIR, diffusion, T2*).
Indication : migraines plus fréquentes, recherche d'une cause secondaire.
Pas d'anomalie de signal de la substance blanche ni de la substance grise. Pas de processus expansif. Système ventriculaire de taille normale. Pas d'anomalie vasculaire visible.
Conclusion : IRM cérébrale normale.`,
				series: []seedSeries{
					{modality: "MR", modalityName: "Magnetic Resonance", description: "Axial FLAIR", site: "12738006", siteName: "Cerveau", instances: 28},
					{modality: "MR", modalityName: "Magnetic Resonance", description: "Axial diffusion", site: "12738006", siteName: "Cerveau", instances: 56},
				}},
			immunizations: []seedImmunization{
				{slug: "grippe-2025-10-15", cvx: "141", cvxName: "Influenza, seasonal, injectable", text: "Vaccin grippal inactivé, saison 2025-2026", date: "2025-10-15 12:10", lot: "GRP25A093", site: "LD", route: "IM", performer: "roux", writer: "roux", dose: 1},
				{slug: "covid-2025-10-15", cvx: "213", cvxName: "SARS-COV-2 (COVID-19) vaccine, UNSPECIFIED FORMULATION", text: "Comirnaty (vaccin à ARNm contre la COVID-19), rappel automnal", date: "2025-10-15 12:15", lot: "CMN25J41", site: "LD", route: "IM", performer: "roux", writer: "roux", dose: 4},
			},
			claims: []seedClaim{
				{slug: "consultation-2026-08-25", date: "2026-08-25", kind: "professional", provider: "durand", note: "Remboursement à 70 %, participation forfaitaire de 2 € déduite.",
					items: []seedClaimItem{{text: "Consultation de médecine générale (G)", submitted: 30, benefit: 19}}},
				{slug: "pharmacie-2026-08-26", date: "2026-08-26", kind: "pharmacy", providerOrg: "pharmacie-vieux-port", note: "Remboursement à 65 %, franchise médicale de 1 € par boîte déduite.",
					items: []seedClaimItem{{text: "Lévothyroxine 100 µg, boîte de 90", submitted: 3.11, benefit: 1.02}, {text: "Sumatriptan 50 mg, boîte de 6", submitted: 8.19, benefit: 4.32}}},
			},
			vitals: seedVitals{date: "2026-08-25 10:05", author: "durand", systolic: 124, diastolic: 78, hr: 70, weight: 70, height: 162},
		},
	}
}

func seedGirard() *seedPatient {
	return &seedPatient{
		key: "girard", nir: "141012B03301258", family: "Girard", given: "Robert", birthDate: "1941-01-08", gender: "male",
		phone: "+33 6 39 98 12 34", birthPlace: "Bastia (2B)", desk: "durand",
		grants:      []seedGrant{{pro: "lambert", start: "2025-11-03"}},
		closeReason: "Je ne souhaite plus utiliser mon DMP.",
		settings:    "treating doctor Durand; nurse Lambert authorized; DMP closed by him (409 to professionals)",
		record: seedRecord{
			conditions: []seedCondition{
				{slug: "insuffisance-cardiaque", code: "I50.0", display: "Insuffisance cardiaque congestive", onset: "2021-02-01", note: "FEVG 35 % (avril 2026)."},
				{slug: "fibrillation-atriale", code: "I48.9", display: "Fibrillation et flutter auriculaires, sans précision", onset: "2019-06-01", note: "Fibrillation atriale permanente, anticoagulée."},
				{slug: "mrc", code: "N18.3", display: "Maladie rénale chronique, stade 3", onset: "2022-09-01"},
				{slug: "coxarthrose", code: "M16.9", display: "Coxarthrose, sans précision", onset: "2015-01-01", abatement: "2018-01-22"},
			},
			procedures: []seedProcedure{{slug: "pth-gauche", code: "NEKA020", display: "Remplacement de l'articulation coxofémorale par prothèse totale", text: "Prothèse totale de hanche gauche",
				date: "2018-01-22", performer: "ch-cote-bleue"}},
			allergies: []seedAllergy{{slug: "aucune-allergie-medicamenteuse", code: "409137002", display: "Pas d'allergie médicamenteuse connue"}},
			prescription: seedPrescription{date: "2026-06-02", author: "durand", repeats: 2, note: "Prescriptions relatives au traitement de l'affection de longue durée (ALD 5).", lines: []seedMed{
				{atc: "C07AB07", atcDisplay: "bisoprolol", text: "Bisoprolol 2,5 mg, comprimé", dosage: "1 comprimé le matin"},
				{atc: "C03CA01", atcDisplay: "furosémide", text: "Furosémide 40 mg, comprimé sécable", dosage: "1 comprimé le matin ; se peser chaque matin et appeler en cas de prise de plus de 2 kg en 3 jours"},
				{atc: "B01AF02", atcDisplay: "apixaban", text: "Apixaban 2,5 mg, comprimé pelliculé", dosage: "1 comprimé matin et soir"},
				{atc: "C09AA05", atcDisplay: "ramipril", text: "Ramipril 2,5 mg, gélule", dosage: "1 gélule le soir"},
			}},
			documents: []seedDocument{
				{slug: "cr-consultation-2026-06-02", typ: "consultation", title: "Consultation : suivi de l'insuffisance cardiaque", date: "2026-06-02 11:40", start: "2026-06-02 11:15", end: "2026-06-02 11:40",
					author: "durand", writer: "durand", sector: "SA07", body: `Motif : suivi de l'insuffisance cardiaque après l'hospitalisation d'avril 2026.

Patient de 85 ans vivant seul à domicile, passage infirmier quotidien. Dyspnée pour des efforts modérés (NYHA II), pas d'orthopnée. Poids stable à 74 kg depuis la sortie.

Examen : PA 126/72 mmHg, FC 66/min irrégulière, pas d'œdème des membres inférieurs, pas de crépitant.
Biologie du 28/05/2026 : NT-proBNP 1 850 pg/mL (4 620 pg/mL à la sortie), créatinine 141 µmol/L, DFG 41 mL/min/1,73 m², kaliémie 4,6 mmol/L.

Conclusion : insuffisance cardiaque à fraction d'éjection altérée, stabilisée. Fibrillation atriale permanente anticoagulée par apixaban 2,5 mg deux fois par jour (âge de plus de 80 ans et créatinine de plus de 133 µmol/L). Traitement renouvelé, pesée quotidienne, régime peu salé (6 g par jour). Consultation de cardiologie à 3 mois.`},
				{slug: "cr-hospitalisation-2026-04-17", typ: "hospital-stay", title: "Compte rendu d'hospitalisation : décompensation cardiaque", date: "2026-04-17 16:00", start: "2026-04-10 14:00", end: "2026-04-17 12:00",
					author: "lemaire", writer: "dpi", sector: "SA01", pdf: true, body: `Service de cardiologie, Centre hospitalier de la Côte Bleue
Séjour du 10/04/2026 au 17/04/2026. Médecin responsable : Dr Bernard Lemaire.

Motif : dyspnée de repos et œdèmes des membres inférieurs depuis 8 jours.
Antécédents : fibrillation atriale permanente (2019), insuffisance cardiaque (2021), maladie rénale chronique stade 3, prothèse totale de hanche gauche (2018).
À l'entrée : PA 152/90 mmHg, FC 112/min irrégulière, SpO2 89 % en air ambiant, crépitants bilatéraux, œdèmes jusqu'aux genoux. Poids 81 kg.
Examens : NT-proBNP 9 870 pg/mL, créatinine 150 µmol/L, troponine négative. Radiographie : surcharge hydrosodée, épanchements pleuraux bilatéraux. Échocardiographie : FEVG 35 %, oreillette gauche dilatée, pas de valvulopathie significative.

Diagnostic : décompensation cardiaque globale sur fibrillation atriale rapide, favorisée par un écart de régime.
Évolution : furosémide intraveineux puis per os, ralentissement de la fibrillation par bisoprolol. Perte de 7 kg. Sortie à 74 kg, NT-proBNP 4 620 pg/mL.

Traitement de sortie : bisoprolol 2,5 mg le matin, furosémide 40 mg le matin, apixaban 2,5 mg matin et soir, ramipril 2,5 mg le soir.
Suivi : infirmière à domicile (pesée quotidienne), médecin traitant à 1 mois, cardiologue à 3 mois.`},
				{slug: "lettre-liaison-2026-04-17", typ: "discharge", title: "Lettre de liaison à la sortie : cardiologie", date: "2026-04-17 12:00", start: "2026-04-10 14:00", end: "2026-04-17 12:00",
					author: "lemaire", writer: "dpi", sector: "SA01", body: `Lettre de liaison à la sortie, cardiologie.

Chère consœur, votre patient M. Robert Girard, 85 ans, a été hospitalisé du 10 au 17/04/2026 pour une décompensation cardiaque sur fibrillation atriale rapide.

Points de vigilance : pesée quotidienne (appeler si plus de 2 kg en 3 jours), kaliémie et créatinine à contrôler à J8, pas d'anti-inflammatoire non stéroïdien.
Traitement de sortie : introduction du bisoprolol 2,5 mg ; furosémide porté à 40 mg ; apixaban 2,5 mg deux fois par jour et ramipril 2,5 mg inchangés.

Rendez-vous de cardiologie le 15/07/2026. Bien confraternellement, Dr Bernard Lemaire.`},
			},
			lab: seedLab{slug: "bilan-2026-05-28", date: "2026-05-28", conclusion: "Insuffisance rénale chronique stade 3b stable. NT-proBNP en baisse par rapport à la sortie d'hospitalisation (4 620 pg/mL). Kaliémie normale.", results: []seedResult{
				{slug: "nt-probnp", loinc: "33762-6", display: "NT-proBNP", value: 1850, unit: "pg/mL", unitName: "pg/mL", high: 1800, interp: "H"},
				{slug: "creatinine", loinc: "14682-9", display: "Créatinine", value: 141, unit: "umol/L", unitName: "µmol/L", low: 64, high: 104, interp: "H"},
				{slug: "dfg", loinc: "62238-1", display: "Débit de filtration glomérulaire estimé (CKD-EPI)", value: 41, unit: "mL/min/{1.73_m2}", unitName: "mL/min/1,73 m²", low: 60, interp: "L"},
				{slug: "potassium", loinc: "2823-3", display: "Potassium", value: 4.6, unit: "mmol/L", unitName: "mmol/L", low: 3.5, high: 5, interp: "N"},
				{slug: "sodium", loinc: "2951-2", display: "Sodium", value: 138, unit: "mmol/L", unitName: "mmol/L", low: 136, high: 145, interp: "N"},
			}},
			imaging: seedImaging{slug: "radio-thorax-2026-04-10", date: "2026-04-10 15:20", writer: "dpi", org: "ch-cote-bleue", title: "Radiographie du thorax de face",
				ccam: "ZBQK002", ccamName: "Radiographie du thorax",
				conclusion: "Cardiomégalie, surcharge hydrosodée et épanchements pleuraux bilatéraux de faible abondance.",
				report: `Radiographie du thorax de face au lit, cardiologie, 10/04/2026.
Indication : dyspnée, suspicion de décompensation cardiaque.
Cardiomégalie (index cardiothoracique 0,58). Redistribution vasculaire vers les sommets, lignes de Kerley B. Épanchements pleuraux bilatéraux de faible abondance. Pas de foyer.
Conclusion : aspect de surcharge hydrosodée.`,
				series: []seedSeries{{modality: "DX", modalityName: "Digital Radiography", description: "Thorax de face au lit", site: "51185008", siteName: "Thorax", instances: 1}}},
			immunizations: []seedImmunization{
				{slug: "grippe-2025-10-28", cvx: "141", cvxName: "Influenza, seasonal, injectable", text: "Vaccin grippal inactivé haute dose, saison 2025-2026", date: "2025-10-28 09:15", lot: "EFL25H310", site: "LD", route: "IM", performer: "lambert", writer: "lambert", dose: 1},
				{slug: "pneumocoque-2022-11-15", cvx: "133", cvxName: "Pneumococcal conjugate PCV 13", text: "Prevenar 13 (vaccin pneumococcique conjugué)", date: "2022-11-15 11:00", lot: "PCV22G118", site: "LD", route: "IM", performer: "durand", writer: "durand", dose: 1},
			},
			claims: []seedClaim{
				{slug: "consultation-2026-06-02", date: "2026-06-02", kind: "professional", provider: "durand", note: "ALD 5 : prise en charge à 100 %, participation forfaitaire de 2 € déduite.",
					items: []seedClaimItem{{text: "Consultation de médecine générale (G)", submitted: 30, benefit: 28}}},
				{slug: "soins-infirmiers-2026-06-10", date: "2026-06-10", kind: "professional", provider: "lambert", note: "ALD 5 : prise en charge à 100 %, franchise de 1 € déduite.",
					items: []seedClaimItem{{text: "Soin infirmier à domicile (AMI 1) et indemnité forfaitaire de déplacement (IFD)", submitted: 5.90, benefit: 4.90}}},
			},
			vitals: seedVitals{date: "2026-06-10 08:30", author: "lambert", systolic: 128, diastolic: 70, hr: 64, weight: 74, spo2: 95},
		},
	}
}

// seedCmd is the "seed" command.
func seedCmd(args []string, stdout, stderr io.Writer) error {
	c, err := loadConfig("seed", args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	started := time.Now()

	st, err := openStore(ctx, c)
	if err != nil {
		if pid, running := seedServerRunning(c.DataDir); running {
			return seedServerRunningError(pid, c)
		}
		return seedLockedHint(c, err)
	}
	defer st.Close()
	found, err := seedFind(ctx, st)
	if err != nil {
		return seedLockedHint(c, err)
	}
	if len(found) > 0 {
		return seedAlreadyDone(stdout, c, found)
	}
	if pid, running := seedServerRunning(c.DataDir); running {
		return seedServerRunningError(pid, c)
	}
	validator, err := fhir.NewValidator()
	if err != nil {
		return err
	}
	access, closeAccess, err := openAccess(ctx, c, st, log, nil)
	if err != nil {
		return seedLockedHint(c, err)
	}
	defer closeAccess()
	handler := api.New(api.Config{InlineMaxBytes: c.InlineMaxBytes, Logger: log, Auth: access}, st, validator)
	defer handler.Close() // its background work (export jobs) stops before the audit writer and the store close
	s := &seeder{
		ctx:     ctx,
		handler: handler,
		tokens:  map[string]string{},
		written: map[string]int{},
	}
	if err := s.issueTokens(access.Key, c); err != nil {
		return err
	}
	if err := s.run(); err != nil {
		return fmt.Errorf("seed stopped: %w\nThe data directory now holds part of the demo data: seed an empty one (or remove %s) to start again", seedLockedHint(c, err), c.DataDir)
	}
	if err := access.Auditor.Materialize(ctx); err != nil {
		log.Warn("audit events not yet copied into the store; the next start copies them", "err", err)
	}
	total := 0
	for _, n := range s.written {
		total += n
	}
	fmt.Fprintf(stdout, "Seeded %d demo DMPs on the test INS authority (%s) in %s: %d resources written through the API (%s).\n\n",
		len(seedPatients), ins.SystemTest, time.Since(started).Round(time.Millisecond), total, seedTypeCounts(s.written))
	seedTable(stdout, seedPatients, s.created, true)
	seedTokenHelp(stdout, c)
	return nil
}

func seedServerRunningError(pid string, c config) error {
	return fmt.Errorf("seed: a dmp-fhir server (pid %s) is running on the data directory %s: stop it, run the seed, then start it again (the seed writes through the server's own handlers and audit journal, which one process at a time may hold)", pid, c.DataDir)
}

// seedLockedHint adds what to do to an error that says the database is
// busy (another process writing the same SQLite file).
func seedLockedHint(c config, err error) error {
	msg := err.Error()
	if strings.Contains(msg, "database is locked") || strings.Contains(msg, "SQLITE_BUSY") || strings.Contains(msg, "held by a running process") ||
		strings.Contains(msg, "in use by another process") {
		return fmt.Errorf("%w\nThe database in %s is in use: stop the dmp-fhir server running on it, then run the seed again", err, c.DataDir)
	}
	return err
}

// seedServerRunning tells whether a live process of this host holds the
// audit journal's lock of dataDir (a server running on it).
func seedServerRunning(dataDir string) (string, bool) {
	path := filepath.Join(dataDir, "audit", "LOCK")
	info, err := os.Stat(path)
	if err != nil || time.Since(info.ModTime()) > 30*time.Second {
		return "", false // no lock, or one its holder stopped refreshing
	}
	data, _ := os.ReadFile(path)
	f := strings.Fields(string(data))
	host, _ := os.Hostname()
	if host = strings.Join(strings.Fields(host), "_"); host == "" {
		host = "-"
	}
	if len(f) != 3 || f[1] != host {
		return "", false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return "", false
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return "", false
	}
	defer p.Release()
	if err := p.Signal(syscall.Signal(0)); err != nil && !errors.Is(err, syscall.EPERM) {
		return "", false
	}
	return f[0], true
}

// seedFound is a demo patient whose DMP exists already.
type seedFound struct {
	patient, login string
	active         bool
}

// seedFind reads, without writing anything, which demo DMPs exist.
func seedFind(ctx context.Context, st store.Store) (map[string]seedFound, error) {
	found := map[string]seedFound{}
	for _, p := range seedPatients {
		var ident auth.Identity
		_, err := auth.ReadRecord(ctx, st, auth.TypeIdentity, auth.IdentityKey(ins.SystemTest, p.nir), &ident)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrDeleted) {
			continue
		}
		if err != nil {
			return nil, err
		}
		f := seedFound{patient: ident.Patient, login: ident.Account, active: true}
		if r, err := st.Read(ctx, "Patient", ident.Patient); err == nil {
			var pt struct {
				Active *bool `json:"active"`
			}
			json.Unmarshal(r.Body, &pt)
			f.active = pt.Active == nil || *pt.Active
		}
		found[p.key] = f
	}
	return found, nil
}

func seedAlreadyDone(w io.Writer, c config, found map[string]seedFound) error {
	fmt.Fprintf(w, "The demo data are already loaded (%d of %d demo DMPs exist): nothing was written.\n", len(found), len(seedPatients))
	if len(found) < len(seedPatients) {
		fmt.Fprintf(w, "Some are missing: a previous seed stopped before its end. Seed an empty data directory (or remove %s) to load them all.\n", c.DataDir)
	}
	fmt.Fprintln(w)
	created := map[string]seedCreated{}
	for key, f := range found {
		created[key] = seedCreated{id: f.patient, login: f.login, password: "(given at the first seed)", closed: !f.active}
	}
	seedTable(w, seedPatients, created, false)
	seedTokenHelp(w, c)
	return nil
}

// seedTypeCounts lists the written resources by type.
func seedTypeCounts(n map[string]int) string {
	types := make([]string, 0, len(n))
	for t := range n {
		types = append(types, t)
	}
	sort.Strings(types)
	parts := make([]string, len(types))
	for i, t := range types {
		parts[i] = fmt.Sprintf("%d %s", n[t], t)
	}
	return strings.Join(parts, ", ")
}

func seedTable(w io.Writer, patients []*seedPatient, created map[string]seedCreated, fresh bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PATIENT\tBORN IN\tNIR (test INS)\tPATIENT ID\tDMP IDENTIFIER\tINITIAL PASSWORD")
	for _, p := range patients {
		cr, ok := created[p.key]
		if !ok {
			fmt.Fprintf(tw, "%s\t%s\t%s\t(missing)\t\t\n", p.name(), p.birthPlace, p.nir)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.name(), p.birthPlace, p.nir, cr.id, cr.login, cr.password)
	}
	tw.Flush()
	if fresh {
		fmt.Fprintln(w, "\nDemo only: the passwords are random, shown this once, and stored as hashes. Sign in with them at POST /auth/token (grant_type=password).")
	}
	fmt.Fprintln(w, "\nSettings:")
	for _, p := range patients {
		state := ""
		if cr, ok := created[p.key]; ok && cr.closed {
			state = " [closed]"
		}
		fmt.Fprintf(w, "  %-26s %s%s\n", p.name()+":", p.settings, state)
	}
}

func seedTokenHelp(w io.Writer, c config) {
	dir := ""
	if c.DataDir != "./data" {
		dir = " --data-dir " + c.DataDir
	}
	fmt.Fprintln(w, "\nTokens of the demo's professionals and systems (signed with the data directory's key):")
	for _, p := range seedPros {
		cmd := fmt.Sprintf("go run . token practitioner --idnps %s --profession %s", p.idnps, p.profession)
		if p.tokenFlags != "" {
			cmd += " " + p.tokenFlags
		}
		fmt.Fprintf(w, "  %s, %s\n      %s%s\n", p.name(), p.about, cmd, dir)
	}
	for _, sy := range seedSystems[1:] {
		fmt.Fprintf(w, "  %s, %s\n      go run . token system --client %s%s\n", sy.name, sy.about, sy.client, dir)
	}
	fmt.Fprintf(w, "  A patient, for their own record\n      go run . token patient --patient PATIENT_ID%s\n", dir)
}

// seeder writes the demo data through the API handlers.
type seeder struct {
	ctx     context.Context
	handler http.Handler
	tokens  map[string]string // professionals', systems' and patients' tokens by key
	written map[string]int    // resources written, by type
	created map[string]seedCreated
}

type seedCreated struct {
	id, login, password string
	closed              bool
}

func (s *seeder) issueTokens(key *auth.SigningKey, c config) error {
	for _, p := range seedPros {
		claims := auth.Claims{Kind: auth.KindPractitioner, IDNatPs: p.idnps, Profession: p.profession, Specialty: p.specialty,
			Finess: p.finess, Name: p.name(), Regulator: p.regulator, Scope: "user/*.cruds", Issuer: c.AuthIssuer, Audience: c.AuthAudience}
		tok, err := key.Issue(claims, time.Hour)
		if err != nil {
			return err
		}
		s.tokens[p.key] = tok
	}
	for _, sy := range seedSystems {
		tok, err := key.Issue(auth.Claims{Kind: auth.KindSystem, ClientID: sy.client, Finess: sy.finess, Name: sy.name, Scope: "system/*.cruds",
			Issuer: c.AuthIssuer, Audience: c.AuthAudience}, time.Hour)
		if err != nil {
			return err
		}
		s.tokens[sy.key] = tok
	}
	return nil
}

// do runs one request through the handler.
func (s *seeder) do(method, path, token, contentType string, body []byte) (int, []byte) {
	req := httptest.NewRequest(method, path, bytes.NewReader(body)).WithContext(s.ctx)
	req.RemoteAddr = "127.0.0.1:0"
	req.Header.Set("X-Request-Id", "seed")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// seedProblem describes a refused request by its OperationOutcome.
func seedProblem(what string, status int, body []byte) error {
	var oo struct {
		Issue []struct {
			Diagnostics string   `json:"diagnostics"`
			Expression  []string `json:"expression"`
		} `json:"issue"`
		ErrorDescription string `json:"error_description"`
	}
	json.Unmarshal(body, &oo)
	msg := oo.ErrorDescription
	if len(oo.Issue) > 0 {
		msg = oo.Issue[0].Diagnostics
		if len(oo.Issue[0].Expression) > 0 {
			msg += " (at " + strings.Join(oo.Issue[0].Expression, ", ") + ")"
		}
	}
	return fmt.Errorf("%s: HTTP %d: %s", what, status, msg)
}

// put writes a resource with its fixed id (PUT creates it).
func (s *seeder) put(who string, res map[string]any) error {
	typ, id := res["resourceType"].(string), res["id"].(string)
	body, err := json.Marshal(res)
	if err != nil {
		return err
	}
	status, out := s.do("PUT", "/fhir/"+typ+"/"+id, s.tokens[who], "application/fhir+json", body)
	if status != http.StatusCreated && status != http.StatusOK {
		return seedProblem("PUT "+typ+"/"+id, status, out)
	}
	s.written[typ]++
	return nil
}

// operation posts a Parameters body to an operation.
func (s *seeder) operation(who, path string, params ...string) ([]byte, error) {
	list := []map[string]string{}
	for i := 0; i+1 < len(params); i += 2 {
		list = append(list, map[string]string{"name": params[i], "valueString": params[i+1]})
	}
	body, _ := json.Marshal(map[string]any{"resourceType": "Parameters", "parameter": list})
	status, out := s.do("POST", "/fhir/"+path, s.tokens[who], "application/fhir+json", body)
	if status/100 != 2 {
		return nil, seedProblem("POST "+path, status, out)
	}
	return out, nil
}

func (s *seeder) run() error {
	if err := s.directory(); err != nil {
		return err
	}
	s.created = map[string]seedCreated{}
	for _, p := range seedPatients {
		if err := s.createDMP(p); err != nil {
			return err
		}
		if err := s.consent(p); err != nil {
			return err
		}
		if err := s.record(p); err != nil {
			return err
		}
	}
	// The closing comes last: a closed DMP takes nothing more.
	for _, p := range seedPatients {
		if p.closeReason == "" {
			continue
		}
		if _, err := s.operation(p.key, "Patient/"+s.created[p.key].id+"/$dmp-close", "reason", p.closeReason); err != nil {
			return err
		}
		cr := s.created[p.key]
		cr.closed = true
		s.created[p.key] = cr
	}
	return nil
}

// directory writes the organizations and the professionals.
func (s *seeder) directory() error {
	for _, o := range seedOrgs {
		org := map[string]any{
			"resourceType": "Organization", "id": o.id, "active": true, "name": o.name,
			"type":    []any{cc("http://terminology.hl7.org/CodeSystem/organization-type", o.kind, o.kindName)},
			"address": []any{map[string]any{"line": []string{o.line}, "postalCode": o.postal, "city": o.city, "country": "FR"}},
		}
		if o.finess != "" {
			org["identifier"] = []any{
				map[string]any{"use": "official", "type": cc(sysIdentType, "FINEG", "FINESS d'entité géographique"), "system": sysFINESS, "value": o.finess},
				map[string]any{"use": "official", "type": cc(sysIdentType, "IDNST", "Identifiant national de structure"), "system": sysIDNatSt, "value": "1" + o.finess},
			}
		}
		if err := s.put("annuaire", org); err != nil {
			return err
		}
	}
	for _, p := range seedPros {
		ids := []any{map[string]any{"use": "official", "type": cc(sysIdentType, "IDNPS", "Identifiant national de professionnel de santé"), "system": sysIDNatPs, "value": p.idnps}}
		if p.rpps != "" {
			ids = append(ids, map[string]any{"use": "official", "type": cc(sysIdentType, "RPPS", "N° RPPS"), "system": sysRPPS, "value": p.rpps})
		}
		if p.adeli != "" {
			ids = append(ids, map[string]any{"use": "official", "type": cc(sysIdentType, "ADELI", "N° ADELI"), "system": sysADELI, "value": p.adeli})
		}
		name := map[string]any{"use": "official", "family": p.family, "given": []string{p.given}, "text": p.name()}
		if p.prefix != "" {
			name["prefix"] = []string{p.prefix}
		}
		qual := []any{map[string]any{"code": cc(sysProfession, p.profession, p.professionName)}}
		if p.specialty != "" {
			qual = append(qual, map[string]any{"code": cc(sysSpecialty, p.specialty, p.specialtyName)})
		}
		pr := map[string]any{
			"resourceType": "Practitioner", "id": p.idnps, "identifier": ids, "active": true, "name": []any{name}, "gender": p.gender,
			"telecom":       []any{map[string]any{"system": "email", "value": p.mailbox, "use": "work"}},
			"qualification": qual,
		}
		if err := s.put("annuaire", pr); err != nil {
			return err
		}
		role := map[string]any{
			"resourceType": "PractitionerRole", "id": "role-" + p.idnps, "active": true,
			"practitioner": map[string]any{"reference": "Practitioner/" + p.idnps, "display": p.name()},
			"code":         []any{map[string]any{"coding": []any{coding(sysProfession, p.profession, p.professionName)}, "text": p.role}},
		}
		if p.org != "" {
			role["organization"] = ref("Organization", p.org)
		}
		if p.specialty != "" {
			role["specialty"] = []any{cc(sysSpecialty, p.specialty, p.specialtyName)}
		}
		if err := s.put("annuaire", role); err != nil {
			return err
		}
	}
	return nil
}

// createDMP creates a patient's DMP at a desk, with the patient's
// agreement, and signs the patient in with the initial password.
func (s *seeder) createDMP(p *seedPatient) error {
	params := []string{"system", ins.SystemTest, "nir", p.nir, "family", p.family, "given", p.given, "birthDate", p.birthDate,
		"gender", p.gender, "patientConsent", "true"}
	if p.email != "" {
		params = append(params, "email", p.email)
	}
	if p.phone != "" {
		params = append(params, "phone", p.phone)
	}
	for _, k := range []string{"ETREAT", "BTG", "MASKED"} {
		if v := p.prefs[k]; v != "" {
			params = append(params, k, v)
		}
	}
	out, err := s.operation(p.desk, "Patient/$dmp-create", params...)
	if err != nil {
		return fmt.Errorf("creating the DMP of %s: %w", p.name(), err)
	}
	var res struct {
		Parameter []struct {
			Name        string `json:"name"`
			ValueString string `json:"valueString"`
			Resource    struct {
				ID string `json:"id"`
			} `json:"resource"`
		} `json:"parameter"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return err
	}
	var cr seedCreated
	for _, prm := range res.Parameter {
		switch prm.Name {
		case "patient":
			cr.id = prm.Resource.ID
		case "dmpIdentifier":
			cr.login = prm.ValueString
		case "password":
			cr.password = prm.ValueString
		}
	}
	if cr.id == "" || cr.login == "" || cr.password == "" {
		return fmt.Errorf("creating the DMP of %s: the answer lacks the patient or the credentials", p.name())
	}
	s.created[p.key] = cr
	s.written["Patient"]++
	form := url.Values{"grant_type": {"password"}, "username": {cr.login}, "password": {cr.password}}
	status, body := s.do("POST", "/auth/token", "", "application/x-www-form-urlencoded", []byte(form.Encode()))
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if json.Unmarshal(body, &tok); status != http.StatusOK || tok.AccessToken == "" {
		return seedProblem("signing "+p.name()+" in", status, body)
	}
	s.tokens[p.key] = tok.AccessToken
	return nil
}

func proByKey(key string) seedPro {
	for _, p := range seedPros {
		if p.key == key {
			return p
		}
	}
	panic("seed: no professional " + key)
}

// consent applies the patient's settings through the consent operations,
// called by the patient.
func (s *seeder) consent(p *seedPatient) error {
	pid := s.created[p.key].id
	if _, err := s.operation(p.key, "Patient/"+pid+"/$set-treating-doctor", "practitioner", proByKey("durand").idnps); err != nil {
		return err
	}
	for _, g := range p.grants {
		params := []string{"practitioner", proByKey(g.pro).idnps, "start", g.start}
		if g.end != "" {
			params = append(params, "end", g.end)
		}
		if _, err := s.operation(p.key, "Patient/"+pid+"/$authorize", params...); err != nil {
			return err
		}
	}
	for _, b := range p.blocks {
		if _, err := s.operation(p.key, "Patient/"+pid+"/$block", "practitioner", proByKey(b).idnps); err != nil {
			return err
		}
	}
	return nil
}

// record writes every DMP category of the patient's record.
func (s *seeder) record(p *seedPatient) error {
	pid := s.created[p.key].id
	r := p.record
	id := func(slug string) string { return p.key + "-" + slug }
	subject := map[string]any{"reference": "Patient/" + pid, "display": p.name()}

	for _, c := range r.conditions {
		res := map[string]any{
			"resourceType": "Condition", "id": id(c.slug),
			"clinicalStatus":     cc("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"),
			"verificationStatus": cc("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed"),
			"category":           []any{cc("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item", "Problem List Item")},
			"code":               cc(sysCIM10, c.code, c.display),
			"subject":            subject, "onsetDateTime": c.onset, "recordedDate": r.prescription.date,
			"recorder": proRef("durand"),
		}
		if c.abatement != "" {
			res["clinicalStatus"] = cc("http://terminology.hl7.org/CodeSystem/condition-clinical", "resolved", "Resolved")
			res["abatementDateTime"] = c.abatement
		}
		if c.note != "" {
			res["note"] = []any{map[string]any{"text": c.note}}
		}
		if err := s.put("durand", res); err != nil {
			return err
		}
	}
	for _, pr := range r.procedures {
		code := map[string]any{"text": pr.text}
		if pr.code != "" {
			code["coding"] = []any{coding(sysCCAM, pr.code, pr.display)}
		}
		res := map[string]any{
			"resourceType": "Procedure", "id": id(pr.slug), "status": "completed", "code": code,
			"category": cc(sysSNOMED, "387713003", "Surgical procedure"),
			"subject":  subject, "performedDateTime": pr.date, "recorder": proRef("durand"),
		}
		if pr.performer != "" {
			res["performer"] = []any{map[string]any{"actor": orgRef(pr.performer)}}
		}
		if pr.note != "" {
			res["note"] = []any{map[string]any{"text": pr.note}}
		}
		if err := s.put("durand", res); err != nil {
			return err
		}
	}
	for _, a := range r.allergies {
		res := map[string]any{
			"resourceType": "AllergyIntolerance", "id": id(a.slug),
			"clinicalStatus":     cc("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "Active"),
			"verificationStatus": cc("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed", "Confirmed"),
			"code":               cc(sysSNOMED, a.code, a.display),
			"patient":            subject, "recordedDate": r.prescription.date, "recorder": proRef("durand"),
		}
		if a.category != "" {
			res["type"] = "allergy"
			res["category"] = []string{a.category}
			res["criticality"] = a.criticality
			res["onsetString"] = a.onset
			res["reaction"] = []any{map[string]any{
				"manifestation": []any{cc(sysSNOMED, a.reaction, a.reactionDisplay)},
				"severity":      a.severity, "description": a.description,
			}}
		}
		if err := s.put("durand", res); err != nil {
			return err
		}
	}
	if err := s.prescription(p, pid, subject); err != nil {
		return err
	}
	for _, d := range r.documents {
		if err := s.document(p, pid, subject, d); err != nil {
			return err
		}
	}
	if err := s.labResults(p, subject); err != nil {
		return err
	}
	if err := s.imagingStudy(p, subject); err != nil {
		return err
	}
	for _, im := range r.immunizations {
		res := map[string]any{
			"resourceType": "Immunization", "id": id(im.slug), "status": "completed",
			"vaccineCode": map[string]any{"coding": []any{coding(sysCVX, im.cvx, im.cvxName)}, "text": im.text},
			"patient":     subject, "occurrenceDateTime": seedTime(im.date), "recorded": seedTime(im.date), "primarySource": true,
			"lotNumber": im.lot,
			"site":      cc("http://terminology.hl7.org/CodeSystem/v3-ActSite", im.site, map[string]string{"LD": "left deltoid", "LT": "left thigh"}[im.site]),
			"route":     cc("http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration", im.route, map[string]string{"IM": "Injection, intramuscular", "SC": "Injection, subcutaneous"}[im.route]),
			"performer": []any{map[string]any{
				"function": cc("http://terminology.hl7.org/CodeSystem/v2-0443", "AP", "Administering Provider"),
				"actor":    proRef(im.performer),
			}},
			"protocolApplied": []any{map[string]any{"doseNumberPositiveInt": im.dose}},
		}
		if err := s.put(im.writer, res); err != nil {
			return err
		}
	}
	for _, cl := range r.claims {
		if err := s.claim(p, subject, cl); err != nil {
			return err
		}
	}
	return s.vitalSigns(p, subject)
}

// prescription writes the prescription lines (MedicationRequest) and the
// prescription document (DocumentReference 57833-6, class 42).
func (s *seeder) prescription(p *seedPatient, pid string, subject map[string]any) error {
	pr := p.record.prescription
	pro := proByKey(pr.author)
	group := map[string]any{"system": "urn:ietf:rfc:3986", "value": seedUUID("ordonnance:" + p.key + ":" + pr.date)}
	var related []any
	var text strings.Builder
	fmt.Fprintf(&text, "%s, %s\nRPPS %s\n\nLe %s\n%s, né%s le %s\n\n", pro.name(), strings.ToLower(pro.professionName)+" généraliste", pro.rpps,
		seedFrenchDate(pr.date), p.name(), map[string]string{"female": "e"}[p.gender], seedFrenchDate(p.birthDate))
	if pr.note != "" {
		fmt.Fprintf(&text, "%s\n\n", pr.note)
	}
	for i, m := range pr.lines {
		mid := fmt.Sprintf("%s-prescription-%s-%d", p.key, pr.date, i+1)
		codings := []any{}
		if m.ucd != "" {
			codings = append(codings, coding(sysUCD, m.ucd, m.ucdDisplay))
		}
		codings = append(codings, coding(sysATC, m.atc, m.atcDisplay))
		res := map[string]any{
			"resourceType": "MedicationRequest", "id": mid, "status": "active", "intent": "order",
			"medicationCodeableConcept": map[string]any{"coding": codings, "text": m.text},
			"subject":                   subject, "authoredOn": seedTime(pr.date + " 09:30"), "requester": proRef(pr.author),
			"groupIdentifier":   group,
			"dosageInstruction": []any{map[string]any{"text": m.dosage}},
			"dispenseRequest": map[string]any{
				"validityPeriod":         map[string]any{"start": pr.date, "end": seedAddMonths(pr.date, 3)},
				"numberOfRepeatsAllowed": pr.repeats,
			},
		}
		if strings.Contains(m.text, "comprimé") || strings.Contains(m.text, "gélule") {
			res["dosageInstruction"].([]any)[0].(map[string]any)["route"] = cc(sysEDQM, "20053000", "Voie orale")
		}
		if err := s.put(pr.author, res); err != nil {
			return err
		}
		related = append(related, map[string]any{"reference": "MedicationRequest/" + mid})
		fmt.Fprintf(&text, "%d. %s\n   %s\n", i+1, m.text, m.dosage)
	}
	if pr.repeats > 0 {
		fmt.Fprintf(&text, "\nÀ renouveler %d fois.\n", pr.repeats)
	}
	return s.document(p, pid, subject, seedDocument{
		slug: "ordonnance-" + pr.date, typ: "prescription", title: "Ordonnance du " + seedFrenchDate(pr.date),
		date: pr.date + " 09:30", start: pr.date + " 09:00", end: pr.date + " 09:30",
		author: pr.author, writer: pr.author, sector: "SA07", body: text.String(),
	}, related...)
}

// document writes a DocumentReference and, for a PDF, its Binary; then
// applies its labels and archiving as the DMP's actors do.
func (s *seeder) document(p *seedPatient, pid string, subject map[string]any, d seedDocument, related ...any) error {
	t := seedDocTypes[d.typ]
	docID := p.key + "-" + d.slug
	content := []byte(d.body)
	contentType, format, formatName := "text/plain; charset=utf-8", "urn:ihe:iti:xds-sd:text:2008", "Document à corps non structuré en texte brut"
	if d.pdf {
		content = seedPDF(d.title, p.name()+", né"+map[string]string{"female": "e"}[p.gender]+" le "+seedFrenchDate(p.birthDate), d.body)
		contentType, format, formatName = "application/pdf", "urn:ihe:iti:xds-sd:pdf:2008", "Document à corps non structuré en PDF"
	}
	sum := sha1.Sum(content)
	attachment := map[string]any{
		"contentType": contentType, "language": "fr-FR", "size": len(content),
		"hash": base64.StdEncoding.EncodeToString(sum[:]), "title": d.title, "creation": seedTime(d.date),
	}
	if d.pdf {
		attachment["url"] = "Binary/" + docID + "-pdf"
	} else {
		attachment["data"] = base64.StdEncoding.EncodeToString(content)
	}
	var author map[string]any
	if d.authorOrg != "" {
		author = orgRef(d.authorOrg)
	} else {
		author = proRef(d.author)
	}
	sector := map[string]string{"SA01": "Etablissement public de santé", "SA07": "Cabinet individuel"}[d.sector]
	res := map[string]any{
		"resourceType": "DocumentReference", "id": docID,
		"masterIdentifier": map[string]any{"system": "urn:ietf:rfc:3986", "value": seedUUID("document:" + docID)},
		"identifier":       []any{map[string]any{"system": "urn:ietf:rfc:3986", "value": seedUUID("entry:" + docID)}},
		"status":           "current",
		"type":             cc(sysLOINC, t[0], t[1]),
		"category":         []any{cc(sysClassCode, t[2], t[3])},
		"subject":          subject, "date": seedTime(d.date), "author": []any{author}, "description": d.title,
		"securityLabel": []any{cc("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "N", "normal")},
		"content":       []any{map[string]any{"attachment": attachment, "format": coding(sysFormatCode, format, formatName)}},
		"context": map[string]any{
			"period":       map[string]any{"start": seedTime(d.start), "end": seedTime(d.end)},
			"facilityType": cc(sysSector, d.sector, sector),
		},
	}
	if len(related) > 0 {
		res["context"].(map[string]any)["related"] = related
	}
	if d.replaces != "" {
		res["relatesTo"] = []any{map[string]any{"code": "replaces", "target": map[string]any{"reference": "DocumentReference/" + p.key + "-" + d.replaces}}}
	}
	if err := s.put(d.writer, res); err != nil {
		return err
	}
	if d.pdf {
		bin := map[string]any{
			"resourceType": "Binary", "id": docID + "-pdf", "contentType": "application/pdf",
			"securityContext": map[string]any{"reference": "DocumentReference/" + docID},
			"data":            base64.StdEncoding.EncodeToString(content),
		}
		if err := s.put(d.writer, bin); err != nil {
			return err
		}
	}
	if d.masked { // the patient masks it from professionals
		if _, err := s.operation(p.key, "DocumentReference/"+docID+"/$mask"); err != nil {
			return err
		}
	}
	if d.hidden { // its author keeps it from the patient until the announcement
		if _, err := s.operation(d.writer, "DocumentReference/"+docID+"/$hide-from-patient"); err != nil {
			return err
		}
	}
	if d.archived { // its author archives it: a new version with PDSm's flag
		res["extension"] = []any{map[string]any{"url": api.ArchivedExtension, "valueBoolean": true}}
		if err := s.put(d.writer, res); err != nil {
			return err
		}
		s.written["DocumentReference"]--
	}
	return nil
}

// labResults writes the lab report: Observations and their DiagnosticReport
// (11502-2), by the laboratory's system.
func (s *seeder) labResults(p *seedPatient, subject map[string]any) error {
	lab := p.record.lab
	issued := seedTime(lab.date + " 17:30")
	var results []any
	for _, r := range lab.results {
		oid := p.key + "-" + lab.slug + "-" + r.slug
		obs := map[string]any{
			"resourceType": "Observation", "id": oid, "status": "final",
			"category":          []any{cc(sysObsCategory, "laboratory", "Laboratory")},
			"code":              cc(sysLOINC, r.loinc, r.display),
			"subject":           subject,
			"effectiveDateTime": seedTime(lab.date + " 08:00"), "issued": issued,
			"performer":      []any{orgRef("biolab-provence")},
			"valueQuantity":  quantity(r.value, r.unit, r.unitName),
			"interpretation": []any{cc(sysInterp, r.interp, map[string]string{"H": "High", "L": "Low", "N": "Normal"}[r.interp])},
		}
		rng := map[string]any{}
		if r.low != 0 {
			rng["low"] = quantity(r.low, r.unit, r.unitName)
		}
		if r.high != 0 {
			rng["high"] = quantity(r.high, r.unit, r.unitName)
		}
		obs["referenceRange"] = []any{rng}
		if err := s.put("biolab", obs); err != nil {
			return err
		}
		results = append(results, map[string]any{"reference": "Observation/" + oid})
	}
	return s.put("biolab", map[string]any{
		"resourceType": "DiagnosticReport", "id": p.key + "-" + lab.slug, "status": "final",
		"category":          []any{cc("http://terminology.hl7.org/CodeSystem/v2-0074", "LAB", "Laboratory")},
		"code":              map[string]any{"coding": []any{coding(sysLOINC, "11502-2", "CR d'examens biologiques")}, "text": "Compte rendu d'examens biologiques du " + seedFrenchDate(lab.date)},
		"subject":           subject,
		"effectiveDateTime": seedTime(lab.date + " 08:00"), "issued": issued,
		"performer":  []any{orgRef("biolab-provence")},
		"result":     results,
		"conclusion": lab.conclusion,
	})
}

// imagingStudy writes the ImagingStudy and its report (DiagnosticReport
// 18748-4, with the report as presentedForm).
func (s *seeder) imagingStudy(p *seedPatient, subject map[string]any) error {
	im := p.record.imaging
	sid := p.key + "-" + im.slug
	var series []any
	instances := 0
	modalities := map[string]bool{}
	var modality []any
	for i, se := range im.series {
		series = append(series, map[string]any{
			"uid": seedDICOMUID(sid + "/series/" + strconv.Itoa(i+1)), "number": i + 1,
			"modality":    coding(sysDICOM, se.modality, se.modalityName),
			"description": se.description, "numberOfInstances": se.instances,
			"bodySite": coding(sysSNOMED, se.site, se.siteName), "started": seedTime(im.date),
		})
		instances += se.instances
		if !modalities[se.modality] {
			modalities[se.modality] = true
			modality = append(modality, coding(sysDICOM, se.modality, se.modalityName))
		}
	}
	procedure := map[string]any{"text": im.title}
	if im.ccam != "" {
		procedure["coding"] = []any{coding(sysCCAM, im.ccam, im.ccamName)}
	}
	study := map[string]any{
		"resourceType": "ImagingStudy", "id": sid, "status": "available",
		"identifier": []any{map[string]any{"system": "urn:dicom:uid", "value": "urn:oid:" + seedDICOMUID(sid)}},
		"modality":   modality, "subject": subject, "started": seedTime(im.date),
		"referrer":       proRef("durand"),
		"numberOfSeries": len(series), "numberOfInstances": instances,
		"procedureCode": []any{procedure},
		"description":   im.title,
		"series":        series,
	}
	if err := s.put(im.writer, study); err != nil {
		return err
	}
	report := []byte(im.report)
	sum := sha1.Sum(report)
	return s.put(im.writer, map[string]any{
		"resourceType": "DiagnosticReport", "id": sid + "-cr", "status": "final",
		"category":          []any{cc("http://terminology.hl7.org/CodeSystem/v2-0074", "RAD", "Radiology")},
		"code":              map[string]any{"coding": []any{coding(sysLOINC, "18748-4", "CR d'imagerie médicale")}, "text": im.title},
		"subject":           subject,
		"effectiveDateTime": seedTime(im.date), "issued": seedTime(im.date[:10] + " 19:00"),
		"performer":    []any{orgRef(im.org)},
		"imagingStudy": []any{map[string]any{"reference": "ImagingStudy/" + sid}},
		"conclusion":   im.conclusion,
		"presentedForm": []any{map[string]any{
			"contentType": "text/plain; charset=utf-8", "language": "fr-FR", "data": base64.StdEncoding.EncodeToString(report),
			"size": len(report), "hash": base64.StdEncoding.EncodeToString(sum[:]), "title": "Compte rendu : " + im.title,
		}},
	})
}

// claim writes a reimbursement (ExplanationOfBenefit) as the Assurance
// Maladie's system.
func (s *seeder) claim(p *seedPatient, subject map[string]any, cl seedClaim) error {
	money := func(v float64) map[string]any { return map[string]any{"value": v, "currency": "EUR"} }
	adjudication := func(code, display string, v float64) map[string]any {
		return map[string]any{"category": cc(sysAdjudication, code, display), "amount": money(v)}
	}
	var items []any
	var submitted, benefit float64
	for i, it := range cl.items {
		service := map[string]any{"text": it.text}
		if it.ccam != "" {
			service["coding"] = []any{coding(sysCCAM, it.ccam, it.text)}
		}
		items = append(items, map[string]any{
			"sequence": i + 1, "productOrService": service, "servicedDate": cl.date, "net": money(it.submitted),
			"adjudication": []any{adjudication("submitted", "Submitted Amount", it.submitted), adjudication("benefit", "Benefit Amount", it.benefit)},
		})
		submitted += it.submitted
		benefit += it.benefit
	}
	submitted, benefit = math.Round(submitted*100)/100, math.Round(benefit*100)/100
	var provider map[string]any
	if cl.providerOrg != "" {
		provider = orgRef(cl.providerOrg)
	} else {
		provider = proRef(cl.provider)
	}
	paid := seedAddDays(cl.date, 3)
	return s.put("cnam", map[string]any{
		"resourceType": "ExplanationOfBenefit", "id": p.key + "-remboursement-" + cl.slug, "status": "active",
		"type":           cc("http://terminology.hl7.org/CodeSystem/claim-type", cl.kind, map[string]string{"professional": "Professional", "pharmacy": "Pharmacy"}[cl.kind]),
		"use":            "claim",
		"patient":        subject,
		"billablePeriod": map[string]any{"start": cl.date, "end": cl.date},
		"created":        seedTime(paid + " 06:00"),
		"insurer":        orgRef("cpam-13"),
		"provider":       provider,
		"outcome":        "complete",
		"disposition":    cl.note,
		"insurance":      []any{map[string]any{"focal": true, "coverage": map[string]any{"display": "Régime général, CPAM des Bouches-du-Rhône"}}},
		"item":           items,
		"total":          []any{adjudication("submitted", "Submitted Amount", submitted), adjudication("benefit", "Benefit Amount", benefit)},
		"payment": map[string]any{
			"type": cc("http://terminology.hl7.org/CodeSystem/ex-paymenttype", "complete", "Complete"),
			"date": paid, "amount": money(benefit),
		},
	})
}

// vitalSigns writes the vital signs of one visit (blood pressure, heart
// rate, weight, height, BMI, oxygen saturation).
func (s *seeder) vitalSigns(p *seedPatient, subject map[string]any) error {
	v := p.record.vitals
	when := seedTime(v.date)
	day := v.date[:10]
	obs := func(slug, loinc, display string) map[string]any {
		return map[string]any{
			"resourceType": "Observation", "id": p.key + "-" + slug + "-" + day, "status": "final",
			"category": []any{cc(sysObsCategory, "vital-signs", "Vital Signs")},
			"code":     cc(sysLOINC, loinc, display),
			"subject":  subject, "effectiveDateTime": when, "performer": []any{proRef(v.author)},
		}
	}
	var list []map[string]any
	if v.systolic != 0 {
		bp := obs("pression-arterielle", "85354-9", "Pression artérielle")
		bp["component"] = []any{
			map[string]any{"code": cc(sysLOINC, "8480-6", "Pression artérielle systolique"), "valueQuantity": quantity(v.systolic, "mm[Hg]", "mmHg")},
			map[string]any{"code": cc(sysLOINC, "8462-4", "Pression artérielle diastolique"), "valueQuantity": quantity(v.diastolic, "mm[Hg]", "mmHg")},
		}
		list = append(list, bp)
	}
	add := func(value float64, slug, loinc, display, unit, unitName string) {
		if value == 0 {
			return
		}
		o := obs(slug, loinc, display)
		o["valueQuantity"] = quantity(value, unit, unitName)
		list = append(list, o)
	}
	add(v.hr, "frequence-cardiaque", "8867-4", "Fréquence cardiaque", "/min", "/min")
	add(v.weight, "poids", "29463-7", "Poids", "kg", "kg")
	add(v.height, "taille", "8302-2", "Taille", "cm", "cm")
	if v.weight != 0 && v.height != 0 {
		add(math.Round(v.weight/(v.height*v.height/10000)*10)/10, "imc", "39156-5", "Indice de masse corporelle (IMC)", "kg/m2", "kg/m²")
	}
	add(v.spo2, "spo2", "59408-5", "Saturation en oxygène par oxymétrie de pouls", "%", "%")
	for _, o := range list {
		if err := s.put(v.author, o); err != nil {
			return err
		}
	}
	return nil
}

// JSON helpers.

func coding(system, code, display string) map[string]any {
	return map[string]any{"system": system, "code": code, "display": display}
}

func cc(system, code, display string) map[string]any {
	return map[string]any{"coding": []any{coding(system, code, display)}}
}

func ref(typ, id string) map[string]any { return map[string]any{"reference": typ + "/" + id} }

func proRef(key string) map[string]any {
	p := proByKey(key)
	return map[string]any{"reference": "Practitioner/" + p.idnps, "display": p.name()}
}

func orgRef(id string) map[string]any {
	for _, o := range seedOrgs {
		if o.id == id {
			return map[string]any{"reference": "Organization/" + id, "display": o.name}
		}
	}
	panic("seed: no organization " + id)
}

func quantity(v float64, code, unit string) map[string]any {
	return map[string]any{"value": v, "unit": unit, "system": sysUCUM, "code": code}
}

// seedTime writes "2006-01-02 15:04" as a FHIR dateTime in Paris time
// (UTC+1, UTC+2 from the last Sunday of March to the last Sunday of
// October).
func seedTime(local string) string {
	t, err := time.Parse("2006-01-02 15:04", local)
	if err != nil {
		panic("seed: bad time " + local)
	}
	lastSunday := func(month time.Month) time.Time {
		d := time.Date(t.Year(), month+1, 0, 0, 0, 0, 0, time.UTC)
		return d.AddDate(0, 0, -int(d.Weekday()))
	}
	offset := "+01:00"
	if !t.Before(lastSunday(time.March).Add(2*time.Hour)) && t.Before(lastSunday(time.October).Add(3*time.Hour)) {
		offset = "+02:00"
	}
	return t.Format("2006-01-02T15:04:05") + offset
}

func seedFrenchDate(d string) string {
	t, err := time.Parse("2006-01-02", d)
	if err != nil {
		panic("seed: bad date " + d)
	}
	return t.Format("02/01/2006")
}

func seedAddMonths(d string, n int) string {
	t, _ := time.Parse("2006-01-02", d)
	return t.AddDate(0, n, 0).Format("2006-01-02")
}

func seedAddDays(d string, n int) string {
	t, _ := time.Parse("2006-01-02", d)
	return t.AddDate(0, 0, n).Format("2006-01-02")
}

// seedUUID is a name-based UUID (version 5 layout, SHA-1), so that the
// documents' identifiers are the same at every seed.
func seedUUID(name string) string {
	b := seedDigest(name)
	h := fmt.Sprintf("%x", b)
	return "urn:uuid:" + h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func seedDigest(name string) [16]byte {
	sum := sha1.Sum([]byte("dmp-fhir seed: " + name))
	var b [16]byte
	copy(b[:], sum[:16])
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return b
}

// seedDICOMUID is a DICOM UID under 2.25 (the UUID arc) from a name.
func seedDICOMUID(name string) string {
	b := seedDigest(name)
	return "2.25." + new(big.Int).SetBytes(b[:]).String()
}

// seedPDF renders a one-page PDF (Helvetica, WinAnsiEncoding) of a report:
// a title, the patient, and the text wrapped at 88 characters.
func seedPDF(title, patient, body string) []byte {
	var lines []string
	for _, para := range strings.Split(body, "\n") {
		lines = append(lines, seedWrap(para, 88)...)
	}
	var content bytes.Buffer
	content.WriteString("BT\n/F2 13 Tf 56 790 Td 16 TL\n")
	fmt.Fprintf(&content, "(%s) Tj T*\n/F1 10 Tf\n(%s) Tj T*\n13 TL T*\n", seedPDFString(title), seedPDFString(patient))
	for _, l := range lines {
		fmt.Fprintf(&content, "(%s) Tj T*\n", seedPDFString(l))
	}
	content.WriteString("ET\n")
	objects := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> /Contents 6 0 R >>",
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%sendstream", content.Len(), content.String()),
	}
	var pdf bytes.Buffer
	pdf.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	offsets := make([]int, len(objects))
	for i, o := range objects {
		offsets[i] = pdf.Len()
		fmt.Fprintf(&pdf, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := pdf.Len()
	fmt.Fprintf(&pdf, "xref\n0 %d\n0000000000 65535 f \n", len(objects)+1)
	for _, off := range offsets {
		fmt.Fprintf(&pdf, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&pdf, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objects)+1, xref)
	return pdf.Bytes()
}

func seedWrap(s string, width int) []string {
	words := strings.Fields(s)
	if len(words) == 0 {
		return []string{""}
	}
	var lines []string
	line := words[0]
	for _, w := range words[1:] {
		if len([]rune(line))+1+len([]rune(w)) > width {
			lines = append(lines, line)
			line = w
			continue
		}
		line += " " + w
	}
	return append(lines, line)
}

// seedPDFString escapes a PDF literal string in WinAnsiEncoding.
func seedPDFString(s string) string {
	special := map[rune]byte{'€': 0x80, '’': 0x92, '–': 0x96, '—': 0x97, 'œ': 0x9c, 'Œ': 0x8c, '…': 0x85, '\u202f': ' ', '\u00a0': ' '}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '(' || r == ')' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x80:
			b.WriteRune(r)
		case special[r] != 0:
			fmt.Fprintf(&b, "\\%03o", special[r])
		case r < 0x100:
			fmt.Fprintf(&b, "\\%03o", r)
		default:
			b.WriteByte('?')
		}
	}
	return b.String()
}
