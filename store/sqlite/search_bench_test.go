package sqlite

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/dmp-fhir/dmp-fhir/store"
)

// The search benchmark: a store holding n resources, 84% observations
// spread over patients (20 to 100 each, 60 on average), the patients
// themselves (about 1.4%), and medication requests of the same patients
// (the rest); ten observation codes (8867-4 among them), effective dates
// spread over 2015-2024.

var benchCodes = []string{"8867-4", "8310-5", "29463-7", "8302-2", "85354-9", "2339-0", "718-7", "2093-3", "4548-4", "59408-5"}

// searchFixture describes a filled store: its patients, by id.
type searchFixture struct {
	s        *Store
	patients []string
}

func benchObservation(rng *rand.Rand, patient string) []byte {
	day := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rng.Intn(3650)).Add(time.Duration(rng.Intn(86400)) * time.Second)
	return []byte(fmt.Sprintf(`{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":%q}]},"subject":{"reference":"Patient/%s"},"effectiveDateTime":%q,"valueQuantity":{"value":%d,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`,
		benchCodes[rng.Intn(len(benchCodes))], patient, day.Format(time.RFC3339), 40+rng.Intn(100)))
}

func benchPatient(id string) []byte {
	return []byte(fmt.Sprintf(`{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.250.1.213.1.4.8","value":"nir-%s"}],"name":[{"family":"Nom-%s","given":["Prénom"]}],"gender":"female","birthDate":"1970-01-01"}`, id, id))
}

func benchMedicationRequest(rng *rand.Rand, patient string) []byte {
	day := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rng.Intn(3650))
	return []byte(fmt.Sprintf(`{"resourceType":"MedicationRequest","status":%q,"intent":"order","medicationCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"%d"}]},"subject":{"reference":"Patient/%s"},"authoredOn":%q}`,
		[]string{"active", "completed", "stopped"}[rng.Intn(3)], 1000+rng.Intn(200), patient, day.Format("2006-01-02")))
}

// fillSearch writes n resources into a new store in dir, in transactions
// of 5,000.
func fillSearch(tb testing.TB, dir string, n int) *searchFixture {
	tb.Helper()
	s, err := Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	rng := rand.New(rand.NewSource(int64(n)))
	type item struct{ typ, id, patient string }
	var items []item
	f := &searchFixture{s: s}
	obs := n * 84 / 100
	for o := 0; o < obs; {
		p := fmt.Sprint("p", len(f.patients))
		f.patients = append(f.patients, p)
		k := min(20+rng.Intn(81), obs-o)
		for i := 0; i < k; i++ {
			items = append(items, item{"Observation", fmt.Sprintf("o%d", o), p})
			o++
		}
	}
	for _, p := range f.patients {
		items = append(items, item{"Patient", p, p})
	}
	mrs := n - len(items)
	for i := 0; i < mrs; i++ {
		items = append(items, item{"MedicationRequest", fmt.Sprintf("m%d", i), f.patients[rng.Intn(len(f.patients))]})
	}
	ctx := context.Background()
	const batch = 5000
	for start := 0; start < len(items); start += batch {
		err := s.Transaction(ctx, func(tx store.Ops) error {
			for i := start; i < min(start+batch, len(items)); i++ {
				it := items[i]
				var body []byte
				switch it.typ {
				case "Observation":
					body = benchObservation(rng, it.patient)
				case "Patient":
					body = benchPatient(it.patient)
				default:
					body = benchMedicationRequest(rng, it.patient)
				}
				if _, err := tx.Create(ctx, it.typ, it.id, body); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	return f
}

func ge2020() *float64 {
	f := float64(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	return &f
}

// benchShapes are the measured searches, for patient p.
var benchShapes = []struct {
	name  string
	query func(p string) store.Query
}{
	{"ObservationPatientSortDate", func(p string) store.Query {
		// Observation?patient=X&_sort=-date&_count=20
		return store.Query{Type: "Observation", Count: 20,
			Where: []store.Clause{{Any: []store.Condition{{Param: "patient", Kind: store.KindReference, RefType: "Patient", RefID: p}}}},
			Sort:  []store.Sort{{Param: "date", Kind: store.KindDate, Desc: true}}}
	}},
	{"MedicationRequestPatientStatus", func(p string) store.Query {
		// MedicationRequest?patient=X&status=active
		return store.Query{Type: "MedicationRequest", Count: 20,
			Where: []store.Clause{
				{Any: []store.Condition{{Param: "patient", Kind: store.KindReference, RefType: "Patient", RefID: p}}},
				{Any: []store.Condition{{Param: "status", Kind: store.KindToken, Code: "active", AnySystem: true}}},
			}}
	}},
	{"ObservationPatientCategorySortDate", func(p string) store.Query {
		// Observation?patient=X&category=vital-signs&_sort=-date&_count=50 (dmpbench's W2)
		return store.Query{Type: "Observation", Count: 50,
			Where: []store.Clause{
				{Any: []store.Condition{{Param: "patient", Kind: store.KindReference, RefType: "Patient", RefID: p}}},
				{Any: []store.Condition{{Param: "category", Kind: store.KindToken, Code: "vital-signs", AnySystem: true}}},
			},
			Sort: []store.Sort{{Param: "date", Kind: store.KindDate, Desc: true}}}
	}},
	{"ObservationCodeDate", func(string) store.Query {
		// Observation?code=http://loinc.org|8867-4&date=ge2020&_count=20
		return store.Query{Type: "Observation", Count: 20,
			Where: []store.Clause{
				{Any: []store.Condition{{Param: "code", Kind: store.KindToken, System: "http://loinc.org", Code: "8867-4"}}},
				{Any: []store.Condition{{Param: "date", Kind: store.KindDate, Range: store.Interval{HighAtLeast: ge2020()}}}},
			}}
	}},
}

// BenchmarkSearch measures the four search shapes at 1k, 10k and 100k
// stored resources; besides ns/op it reports the median and 99th
// percentile of the single searches (p50-ns, p99-ns).
//
//	go test -run x -bench BenchmarkSearch -benchtime 2000x ./store/sqlite/
func BenchmarkSearch(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			start := time.Now()
			f := fillSearch(b, b.TempDir(), n)
			b.Logf("filled %d resources (%d patients) in %v", n, len(f.patients), time.Since(start).Round(time.Millisecond))
			ctx := context.Background()
			for _, shape := range benchShapes {
				b.Run(shape.name, func(b *testing.B) {
					rng := rand.New(rand.NewSource(1))
					var times []time.Duration
					b.ReportAllocs()
					for b.Loop() {
						q := shape.query(f.patients[rng.Intn(len(f.patients))])
						t0 := time.Now()
						page, err := f.s.Search(ctx, q)
						times = append(times, time.Since(t0))
						if err != nil {
							b.Fatal(err)
						}
						if len(page.Resources) == 0 && shape.name != "MedicationRequestPatientStatus" {
							b.Fatalf("%s found nothing", shape.name)
						}
					}
					slices.Sort(times)
					b.ReportMetric(float64(times[len(times)/2].Nanoseconds()), "p50-ns")
					b.ReportMetric(float64(times[len(times)*99/100].Nanoseconds()), "p99-ns")
				})
			}
		})
	}
}
