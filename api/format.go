package api

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/dmp-fhir/dmp-fhir/fhir"
)

const fhirJSON = "application/fhir+json"

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// negotiate checks _format and Accept: JSON is served, XML is answered 415
// (the server speaks JSON only), anything else falls back to FHIR JSON.
func (s *Server) negotiate(c *gin.Context) {
	if f := c.Query("_format"); f != "" {
		// An unencoded "+" in the query arrives as a space.
		switch strings.ToLower(strings.ReplaceAll(f, " ", "+")) {
		case "json", fhirJSON, "application/json", "application/json+fhir":
		case "xml", "application/fhir+xml", "application/xml", "text/xml", "application/xml+fhir":
			s.abortOutcome(c, http.StatusUnsupportedMediaType, "not-supported", "_format", "XML is not supported; use _format=json")
			return
		default:
			s.abortOutcome(c, http.StatusUnsupportedMediaType, "not-supported", "_format", "unknown _format "+strconv.Quote(f)+"; use json")
			return
		}
	} else if accept := c.GetHeader("Accept"); accept != "" && acceptsOnlyXML(accept) && !binaryRead(c) {
		s.abortOutcome(c, http.StatusUnsupportedMediaType, "not-supported", "", "XML is not supported; accept application/fhir+json")
		return
	}
	c.Next()
}

func acceptsOnlyXML(accept string) bool {
	sawXML := false
	for _, part := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch {
		case strings.Contains(mt, "xml"):
			sawXML = true
		default:
			return false
		}
	}
	return sawXML
}

// readBody reads a JSON request body within the size limit. XML and other
// media types are refused with 415.
func (s *Server) readBody(c *gin.Context) ([]byte, error) {
	if ct := c.GetHeader("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil {
			return nil, fhir.NewError(http.StatusUnsupportedMediaType, "not-supported", "", "unreadable Content-Type "+strconv.Quote(ct))
		}
		switch mt {
		case fhirJSON, "application/json", "application/json+fhir":
		case "application/fhir+xml", "application/xml", "text/xml", "application/xml+fhir":
			return nil, fhir.NewError(http.StatusUnsupportedMediaType, "not-supported", "", "XML is not supported; send application/fhir+json")
		default:
			return nil, fhir.NewError(http.StatusUnsupportedMediaType, "not-supported", "", "Content-Type "+mt+" is not supported; send application/fhir+json")
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, fhir.Invalid("", "the request has no body; send a FHIR resource in JSON")
	}
	return body, nil
}

// writeJSON writes a FHIR JSON body, indented when _pretty=true. Indenting
// works on the text, so decimals keep their exact form.
func (s *Server) writeJSON(c *gin.Context, status int, body []byte) {
	if c.Query("_pretty") == "true" {
		var buf bytes.Buffer
		if json.Indent(&buf, body, "", "  ") == nil {
			body = buf.Bytes()
		}
	}
	ct := fhirJSON + "; charset=utf-8"
	if accept := c.GetHeader("Accept"); strings.HasPrefix(accept, "application/json") && !strings.Contains(accept, "fhir") {
		ct = "application/json; charset=utf-8"
	}
	c.Data(status, ct, body)
}

func (s *Server) writeOutcome(c *gin.Context, status int, issues ...fhir.Issue) {
	s.writeJSON(c, status, fhir.OperationOutcome(issues...))
}

func (s *Server) abortOutcome(c *gin.Context, status int, code, expression, msg string) {
	s.writeOutcome(c, status, fhir.Issue{Severity: "error", Code: code, Expression: expression, Diagnostics: msg})
	c.Abort()
}

// base is the absolute base URL of the FHIR endpoint for this request.
func (s *Server) base(c *gin.Context) string {
	if s.cfg.BaseURL != "" {
		return s.cfg.BaseURL
	}
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host + "/fhir"
}

// preference is one of a Prefer header's preferences: its key lowercased,
// its value unquoted, and as it was written.
type preference struct{ key, value, raw string }

// preferences lists the preferences of every Prefer line of h.
func preferences(h http.Header) []preference {
	var out []preference
	for _, line := range h.Values("Prefer") {
		for _, p := range strings.Split(line, ",") {
			p = strings.TrimSpace(p)
			k, v, _ := strings.Cut(p, "=")
			out = append(out, preference{key: strings.ToLower(strings.TrimSpace(k)), value: strings.Trim(strings.TrimSpace(v), `"`), raw: p})
		}
	}
	return out
}

// preferReturn reads Prefer: return=minimal|representation|OperationOutcome.
func preferReturn(c *gin.Context) string {
	for _, p := range preferences(c.Request.Header) {
		if p.key == "return" {
			return p.value
		}
	}
	return "representation"
}
