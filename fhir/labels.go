package fhir

import "encoding/json"

// ConfidentialitySystem is HL7's confidentiality code system (N, R, V).
const ConfidentialitySystem = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"

// SetSecurityLabel adds (on) or removes (off) the meta.security coding
// system|code of a resource, keeping the other labels; when it adds one, the
// confidentiality code N is made present too, as the DMP requires N beside
// any visibility label. changed is false when there was nothing to do.
func SetSecurityLabel(body []byte, system, code string, on bool) ([]byte, bool, error) {
	obj, err := ParseObject(body)
	if err != nil {
		return nil, false, err
	}
	var meta Object
	if raw := obj.Get("meta"); raw != nil {
		if meta, err = ParseObject(raw); err != nil {
			return nil, false, err
		}
	}
	var labels []json.RawMessage
	if raw := meta.Get("security"); raw != nil {
		if err := json.Unmarshal(raw, &labels); err != nil {
			return nil, false, Invalid("meta.security", "meta.security must be a list of codings")
		}
	}
	type coding struct {
		System string `json:"system"`
		Code   string `json:"code"`
	}
	has := func(sys, c string) int {
		for i, l := range labels {
			var cd coding
			if json.Unmarshal(l, &cd) == nil && cd.System == sys && cd.Code == c {
				return i
			}
		}
		return -1
	}
	changed := false
	if i := has(system, code); on && i < 0 {
		b, _ := json.Marshal(coding{System: system, Code: code})
		labels = append(labels, b)
		changed = true
		if has(ConfidentialitySystem, "N") < 0 {
			n, _ := json.Marshal(coding{System: ConfidentialitySystem, Code: "N"})
			labels = append([]json.RawMessage{n}, labels...)
		}
	} else if !on && i >= 0 {
		labels = append(labels[:i], labels[i+1:]...)
		changed = true
	}
	if !changed {
		return body, false, nil
	}
	raw, _ := json.Marshal(labels)
	meta = meta.Set("security", raw)
	metaRaw, _ := meta.MarshalJSON()
	out, err := obj.Set("meta", metaRaw).MarshalJSON()
	return out, true, err
}
