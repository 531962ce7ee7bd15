package fhir

import (
	"encoding/json"
	"strings"
)

// subsettedTag is the meta.tag a subsetted resource carries (_summary, _elements).
const subsettedTag = `{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED","display":"Resource encoded in summary mode"}`

// Summarize applies _summary (true, text, data) or _elements to a resource
// body. Top-level elements are kept or dropped whole. The result carries the
// SUBSETTED tag, as FHIR asks of a partial resource.
func Summarize(body []byte, summary string, elements []string) ([]byte, error) {
	if (summary == "" || summary == "false") && len(elements) == 0 {
		return body, nil
	}
	obj, err := ParseObject(body)
	if err != nil {
		return nil, err
	}
	var typ string
	json.Unmarshal(obj.Get("resourceType"), &typ)
	keep := func(name string) bool { return true }
	switch {
	case len(elements) > 0:
		want := map[string]bool{}
		for _, e := range elements {
			want[strings.TrimPrefix(e, typ+".")] = true
		}
		keep = func(name string) bool { return want[name] || want[strings.TrimPrefix(name, "_")] }
	case summary == "text":
		keep = func(name string) bool { return name == "text" || isMandatory(typ, name) }
	case summary == "data":
		keep = func(name string) bool { return name != "text" }
	case summary == "true":
		keep = func(name string) bool { return isSummary(typ, strings.TrimPrefix(name, "_")) }
	}
	out := Object{}
	for _, f := range obj {
		switch f.Key {
		case "resourceType", "id":
			out = append(out, f)
		case "meta":
			out = append(out, Field{Key: "meta", Value: withSubsettedTag(f.Value)})
		default:
			if keep(f.Key) {
				out = append(out, f)
			}
		}
	}
	if obj.Get("meta") == nil {
		out = append(out, Field{Key: "meta", Value: withSubsettedTag(nil)})
	}
	return out.MarshalJSON()
}

func withSubsettedTag(meta json.RawMessage) json.RawMessage {
	m, err := ParseObject(meta)
	if meta == nil || err != nil {
		m = Object{}
	}
	var tags []json.RawMessage
	json.Unmarshal(m.Get("tag"), &tags)
	tags = append(tags, json.RawMessage(subsettedTag))
	raw, _ := json.Marshal(tags)
	b, _ := m.Set("tag", raw).MarshalJSON()
	return b
}

func isSummary(typ, name string) bool {
	for _, e := range summaryElements[typ] {
		if e == name || (strings.HasSuffix(e, "*") && strings.HasPrefix(name, e[:len(e)-1]) && len(name) > len(e)-1) {
			return true
		}
	}
	return false
}

// isMandatory approximates "mandatory elements" for _summary=text with the
// summary elements FHIR marks status-like: status and the subject links.
func isMandatory(typ, name string) bool {
	switch name {
	case "status", "intent", "subject", "patient":
		return isSummary(typ, name)
	}
	return false
}
