package main

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dmp-fhir/dmp-fhir/internal/gen"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// bench holds what the workloads share.
type bench struct {
	c          *client
	tok        *tokens
	l          *loaded
	d          gen.Dataset
	everything bool         // the server answers $everything
	extra      atomic.Int64 // extra patients ingested so far (W4)
	ingestSize int          // resources of a W4 patient; 0: the median
}

// W1: read by id, as the consented practitioner, a resource the
// practitioner may read (uniform over the stored clinical resources).
func (b *bench) readByID(ctx context.Context, r *recorder, rng *rand.Rand, sched time.Time) {
	ref := b.l.readable[rng.Intn(len(b.l.readable))]
	status, err := b.c.do(ctx, "GET", "/"+ref, b.tok.practitioner, nil, &r.buf)
	switch {
	case err != nil:
		r.fail("GET %s: %v", ref, err)
	case status != 200:
		r.fail("GET %s: %d %.200s", ref, status, r.buf.String())
	default:
		r.ok(sched, 1)
	}
}

// W2: a patient's vital signs, newest first, 50 a page, and the next page.
func (b *bench) patientSearch(ctx context.Context, r *recorder, rng *rand.Rand, sched time.Time) {
	p := b.l.Patients[rng.Intn(len(b.l.Patients))]
	u := "/Observation?patient=" + p.ID + "&category=vital-signs&_sort=-date&_count=50"
	for page := 0; page < 2 && u != ""; page++ {
		start := sched
		if page > 0 {
			start = time.Now()
		}
		status, err := b.c.do(ctx, "GET", u, b.tok.practitioner, nil, &r.buf)
		switch {
		case err != nil:
			r.fail("search: %v", err)
			return
		case status != 200:
			r.fail("search %s: %d %.200s", u, status, r.buf.String())
			return
		}
		r.ok(start, entries(r.buf.Bytes()))
		u = nextLink(r.buf.Bytes())
	}
}

// W3: $everything of a patient, every page.
func (b *bench) everythingOp(ctx context.Context, r *recorder, rng *rand.Rand, sched time.Time) {
	p := b.l.Patients[rng.Intn(len(b.l.Patients))]
	u := "/Patient/" + p.ID + "/$everything"
	for page := 0; u != "" && page < 10_000; page++ {
		start := sched
		if page > 0 {
			start = time.Now()
		}
		status, err := b.c.do(ctx, "GET", u, b.tok.practitioner, nil, &r.buf)
		switch {
		case err != nil:
			r.fail("$everything: %v", err)
			return
		case status != 200:
			r.fail("$everything %s: %d %.200s", u, status, r.buf.String())
			return
		}
		r.ok(start, entries(r.buf.Bytes()))
		u = nextLink(r.buf.Bytes())
	}
}

// prime runs, one at a time, before any concurrent run: a read of one
// resource of every patient, then the searches of the workloads (W2, W3)
// on every patient. The reads take the server past the first access of the
// practitioner to each patient since it started, which costs a count of
// the patient's AuditEvents (api firstAccess, for the patient's
// notification): the runs measure the steady state. The searches make
// every run start with the engine's statements of those query shapes
// prepared (before main's 573812b, new shapes met by more concurrent
// searches than read connections deadlocked the pool).
func (b *bench) prime(ctx context.Context) {
	r := &recorder{}
	rng := rand.New(rand.NewSource(1))
	for _, p := range b.l.Patients {
		if len(p.Readable) > 0 && ctx.Err() == nil {
			b.c.do(ctx, "GET", "/"+p.Readable[0], b.tok.practitioner, nil, &r.buf)
		}
	}
	saved := b.l
	defer func() { b.l = saved }()
	for _, p := range saved.Patients {
		if ctx.Err() != nil {
			break
		}
		b.l = &loaded{Patients: []loadedPatient{p}}
		b.patientSearch(ctx, r, rng, time.Now())
		if b.everything {
			b.everythingOp(ctx, r, rng, time.Now())
		}
	}
}

// probeEverything says whether the server has $everything (not 404).
func (b *bench) probeEverything(ctx context.Context) (bool, error) {
	var r recorder
	status, err := b.c.do(ctx, "GET", "/Patient/"+b.l.Patients[0].ID+"/$everything?_count=1", b.tok.practitioner, nil, &r.buf)
	if err != nil {
		return false, err
	}
	return status == 200, nil
}

// W4 (small): a 2-entry transaction by the practitioner: a lab result and
// its report, into a random patient's DMP.
func (b *bench) smallTx(ctx context.Context, r *recorder, rng *rand.Rand, sched time.Time) {
	p := b.l.Patients[rng.Intn(len(b.l.Patients))]
	day := time.Date(2026, 11, 1+rng.Intn(28), rng.Intn(24), rng.Intn(60), 0, 0, time.UTC).Format(time.RFC3339)
	u := fmt.Sprintf("urn:uuid:00000000-0000-4000-8000-%012x", rng.Int63()&0xffffffffffff)
	body := fmt.Sprintf(`{"resourceType":"Bundle","type":"transaction","entry":[`+
		`{"fullUrl":%q,"resource":{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"718-7","display":"Hémoglobine"}]},"subject":{"reference":"Patient/%s"},"effectiveDateTime":%q,"valueQuantity":{"value":%.1f,"unit":"g/dL","system":"http://unitsofmeasure.org","code":"g/dL"}},"request":{"method":"POST","url":"Observation"}},`+
		`{"resource":{"resourceType":"DiagnosticReport","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"11502-2","display":"Compte rendu d'examens biologiques"}]},"subject":{"reference":"Patient/%s"},"effectiveDateTime":%q,"result":[{"reference":%q}]},"request":{"method":"POST","url":"DiagnosticReport"}}]}`,
		u, p.ID, day, 10+rng.Float64()*7, p.ID, day, u)
	status, err := b.c.do(ctx, "POST", "", b.tok.practitioner, []byte(body), &r.buf)
	switch {
	case err != nil:
		r.fail("transaction: %v", err)
	case status != 200:
		r.fail("transaction: %d %.200s", status, r.buf.String())
	default:
		r.ok(sched, 2)
	}
}

// ingest returns the W4 op that posts one new patient's whole record (the
// Patient and its resources) as one transaction Bundle, by the hospital
// system, and a stop function. The Bundles are generated ahead by one
// goroutine, outside the measured requests.
func (b *bench) ingest(ctx context.Context) (op, func()) {
	type item struct {
		body []byte
		n    int
	}
	ctx, cancel := context.WithCancel(ctx)
	ch := make(chan item, 8)
	go func() {
		defer close(ch)
		for ctx.Err() == nil {
			p := b.d.Extra(int(b.extra.Add(1)))
			if b.ingestSize > 0 {
				p.Size = b.ingestSize
			}
			pu := fmt.Sprintf("urn:uuid:00000000-0000-4000-9000-%012d", p.Index)
			es := append([]gen.Entry{{FullURL: pu, Type: "Patient", Body: p.PatientResource()}}, p.Resources(pu)...)
			select {
			case ch <- item{gen.Transaction(es), len(es)}:
			case <-ctx.Done():
			}
		}
	}()
	return func(ctx context.Context, r *recorder, rng *rand.Rand, sched time.Time) {
		var it item
		select {
		case it = <-ch:
		case <-ctx.Done():
			return
		}
		if it.body == nil {
			return
		}
		start := time.Now()
		if start.Before(sched) {
			start = sched
		}
		status, err := b.c.do(ctx, "POST", "", b.tok.system, it.body, &r.buf)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				r.fail("bundle: %v", err)
			}
		case status != 200:
			r.fail("bundle: %d %.200s", status, r.buf.String())
		default:
			r.ok(start, it.n)
		}
	}, cancel
}

// noteMix says in a W5 run's note when its 5% of $everything were reads by
// id (a server without $everything).
func (b *bench) noteMix(r *result) {
	if !b.everything {
		r.Note = strings.TrimSpace(r.Note + " no $everything: its 5% are reads by id")
	}
}

// W5: 70% W1, 20% W2, 5% W3 (W1 instead when the server has no
// $everything), 5% writes (the 2-entry transaction).
func (b *bench) mixed(ctx context.Context, r *recorder, rng *rand.Rand, sched time.Time) {
	x := rng.Float64()
	switch {
	case x < 0.70:
		b.readByID(ctx, r, rng, sched)
	case x < 0.90:
		b.patientSearch(ctx, r, rng, sched)
	case x < 0.95 && b.everything:
		b.everythingOp(ctx, r, rng, sched)
	case x < 0.95:
		b.readByID(ctx, r, rng, sched)
	default:
		b.smallTx(ctx, r, rng, sched)
	}
}

// floorGin is the request of the gin floor: a fixed 1 KB JSON body.
func floorGin(c *client) op {
	u := "http://" + c.addr + "/floor"
	return func(ctx context.Context, r *recorder, rng *rand.Rand, sched time.Time) {
		status, err := c.do(ctx, "GET", u, "x", nil, &r.buf)
		switch {
		case err != nil:
			r.fail("floor: %v", err)
		case status != 200:
			r.fail("floor: %d", status)
		default:
			r.ok(sched, 1)
		}
	}
}

// floorStore reads by id from the store itself: no HTTP, no JSON, no
// access control.
func floorStore(st store.Store, refs []string) op {
	type ref struct{ typ, id string }
	split := make([]ref, len(refs))
	for i, s := range refs {
		typ, id, _ := strings.Cut(s, "/")
		split[i] = ref{typ, id}
	}
	return func(ctx context.Context, r *recorder, rng *rand.Rand, sched time.Time) {
		x := split[rng.Intn(len(split))]
		if _, err := st.Read(ctx, x.typ, x.id); err != nil {
			if ctx.Err() == nil {
				r.fail("store read %s/%s: %v", x.typ, x.id, err)
			}
			return
		}
		r.ok(sched, 1)
	}
}
