package fhir

import (
	"bytes"
	"encoding/json"
	"maps"
	"regexp"
	"slices"
)

// RewriteReferences returns body with every `reference` and `url` string
// (Reference.reference, Attachment.url, ...) for which replace answers true
// replaced, at any depth, everything else kept as written. It serves the
// urn:uuid and conditional references of transaction Bundles.
func RewriteReferences(body []byte, replace func(value string) (string, bool)) ([]byte, bool, error) {
	if bytes.IndexByte(body, '\\') < 0 && json.Valid(body) {
		return rewriteFast(body, replace)
	}
	changed := false
	out, err := rewrite(body, "", replace, &changed)
	if err != nil || !changed {
		return body, false, err
	}
	return out, true, nil
}

func rewrite(raw json.RawMessage, key string, replace func(string) (string, bool), changed *bool) (json.RawMessage, error) {
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) == 0 {
		return raw, nil
	}
	switch trimmed[0] {
	case '{':
		obj, err := ParseObject(raw)
		if err != nil {
			return nil, err
		}
		for i, f := range obj {
			v, err := rewrite(f.Value, f.Key, replace, changed)
			if err != nil {
				return nil, err
			}
			obj[i].Value = v
		}
		return obj.MarshalJSON()
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		buf.WriteByte('[')
		for i, it := range items {
			v, err := rewrite(it, key, replace, changed)
			if err != nil {
				return nil, err
			}
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.Write(v)
		}
		buf.WriteByte(']')
		return buf.Bytes(), nil
	case '"':
		if key != "reference" && key != "url" {
			return raw, nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		if repl, ok := replace(s); ok {
			*changed = true
			b, _ := json.Marshal(repl)
			return b, nil
		}
	}
	return raw, nil
}

// referenceMember finds a "reference" or "url" member with a string value.
// In JSON without any backslash, a quote inside a string is impossible, so
// the pattern can only meet real members, never text inside a value.
var referenceMember = regexp.MustCompile(`"(?:reference|url)"\s*:\s*"([^"]*)"`)

// referenceKey finds a "reference" member with a string value, under the
// same condition as referenceMember.
var referenceKey = regexp.MustCompile(`"reference"\s*:\s*"([^"]*)"`)

// ReferenceValues returns the value of every "reference" member of body
// (Reference.reference at any depth): found in the text, in order, when the
// body holds no backslash (as rewriteFast does); decoded otherwise (an
// escaped quote can make text look like a member), the members of an object
// in key order.
func ReferenceValues(body []byte) []string {
	var out []string
	if bytes.IndexByte(body, '\\') < 0 && json.Valid(body) {
		for _, m := range referenceKey.FindAllSubmatch(body, -1) {
			out = append(out, string(m[1]))
		}
		return out
	}
	var doc any
	if json.Unmarshal(body, &doc) != nil {
		return nil
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if s, ok := x["reference"].(string); ok {
				out = append(out, s)
			}
			for _, k := range slices.Sorted(maps.Keys(x)) {
				if k != "reference" {
					walk(x[k])
				}
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc)
	return out
}

// rewriteFast is RewriteReferences for a body without escapes: the values
// are found in the text and replaced in place, with no parse of the whole
// resource (which cost a tenth of an import).
func rewriteFast(body []byte, replace func(string) (string, bool)) ([]byte, bool, error) {
	var out []byte
	last := 0
	for _, m := range referenceMember.FindAllSubmatchIndex(body, -1) {
		repl, ok := replace(string(body[m[2]:m[3]]))
		if !ok {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(body)+64)
		}
		quoted, _ := json.Marshal(repl)
		out = append(out, body[last:m[2]-1]...)
		out = append(out, quoted...)
		last = m[3] + 1
	}
	if out == nil {
		return body, false, nil
	}
	return append(out, body[last:]...), true, nil
}
