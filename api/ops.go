package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmp-fhir/dmp-fhir/auth"
)

// requestIDPattern is what a client's X-Request-Id must look like to be
// kept: short, and of characters that cannot forge a log line.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// requestKey carries the request id in the request's context; an internal
// request (a Bundle entry) finds its Bundle's there.
type requestKey struct{}

// requestLog gives every request an id (X-Request-Id, taken from the client
// when well formed, else generated; echoed in the answer), writes one log
// line when it is answered (route template, status, duration, caller kind
// and id) and counts it in the metrics. Never the URL's path or query, a
// body, a name, a NIR or a token. A Bundle entry keeps its Bundle's id and
// is logged at debug level only, and not counted as an HTTP request.
func (s *Server) requestLog(c *gin.Context) {
	start := time.Now()
	parent, nested := c.Request.Context().Value(requestKey{}).(string)
	id := parent
	if !nested {
		id = c.GetHeader("X-Request-Id")
		if !requestIDPattern.MatchString(id) {
			var b [12]byte
			rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Header("X-Request-Id", id)
	}
	c.Request.Header.Set("X-Request-Id", id) // the AuditEvent carries it
	c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), requestKey{}, id))
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status, elapsed := c.Writer.Status(), time.Since(start)
	attrs := []slog.Attr{
		slog.String("request_id", id), slog.String("method", methodLabel(c.Request.Method)), slog.String("route", route),
		slog.Int("status", status), slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
	}
	if a := accessOf(c); a != nil && a.caller != nil {
		attrs = append(attrs, slog.String("caller_kind", string(a.caller.Kind)), slog.String("caller_id", callerID(a.caller)))
		if a.mode != "" && a.mode != "normal" {
			attrs = append(attrs, slog.String("access_mode", a.mode))
		}
		if a.refused != "" {
			attrs = append(attrs, slog.String("refused", a.refused))
		}
	} else if a != nil {
		attrs = append(attrs, slog.String("caller_kind", "anonymous"))
		if a.refused != "" {
			attrs = append(attrs, slog.String("refused", a.refused))
		}
	}
	if nested {
		s.log.LogAttrs(c, slog.LevelDebug, "bundle entry", attrs...)
		return
	}
	s.metrics.Request(methodLabel(c.Request.Method), route, status, elapsed)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelWarn
	}
	s.log.LogAttrs(c, level, "request", attrs...)
}

// limit admits a FHIR request: a slot among MaxInFlight (503 and
// Retry-After at once when none is free) and a deadline of RequestTimeout
// in the request's context, which the handlers pass to the store. A Bundle
// entry runs within its Bundle's slot and deadline.
func (s *Server) limit(c *gin.Context) {
	if _, nested := c.Request.Context().Value(accessKey{}).(*access); nested {
		c.Next()
		return
	}
	if s.slots != nil {
		select {
		case s.slots <- struct{}{}:
			defer func() { <-s.slots }()
		default:
			s.metrics.Rejected("overload")
			c.Header("Retry-After", "1")
			s.abortOutcome(c, http.StatusServiceUnavailable, "throttled", "",
				"the server is serving its maximum of "+strconv.Itoa(cap(s.slots))+" concurrent requests; retry after 1 second")
			return
		}
	}
	s.metrics.Admitted(1)
	defer s.metrics.Admitted(-1)
	if s.cfg.RequestTimeout > 0 {
		ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.RequestTimeout)
		defer cancel()
		c.Request = c.Request.WithContext(ctx)
	}
	if s.admitted != nil {
		s.admitted(c.Request.Context())
	}
	c.Next()
	if c.Writer.Status() == http.StatusServiceUnavailable && errors.Is(c.Request.Context().Err(), context.DeadlineExceeded) {
		s.metrics.Rejected("deadline")
	}
}

// auditWait bounds how long recording an access may wait for the audit
// writer once the request is answered.
const auditWait = 30 * time.Second

// auditContext is what an access is recorded under: the request's values,
// without its deadline or cancellation (an access that took place is
// recorded even when the request ran out of time or the client left), for
// at most auditWait.
func auditContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), auditWait)
}

// opsRoutes are the operations endpoints: health, readiness, metrics.
func (s *Server) opsRoutes(e *gin.Engine) {
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", s.serveMetrics)
}

// callerID is what a log line may say of a caller: a professional's
// idNatPs or a client id; a patient only as such (their id leads to their
// record).
func callerID(c *auth.Caller) string {
	if c.Kind == auth.KindPatient {
		return "patient"
	}
	return c.ID
}

// healthz says the process answers.
func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz says whether the server can serve: the store answers and the audit
// writer is not stalled. No token, no patient data.
func (s *Server) readyz(c *gin.Context) {
	checks := gin.H{}
	ready := true
	if err := s.store.Ping(c); err != nil {
		checks["store"], ready = "unreachable", false
	} else {
		checks["store"] = "ok"
	}
	if s.auth.Auditor != nil {
		st := s.auth.Auditor.Stats()
		checks["audit_queue"] = st.QueueDepth
		if st.QueueDepth > 10000 {
			checks["audit"], ready = "stalled", false
		} else {
			checks["audit"] = "ok"
		}
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	checks["ready"] = ready
	c.JSON(status, checks)
}
