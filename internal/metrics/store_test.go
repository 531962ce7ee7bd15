package metrics_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dmp-fhir/dmp-fhir/internal/metrics"
	"github.com/dmp-fhir/dmp-fhir/store"
	"github.com/dmp-fhir/dmp-fhir/store/sqlite"
	"github.com/dmp-fhir/dmp-fhir/store/storetest"
)

func openMetered(m *metrics.Metrics) storetest.Opener {
	return func(t *testing.T) store.Store {
		s, err := sqlite.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return m.Store(s)
	}
}

// TestMeteredStoreKeepsTheContract runs the store contract suite through
// the decorator: timing changes nothing of what the store does.
func TestMeteredStoreKeepsTheContract(t *testing.T) {
	if testing.Short() {
		t.Skip("the contract suite runs in the engines' own packages too")
	}
	m := metrics.New("test")
	storetest.Run(t, openMetered(m))
	storetest.RunSearch(t, openMetered(m))
	if series := storeSeries(t, m); strings.Count(series, "\n") < 8 {
		t.Fatalf("store series after the contract suite:\n%s", series)
	}
}

// TestMeteredStoreTimesEachOperationByOutcome: operations outside and
// inside a transaction are timed under the engine's name, and errors are
// told apart.
func TestMeteredStoreTimesEachOperationByOutcome(t *testing.T) {
	m := metrics.New("test")
	st := openMetered(m)(t)
	defer st.Close()
	ctx := context.Background()
	if _, err := st.Create(ctx, "Patient", "p1", []byte(`{"resourceType":"Patient","id":"p1"}`)); err != nil {
		t.Fatal(err)
	}
	st.Read(ctx, "Patient", "p1")
	st.Read(ctx, "Patient", "nobody")
	st.Create(ctx, "Patient", "p1", []byte(`{"resourceType":"Patient","id":"p1"}`))
	if err := st.Transaction(ctx, func(tx store.Ops) error {
		_, _, err := tx.Put(ctx, "Patient", "p1", []byte(`{"resourceType":"Patient","id":"p1","active":true}`), 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	st.Search(ctx, store.Query{Type: "Patient", Count: 10})
	expected := []string{
		`engine="sqlite",operation="create",outcome="ok"`,
		`engine="sqlite",operation="create",outcome="conflict"`,
		`engine="sqlite",operation="read",outcome="ok"`,
		`engine="sqlite",operation="read",outcome="not_found"`,
		`engine="sqlite",operation="put",outcome="ok"`,
		`engine="sqlite",operation="transaction",outcome="ok"`,
		`engine="sqlite",operation="search",outcome="ok"`,
	}
	series := storeSeries(t, m)
	for _, want := range expected {
		if !strings.Contains(series, want) {
			t.Errorf("no series %s in\n%s", want, series)
		}
	}
}

// storeSeries lists the label sets of the store latency histogram, one a line.
func storeSeries(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, f := range fams {
		if f.GetName() != "dmp_store_operation_duration_seconds" {
			continue
		}
		for _, s := range f.GetMetric() {
			var ls []string
			for _, l := range s.GetLabel() {
				ls = append(ls, l.GetName()+`="`+l.GetValue()+`"`)
			}
			out.WriteString(strings.Join(ls, ",") + "\n")
		}
	}
	return out.String()
}
