package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dmp-fhir/dmp-fhir/internal/gen"
)

// loaded is what the workloads need to know of a loaded dataset.
type loaded struct {
	Dataset   string          `json:"dataset"`
	Seed      int64           `json:"seed"`
	Patients  []loadedPatient `json:"patients"`
	Resources int             `json:"resources"`
	readable  []string        // every resource the practitioner may read, Type/id
}

type loadedPatient struct {
	Index    int      `json:"index"`
	ID       string   `json:"id"`
	Readable []string `json:"readable"` // Type/id, the masked ones left out
	Masked   []string `json:"masked"`
	Refuses  bool     `json:"refusesEmergency"`
}

func (l *loaded) index() {
	l.readable = l.readable[:0]
	for _, p := range l.Patients {
		l.readable = append(l.readable, p.Readable...)
	}
}

// maxBundleEntries is the size of the transaction Bundles of the load;
// a patient's record is one Bundle but for the few large patients.
const maxBundleEntries = 2000

// loadDataset creates every patient's DMP (at a desk: a system's token and
// the patient's agreement), has the benchmark practitioner authorized (by
// the patient, or by the practitioner declaring the patient's consent),
// posts the record as transaction Bundles, and masks the masked documents
// (by the patient). workers patients are loaded at once.
func loadDataset(ctx context.Context, c *client, tok *tokens, d gen.Dataset, workers int, progress io.Writer) (*loaded, error) {
	patients := d.All()
	l := &loaded{Dataset: d.Name, Seed: d.Seed, Patients: make([]loadedPatient, len(patients))}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		done     atomic.Int64
		stored   atomic.Int64
		firstErr error
		mu       sync.Mutex
		wg       sync.WaitGroup
	)
	started := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(patients) || ctx.Err() != nil {
					return
				}
				lp, n, err := loadPatient(ctx, c, tok, patients[i])
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("patient %d: %w", i, err)
					}
					mu.Unlock()
					cancel()
					return
				}
				l.Patients[i] = lp
				stored.Add(int64(n))
				if k := done.Add(1); progress != nil && (k%10 == 0 || int(k) == len(patients)) {
					el := time.Since(started)
					fmt.Fprintf(progress, "\r  loaded %d/%d patients, %d resources, %.0f resources/s   ", k, len(patients), stored.Load(), float64(stored.Load())/el.Seconds())
				}
			}
		}()
	}
	wg.Wait()
	if progress != nil {
		fmt.Fprintln(progress)
	}
	if firstErr != nil {
		return nil, firstErr
	}
	l.Resources = int(stored.Load())
	l.index()
	return l, nil
}

func loadPatient(ctx context.Context, c *client, tok *tokens, p gen.Patient) (loadedPatient, int, error) {
	lp := loadedPatient{Index: p.Index, Refuses: p.DenyEmergency}
	kv := []string{"system", p.System, "nir", p.NIR, "family", p.Family, "given", p.Given, "birthDate", p.BirthDate,
		"gender", p.Gender, "email", p.Email, "patientConsent", "true"}
	if p.DenyEmergency {
		kv = append(kv, "ETREAT", "deny", "BTG", "deny")
	}
	body, err := c.call(ctx, "POST", "/Patient/$dmp-create", tok.system, parameters(kv...), 201)
	if err != nil {
		return lp, 0, err
	}
	var created struct {
		Parameter []struct {
			Name     string `json:"name"`
			Resource struct {
				ID string `json:"id"`
			} `json:"resource"`
		} `json:"parameter"`
	}
	if err := json.Unmarshal(body, &created); err != nil {
		return lp, 0, err
	}
	for _, pp := range created.Parameter {
		if pp.Name == "patient" {
			lp.ID = pp.Resource.ID
		}
	}
	if lp.ID == "" {
		return lp, 0, fmt.Errorf("$dmp-create answered no patient id: %.200s", body)
	}
	patientToken, err := tok.patient(lp.ID)
	if err != nil {
		return lp, 0, err
	}
	if p.AuthorizeByPatient {
		_, err = c.call(ctx, "POST", "/Patient/"+lp.ID+"/$authorize", patientToken, parameters("practitioner", benchPractitioner), 200)
	} else {
		_, err = c.call(ctx, "POST", "/Patient/"+lp.ID+"/$declare-consent", tok.practitioner, nil, 200)
	}
	if err != nil {
		return lp, 0, err
	}
	entries := p.Resources("Patient/" + lp.ID)
	k := 0
	for _, bundle := range gen.Transactions(entries, maxBundleEntries) {
		body, err := c.call(ctx, "POST", "", tok.system, bundle, 200)
		if err != nil {
			return lp, 0, err
		}
		for _, loc := range locations(body) {
			ref := refOf(loc)
			if k >= len(entries) || !strings.HasPrefix(ref, entries[k].Type+"/") {
				return lp, 0, fmt.Errorf("transaction answer: entry %d is at %q, not a %s", k, loc, entries[k].Type)
			}
			if entries[k].Masked {
				lp.Masked = append(lp.Masked, ref)
			} else {
				lp.Readable = append(lp.Readable, ref)
			}
			k++
		}
	}
	if k != len(entries) {
		return lp, 0, fmt.Errorf("transactions answered %d locations for %d entries", k, len(entries))
	}
	for _, ref := range lp.Masked {
		if _, err := c.call(ctx, "POST", "/"+ref+"/$mask", patientToken, nil, 200); err != nil {
			return lp, 0, err
		}
	}
	return lp, len(entries), nil
}

// refOf turns a location (Type/id/_history/n, maybe absolute) into Type/id.
func refOf(loc string) string {
	if i := strings.Index(loc, "/_history/"); i >= 0 {
		loc = loc[:i]
	}
	if i := strings.Index(loc, "/fhir/"); i >= 0 {
		loc = loc[i+len("/fhir/"):]
	}
	return loc
}
