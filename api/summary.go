package api

import (
	"bytes"
	"encoding/json"
	"html"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// GET /fhir/Patient/{id}/$summary: the record as the DMP's categories, a
// FHIR document in the spirit of the International Patient Summary: a
// Composition with one section per category of fhir/categories.go (entries
// newest first on their care date), the Patient, then every entry. What it
// holds is what the caller may see, read with the scope of a search; of the
// documents, those in force that a default search shows (not archived, not
// superseded).

// summaryDocumentType is LOINC 60591-5 Patient summary Document.
var summaryDocumentType = fhir.Coding{System: fhir.SystemLOINC, Code: "60591-5", Display: "Patient summary Document"}

type summaryItem struct {
	r       *store.Resource
	ix      fhir.Index
	date    int64
	hasDate bool
}

// The JSON of the document, in FHIR's element order.
type (
	summaryReference struct {
		Reference string `json:"reference,omitempty"`
		Display   string `json:"display,omitempty"`
	}
	summaryConcept struct {
		Coding []fhir.Coding `json:"coding"`
		Text   string        `json:"text,omitempty"`
	}
	summaryNarrative struct {
		Status string `json:"status"`
		Div    string `json:"div"`
	}
	summarySection struct {
		Title       string             `json:"title"`
		Code        summaryConcept     `json:"code"`
		Text        summaryNarrative   `json:"text"`
		OrderedBy   *summaryConcept    `json:"orderedBy,omitempty"`
		Entry       []summaryReference `json:"entry,omitempty"`
		EmptyReason *summaryConcept    `json:"emptyReason,omitempty"`
	}
	summaryComposition struct {
		ResourceType string             `json:"resourceType"`
		ID           string             `json:"id"`
		Text         summaryNarrative   `json:"text"`
		Status       string             `json:"status"`
		Type         summaryConcept     `json:"type"`
		Subject      summaryReference   `json:"subject"`
		Date         string             `json:"date"`
		Author       []summaryReference `json:"author"`
		Title        string             `json:"title"`
		Section      []summarySection   `json:"section"`
	}
	summaryEntry struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
	}
	summaryIdent struct {
		System string `json:"system"`
		Value  string `json:"value"`
	}
	summaryBundle struct {
		ResourceType string         `json:"resourceType"`
		ID           string         `json:"id"`
		Identifier   summaryIdent   `json:"identifier"`
		Type         string         `json:"type"`
		Timestamp    string         `json:"timestamp"`
		Entry        []summaryEntry `json:"entry"`
	}
)

func xhtml(inner string) summaryNarrative {
	return summaryNarrative{Status: "generated", Div: `<div xmlns="http://www.w3.org/1999/xhtml">` + inner + `</div>`}
}

func (s *Server) summary(c *gin.Context) {
	a := accessOf(c)
	if a != nil {
		a.action = "R"
	}
	if !s.allow(c, "Patient", auth.OpRead, "operation") {
		return
	}
	patient := c.Param("id")
	a.touch([]string{patient}) // the record asked for, allowed or not, in the audit
	if a != nil && a.caller != nil && a.caller.Kind == auth.KindPatient && a.caller.ID != patient && !s.auth.Unrestricted {
		s.refuseRead(c, auth.RuleOtherPatient)
		return
	}
	named := []string{patient}
	page, rule, err := s.scopedSearch(c, store.Query{Type: "Patient", Count: 1, Where: []store.Clause{{Any: []store.Condition{{Param: "_id", Kind: store.KindID, Value: patient}}}}}, named)
	if err != nil {
		s.fail(c, err)
		return
	}
	if page == nil {
		s.refuseRead(c, rule)
		return
	}
	if len(page.Resources) == 0 {
		s.fail(c, fhir.NotFound("Patient/"+patient+" is not known"))
		return
	}
	pat := page.Resources[0]

	byCategory := map[string][]summaryItem{}
	for _, typ := range fhir.CategoryTypes() {
		if !mayScope(c, typ, auth.OpSearch) {
			continue
		}
		clause, _ := compartmentClause(typ, patient)
		q := store.Query{Type: typ, Where: append([]store.Clause{clause}, currentOnly(typ)...), Count: maxPageSize}
		for {
			page, _, err := s.scopedSearch(c, q, named)
			if err != nil {
				s.fail(c, err)
				return
			}
			if page == nil {
				break
			}
			for _, r := range page.Resources {
				ix := fhir.ExtractIndex(r.Body)
				cat, ok := fhir.CategoryOf(typ, ix)
				if !ok {
					continue
				}
				d, has := fhir.CareDate(typ, ix)
				byCategory[cat.Code] = append(byCategory[cat.Code], summaryItem{r: r, ix: ix, date: d, hasDate: has})
			}
			if page.Next == "" {
				break
			}
			q.After = page.Next
		}
	}

	base := s.base(c)
	now := time.Now().UTC()
	comp := summaryComposition{
		ResourceType: "Composition",
		ID:           newID(),
		Status:       "final",
		Type:         summaryConcept{Coding: []fhir.Coding{summaryDocumentType}},
		Subject:      summaryReference{Reference: base + "/Patient/" + patient},
		Date:         now.Format(time.RFC3339),
		Author:       []summaryReference{{Display: "dmp-fhir"}},
		Title:        "Synthèse du DMP",
	}
	entries := []summaryEntry{{}, {FullURL: base + "/Patient/" + patient, Resource: pat.Body}}
	if a != nil {
		a.resources = append(a.resources, "Patient/"+patient)
	}
	var toc strings.Builder
	toc.WriteString("<p>Synthèse du DMP, par catégorie :</p><ul>")
	for _, cat := range fhir.Categories() {
		items := byCategory[cat.Code]
		sort.SliceStable(items, func(i, j int) bool { return newerFirst(items[i], items[j]) })
		sec := summarySection{
			Title:     cat.Title,
			Code:      summaryConcept{Coding: []fhir.Coding{cat.Section}},
			OrderedBy: &summaryConcept{Coding: []fhir.Coding{{System: "http://terminology.hl7.org/CodeSystem/list-order", Code: "event-date", Display: "Sorted by Event Date"}}},
		}
		var list strings.Builder
		for _, it := range items {
			full := base + "/" + it.r.Type + "/" + it.r.ID
			sec.Entry = append(sec.Entry, summaryReference{Reference: full})
			entries = append(entries, summaryEntry{FullURL: full, Resource: it.r.Body})
			if a != nil {
				a.resources = append(a.resources, it.r.Type+"/"+it.r.ID)
			}
			list.WriteString("<li>" + html.EscapeString(itemLine(it)) + "</li>")
		}
		if len(items) == 0 {
			sec.OrderedBy = nil
			sec.EmptyReason = &summaryConcept{Coding: []fhir.Coding{{System: "http://terminology.hl7.org/CodeSystem/list-empty-reason", Code: "unavailable", Display: "Unavailable"}}}
			sec.Text = xhtml("<p>Aucune information disponible.</p>")
		} else {
			sec.Text = xhtml("<ul>" + list.String() + "</ul>")
		}
		comp.Section = append(comp.Section, sec)
		toc.WriteString("<li>" + html.EscapeString(cat.Title) + " : " + strconv.Itoa(len(items)) + "</li>")
	}
	toc.WriteString("</ul>")
	comp.Text = xhtml(toc.String())
	compBody, err := marshalText(comp)
	if err != nil {
		s.fail(c, err)
		return
	}
	entries[0] = summaryEntry{FullURL: "urn:uuid:" + comp.ID, Resource: compBody}
	doc := summaryBundle{
		ResourceType: "Bundle",
		ID:           newID(),
		Identifier:   summaryIdent{System: "urn:ietf:rfc:3986", Value: "urn:uuid:" + newID()},
		Type:         "document",
		Timestamp:    now.Format(fhir.InstantFormat),
		Entry:        entries,
	}
	body, err := marshalText(doc)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.writeJSON(c, http.StatusOK, body)
}

// currentOnly leaves out of the summary the documents a default search
// leaves out (archived) and those no longer in force (superseded by a
// replacement, entered in error); $everything has them all.
func currentOnly(typ string) []store.Clause {
	if typ != "DocumentReference" {
		return nil
	}
	not := func(param, code string) store.Clause {
		return store.Clause{Any: []store.Condition{{Param: param, Kind: store.KindToken, Code: code, AnySystem: true, Not: true}}}
	}
	return []store.Clause{not("archived", "true"), not("status", "superseded"), not("status", "entered-in-error")}
}

// marshalText is json.Marshal without the escaping of <, > and & (the
// narratives are XHTML).
func marshalText(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// newerFirst orders a section: latest care date first, undated last, then
// the most recently changed.
func newerFirst(x, y summaryItem) bool {
	if x.hasDate != y.hasDate {
		return x.hasDate
	}
	if x.hasDate && x.date != y.date {
		return x.date > y.date
	}
	if !x.r.LastUpdated.Equal(y.r.LastUpdated) {
		return x.r.LastUpdated.After(y.r.LastUpdated)
	}
	return x.r.Type+"/"+x.r.ID < y.r.Type+"/"+y.r.ID
}

// itemLine is one line of a section's narrative: the date, the type and
// the text of the resource's code.
func itemLine(it summaryItem) string {
	line := it.r.Type
	if it.hasDate {
		line = time.UnixMilli(it.date).UTC().Format("2006-01-02") + " " + line
	}
	for _, p := range []string{"code:text", "type:text", "vaccine-code:text"} {
		for _, st := range it.ix.Strings {
			if st.Param == p && st.Exact != "" {
				return line + " : " + st.Exact
			}
		}
	}
	return line
}
