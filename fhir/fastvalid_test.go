package fhir

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"
)

// libraryAccepts is the JSON-schema library's verdict alone, which the
// accepting check must never contradict by accepting what it refuses.
func libraryAccepts(t testing.TB, v *Validator, rt string, doc any) bool {
	t.Helper()
	sch, err := v.schemaFor(rt)
	if err != nil {
		t.Fatal(err)
	}
	return sch != nil && sch.Validate(doc) == nil
}

// exampleDoc decodes body as the validator does; ok is false for what is
// not a resource of a type the schema knows (a line of an indented file).
func exampleDoc(v *Validator, body []byte) (doc map[string]any, rt string, ok bool) {
	if !validJSON(body) {
		return nil, "", false
	}
	doc, ok = decodeJSONObject(body, true)
	if !ok {
		return nil, "", false
	}
	rt, _ = doc["resourceType"].(string)
	return doc, rt, v.model.resources[rt]
}

func TestTheAcceptingCheckAcceptsWhatTheSchemaAcceptsInEveryExample(t *testing.T) {
	v := newTestValidator(t)
	var accepted, refused int
	forEachExampleBody(t, func(file string, body []byte) {
		doc, rt, ok := exampleDoc(v, body)
		if !ok {
			return
		}
		lib, fast := libraryAccepts(t, v, rt, doc), v.accept.accepts(rt, doc)
		switch {
		case fast && !lib:
			t.Errorf("%s: the accepting check accepts a %s the schema refuses", file, rt)
		case lib && !fast:
			t.Errorf("%s: the accepting check does not accept a valid %s (the library decides it, slowly)", file, rt)
		case fast:
			accepted++
		default:
			refused++
		}
	})
	if accepted < 500 {
		t.Fatalf("only %d example resources accepted", accepted)
	}
	t.Logf("%d example resources accepted, %d refused by both", accepted, refused)
}

// mutations replace one value of a document with a value of another shape
// or a bad value of the same shape: each one the schema refuses somewhere.
var mutations = []struct {
	name  string
	apply func(v any) (any, bool)
}{
	{"empty string", func(v any) (any, bool) { _, ok := v.(string); return "", ok }},
	{"string with a form feed", func(v any) (any, bool) { s, ok := v.(string); return s + "\f", ok }},
	{"string with a leading space", func(v any) (any, bool) { s, ok := v.(string); return " " + s, ok }},
	{"string with two spaces", func(v any) (any, bool) { s, ok := v.(string); return "a  " + s, ok }},
	{"string made a number", func(v any) (any, bool) { _, ok := v.(string); return json.Number("12"), ok }},
	{"string made an object", func(v any) (any, bool) { _, ok := v.(string); return map[string]any{}, ok }},
	{"number made a fraction", func(v any) (any, bool) { _, ok := v.(json.Number); return json.Number("1.5"), ok }},
	{"number made negative", func(v any) (any, bool) { _, ok := v.(json.Number); return json.Number("-1"), ok }},
	{"number made zero", func(v any) (any, bool) { _, ok := v.(json.Number); return json.Number("0"), ok }},
	{"number too large", func(v any) (any, bool) { _, ok := v.(json.Number); return json.Number("3000000000"), ok }},
	{"number with an exponent", func(v any) (any, bool) { _, ok := v.(json.Number); return json.Number("1e2"), ok }},
	{"number made a string", func(v any) (any, bool) { _, ok := v.(json.Number); return "1", ok }},
	{"boolean made a string", func(v any) (any, bool) { _, ok := v.(bool); return "true", ok }},
	{"null", func(v any) (any, bool) { return nil, v != nil }},
	{"object with an unknown member", func(v any) (any, bool) {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		m["zzUnknown"] = "x"
		return m, true
	}},
	{"object emptied", func(v any) (any, bool) { m, ok := v.(map[string]any); return map[string]any{}, ok && len(m) > 0 }},
	{"object made a list", func(v any) (any, bool) { _, ok := v.(map[string]any); return []any{v}, ok }},
	{"object with another resourceType", func(v any) (any, bool) {
		m, ok := v.(map[string]any)
		if !ok || m["resourceType"] == nil {
			return nil, false
		}
		m["resourceType"] = "Patient"
		return m, true
	}},
	{"list made its first item", func(v any) (any, bool) { l, ok := v.([]any); return firstOf(l), ok && len(l) > 0 }},
	{"list with a string", func(v any) (any, bool) { l, ok := v.([]any); return append(l, "x"), ok }},
}

func firstOf(l []any) any {
	if len(l) == 0 {
		return nil
	}
	return l[0]
}

// replaceNth replaces the n-th value below root in pre-order (root is 0 and
// never replaced) with f's result; it reports whether f applied.
func replaceNth(root any, n int, f func(any) (any, bool)) bool {
	count, applied := 0, false
	var walk func(v any) (any, bool) // returns the replacement of v, if any
	walk = func(v any) (any, bool) {
		if count > n {
			return nil, false
		}
		if count == n && count > 0 {
			count++
			nv, ok := f(v)
			applied = ok
			return nv, ok
		}
		count++
		switch x := v.(type) {
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(x)) {
				if nv, ok := walk(x[k]); ok {
					x[k] = nv
				}
			}
		case []any:
			for i := range x {
				if nv, ok := walk(x[i]); ok {
					x[i] = nv
				}
			}
		}
		return nil, false
	}
	walk(root)
	return applied
}

func countValues(v any) int {
	n := 1
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			n += countValues(e)
		}
	case []any:
		for _, e := range x {
			n += countValues(e)
		}
	}
	return n
}

func TestTheAcceptingCheckNeverAcceptsWhatTheSchemaRefuses(t *testing.T) {
	v := newTestValidator(t)
	const positionsPerDoc = 12
	var tried, refusedByLibrary int
	forEachExampleBody(t, func(file string, body []byte) {
		doc, rt, ok := exampleDoc(v, body)
		if !ok || len(body) > 64<<10 {
			return // the large Bundles' entries are checked line by line
		}
		total := countValues(doc)
		step := total / positionsPerDoc
		if step == 0 {
			step = 1
		}
		for n := 1; n < total; n += step {
			for _, m := range mutations {
				d, _, _ := exampleDoc(v, body)
				if !replaceNth(d, n, m.apply) {
					continue
				}
				tried++
				lib := libraryAccepts(t, v, rt, d)
				if !lib {
					refusedByLibrary++
				}
				if !lib && v.accept.accepts(rt, d) {
					t.Errorf("%s: value %d %s: the accepting check accepts a %s the schema refuses", file, n, m.name, rt)
				}
			}
		}
	})
	if refusedByLibrary < 20000 {
		t.Fatalf("only %d of %d mutated documents refused by the schema: the mutations test little", refusedByLibrary, tried)
	}
	t.Logf("%d mutated documents, %d refused by the schema", tried, refusedByLibrary)
}

func TestAKeywordTheAcceptingCheckDoesNotKnowIsNeverAccepted(t *testing.T) {
	defs := map[string]any{
		"Thing": map[string]any{
			"type": "object",
			"properties": map[string]any{
				"resourceType": map[string]any{"const": "Thing"},
				"name":         map[string]any{"type": "string", "maxLength": json.Number("3")},
				"code":         map[string]any{"type": "string"},
				"count":        map[string]any{"type": "integer"},
			},
			"additionalProperties": false,
		},
	}
	a, err := compileAccept(defs, map[string]bool{"Thing": true})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		doc  map[string]any
		want bool
	}{
		{"known keywords only", map[string]any{"resourceType": "Thing", "code": "a"}, true},
		{"a member under an unknown keyword", map[string]any{"resourceType": "Thing", "name": "abcdef"}, false},
		{"an unknown member", map[string]any{"resourceType": "Thing", "other": "a"}, false},
		{"another resourceType", map[string]any{"resourceType": "Other"}, false},
		{"an integer", map[string]any{"resourceType": "Thing", "count": json.Number("-3")}, true},
		{"a fraction for an integer", map[string]any{"resourceType": "Thing", "count": json.Number("1.5")}, false},
		{"an integer written with a fraction, left to the library", map[string]any{"resourceType": "Thing", "count": json.Number("1.0")}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := a.accepts("Thing", c.doc); got != c.want {
				t.Fatalf("accepts = %v, want %v", got, c.want)
			}
		})
	}
}

func FuzzTheAcceptingCheckNeverAcceptsWhatTheSchemaRefuses(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Patient","id":"a","active":true,"name":[{"family":"Martin","given":["Léa"]}]}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.5}}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueInteger":3}`,
		`{"resourceType":"Patient","multipleBirthInteger":1.0,"_birthDate":{"extension":[]}}`,
		`{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Patient","gender":"other"}}]}`,
		`{"resourceType":"Patient","contained":[{"resourceType":"Organization","name":"x"}]}`,
	} {
		f.Add([]byte(s))
	}
	v, err := NewValidator()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		doc, rt, ok := exampleDoc(v, body)
		if !ok {
			return
		}
		if v.accept.accepts(rt, doc) && !libraryAccepts(t, v, rt, doc) {
			t.Fatalf("the accepting check accepts a %s the schema refuses: %s", rt, body)
		}
	})
}
