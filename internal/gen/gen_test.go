package gen

import (
	"bytes"
	"encoding/json"
	"regexp"
	"sort"
	"testing"

	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/internal/ins"
)

func TestD0HasTheShapeOfTheIssue(t *testing.T) {
	d, err := Preset("D0", DefaultSeed)
	if err != nil {
		t.Fatal(err)
	}
	patients := d.All()
	if len(patients) != 10 {
		t.Fatalf("%d patients, want 10", len(patients))
	}
	byType := map[string]int{}
	total, masked, refusing, bigs := 0, 0, 0, 0
	var sizes []int
	nirs := map[string]bool{}
	for _, p := range patients {
		if err := ins.Validate(p.NIR); err != nil {
			t.Errorf("patient %d: NIR %s: %v", p.Index, p.NIR, err)
		}
		if nirs[p.NIR] {
			t.Errorf("patient %d: NIR %s twice", p.Index, p.NIR)
		}
		nirs[p.NIR] = true
		entries := p.Resources("Patient/p")
		if len(entries) != p.Size {
			t.Errorf("patient %d: %d resources, want %d", p.Index, len(entries), p.Size)
		}
		for _, e := range entries {
			byType[e.Type]++
			if e.Masked {
				masked++
			}
		}
		total += len(entries)
		sizes = append(sizes, p.Size)
		if p.DenyEmergency {
			refusing++
		}
		if p.Big {
			bigs++
		}
	}
	if total < 9_000 || total > 11_000 {
		t.Errorf("%d resources, want about 10,000", total)
	}
	if share := float64(byType["Observation"]) / float64(total); share < 0.52 || share > 0.62 {
		t.Errorf("observations are %.0f%% of the resources, want about 57%%", share*100)
	}
	for _, typ := range []string{"Encounter", "DiagnosticReport", "MedicationRequest", "Immunization", "Condition", "AllergyIntolerance", "DocumentReference", "ExplanationOfBenefit"} {
		if byType[typ] == 0 {
			t.Errorf("no %s generated", typ)
		}
	}
	if refusing == 0 {
		t.Error("no patient refuses emergency access")
	}
	if masked == 0 {
		t.Error("no masked document")
	}
	sort.Ints(sizes)
	median := sizes[len(sizes)/2]
	if bigs == 0 || sizes[len(sizes)-1] < 4*median || sizes[len(sizes)-1] > 11*median {
		t.Errorf("sizes %v: want a handful 5-10x the median %d", sizes, median)
	}
	t.Logf("D0: %d resources %v, median patient %d, largest %d, %d masked, %d refuse emergency access", total, byType, median, sizes[len(sizes)-1], masked, refusing)
}

// Extra patients (the ingest workload's) are generated too, children
// included.
func TestExtraPatientsHaveRecords(t *testing.T) {
	d, _ := Preset("D1", DefaultSeed)
	for i := 0; i < 300; i++ {
		p := d.Extra(i)
		if err := ins.Validate(p.NIR); err != nil {
			t.Fatalf("extra %d: %v", i, err)
		}
		if n := len(p.Resources("Patient/x")); n != p.Size || n == 0 {
			t.Fatalf("extra %d: %d resources, want %d", i, n, p.Size)
		}
	}
}

func TestSameSeedSameData(t *testing.T) {
	d, _ := Preset("D0", 7)
	a := d.All()[3].Resources("Patient/x")
	b := d.All()[3].Resources("Patient/x")
	for i := range a {
		if !bytes.Equal(a[i].Body, b[i].Body) || a[i].FullURL != b[i].FullURL {
			t.Fatalf("entry %d differs between two generations", i)
		}
	}
	other, _ := Preset("D0", 8)
	if bytes.Equal(other.All()[3].Resources("Patient/x")[0].Body, a[0].Body) {
		t.Error("another seed gave the same data")
	}
}

// Every generated resource passes the server's validation, and a record's
// transaction Bundles resolve every urn:uuid they reference.
func TestResourcesAreValidFHIR(t *testing.T) {
	v, err := fhir.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := Preset("T", DefaultSeed)
	p := d.All()[0]
	if err := v.Validate(p.PatientResource()); err != nil {
		t.Fatalf("Patient: %v", err)
	}
	entries := p.Resources("Patient/p")
	for i, e := range entries {
		if err := v.Validate(e.Body); err != nil {
			t.Fatalf("entry %d (%s): %v\n%s", i, e.Type, err, e.Body)
		}
	}
	bundles := Transactions(entries, 40)
	if len(bundles) < 2 {
		t.Fatalf("%d bundles of at most 40 entries for %d entries", len(bundles), len(entries))
	}
	n := 0
	for _, raw := range bundles {
		if err := v.Validate(raw); err != nil {
			t.Fatalf("bundle: %v", err)
		}
		var b struct {
			Entry []struct {
				FullURL string `json:"fullUrl"`
			}
		}
		json.Unmarshal(raw, &b)
		urls := map[string]bool{}
		for _, e := range b.Entry {
			urls[e.FullURL] = true
		}
		for _, m := range urnRef.FindAll(raw, -1) {
			if !urls[string(m[len(`"reference":"`):len(m)-1])] {
				t.Errorf("bundle references %s outside itself", m)
			}
		}
		n += len(b.Entry)
	}
	if n != len(entries) {
		t.Errorf("bundles hold %d entries, want %d", n, len(entries))
	}
}

var urnRef = regexp.MustCompile(`"reference":"urn:uuid:[0-9a-f-]+"`)
