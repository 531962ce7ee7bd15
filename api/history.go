package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/store"
)

const (
	defaultPageSize = 20
	maxPageSize     = 1000
)

// history serves instance, type and system history as a paged Bundle,
// newest first. Pages continue from a cursor (the last version shown), so a
// page never repeats or skips versions when new ones are written meanwhile.
func (s *Server) history(c *gin.Context) {
	hq := store.HistoryQuery{Type: c.Param("type"), ID: c.Param("id"), Count: defaultPageSize}
	if v := c.Query("_count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.fail(c, fhir.Invalid("", "_count must be a non-negative integer"))
			return
		}
		hq.Count = min(n, maxPageSize)
	}
	if v := c.Query("_since"); v != "" {
		t, err := parseInstant(v)
		if err != nil {
			s.fail(c, fhir.Invalid("", "_since must be an instant such as 2024-01-31T10:00:00Z"))
			return
		}
		hq.Since = t
	}
	if v := c.Query("_cursor"); v != "" {
		k, err := decodeCursor(v)
		if err != nil {
			s.fail(c, fhir.Invalid("", "malformed _cursor"))
			return
		}
		hq.After = k
	}
	if !s.allowHistory(c, hq) {
		return
	}
	var versions []*store.Resource
	if hq.Count > 0 {
		// One more than the page tells whether there is a next page.
		page := hq
		page.Count++
		var err error
		if versions, err = s.store.History(c, page); err != nil {
			s.fail(c, err)
			return
		}
	}
	more := len(versions) > hq.Count
	if more {
		versions = versions[:hq.Count]
	}

	base := s.base(c)
	self := base + c.Request.URL.Path[len("/fhir"):]
	bundle := models.Bundle{Type: models.BundleTypeHistory}
	id := newID()
	bundle.Id = &id
	ts := time.Now().UTC().Format(time.RFC3339)
	bundle.Timestamp = &ts
	bundle.Link = []models.BundleLink{{Relation: "self", Url: self + queryString(c.Request.URL.Query())}}
	if more {
		q := c.Request.URL.Query()
		q.Set("_cursor", encodeCursor(versions[len(versions)-1].Key()))
		bundle.Link = append(bundle.Link, models.BundleLink{Relation: "next", Url: self + queryString(q)})
	}
	for _, r := range versions {
		if _, ok := fhir.LookupType(r.Type); !ok {
			continue // the DMP's own records (accounts, codes) are no FHIR resources
		}
		bundle.Entry = append(bundle.Entry, historyEntry(base, r))
	}
	body, err := fhir.Marshal(bundle)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.writeJSON(c, http.StatusOK, body)
}

func historyEntry(base string, r *store.Resource) models.BundleEntry {
	full := base + "/" + r.Type + "/" + r.ID
	etag, lm := r.ETag(), r.LastUpdated.UTC().Format(fhir.InstantFormat)
	e := models.BundleEntry{FullUrl: &full}
	req := &models.BundleEntryRequest{Method: models.HTTPVerbPUT, Url: r.Type + "/" + r.ID}
	status := "200 OK"
	switch {
	case r.Deleted:
		req.Method, status = models.HTTPVerbDELETE, "204 No Content"
	case r.Version == 1:
		req.Method, req.Url, status = models.HTTPVerbPOST, r.Type, "201 Created"
	}
	if !r.Deleted {
		e.Resource = clientView(r).Body // a Binary without its blob pointer (its bytes: GET Binary/{id})
	}
	e.Request = req
	e.Response = &models.BundleEntryResponse{Status: status, Etag: &etag, LastModified: &lm}
	return e
}

func queryString(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

func isDeleted(err error) bool { return errors.Is(err, store.ErrDeleted) }

// parseInstant reads a FHIR instant or dateTime with a time zone.
func parseInstant(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04Z07:00", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, strconv.ErrSyntax
}

type cursor struct {
	T int64  `json:"t"`
	R string `json:"r"`
	I string `json:"i"`
	V int64  `json:"v"`
}

func encodeCursor(k store.HistoryKey) string {
	b, _ := json.Marshal(cursor{T: k.LastUpdated.UnixMilli(), R: k.Type, I: k.ID, V: k.Version})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(v string) (*store.HistoryKey, error) {
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil, err
	}
	var cur cursor
	if err := json.Unmarshal(b, &cur); err != nil {
		return nil, err
	}
	return &store.HistoryKey{LastUpdated: time.UnixMilli(cur.T).UTC(), Type: cur.R, ID: cur.I, Version: cur.V}, nil
}

// allowHistory applies scopes and consent to a history request: instance
// history as a read of the resource (decided on its newest readable
// version); type and system history only for types outside patients'
// records, as they would cross every record at once.
func (s *Server) allowHistory(c *gin.Context, hq store.HistoryQuery) bool {
	switch {
	case hq.ID != "":
		if !s.allow(c, hq.Type, auth.OpRead, "history-instance") {
			return false
		}
		r, err := s.store.Read(c, hq.Type, hq.ID)
		if isDeleted(err) && r != nil && r.Version > 1 {
			r, err = s.store.VRead(c, hq.Type, hq.ID, r.Version-1)
		}
		if err != nil && !isDeleted(err) {
			s.fail(c, err)
			return false
		}
		if err == nil {
			if ok, rule, err := s.mayRead(c, r); err != nil || !ok {
				s.refuseOrFail(c, rule, err)
				return false
			}
		}
		return true
	case hq.Type != "":
		if !s.allow(c, hq.Type, auth.OpSearch, "history-type") {
			return false
		}
	default:
		if a := accessOf(c); a != nil {
			a.interaction = "history-system"
		}
	}
	if s.auth.Unrestricted || accessOf(c) == nil {
		return true
	}
	if rt, ok := fhir.LookupType(hq.Type); ok && len(rt.PatientCompartment) == 0 && hq.Type != "Patient" && hq.Type != "Binary" {
		return true
	}
	s.refuseRead(c, "history-crosses-records")
	return false
}
