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
	if !valid && !validJSON(body) {
		return decodeJSONObjectStd(body)
	}
	d := jsonDecoder{data: body, text: string(body)}
	d.space()
	if d.i >= len(d.data) || d.data[d.i] != '{' {
		return nil, false
	}
	return d.object(), true
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

func (d *jsonDecoder) object() map[string]any {
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
		m[key] = d.value()
		d.space()
		c := d.data[d.i]
		d.i++
		if c == '}' {
			return m
		}
	}
}

func (d *jsonDecoder) array() []any {
	a := []any{}
	d.i++ // [
	d.space()
	if d.data[d.i] == ']' {
		d.i++
		return a
	}
	for {
		a = append(a, d.value())
		d.space()
		c := d.data[d.i]
		d.i++
		if c == ']' {
			return a
		}
	}
}

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
