package api

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"regexp"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmp-fhir/dmp-fhir/auth"
)

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// requestLog gives every request an id (X-Request-Id, taken from the client
// when well formed, else generated; echoed in the answer) and writes one log
// line when it is answered: route template, status, duration, caller kind
// and id. Never the URL's query, a body, a name, a NIR or a token.
func (s *Server) requestLog(c *gin.Context) {
	start := time.Now()
	id := c.GetHeader("X-Request-Id")
	if !requestIDPattern.MatchString(id) {
		var b [12]byte
		rand.Read(b[:])
		id = hex.EncodeToString(b[:])
		c.Request.Header.Set("X-Request-Id", id)
	}
	c.Header("X-Request-Id", id)
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	attrs := []any{"request_id", id, "method", c.Request.Method, "route", route, "status", c.Writer.Status(), "duration_ms", float64(time.Since(start).Microseconds()) / 1000}
	if a := accessOf(c); a != nil && a.caller != nil {
		attrs = append(attrs, "caller_kind", string(a.caller.Kind), "caller_id", callerID(a.caller))
		if a.refused != "" {
			attrs = append(attrs, "refused", a.refused)
		}
	}
	s.log.Info("request", attrs...)
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
