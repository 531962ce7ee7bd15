package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/internal/ins"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// dmpLookup answers "does this patient have a DMP" (DMP transaction TD0.2,
// PDSm4DMP: GET Patient?identifier=<INS system>|<INS>) for a professional:
// the DMP's Patient with its identity traits only, and two extensions, the
// caller's authorization status (VALIDE, EXPIRE, INTERDIT, NON_EXISTE) and
// whether the caller is a médecin traitant. No clinical data; no entry when
// there is no DMP. It reports false when the request is not such a lookup.
func (s *Server) dmpLookup(c *gin.Context, params url.Values) bool {
	a := accessOf(c)
	if a == nil || a.caller == nil || a.caller.Kind != auth.KindPractitioner || s.auth.Unrestricted {
		return false
	}
	var system, value string
	for k, vs := range params {
		switch {
		case k == "identifier" && len(vs) == 1:
			system, value, _ = strings.Cut(vs[0], "|")
		case k == "_format" || k == "_pretty":
		default:
			return false
		}
	}
	if !ins.IsSystem(system) || value == "" {
		return false
	}
	if !s.allow(c, "Patient", auth.OpSearch, "search-type") {
		return true
	}
	ids, err := s.store.FindByToken(c, "Patient", store.TokenQuery{Param: "identifier", System: system, Code: value}, 10)
	if err != nil {
		s.fail(c, err)
		return true
	}
	now := time.Now()
	base := s.base(c)
	var entries []any
	for _, id := range ids {
		policy, _, err := s.policy(c, id)
		if err != nil {
			s.fail(c, err)
			return true
		}
		if policy == nil {
			continue // a Patient without a DMP
		}
		r, err := s.store.Read(c, "Patient", id)
		if err != nil {
			s.fail(c, err)
			return true
		}
		traits, err := identityTraits(r, auth.AuthorizationStatus(policy, a.caller.ID, now), policy.IsTreatingDoctor(a.caller.ID))
		if err != nil {
			s.fail(c, err)
			return true
		}
		a.touch([]string{id}, "Patient/"+id)
		entries = append(entries, map[string]any{
			"fullUrl": base + "/Patient/" + id, "resource": traits, "search": map[string]string{"mode": "match"},
		})
	}
	bundle := map[string]any{
		"resourceType": "Bundle", "type": "searchset", "total": len(entries),
		"link": []any{map[string]string{"relation": "self", "url": base + "/Patient?" + params.Encode()}},
	}
	if len(entries) > 0 {
		bundle["entry"] = entries
	}
	body, err := json.Marshal(bundle)
	if err != nil {
		s.fail(c, err)
		return true
	}
	s.writeJSON(c, http.StatusOK, body)
	return true
}

// identityTraits keeps of a DMP's Patient what TD0.2 returns: identifiers,
// names, sex, birth date, status and closure, and adds the caller's status.
func identityTraits(r *store.Resource, status string, treating bool) (json.RawMessage, error) {
	var full map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &full); err != nil {
		return nil, err
	}
	exts := []any{
		map[string]any{"url": AuthorizationStatusExtension, "valueCode": status},
		map[string]any{"url": TreatingDoctorExtension, "valueBoolean": treating},
	}
	var own []json.RawMessage
	json.Unmarshal(full["extension"], &own)
	for _, e := range own {
		var x struct{ URL string }
		if json.Unmarshal(e, &x) == nil && x.URL == ClosureExtension {
			exts = append(exts, e)
		}
	}
	out := map[string]any{
		"resourceType": "Patient", "id": r.ID,
		"meta":      map[string]string{"versionId": strconv.FormatInt(r.Version, 10), "lastUpdated": r.LastUpdated.UTC().Format("2006-01-02T15:04:05.000Z")},
		"extension": exts,
	}
	for _, k := range []string{"identifier", "active", "name", "gender", "birthDate"} {
		if v, ok := full[k]; ok {
			out[k] = v
		}
	}
	return json.Marshal(out)
}
