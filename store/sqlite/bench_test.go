package sqlite_test

import (
	"context"
	"fmt"
	"math/rand"
	"testing"

	"github.com/dmp-fhir/dmp-fhir/store"
	"github.com/dmp-fhir/dmp-fhir/store/sqlite"
)

// benchStored is how many resources the store holds before measuring.
const benchStored = 100_000

func observation(i int) []byte {
	return []byte(fmt.Sprintf(`{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"Patient/p%d"},"effectiveDateTime":"2024-01-%02dT10:00:00Z","valueQuantity":{"value":%d,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"},"identifier":[{"system":"urn:bench","value":"o%d"}]}`, i%1000, i%28+1, 50+i%60, i))
}

// filledStore opens a store in a temp dir holding benchStored observations.
func filledStore(b *testing.B) *sqlite.Store {
	b.Helper()
	s, err := sqlite.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	ctx := context.Background()
	const batch = 2000
	for start := 0; start < benchStored; start += batch {
		err := s.Transaction(ctx, func(tx store.Ops) error {
			for i := start; i < start+batch; i++ {
				if _, err := tx.Create(ctx, "Observation", fmt.Sprint("o", i), observation(i)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkStore100k measures read-by-id and create on the embedded engine
// holding 100k resources.
func BenchmarkStore100k(b *testing.B) {
	s := filledStore(b)
	ctx := context.Background()
	b.Run("ReadByID", func(b *testing.B) {
		rng := rand.New(rand.NewSource(1))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Read(ctx, "Observation", fmt.Sprint("o", rng.Intn(benchStored))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ReadByIDParallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			rng := rand.New(rand.NewSource(rand.Int63()))
			for pb.Next() {
				if _, err := s.Read(ctx, "Observation", fmt.Sprint("o", rng.Intn(benchStored))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("Create", func(b *testing.B) {
		b.ReportAllocs()
		i := benchStored
		for b.Loop() {
			i++
			if _, err := s.Create(ctx, "Observation", fmt.Sprint("o", i), observation(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTransactionWrites measures the CPU cost of a write inside a
// big transaction (import, the audit copy): one op is one Observation
// created with its index rows, 500 per transaction.
//
//	go test -run '^$' -bench TransactionWrites ./store/sqlite/
func BenchmarkTransactionWrites(b *testing.B) {
	s, err := sqlite.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for i < b.N {
		err := s.Transaction(ctx, func(tx store.Ops) error {
			for j := 0; j < 500 && i < b.N; j++ {
				if _, err := tx.Create(ctx, "Observation", fmt.Sprint("o", i), observation(i)); err != nil {
					return err
				}
				i++
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
