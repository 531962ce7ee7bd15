package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/internal/ids"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// Access is one access to record: a read, a search, a write, a consent
// change, an emergency access, or a refused attempt. The Auditor turns it
// into a FHIR R4 AuditEvent (see newAuditEvent for the mapping).
//
// No field may hold a patient's name, a NIR or a token: the AuditEvent is
// the patient's own trace, searched by the patient, and it is built so that
// the patient appears only as a reference (Patient/id).
type Access struct {
	Time        time.Time // when the access happened; zero means now
	Action      string    // AuditEvent.action: C R U D E
	Interaction string    // restful-interaction code: read, vread, search-type, create, update, delete, operation, transaction, ...
	Outcome     string    // "0" success, "4" minor failure (refused: 401/403/404...), "8" serious failure (5xx), "12" major failure
	OutcomeDesc string    // e.g. the consent rule that refused it; never patient data

	CallerKind   string // practitioner | patient | system | anonymous ("" = anonymous)
	CallerID     string // idNatPs, patient id, client id
	CallerName   string // the professional's or client's name; never recorded for a patient caller
	Organization string // FINESS of the caller's organization

	AccessMode string // normal | bris_de_glace | centre_15 ("" = normal for a practitioner, none otherwise)
	Reason     string // the bris de glace justification

	// PatientIDs are the patients whose data were reached or targeted (ids,
	// or "Patient/id").
	PatientIDs []string
	// Resources are the "Type/id" of the resources returned or written; the
	// AuditEvent lists the first AuditorOptions.MaxResources of them and says
	// how many more there were.
	Resources []string
	// Query is the search query string. Token-bearing parameters
	// (access_token, ...) are removed before it is recorded.
	Query      string
	SourceAddr string // client IP (host or host:port)
	RequestID  string
}

// Caller kinds of an Access.
const (
	AuditCallerPractitioner = "practitioner"
	AuditCallerPatient      = "patient"
	AuditCallerSystem       = "system"
	AuditCallerAnonymous    = "anonymous"
)

// AuditEvent outcomes (http://hl7.org/fhir/audit-event-outcome).
const (
	AuditSuccess        = "0"
	AuditMinorFailure   = "4"
	AuditSeriousFailure = "8"
	AuditMajorFailure   = "12"
)

// ErrAuditorClosed is returned by Record after Close.
var ErrAuditorClosed = errors.New("audit: auditor closed")

// AuditorOptions tune the group commit.
type AuditorOptions struct {
	// JournalDir, when set, puts the append-only audit journal in that
	// directory (see journal.go): Record returns once the AuditEvent is
	// fsynced in the journal, and a background materializer copies the
	// journal into the store. "" writes each batch straight to the store
	// and Record waits for that store transaction.
	JournalDir string
	// MaxBatch is the most events written in one store transaction
	// (default 256). With a journal, it only ends MaxDelay's wait early:
	// a journal write takes every waiting event.
	MaxBatch int
	// MaxDelay is how long the writer waits, once an event is queued, for
	// more events to join its batch. 0 writes as soon as the writer is free:
	// events that arrive while a batch is being written form the next batch,
	// which is already group commit under load without adding latency when
	// idle.
	MaxDelay time.Duration
	// Timeout bounds each store write (default 30 s). With a journal it
	// also bounds how long NewAuditor waits for the previous run's journal
	// to be copied into the store (the copy goes on in the background).
	Timeout time.Duration
	// SegmentSize is the size past which the journal starts a new segment
	// file (default 64 MiB).
	SegmentSize int64
	// MaterializeBatch is the most journaled events copied into the store
	// in one transaction (default 1000).
	MaterializeBatch int
	// MaterializeBytes bounds the journal lines copied in one transaction
	// (default 1 MiB, at least one line): a transaction holds the store's
	// write lock, which every writer waits for, and 1,000 events listing 100
	// resources each held it about a second.
	MaterializeBytes int64
	// MaterializeDelay is how long the materializer lets events accumulate
	// when fewer than MaterializeBatch wait (default 50 ms; negative: no
	// wait). Materialize does not wait for it.
	MaterializeDelay time.Duration
	// CloseTimeout bounds how long Close copies the journal into the store
	// (default 10 s); what remains is copied at the next start.
	CloseTimeout time.Duration
	// MaxResources is how many resources one AuditEvent lists as entities
	// (default 100); the others are counted.
	MaxResources int
	// Logger receives batch failures; slog.Default() when nil. It never
	// receives event contents.
	Logger *slog.Logger
	// OnBatch, when set, is told the size of each group commit once it is
	// durable (a journal write and its fsync, or a store transaction), for
	// metrics. It runs on the writer goroutine: it must not block.
	OnBatch func(events int)

	testSync func(*os.File) error // the journal's fsync, for the tests
}

// AuditStats describe the Auditor's work so far, for metrics. With a
// journal, Batches, Events, Failed, LastBatch, MaxBatch and QueueDepth
// describe the journal's group commit (an event is durable once journaled),
// and the Journal* and Materialize* fields its copy into the store.
type AuditStats struct {
	Batches    int64 // store transactions written (each one-by-one run counts as one batch); journal writes
	Events     int64 // events durably stored (journaled)
	Failed     int64 // events that could not be stored (their Record got an error)
	LastBatch  int   // size of the last batch
	MaxBatch   int   // largest batch so far
	QueueDepth int   // events waiting for the writer now
	OneByOne   bool  // the store has no transactions: events are written one by one

	Journal            bool  // events go through the journal
	JournalFsyncs      int64 // fsyncs of journal files and of the directory
	JournalBacklog     int64 // events journaled and not yet copied into the store
	JournalSkipped     int64 // unreadable journal lines skipped (each one logged)
	Materialized       int64 // events copied into the store by this process
	MaterializeBatches int64 // store transactions of the copy
	MaterializeErrors  int64 // failed copy attempts (retried)
}

// Auditor records Accesses as AuditEvents, durably, with group commit: one
// writer goroutine takes every queued event (up to MaxBatch) and writes them
// in one store transaction, then answers each waiting Record. Safe for
// concurrent use.
type Auditor struct {
	st   store.Store
	opts AuditorOptions
	log  *slog.Logger

	mu     sync.Mutex
	queue  []*auditPending
	closed bool

	wake      chan struct{} // capacity 1: "the queue changed"
	done      chan struct{} // closed when the writer has exited
	closeOnce sync.Once

	noTx atomic.Bool

	batches, events, failed atomic.Int64
	lastBatch, maxBatch     atomic.Int64

	j      *journal // nil: events go straight to the store
	broken error    // the journal could not be opened: every Record fails
}

type auditPending struct {
	id   string
	body []byte
	done chan error // capacity 1
}

const auditResourceType = "AuditEvent"

// NewAuditor starts the writer goroutine; Close stops it. With
// opts.JournalDir it opens the journal, copies what a previous run left in
// it into the store (waiting up to opts.Timeout), and starts the
// materializer. When the journal cannot be opened, the error is logged and
// the Auditor refuses every Record with it: nothing is answered unaudited.
// OpenAuditor returns that error instead.
func NewAuditor(st store.Store, opts AuditorOptions) *Auditor {
	a := newAuditor(st, opts)
	if err := a.start(); err != nil {
		a.log.Error("audit: the journal cannot be opened: every access will be refused", "dir", opts.JournalDir, "err", err)
	}
	return a
}

// OpenAuditor is NewAuditor, returning the error of a journal that cannot
// be opened (a directory that cannot be written, another server holding
// it).
func OpenAuditor(st store.Store, opts AuditorOptions) (*Auditor, error) {
	a := newAuditor(st, opts)
	if err := a.start(); err != nil {
		return nil, err
	}
	return a, nil
}

func newAuditor(st store.Store, opts AuditorOptions) *Auditor {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.MaxDelay < 0 {
		opts.MaxDelay = 0
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.MaxResources <= 0 {
		opts.MaxResources = 100
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = defaultSegmentSize
	}
	if opts.MaterializeBatch <= 0 {
		opts.MaterializeBatch = defaultMaterializeBatch
	}
	if opts.MaterializeBytes <= 0 {
		opts.MaterializeBytes = defaultMaterializeBytes
	}
	switch {
	case opts.MaterializeDelay == 0:
		opts.MaterializeDelay = defaultMaterializeDelay
	case opts.MaterializeDelay < 0:
		opts.MaterializeDelay = 0
	}
	if opts.CloseTimeout <= 0 {
		opts.CloseTimeout = defaultCloseTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	a := &Auditor{
		st:   st,
		opts: opts,
		log:  log,
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	if !st.Info().Transactions {
		a.noTx.Store(true)
	}
	return a
}

// start opens the journal, or starts the direct writer.
func (a *Auditor) start() error {
	if a.opts.JournalDir == "" {
		go a.run()
		return nil
	}
	close(a.done) // no direct writer
	j, err := openJournal(a.st, a.opts, a.log)
	if err != nil {
		a.broken = fmt.Errorf("audit: journal %s: %w", a.opts.JournalDir, err)
		return a.broken
	}
	a.j = j
	return nil
}

// Record writes ev as an AuditEvent and returns once it is durably stored
// (with a journal: fsynced in the journal, and in the store later), or with
// the store's (the journal's) error, or with ctx's error when ctx is done
// first (the event is then still written: an attempt is traced even when
// its client went away). An Access that cannot be turned into a valid
// AuditEvent (an unknown action, outcome or caller kind, a malformed
// reference) is refused with an error before anything is queued.
func (a *Auditor) Record(ctx context.Context, ev Access) error {
	if a.broken != nil {
		return a.broken
	}
	ae, err := newAuditEvent(ev, a.opts.MaxResources)
	if err != nil {
		return err
	}
	body := ae.appendJSON(make([]byte, 0, 1152+256*len(ae.Entity)))
	if a.j != nil {
		return a.j.record(ctx, auditNewID(), body, ae.index())
	}
	p := &auditPending{id: auditNewID(), body: body, done: make(chan error, 1)}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return ErrAuditorClosed
	}
	a.queue = append(a.queue, p)
	a.mu.Unlock()
	a.signal()
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Materialize returns once every event recorded before the call is in the
// store, so that a search of AuditEvent finds it; call it before answering
// such a search or read. Without a journal it returns at once (a recorded
// event is already stored). It returns ctx's error, or the store's when
// copying fails meanwhile.
func (a *Auditor) Materialize(ctx context.Context) error {
	if a.broken != nil {
		return a.broken
	}
	if a.j == nil {
		return nil
	}
	return a.j.materialize(ctx, false)
}

// Close writes what is queued, stops the writer and waits for it. Records
// after Close get ErrAuditorClosed. With a journal, it then copies the
// journal into the store for up to CloseTimeout; what is left stays in the
// journal for the next start. It does not close the store.
func (a *Auditor) Close() error {
	if a.j != nil {
		a.j.close()
		return nil
	}
	a.closeOnce.Do(func() {
		a.mu.Lock()
		a.closed = true
		a.mu.Unlock()
		a.signal()
	})
	<-a.done
	return nil
}

// Stats returns counters for metrics.
func (a *Auditor) Stats() AuditStats {
	if a.j != nil {
		var s AuditStats
		a.j.stats(&s)
		return s
	}
	a.mu.Lock()
	depth := len(a.queue)
	a.mu.Unlock()
	return AuditStats{
		Batches:    a.batches.Load(),
		Events:     a.events.Load(),
		Failed:     a.failed.Load(),
		LastBatch:  int(a.lastBatch.Load()),
		MaxBatch:   int(a.maxBatch.Load()),
		QueueDepth: depth,
		OneByOne:   a.noTx.Load(),
	}
}

func (a *Auditor) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// run is the writer goroutine.
func (a *Auditor) run() {
	defer close(a.done)
	for {
		batch, stop := a.next()
		if len(batch) > 0 {
			a.write(batch)
		}
		if stop {
			return
		}
	}
}

// next waits for queued events and takes up to MaxBatch of them; stop is
// true once the Auditor is closed and its queue empty.
func (a *Auditor) next() (batch []*auditPending, stop bool) {
	for {
		a.mu.Lock()
		n, closed := len(a.queue), a.closed
		a.mu.Unlock()
		if n > 0 {
			break
		}
		if closed {
			return nil, true
		}
		<-a.wake
	}
	if a.opts.MaxDelay > 0 {
		timer := time.NewTimer(a.opts.MaxDelay)
	wait:
		for {
			a.mu.Lock()
			n, closed := len(a.queue), a.closed
			a.mu.Unlock()
			if n >= a.opts.MaxBatch || closed {
				break
			}
			select {
			case <-a.wake:
			case <-timer.C:
				break wait
			}
		}
		timer.Stop()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	n := min(len(a.queue), a.opts.MaxBatch)
	batch = make([]*auditPending, n)
	copy(batch, a.queue)
	rest := copy(a.queue, a.queue[n:])
	clear(a.queue[rest:])
	a.queue = a.queue[:rest]
	return batch, false
}

// write stores one batch in one transaction, or one event at a time when
// the store has no transactions or the transaction failed, and answers
// every waiter.
func (a *Auditor) write(batch []*auditPending) {
	a.lastBatch.Store(int64(len(batch)))
	if n := int64(len(batch)); n > a.maxBatch.Load() {
		a.maxBatch.Store(n) // only the writer goroutine stores it
	}
	a.batches.Add(1)
	if !a.noTx.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), a.opts.Timeout)
		err := a.st.Transaction(ctx, func(tx store.Ops) error {
			for _, p := range batch {
				if _, err := tx.Create(ctx, auditResourceType, p.id, p.body); err != nil {
					return err
				}
			}
			return nil
		})
		cancel()
		if err == nil {
			a.events.Add(int64(len(batch)))
			if a.opts.OnBatch != nil {
				a.opts.OnBatch(len(batch))
			}
			for _, p := range batch {
				p.done <- nil
			}
			return
		}
		if errors.Is(err, store.ErrNoTransactions) {
			a.noTx.Store(true)
			a.log.Info("audit: the store has no transactions; audit events are written one by one")
		} else {
			// One failed transaction must not fail unrelated requests when
			// their events can be stored alone: retry each one. An event
			// the transaction did store after all (a lost commit reply) is
			// found by its id.
			a.log.Warn("audit: batch transaction failed; writing its events one by one",
				"events", len(batch), "err", err)
		}
	}
	for _, p := range batch {
		ctx, cancel := context.WithTimeout(context.Background(), a.opts.Timeout)
		_, err := a.st.Create(ctx, auditResourceType, p.id, p.body)
		cancel()
		if errors.Is(err, store.ErrExists) {
			err = nil // a random 128-bit id: only this event can hold it
		}
		if err != nil {
			a.failed.Add(1)
			a.log.Error("audit: event not stored", "err", err)
			err = fmt.Errorf("audit: event not stored: %w", err)
		} else {
			a.events.Add(1)
		}
		p.done <- err
	}
}

// auditNewID is an AuditEvent's id: time-ordered (ids.New), so that each
// event's rows land at the end of the store's indexes, not on random pages
// of trees that grow with every access.
func auditNewID() string { return ids.New() }

// ---------------------------------------------------------------------------
// The AuditEvent.

// Code systems and identifier systems the AuditEvent uses.
const (
	auditTypeSystem        = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	auditInteractionSystem = "http://hl7.org/fhir/restful-interaction"
	auditEntityTypeSystem  = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	auditObjectRoleSystem  = "http://terminology.hl7.org/CodeSystem/object-role"
	auditSourceTypeSystem  = "http://terminology.hl7.org/CodeSystem/security-source-type"
	auditModeSystem        = "https://mos.esante.gouv.fr/NOS/TRE_R248-ModeAcces/FHIR/TRE-R248-ModeAcces"
	auditActReasonSystem   = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	auditIDNatPsSystem     = "urn:oid:1.2.250.1.71.4.2.1"
	auditFinessSystem      = "https://finess.esante.gouv.fr"
	// IHE Basic Audit Log Patterns: the entity that carries X-Request-Id.
	auditBALPEntityTypeSystem = "http://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
	// AuditClientIDSystem identifies the OAuth client of a system caller.
	AuditClientIDSystem = "urn:dmp-fhir:oauth-client"
	// AuditObserver is source.observer.display of every AuditEvent.
	AuditObserver = "dmp-fhir"
)

var auditInteractionDisplay = map[string]string{
	"read": "read", "vread": "vread", "update": "update", "patch": "patch", "delete": "delete",
	"history": "history", "history-instance": "history-instance", "history-type": "history-type",
	"history-system": "history-system", "create": "create", "search": "search",
	"search-type": "search-type", "search-system": "search-system", "capabilities": "capabilities",
	"transaction": "transaction", "batch": "batch", "operation": "operation",
}

var auditOutcomes = map[string]bool{AuditSuccess: true, AuditMinorFailure: true, AuditSeriousFailure: true, AuditMajorFailure: true}

// auditModes maps an access mode to its TRE_R248 display and its
// v3-ActReason purpose.
var auditModes = map[string]struct{ display, reason, reasonDisplay string }{
	"normal":        {"Accès normal", "TREAT", "treatment"},
	"bris_de_glace": {"Accès en bris de glace", "BTG", "break the glass"},
	"centre_15":     {"Accès par un centre de régulation médicale", "ETREAT", "Emergency Treatment"},
}

// Parameters whose values are secrets and never reach an AuditEvent.
var auditSecretParams = map[string]bool{
	"access_token": true, "id_token": true, "refresh_token": true,
	"client_secret": true, "client_assertion": true,
}

type aeCoding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

type aeCodeable struct {
	Coding []aeCoding `json:"coding,omitempty"`
	Text   string     `json:"text,omitempty"`
}

type aeIdentifier struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value"`
}

type aeReference struct {
	Reference  string        `json:"reference,omitempty"`
	Type       string        `json:"type,omitempty"`
	Identifier *aeIdentifier `json:"identifier,omitempty"`
	Display    string        `json:"display,omitempty"`
}

type aePeriod struct {
	Start string `json:"start"`
}

type aeNetwork struct {
	Address string `json:"address"`
	Type    string `json:"type"`
}

type aeAgent struct {
	Who       aeReference `json:"who"`
	AltID     string      `json:"altId,omitempty"`
	Requestor bool        `json:"requestor"`
	Network   *aeNetwork  `json:"network,omitempty"`
}

type aeSource struct {
	Observer aeReference `json:"observer"`
	Type     []aeCoding  `json:"type"`
}

type aeDetail struct {
	Type        string `json:"type"`
	ValueString string `json:"valueString"`
}

type aeEntity struct {
	What        *aeReference `json:"what,omitempty"`
	Type        *aeCoding    `json:"type,omitempty"`
	Role        *aeCoding    `json:"role,omitempty"`
	Description string       `json:"description,omitempty"`
	Query       string       `json:"query,omitempty"`
	Detail      []aeDetail   `json:"detail,omitempty"`
}

type aeAuditEvent struct {
	ResourceType   string       `json:"resourceType"`
	Type           aeCoding     `json:"type"`
	Subtype        []aeCoding   `json:"subtype,omitempty"`
	Action         string       `json:"action"`
	Period         aePeriod     `json:"period"`
	Recorded       string       `json:"recorded"`
	Outcome        string       `json:"outcome"`
	OutcomeDesc    string       `json:"outcomeDesc,omitempty"`
	PurposeOfEvent []aeCodeable `json:"purposeOfEvent,omitempty"`
	Agent          []aeAgent    `json:"agent"`
	Source         aeSource     `json:"source"`
	Entity         []aeEntity   `json:"entity,omitempty"`
}

var (
	auditPersonType   = &aeCoding{System: auditEntityTypeSystem, Code: "1", Display: "Person"}
	auditObjectType   = &aeCoding{System: auditEntityTypeSystem, Code: "2", Display: "System Object"}
	auditPatientRole  = &aeCoding{System: auditObjectRoleSystem, Code: "1", Display: "Patient"}
	auditResourceRole = &aeCoding{System: auditObjectRoleSystem, Code: "4", Display: "Domain Resource"}
	auditQueryRole    = &aeCoding{System: auditObjectRoleSystem, Code: "24", Display: "Query"}
	auditRequestType  = &aeCoding{System: auditBALPEntityTypeSystem, Code: "XrequestId", Display: "XrequestId"}
)

// newAuditEvent turns an Access into an R4 AuditEvent (TDE profile shape:
// one subtype, period.start, at most two agents each with a who):
//
//   - type audit-event-type#rest, subtype restful-interaction#<Interaction>,
//     action, outcome, outcomeDesc, recorded = period.start = Time;
//   - agent[0], the requestor: who is Patient/<id> for a patient (so the
//     `patient` search parameter finds the patient's own accesses), the
//     idNatPs identifier (urn:oid:1.2.250.1.71.4.2.1) for a professional, the
//     client id for a system; altId = CallerID; network.address = SourceAddr;
//   - agent[1], when Organization is set: the organization (FINESS);
//   - purposeOfEvent: the access mode in TRE_R248 and v3-ActReason
//     (TREAT/BTG/ETREAT), text = the bris de glace justification;
//   - source.observer display "dmp-fhir", type 4 Application Server;
//   - entity: each patient as what = Patient/<id> (type 1 Person, role 1
//     Patient): this is what the R4 `patient` search parameter
//     (AuditEvent.entity.what.where(resolve() is Patient)) indexes; then the
//     resources (type 2, role 4 Domain Resource), at most maxResources of
//     them and an entity counting the others; the query (role 24 Query,
//     base64); the request id (IHE BALP XrequestId).
//
// Record encodes it with encoding/json and takes its search index from it
// (index).
func newAuditEvent(ev Access, maxResources int) (*aeAuditEvent, error) {
	switch ev.Action {
	case "C", "R", "U", "D", "E":
	default:
		return nil, fmt.Errorf("audit: action %q is not one of C R U D E", ev.Action)
	}
	if !auditOutcomes[ev.Outcome] {
		return nil, fmt.Errorf("audit: outcome %q is not one of 0 4 8 12", ev.Outcome)
	}
	when := ev.Time
	if when.IsZero() {
		when = time.Now()
	}
	instant := when.UTC().Format(fhir.InstantFormat)
	ae := aeAuditEvent{
		ResourceType: "AuditEvent",
		Type:         aeCoding{System: auditTypeSystem, Code: "rest", Display: "RESTful Operation"},
		Action:       ev.Action,
		Period:       aePeriod{Start: instant},
		Recorded:     instant,
		Outcome:      ev.Outcome,
		OutcomeDesc:  auditClip(strings.TrimSpace(ev.OutcomeDesc), 1000),
		Source: aeSource{
			Observer: aeReference{Type: "Device", Display: AuditObserver},
			Type:     []aeCoding{{System: auditSourceTypeSystem, Code: "4", Display: "Application Server"}},
		},
	}
	if ev.Interaction != "" {
		if !auditIsCode(ev.Interaction) {
			return nil, fmt.Errorf("audit: interaction %q is not a code", ev.Interaction)
		}
		ae.Subtype = []aeCoding{{System: auditInteractionSystem, Code: ev.Interaction, Display: auditInteractionDisplay[ev.Interaction]}}
	}

	requestor, err := auditRequestor(ev)
	if err != nil {
		return nil, err
	}
	ae.Agent = append(ae.Agent, requestor)
	if org := auditClip(strings.TrimSpace(ev.Organization), 64); org != "" {
		ae.Agent = append(ae.Agent, aeAgent{Who: aeReference{
			Type:       "Organization",
			Identifier: &aeIdentifier{System: auditFinessSystem, Value: org},
		}})
	}

	if p, ok := auditPurpose(ev); ok {
		ae.PurposeOfEvent = []aeCodeable{p}
	}

	seen := map[string]bool{}
	for _, pid := range ev.PatientIDs {
		id := strings.TrimPrefix(pid, "Patient/")
		if !auditIsID(id) {
			return nil, fmt.Errorf("audit: patient id %q is not a FHIR id", pid)
		}
		ref := "Patient/" + id
		if seen[ref] {
			continue
		}
		seen[ref] = true
		ae.Entity = append(ae.Entity, aeEntity{What: &aeReference{Reference: ref}, Type: auditPersonType, Role: auditPatientRole})
	}
	listed, more := 0, 0
	for _, r := range ev.Resources {
		typ, id, ok := strings.Cut(r, "/")
		if !ok || !auditIsType(typ) || !auditIsID(id) {
			return nil, fmt.Errorf("audit: resource %q is not Type/id", r)
		}
		if seen[r] {
			continue
		}
		seen[r] = true
		if listed >= maxResources {
			more++
			continue
		}
		listed++
		if typ == "Patient" {
			ae.Entity = append(ae.Entity, aeEntity{What: &aeReference{Reference: r}, Type: auditPersonType, Role: auditPatientRole})
		} else {
			ae.Entity = append(ae.Entity, aeEntity{What: &aeReference{Reference: r}, Type: auditObjectType, Role: auditResourceRole})
		}
	}
	if more > 0 {
		n := strconv.Itoa(more)
		ae.Entity = append(ae.Entity, aeEntity{
			Type:        auditObjectType,
			Description: n + " more resources, not listed",
			Detail:      []aeDetail{{Type: "resources-not-listed", ValueString: n}},
		})
	}
	if q := auditCleanQuery(ev.Query); q != "" {
		ae.Entity = append(ae.Entity, aeEntity{
			Type:  auditObjectType,
			Role:  auditQueryRole,
			Query: base64.StdEncoding.EncodeToString([]byte(q)),
		})
	}
	if rid := auditClip(strings.TrimSpace(ev.RequestID), 128); rid != "" {
		ae.Entity = append(ae.Entity, aeEntity{
			What: &aeReference{Identifier: &aeIdentifier{Value: rid}},
			Type: auditRequestType,
		})
	}
	return &ae, nil
}

// index is what fhir.ExtractIndex finds in the AuditEvent's JSON for the
// parameters AuditEvent serves (fhir's servedOnly: patient, date, agent,
// altid, entity, action, outcome, type, subtype), read from the struct
// instead: the copy into the store no longer parses every event to find
// them, about 7% of the server's CPU under reads. A test holds the two
// equal on events of every shape; the copy of an event written by an
// earlier run, whose struct is gone, extracts its own.
func (ae *aeAuditEvent) index() fhir.Index {
	var ix fhir.Index
	ix.Tokens = append(ix.Tokens, fhir.Token{Param: "action", Code: ae.Action})
	for _, ag := range ae.Agent {
		if ag.AltID != "" {
			ix.Tokens = appendUnique(ix.Tokens, fhir.Token{Param: "altid", Code: ag.AltID})
		}
	}
	ix.Tokens = append(ix.Tokens, fhir.Token{Param: "outcome", Code: ae.Outcome})
	for _, c := range ae.Subtype {
		if c.Code != "" {
			ix.Tokens = appendUnique(ix.Tokens, fhir.Token{Param: "subtype", System: c.System, Code: c.Code})
		}
	}
	if ae.Type.Code != "" {
		ix.Tokens = append(ix.Tokens, fhir.Token{Param: "type", System: ae.Type.System, Code: ae.Type.Code})
	}
	if lo, hi, ok := fhir.DateRange(ae.Recorded); ok {
		ix.Dates = append(ix.Dates, fhir.Date{Param: "date", Low: lo, High: hi})
	}
	// Every reference here is "Type/id", built from checked ids.
	var patients []fhir.Reference
	for _, ag := range ae.Agent {
		if typ, id, ok := strings.Cut(ag.Who.Reference, "/"); ok {
			ix.References = appendUnique(ix.References, fhir.Reference{Param: "agent", Type: typ, ID: id})
			if typ == "Patient" {
				patients = appendUnique(patients, fhir.Reference{Param: "patient", Type: typ, ID: id})
			}
		}
	}
	seen := make(map[string]bool, len(ae.Entity))
	for _, e := range ae.Entity {
		if e.What == nil || seen[e.What.Reference] {
			continue
		}
		if typ, id, ok := strings.Cut(e.What.Reference, "/"); ok {
			seen[e.What.Reference] = true
			ix.References = append(ix.References, fhir.Reference{Param: "entity", Type: typ, ID: id})
			if typ == "Patient" {
				patients = appendUnique(patients, fhir.Reference{Param: "patient", Type: typ, ID: id})
			}
		}
	}
	ix.References = append(ix.References, patients...)
	return ix
}

// appendUnique appends v to s unless s holds it already.
func appendUnique[T comparable](s []T, v T) []T {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// auditRequestor is the agent who asked.
func auditRequestor(ev Access) (aeAgent, error) {
	ag := aeAgent{Requestor: true}
	id := auditClip(strings.TrimSpace(ev.CallerID), 128)
	switch ev.CallerKind {
	case AuditCallerPractitioner:
		ag.Who = aeReference{Type: "Practitioner", Display: auditClip(strings.TrimSpace(ev.CallerName), 200)}
		if id != "" {
			ag.Who.Identifier = &aeIdentifier{System: auditIDNatPsSystem, Value: id}
			ag.AltID = id
		}
	case AuditCallerPatient:
		// A patient's name is never recorded: the reference says who.
		pid := strings.TrimPrefix(ev.CallerID, "Patient/")
		if !auditIsID(pid) {
			return ag, fmt.Errorf("audit: patient caller id %q is not a FHIR id", ev.CallerID)
		}
		ag.Who = aeReference{Reference: "Patient/" + pid}
	case AuditCallerSystem:
		ag.Who = aeReference{Type: "Device", Display: auditClip(strings.TrimSpace(ev.CallerName), 200)}
		if id != "" {
			ag.Who.Identifier = &aeIdentifier{System: AuditClientIDSystem, Value: id}
			ag.AltID = id
		}
	case AuditCallerAnonymous, "":
	default:
		return ag, fmt.Errorf("audit: caller kind %q is not practitioner, patient, system or anonymous", ev.CallerKind)
	}
	if ag.Who.Reference == "" && ag.Who.Identifier == nil && ag.Who.Display == "" {
		// TDE requires agent.who: say at least what kind of caller it was.
		kind := ev.CallerKind
		if kind == "" {
			kind = AuditCallerAnonymous
		}
		ag.Who.Display = kind
	}
	if addr := auditAddress(ev.SourceAddr); addr != "" {
		typ := "1" // machine name
		if net.ParseIP(addr) != nil {
			typ = "2" // IP address
		}
		ag.Network = &aeNetwork{Address: addr, Type: typ}
	}
	return ag, nil
}

// auditPurpose is purposeOfEvent: the access mode (TRE_R248 and
// v3-ActReason) and the justification.
func auditPurpose(ev Access) (aeCodeable, bool) {
	mode := ev.AccessMode
	if mode == "" && ev.CallerKind == AuditCallerPractitioner {
		mode = "normal"
	}
	var p aeCodeable
	if mode != "" {
		if m, ok := auditModes[mode]; ok {
			p.Coding = []aeCoding{
				{System: auditModeSystem, Code: mode, Display: m.display},
				{System: auditActReasonSystem, Code: m.reason, Display: m.reasonDisplay},
			}
		} else {
			// The attempt is traced (and refused by the consent rules):
			// keep what was asked, without inventing a code for it.
			p.Text = "unknown access mode: " + auditClip(mode, 40)
		}
	}
	if r := strings.TrimSpace(ev.Reason); r != "" {
		if p.Text != "" {
			p.Text += "; "
		}
		p.Text += auditClip(r, 500)
	}
	return p, len(p.Coding) > 0 || p.Text != ""
}

// auditCleanQuery drops the leading '?' and the parameters that carry
// secrets.
func auditCleanQuery(q string) string {
	q = strings.TrimPrefix(q, "?")
	if q == "" {
		return ""
	}
	parts := strings.Split(q, "&")
	kept := parts[:0]
	for _, p := range parts {
		if p == "" {
			continue
		}
		k, _, _ := strings.Cut(p, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		if auditSecretParams[strings.ToLower(k)] {
			continue
		}
		kept = append(kept, p)
	}
	return strings.Join(kept, "&")
}

// auditAddress strips a port from host:port.
func auditAddress(s string) string {
	s = strings.TrimSpace(s)
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	return auditClip(s, 255)
}

// auditClip cuts s to at most n bytes, on a rune boundary, and drops
// control characters.
func auditClip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return -1
		}
		return r
	}, s)
	s = strings.ToValidUTF8(s, "")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// auditIsID reports whether s is a FHIR id: [A-Za-z0-9\-\.]{1,64}.
func auditIsID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// auditIsType reports whether s looks like a resource type name.
func auditIsType(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// auditIsCode reports whether s is a FHIR code without white space.
func auditIsCode(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}
