// Package metrics holds dmp-fhir's Prometheus metrics: one registry per
// server (never the global one), the collectors, and the store decorator
// that times every storage operation. Labels are bounded sets (route
// templates, statuses, engines, operations, rules, resource types): never a
// patient id, a raw path or anything a client chooses freely.
//
// Every method works on a nil *Metrics and does nothing, so code that
// reports needs no check.
package metrics

import (
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dmp-fhir/dmp-fhir/auth"
)

// Metrics is the registry and the collectors of one server.
type Metrics struct {
	reg *prometheus.Registry

	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	inFlight    prometheus.Gauge
	rejected    *prometheus.CounterVec
	storeOps    *prometheus.HistogramVec
	auditBatch  prometheus.Histogram
	consent     *prometheus.CounterVec
	validations *prometheus.CounterVec

	auditOnce sync.Once
}

// New makes a registry with dmp-fhir's collectors, the Go runtime's and the
// process's.
func New(version string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dmp_http_requests_total",
		Help: "HTTP requests answered, by method, route template and status.",
	}, []string{"method", "route", "status"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "dmp_http_request_duration_seconds",
		Help:    "Time to answer an HTTP request, by method, route template and status.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"method", "route", "status"})
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "dmp_http_fhir_requests_in_flight",
		Help: "FHIR requests being served now (bounded by DMP_MAX_IN_FLIGHT).",
	})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dmp_http_requests_rejected_total",
		Help: "FHIR requests answered 503: reason overload (DMP_MAX_IN_FLIGHT reached) or deadline (DMP_REQUEST_TIMEOUT passed).",
	}, []string{"reason"})
	m.storeOps = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "dmp_store_operation_duration_seconds",
		Help:    "Latency of storage operations, by engine, operation and outcome (ok, not_found, conflict, timeout, unsupported, error).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
	}, []string{"engine", "operation", "outcome"})
	m.auditBatch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "dmp_audit_batch_size",
		Help:    "AuditEvents made durable by one group commit (one journal write and fsync, or one store transaction).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 12),
	})
	m.consent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dmp_consent_decisions_total",
		Help: "Consent decisions on a patient's record, by outcome (permit, deny) and rule.",
	}, []string{"outcome", "rule"})
	m.validations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dmp_validation_failures_total",
		Help: "Resources refused by validation, by resource type.",
	}, []string{"resource_type"})
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "dmp_build_info",
		Help:        "Always 1; the version of the running dmp-fhir.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	build.Set(1)
	m.reg.MustRegister(m.requests, m.duration, m.inFlight, m.rejected, m.storeOps, m.auditBatch, m.consent, m.validations, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format (or
// OpenMetrics when asked).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the server's registry, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Request counts one answered HTTP request. route is the route template
// ("unmatched" for none), never a raw path.
func (m *Metrics) Request(method, route string, status int, d time.Duration) {
	if m == nil {
		return
	}
	code := strconv.Itoa(status)
	m.requests.WithLabelValues(method, route, code).Inc()
	m.duration.WithLabelValues(method, route, code).Observe(d.Seconds())
}

// Admitted counts a FHIR request entering (+1) or leaving (-1) service.
func (m *Metrics) Admitted(delta int) {
	if m != nil {
		m.inFlight.Add(float64(delta))
	}
}

// Rejected counts a request refused with 503: "overload" or "deadline".
func (m *Metrics) Rejected(reason string) {
	if m != nil {
		m.rejected.WithLabelValues(reason).Inc()
	}
}

// AuditBatch records the size of one audit group commit; it is meant for
// auth.AuditorOptions.OnBatch.
func (m *Metrics) AuditBatch(n int) {
	if m != nil {
		m.auditBatch.Observe(float64(n))
	}
}

// WatchAudit exports the audit writer's state, read at each scrape: queue
// depth, journal backlog, events stored and failed. Only the first call
// registers.
func (m *Metrics) WatchAudit(stats func() auth.AuditStats) {
	if m == nil || stats == nil {
		return
	}
	m.auditOnce.Do(func() {
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "dmp_audit_queue_depth",
				Help: "AuditEvents waiting for the next group commit.",
			}, func() float64 { return float64(stats().QueueDepth) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "dmp_audit_journal_backlog",
				Help: "AuditEvents journaled and not yet copied into the store.",
			}, func() float64 { return float64(stats().JournalBacklog) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "dmp_audit_events_total",
				Help: "AuditEvents made durable.",
			}, func() float64 { return float64(stats().Events) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "dmp_audit_events_failed_total",
				Help: "AuditEvents that could not be made durable (their request was answered 503).",
			}, func() float64 { return float64(stats().Failed) }),
		)
	})
}

// Consent counts one consent decision.
func (m *Metrics) Consent(allow bool, rule string) {
	if m == nil {
		return
	}
	outcome := "deny"
	if allow {
		outcome = "permit"
	}
	m.consent.WithLabelValues(outcome, bounded(rule)).Inc()
}

// ValidationFailure counts a resource refused by validation. typ must be a
// type the server knows (the caller checks), else "unknown" is counted.
func (m *Metrics) ValidationFailure(typ string) {
	if m != nil {
		m.validations.WithLabelValues(bounded(typ)).Inc()
	}
}

var labelValue = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// bounded keeps label values to the shapes of rules and type names.
func bounded(s string) string {
	if !labelValue.MatchString(s) {
		return "unknown"
	}
	return s
}
