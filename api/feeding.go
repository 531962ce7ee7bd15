package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// Feeding rules of the DMP (DOMAIN.md §1.6): who wrote a resource, who may
// delete it, replacement, archiving.

const (
	// AuthorExtension, in meta, names who created a resource: the server
	// sets it (a client's value is replaced) and keeps it across updates.
	AuthorExtension = "https://dmp-fhir.fr/StructureDefinition/author"
	// ArchivedExtension is PDSm's archive flag of a DocumentReference or a List.
	ArchivedExtension = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-ext-is-archived"
)

// authorOf is the author key of a caller: practitioner/<idNatPs>,
// patient/<id>, system/<client id>; an anonymous caller creating their own
// DMP online is the patient.
func authorOf(c *auth.Caller, patient string) string {
	if c == nil {
		return "patient/" + patient
	}
	return string(c.Kind) + "/" + c.ID
}

// withAuthor returns body with meta's author extension set to author.
func withAuthor(body []byte, author string) ([]byte, error) {
	obj, err := fhir.ParseObject(body)
	if err != nil {
		return nil, err
	}
	var meta fhir.Object
	if raw := obj.Get("meta"); raw != nil {
		if meta, err = fhir.ParseObject(raw); err != nil {
			return nil, fhir.Invalid("meta", "meta must be an object")
		}
	}
	var exts []json.RawMessage
	if raw := meta.Get("extension"); raw != nil {
		if err := json.Unmarshal(raw, &exts); err != nil {
			return nil, fhir.Invalid("meta.extension", "meta.extension must be a list")
		}
	}
	kept := exts[:0]
	for _, e := range exts {
		var x struct{ URL string }
		if json.Unmarshal(e, &x) == nil && x.URL == AuthorExtension {
			continue
		}
		kept = append(kept, e)
	}
	if author != "" {
		ext, _ := json.Marshal(map[string]string{"url": AuthorExtension, "valueString": author})
		kept = append(kept, ext)
	}
	if len(kept) == 0 {
		meta = meta.Without("extension")
	} else {
		raw, _ := json.Marshal(kept)
		meta = meta.Set("extension", raw)
	}
	if len(meta) == 0 {
		obj = obj.Without("meta")
	} else {
		raw, _ := meta.MarshalJSON()
		obj = obj.Set("meta", raw)
	}
	return obj.MarshalJSON()
}

// authorIn reads the author key of a stored resource ("" when none).
func authorIn(body []byte) string {
	var r struct {
		Meta struct {
			Extension []struct {
				URL         string `json:"url"`
				ValueString string `json:"valueString"`
			} `json:"extension"`
		} `json:"meta"`
	}
	json.Unmarshal(body, &r)
	for _, e := range r.Meta.Extension {
		if e.URL == AuthorExtension {
			return e.ValueString
		}
	}
	return ""
}

// stampAuthorOver sets the author of a write over the current version cur:
// the caller for a new resource (cur nil), the stored author for a new
// version of an existing one. Without an access record (the benchmark
// switch, internal writes) body is unchanged.
func (s *Server) stampAuthorOver(a *access, cur *store.Resource, body []byte) ([]byte, error) {
	if a == nil || a.caller == nil || s.auth.Unrestricted {
		return body, nil
	}
	author := authorOf(a.caller, "")
	if cur != nil {
		author = authorIn(cur.Body)
	}
	return withAuthor(body, author)
}

// checkFeeding applies the DMP's state to a write: a record with a closed
// DMP takes nothing (409), and professionals and patients write only into
// an existing DMP (system feeds may hold a patient's data before the DMP
// exists: it stays unreadable until then).
func (s *Server) checkFeeding(ctx context.Context, a *access, typ string, r *store.Resource) error {
	if typ == "Patient" {
		return nil
	}
	patients, _ := patientsIn(r, indexOf(ctx, r.Body))
	for _, p := range patients {
		st, ok := a.dmps[p]
		if !ok {
			policy, active, err := s.policy(ctx, p)
			if err != nil {
				return err
			}
			st = dmpState{exists: policy != nil, open: active}
			if a.dmps == nil {
				a.dmps = map[string]dmpState{}
			}
			a.dmps[p] = st
		}
		switch {
		case !st.exists && a.caller.Kind != auth.KindSystem:
			return fhir.NewError(http.StatusUnprocessableEntity, "business-rule", "", "Patient/"+p+" has no DMP: it must be created first ($dmp-create) ("+auth.RuleNoPolicy+")")
		case st.exists && !st.open:
			return closedDMP(p)
		}
	}
	return nil
}

// dmpState is what feeding needs to know of a patient's DMP.
type dmpState struct{ exists, open bool }

func closedDMP(patient string) error {
	return fhir.NewError(http.StatusConflict, "conflict", "", "the DMP of Patient/"+patient+" is closed: it can be neither fed nor consulted until its holder reopens it ("+auth.RuleClosed+")")
}

// checkPatientUpdate keeps a DMP's open/closed state in its holder's hands:
// an update of a DMP's Patient by someone else must leave it as it is.
func (s *Server) checkPatientUpdate(ctx context.Context, id string, body []byte) error {
	if a := accessOf(ctx); a == nil || s.auth.Unrestricted || id == "" {
		return nil
	}
	cur, err := s.ops(ctx).Read(ctx, "Patient", id)
	if err != nil {
		return nil // a create: nothing to keep
	}
	if policy, _, err := s.policy(ctx, id); err != nil || policy == nil {
		return err
	}
	if stateOf(cur.Body) != stateOf(body) {
		return forbidden("holder-only", "a DMP is closed and reopened by its holder ($dmp-close, $dmp-reopen): active and the closure extension must stay as they are")
	}
	return nil
}

// stateOf is a Patient's active flag and closure extension, compared as text.
func stateOf(body []byte) string {
	var p struct {
		Active    *bool             `json:"active"`
		Extension []json.RawMessage `json:"extension"`
	}
	json.Unmarshal(body, &p)
	state := "open"
	if p.Active != nil && !*p.Active {
		state = "closed"
	}
	for _, e := range p.Extension {
		var x struct{ URL string }
		if json.Unmarshal(e, &x) == nil && x.URL == ClosureExtension {
			state += "+" + string(e)
		}
	}
	return state
}

// mayDeleteAuthored: only the author of a resource deletes it (DMP rule
// TD3.3c; others get 403), and a DMP's Patient is closed, never deleted.
func (s *Server) mayDeleteAuthored(ctx context.Context, a *access, typ, id string) error {
	r, err := s.ops(ctx).Read(ctx, typ, id)
	if err != nil {
		return nil // the delete itself answers
	}
	patients, _ := patientsOf(r)
	a.touch(patients, typ+"/"+id)
	if typ == "Patient" {
		if policy, _, err := s.policy(ctx, id); err != nil || policy != nil {
			if err != nil {
				return err
			}
			return forbidden("dmp-not-deletable", "a DMP is closed by its holder ($dmp-close), not deleted")
		}
	}
	author := authorIn(r.Body)
	switch {
	case author == "":
		return forbidden("author-only", "only the author of a resource may delete it, and "+typ+"/"+id+" has no recorded author")
	case author != authorOf(a.caller, ""):
		return forbidden("author-only", "only the author of "+typ+"/"+id+" may delete it")
	}
	for _, p := range patients {
		if policy, active, err := s.policy(ctx, p); err != nil {
			return err
		} else if policy != nil && !active {
			return closedDMP(p)
		}
	}
	return nil
}

// replaced returns the documents a DocumentReference replaces
// (relatesTo.code = replaces).
func replaced(body []byte) []string {
	// Most documents replace nothing: no need to decode them (attachment
	// data and all) twice per write. A key spelled with escapes is decoded.
	if !bytes.Contains(body, []byte("relatesTo")) && !bytes.Contains(body, []byte(`\u`)) {
		return nil
	}
	var d struct {
		RelatesTo []struct {
			Code   string `json:"code"`
			Target struct {
				Reference string `json:"reference"`
			} `json:"target"`
		} `json:"relatesTo"`
	}
	json.Unmarshal(body, &d)
	var ids []string
	for _, r := range d.RelatesTo {
		if r.Code != "replaces" {
			continue
		}
		ref := r.Target.Reference
		if i := strings.Index(ref, "DocumentReference/"); i >= 0 {
			ref = ref[i+len("DocumentReference/"):]
			if j := strings.Index(ref, "/"); j >= 0 {
				ref = ref[:j]
			}
			ids = append(ids, ref)
		}
	}
	return ids
}

// supersede marks the documents that body replaces as superseded (DMP
// TD2.1: the old version stays, deprecated), in the same transaction as the
// new document. Only a current document of the same patient, by the same
// author, can be replaced. apply=false only checks, before the new document
// is written (an engine without transactions would keep it otherwise).
func (s *Server) supersede(ctx context.Context, ops store.Ops, newID, typ string, body []byte, apply bool) error {
	if typ != "DocumentReference" {
		return nil
	}
	targets := replaced(body)
	if len(targets) == 0 {
		return nil
	}
	newDoc := &store.Resource{Type: "DocumentReference", ID: newID, Body: body}
	newPatients, _ := patientsOf(newDoc)
	a := accessOf(ctx)
	for i, id := range targets {
		where := "DocumentReference.relatesTo[" + strconv.Itoa(i) + "].target"
		old, err := ops.Read(ctx, "DocumentReference", id)
		if err != nil {
			return fhir.Unprocessable(where, "the replaced document DocumentReference/"+id+" does not exist")
		}
		oldPatients, _ := patientsOf(old)
		if strings.Join(oldPatients, ",") != strings.Join(newPatients, ",") {
			return fhir.Unprocessable(where, "a document replaces a document of the same patient only")
		}
		if a != nil && a.caller != nil && !s.auth.Unrestricted && authorIn(old.Body) != authorOf(a.caller, "") {
			return forbidden("author-only", "only the author of DocumentReference/"+id+" may replace it")
		}
		obj, err := fhir.ParseObject(old.Body)
		if err != nil {
			return err
		}
		var status string
		json.Unmarshal(obj.Get("status"), &status)
		if status != "current" {
			return fhir.NewError(http.StatusConflict, "conflict", where, "DocumentReference/"+id+" is "+status+", not current: it was already replaced")
		}
		if !apply {
			continue
		}
		obj = obj.Set("status", json.RawMessage(`"superseded"`))
		nb, _ := obj.MarshalJSON()
		if _, _, err := ops.Put(ctx, "DocumentReference", id, nb, old.Version); err != nil {
			return err
		}
		a.touch(nil, "DocumentReference/"+id)
	}
	return nil
}
