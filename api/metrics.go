package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/internal/metrics"
)

// serveMetrics serves GET /metrics in the Prometheus format. With
// Config.MetricsToken set, it needs "Authorization: Bearer <that token>".
// Nothing in it names a patient: labels are route templates, statuses,
// engines, operations, consent rules and resource types.
func (s *Server) serveMetrics(c *gin.Context) {
	if s.cfg.MetricsToken != "" {
		raw, _ := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
		// Hashes of equal length: the comparison takes the same time
		// whatever the token's length or content.
		got, want := sha256.Sum256([]byte(strings.TrimSpace(raw))), sha256.Sum256([]byte(s.cfg.MetricsToken))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			c.Header("WWW-Authenticate", `Bearer realm="dmp-fhir metrics"`)
			c.JSON(http.StatusUnauthorized, gin.H{"error": "/metrics needs Authorization: Bearer <DMP_METRICS_TOKEN>"})
			return
		}
	}
	s.metrics.Handler().ServeHTTP(c.Writer, c.Request)
}

// Metrics is the server's metrics registry (the one of Config.Metrics, or
// its own).
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// countingValidator counts the resources validation refuses, by type.
type countingValidator struct {
	next    Validator
	metrics *metrics.Metrics
}

func (v countingValidator) Validate(body []byte) error {
	err := v.next.Validate(body)
	if err != nil {
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		json.Unmarshal(body, &head)
		if _, ok := fhir.LookupType(head.ResourceType); !ok {
			head.ResourceType = "unknown"
		}
		v.metrics.ValidationFailure(head.ResourceType)
	}
	return err
}

// knownMethods are the method label values; any other method is "other".
var knownMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true}

func methodLabel(m string) string {
	if knownMethods[m] {
		return m
	}
	return "other"
}
