// Package api is the HTTP layer of dmp-fhir: routes, content negotiation,
// status codes and headers, and the mapping of errors to OperationOutcome.
// It holds no storage or format logic of its own.
package api

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/internal/metrics"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// Validator checks a resource body before it is stored.
type Validator interface {
	Validate(body []byte) error
}

// Config is what the HTTP layer needs to know.
type Config struct {
	// BaseURL is the absolute base of the FHIR endpoint used in links and
	// Location headers (e.g. https://dmp.example.org/fhir). Empty: derived
	// from each request.
	BaseURL string
	// MaxBodyBytes caps request bodies (413 beyond).
	MaxBodyBytes int64
	// MaxBundleEntries caps the entries of a batch or transaction.
	MaxBundleEntries int
	// InlineMaxBytes is the largest content kept inside a resource row (a
	// DocumentReference's attachment.data, a Binary's data); larger content
	// goes to blob storage. 0: DefaultInlineMaxBytes; negative: none inline.
	InlineMaxBytes int64
	// CursorKey signs paging cursors. Empty: a random key per process, so
	// links die with a restart; set it (the same on every instance) to keep
	// them valid across restarts and behind a load balancer.
	CursorKey []byte
	Version   string
	Logger    *slog.Logger
	// Auth identifies callers and decides what they see; nil refuses every
	// request that needs a caller (fail closed).
	Auth *Auth

	// Metrics receives the server's measures (GET /metrics serves it);
	// nil: a registry of the server's own.
	Metrics *metrics.Metrics
	// MetricsToken, when set, is the bearer token GET /metrics needs.
	MetricsToken string
	// RequestTimeout is the deadline of each FHIR request, passed down to
	// the store in the request's context: 503 once it has passed. 0: none.
	RequestTimeout time.Duration
	// MaxInFlight caps the FHIR requests served at once: beyond it, 503 and
	// Retry-After at once. 0: no cap.
	MaxInFlight int

	// ExportTTL is how long a bulk export job and its files are kept once
	// it ended (0: DefaultExportTTL). ExportWorkers is how many jobs run at
	// once (0: 1). ExportFileMax is the most resources in one output file
	// (0: DefaultExportFileMax).
	ExportTTL     time.Duration
	ExportWorkers int
	ExportFileMax int
}

// Server serves the FHIR REST API.
type Server struct {
	cfg       Config
	store     store.Store
	validator Validator
	log       *slog.Logger
	engine    *gin.Engine
	cursorKey []byte
	auth      *Auth
	// policies keeps parsed consent policies by Patient and Consent version.
	policies policyCache
	// seenAccess remembers patient|idNatPs pairs already notified of.
	seenAccess sync.Map

	metrics *metrics.Metrics
	// slots holds a token per FHIR request in service (MaxInFlight).
	slots chan struct{}
	// admitted, set by tests only, runs when a FHIR request has its slot
	// and deadline, before anything else is done for it.
	admitted func(context.Context)
	// exports runs the bulk export jobs (nil without a store).
	exports *exporter
}

// DefaultMaxBodyBytes is the default request body limit: 10 MiB.
const DefaultMaxBodyBytes = 10 << 20

func init() { gin.SetMode(gin.ReleaseMode) }

// New builds the HTTP handler over a store and a validator.
func New(cfg Config, st store.Store, v Validator) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New(cfg.Version)
	}
	s := &Server{cfg: cfg, store: requestStore{st}, validator: v, log: cfg.Logger, cursorKey: cfg.CursorKey, auth: cfg.Auth, metrics: cfg.Metrics}
	if v != nil {
		s.validator = countingValidator{next: v, metrics: s.metrics}
	}
	if cfg.MaxInFlight > 0 {
		s.slots = make(chan struct{}, cfg.MaxInFlight)
	}
	if s.auth == nil {
		s.auth = &Auth{}
	}
	if s.auth.Auditor != nil {
		s.metrics.WatchAudit(s.auth.Auditor.Stats)
	}
	if s.auth.Habilitations == nil {
		s.auth.Habilitations = auth.DefaultHabilitations()
	}
	if len(s.cursorKey) == 0 {
		s.cursorKey = make([]byte, 32)
		if _, err := rand.Read(s.cursorKey); err != nil {
			panic(err)
		}
	}
	s.engine = s.routes()
	if st != nil {
		s.exports = newExporter(s, cfg)
	}
	return s
}

// Close stops the background work of the server (the bulk export jobs:
// those running are marked failed). The store stays open.
func (s *Server) Close() {
	if s.exports != nil {
		s.exports.close()
	}
}

// ServeHTTP makes Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.engine.ServeHTTP(w, r) }

// Routes lists the registered routes as "METHOD path", for the OpenAPI check.
func (s *Server) Routes() []string {
	var out []string
	for _, r := range s.engine.Routes() {
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}

// fail answers err as an OperationOutcome with the status it maps to. This is
// the one place where errors become statuses.
func (s *Server) fail(c *gin.Context, err error) {
	status, issue := s.classify(c, err)
	s.writeOutcome(c, status, issue...)
}

func (s *Server) classify(c *gin.Context, err error) (int, []fhir.Issue) {
	if fe, ok := fhir.AsError(err); ok {
		return fe.Status, fe.Issues
	}
	one := func(status int, code, msg string) (int, []fhir.Issue) {
		return status, []fhir.Issue{{Severity: "error", Code: code, Diagnostics: msg}}
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return one(http.StatusRequestEntityTooLarge, "too-costly", "the request body is larger than the limit of "+formatBytes(mbe.Limit))
	case errors.Is(err, store.ErrNotFound):
		return one(http.StatusNotFound, "not-found", "resource "+resourcePath(c)+" is not known")
	case errors.Is(err, store.ErrDeleted):
		return one(http.StatusGone, "deleted", "resource "+resourcePath(c)+" has been deleted")
	case errors.Is(err, store.ErrVersionMismatch):
		return one(http.StatusPreconditionFailed, "conflict", "the resource is not at the version given in If-Match")
	case errors.Is(err, store.ErrExists):
		return one(http.StatusConflict, "duplicate", "a resource with this id already exists")
	case errors.Is(err, store.ErrConflict):
		return one(http.StatusConflict, "conflict", "another request changed this resource at the same time; retry")
	case errors.Is(err, store.ErrBadCursor):
		return one(http.StatusBadRequest, "invalid", "the paging cursor is not valid; start the search again")
	case errors.Is(err, store.ErrNoTransactions):
		return one(http.StatusUnprocessableEntity, "not-supported", "this server's database cannot run atomic transactions")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(c.Request.Context().Err(), context.DeadlineExceeded):
		return one(http.StatusServiceUnavailable, "timeout", "the request took too long")
	case errors.Is(err, context.Canceled):
		return one(499, "timeout", "the request was cancelled")
	}
	s.log.Error("internal error", "method", c.Request.Method, "route", c.FullPath(), "err", err)
	return one(http.StatusInternalServerError, "exception", "internal error")
}

func resourcePath(c *gin.Context) string {
	if id := c.Param("id"); id != "" {
		return c.Param("type") + "/" + id
	}
	return c.Param("type")
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return itoa(n>>20) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return itoa(n>>10) + " KiB"
	}
	return itoa(n) + " bytes"
}
