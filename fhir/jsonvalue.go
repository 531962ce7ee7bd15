package fhir

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// decodeJSONObject decodes a JSON object into the values encoding/json
// gives with UseNumber (map[string]any, []any, string, json.Number, bool,
// nil), about three times faster: the index of every stored version and the
// consent decision of every read decode their resource this way. ok is false
// when body does not start with a JSON object; what is not valid JSON goes
// through encoding/json, which reads a first object and ignores the rest.
func decodeJSONObject(body []byte, valid bool) (doc map[string]any, ok bool) {
	return decodeJSONObjectReading(body, valid, nil)
}

// decodeJSONObjectReading is decodeJSONObject with, when the resource's
// type has a trie in reads, only the members it holds: the others are
// skipped, not decoded.
func decodeJSONObjectReading(body []byte, valid bool, reads map[string]*memberTrie) (doc map[string]any, ok bool) {
	if !valid && !validJSON(body) {
		return decodeJSONObjectStd(body)
	}
	d := jsonDecoder{data: body, text: string(body)}
	d.space()
	if d.i >= len(d.data) || d.data[d.i] != '{' {
		return nil, false
	}
	if reads == nil {
		return d.object(), true
	}
	return d.objectReading(reads[topLevelType(body, d.i)]), true
}

// topLevelType is the resourceType of the (valid) object at data[i], ""
// when it has none or it is spelled with an escape.
func topLevelType(data []byte, i int) string {
	i = skipSpace(data, i+1)
	for i < len(data) && data[i] == '"' {
		end := skipString(data, i)
		key := data[i+1 : end-1]
		i = skipSpace(data, end)
		i = skipSpace(data, i+1) // the colon
		vend := skipValue(data, i)
		if string(key) == "resourceType" {
			if v := data[i:vend]; len(v) >= 2 && v[0] == '"' && bytes.IndexByte(v, '\\') < 0 {
				return string(v[1 : len(v)-1])
			}
			return ""
		}
		i = skipSpace(data, vend)
		if i >= len(data) || data[i] != ',' {
			return ""
		}
		i = skipSpace(data, i+1)
	}
	return ""
}

// objectReading is object with the members of t only (all of them when t
// is nil).
func (d *jsonDecoder) objectReading(t *memberTrie) map[string]any {
	m := map[string]any{}
	d.i++ // {
	d.space()
	if d.data[d.i] == '}' {
		d.i++
		return m
	}
	for {
		d.space()
		key := d.string()
		d.space()
		d.i++ // :
		d.space()
		if t == nil {
			m[key] = d.value()
		} else if k := t.member(key); k == nil {
			d.i = skipValue(d.data, d.i)
		} else if k.whole {
			m[key] = d.value()
		} else {
			m[key] = d.valueReading(k)
		}
		d.space()
		c := d.data[d.i]
		d.i++
		if c == '}' {
			return m
		}
	}
}

// arrayReading is array with, in its objects, the members of t only (all
// of them when t is nil).
func (d *jsonDecoder) arrayReading(t *memberTrie) []any {
	a := []any{}
	d.i++ // [
	d.space()
	if d.data[d.i] == ']' {
		d.i++
		return a
	}
	for {
		d.space()
		a = append(a, d.valueReading(t))
		d.space()
		c := d.data[d.i]
		d.i++
		if c == ']' {
			return a
		}
	}
}

// valueReading is value, objects (in arrays too) with the members of t only.
func (d *jsonDecoder) valueReading(t *memberTrie) any {
	switch d.data[d.i] {
	case '{':
		return d.objectReading(t)
	case '[':
		return d.arrayReading(t)
	default:
		return d.value()
	}
}

// jsonDecoder reads valid JSON (json.Valid said so) with ParseObject's
// scanners (resource.go): it checks nothing.
// Strings without escapes are slices of text, one copy of the whole body,
// instead of one allocation each.
type jsonDecoder struct {
	data []byte
	text string
	i    int
}

func (d *jsonDecoder) space() { d.i = skipSpace(d.data, d.i) }

func (d *jsonDecoder) value() any {
	d.space()
	switch c := d.data[d.i]; c {
	case '{':
		return d.object()
	case '[':
		return d.array()
	case '"':
		return d.string()
	case 't':
		d.i += 4
		return true
	case 'f':
		d.i += 5
		return false
	case 'n':
		d.i += 4
		return nil
	default: // a number
		start := d.i
		d.i = skipValue(d.data, d.i)
		return json.Number(d.text[start:d.i])
	}
}

func (d *jsonDecoder) object() map[string]any { return d.objectReading(nil) }

func (d *jsonDecoder) array() []any { return d.arrayReading(nil) }

// string reads the string at d.i; escapes and invalid UTF-8 go through
// encoding/json, for its exact decoding (U+FFFD replacements included).
func (d *jsonDecoder) string() string {
	start := d.i
	d.i = skipString(d.data, d.i)
	raw := d.text[start+1 : d.i-1]
	if strings.IndexByte(raw, '\\') < 0 && utf8.ValidString(raw) {
		return raw
	}
	var s string
	json.Unmarshal(d.data[start:d.i], &s)
	return s
}

// decodeJSONObjectStd is encoding/json's decoding, which decodeJSONObject
// reproduces.
func decodeJSONObjectStd(body []byte) (map[string]any, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc map[string]any
	if dec.Decode(&doc) != nil {
		return nil, false
	}
	return doc, true
}
