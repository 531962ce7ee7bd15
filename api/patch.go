package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/store"
)

// patch serves PATCH /fhir/{type}/{id} with a FHIRPath Patch (a Parameters
// resource of `operation` parameters), as IHE MHD and PDSm use it to mark a
// replaced document superseded. This server applies the operations replace,
// add and delete on element paths written as names (DocumentReference.status,
// DocumentReference.context.period); functions, indexes and the operations
// insert and move are refused with 422. The patched resource is validated and
// written as an update, against the version it was computed from.
func (s *Server) patch(c *gin.Context) {
	typ, id := c.Param("type"), c.Param("id")
	if !s.allow(c, typ, auth.OpUpdate, "patch") {
		return
	}
	body, err := s.readBody(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	ops, err := patchOperations(body)
	if err != nil {
		s.fail(c, err)
		return
	}
	ifMatch, err := parseIfMatch(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var r *store.Resource
	var out store.Outcome
	err = s.atomically(c, func(st store.Ops) error {
		cur, err := st.Read(c, typ, id)
		if err != nil {
			return err
		}
		if ifMatch != 0 && cur.Version != ifMatch {
			return store.ErrVersionMismatch
		}
		// Only the author changes a resource (and a patch answers the
		// whole patched resource).
		if err := s.mayUpdate(c, cur); err != nil {
			return err
		}
		patched, err := applyPatch(typ, cur.Body, ops)
		if err != nil {
			return err
		}
		if err := s.validator.Validate(patched); err != nil {
			return err
		}
		if err := s.mayWrite(c, typ, patched); err != nil {
			return err
		}
		// Like an update (putIn, cur read and checked above): the stored
		// author is kept whatever the patch said of meta, and a replacement
		// supersedes its target.
		r, out, err = s.putOver(c, st, typ, id, patched, cur.Version, cur)
		return err
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	writeOutcomeHeader(c, out)
	s.answerWrite(c, http.StatusOK, r)
}

type patchOp struct {
	typ, path, name string
	value           json.RawMessage
	at              string // Parameters.parameter[i], for errors
}

// patchOperations reads a FHIRPath Patch Parameters resource.
func patchOperations(body []byte) ([]patchOp, error) {
	var p struct {
		ResourceType string `json:"resourceType"`
		Parameter    []struct {
			Name string                       `json:"name"`
			Part []map[string]json.RawMessage `json:"part"`
		} `json:"parameter"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.ResourceType != "Parameters" {
		return nil, fhir.Invalid("resourceType", "PATCH takes a FHIRPath Patch: a Parameters resource of operation parameters (JSON Patch is not supported)")
	}
	var ops []patchOp
	for i, prm := range p.Parameter {
		at := "Parameters.parameter[" + strconv.Itoa(i) + "]"
		if prm.Name != "operation" {
			return nil, fhir.Invalid(at+".name", "a FHIRPath Patch parameter is named operation, not "+strconv.Quote(prm.Name))
		}
		op := patchOp{at: at}
		for _, part := range prm.Part {
			var name string
			json.Unmarshal(part["name"], &name)
			for k, v := range part {
				switch {
				case name == "type" && k == "valueCode":
					json.Unmarshal(v, &op.typ)
				case name == "path" && k == "valueString":
					json.Unmarshal(v, &op.path)
				case name == "name" && k == "valueString":
					json.Unmarshal(v, &op.name)
				case name == "value" && strings.HasPrefix(k, "value"):
					op.value = v
				}
			}
		}
		ops = append(ops, op)
	}
	if len(ops) == 0 {
		return nil, fhir.Invalid("Parameters.parameter", "the patch has no operation")
	}
	return ops, nil
}

// applyPatch applies ops to a resource body, keeping every other element
// as it was written.
func applyPatch(typ string, body []byte, ops []patchOp) ([]byte, error) {
	root, err := fhir.ParseObject(body)
	if err != nil {
		return nil, err
	}
	for _, op := range ops {
		segs := strings.Split(op.path, ".")
		if len(segs) < 1 || segs[0] != typ {
			return nil, fhir.Unprocessable(op.at, "the path "+strconv.Quote(op.path)+" must start with "+typ)
		}
		for _, seg := range segs[1:] {
			if seg == "" || strings.ContainsAny(seg, "()[]' ") {
				return nil, fhir.Unprocessable(op.at, "this server applies patches on element paths written as names only (e.g. "+typ+".status), not "+strconv.Quote(op.path))
			}
		}
		path := segs[1:]
		switch op.typ {
		case "replace":
			if len(path) == 0 || op.value == nil {
				return nil, fhir.Unprocessable(op.at, "replace needs the path of an element and a value")
			}
			root, err = setAt(root, path, op.value, true, op.at)
		case "add":
			if op.name == "" || op.value == nil {
				return nil, fhir.Unprocessable(op.at, "add needs a name and a value")
			}
			root, err = setAt(root, append(append([]string{}, path...), op.name), op.value, false, op.at)
		case "delete":
			if len(path) == 0 {
				return nil, fhir.Unprocessable(op.at, "delete needs the path of an element")
			}
			root, err = deleteAt(root, path)
		default:
			return nil, fhir.Unprocessable(op.at, "patch operation "+strconv.Quote(op.typ)+" is not supported (replace, add, delete are)")
		}
		if err != nil {
			return nil, err
		}
	}
	return root.MarshalJSON()
}

// setAt sets the element at path; replace needs it to exist, add appends
// to a list or creates the element.
func setAt(obj fhir.Object, path []string, value json.RawMessage, replace bool, at string) (fhir.Object, error) {
	key := path[0]
	cur := obj.Get(key)
	if len(path) == 1 {
		switch {
		case replace && cur == nil:
			return nil, fhir.Unprocessable(at, "replace: no element "+key+" to replace")
		case !replace && cur != nil && strings.HasPrefix(strings.TrimSpace(string(cur)), "["):
			var list []json.RawMessage
			json.Unmarshal(cur, &list)
			raw, _ := json.Marshal(append(list, value))
			return obj.Set(key, raw), nil
		}
		return obj.Set(key, value), nil
	}
	if cur == nil {
		if replace {
			return nil, fhir.Unprocessable(at, "replace: no element "+key+" on the path")
		}
		cur = json.RawMessage(`{}`)
	}
	child, err := fhir.ParseObject(cur)
	if err != nil {
		return nil, fhir.Unprocessable(at, "the path goes through "+key+", which is not a single element")
	}
	if child, err = setAt(child, path[1:], value, replace, at); err != nil {
		return nil, err
	}
	raw, err := child.MarshalJSON()
	return obj.Set(key, raw), err
}

// deleteAt removes the element at path; a missing one is no error.
func deleteAt(obj fhir.Object, path []string) (fhir.Object, error) {
	key := path[0]
	if len(path) == 1 {
		return obj.Without(key), nil
	}
	cur := obj.Get(key)
	if cur == nil {
		return obj, nil
	}
	child, err := fhir.ParseObject(cur)
	if err != nil {
		return obj, nil
	}
	if child, err = deleteAt(child, path[1:]); err != nil {
		return nil, err
	}
	raw, err := child.MarshalJSON()
	return obj.Set(key, raw), err
}

// mayUpdate lets only the author of a live resource change it, as only the
// author deletes or replaces it (DMP TD3.3c: a professional's document is
// theirs; the patient masks, never edits it). Whom the consent decision
// does not let read the resource gets the read's refusal (403, 409 on a
// closed DMP) first, so that no answer tells them more than a read would.
// A DMP's Patient has its own rules (checkPatientUpdate).
func (s *Server) mayUpdate(ctx context.Context, cur *store.Resource) error {
	a := accessOf(ctx)
	if a == nil || a.caller == nil || s.auth.Unrestricted || cur.Type == "Patient" {
		return nil
	}
	author := authorIn(cur.Body)
	if author != "" && author == authorOf(a.caller, "") {
		return nil
	}
	ok, rule, err := s.mayRead(ctx, cur)
	if err != nil {
		return err
	}
	if !ok {
		if rule == auth.RuleClosed {
			patients, _ := patientsOf(cur)
			return closedDMP(strings.Join(patients, ","))
		}
		return forbidden(rule, "access refused by the patient's consent rules")
	}
	if author == "" {
		return forbidden("author-only", "only the author of a resource may change it, and "+cur.Type+"/"+cur.ID+" has no recorded author")
	}
	return forbidden("author-only", "only the author of "+cur.Type+"/"+cur.ID+" may change it")
}
