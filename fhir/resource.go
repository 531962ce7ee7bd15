package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"time"
	"unicode/utf8"
)

// Field is one member of a JSON object, its value kept as the exact text sent
// so that decimals, unknown elements and primitive extensions survive.
type Field struct {
	Key   string
	Value json.RawMessage
}

// Object is a JSON object with its members in the order they were sent.
type Object []Field

// Get returns the raw value of key, or nil.
func (o Object) Get(key string) json.RawMessage {
	for _, f := range o {
		if f.Key == key {
			return f.Value
		}
	}
	return nil
}

// Set replaces the value of key, or appends it.
func (o Object) Set(key string, value json.RawMessage) Object {
	for i, f := range o {
		if f.Key == key {
			o[i].Value = value
			return o
		}
	}
	return append(o, Field{Key: key, Value: value})
}

// Without returns the object without key.
func (o Object) Without(key string) Object {
	out := make(Object, 0, len(o))
	for _, f := range o {
		if f.Key != key {
			out = append(out, f)
		}
	}
	return out
}

// MarshalJSON writes the members in order.
func (o Object) MarshalJSON() ([]byte, error) {
	n := 2
	for _, f := range o {
		n += len(f.Key) + len(f.Value) + 4
	}
	buf := make([]byte, 0, n)
	buf = append(buf, '{')
	for i, f := range o {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(AppendString(buf, f.Key), ':')
		buf = append(buf, f.Value...)
	}
	return append(buf, '}'), nil
}

// AppendString appends s as a JSON string, as encoding/json writes it: as
// it is when nothing in it needs escaping (element names, ids, URLs, codes,
// and text in any language), else through encoding/json.
func AppendString(dst []byte, s string) []byte {
	if plainString(s) {
		return append(append(append(dst, '"'), s...), '"')
	}
	q, _ := json.Marshal(s) // a string always encodes
	return append(dst, q...)
}

// plainString reports whether encoding/json writes s as it is: no control
// character, quote, backslash or HTML character (<, >, &), valid UTF-8, and
// neither U+2028 nor U+2029.
func plainString(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			return false
		}
		i += size
	}
	return true
}

// ParseObject reads one JSON object, keeping its members in order. It refuses
// anything else: another JSON value, duplicate keys, trailing data.
//
// Valid JSON (nearly every body: validated ones are parsed again on their
// way to the store) is split by a plain scan of the members, a fifth of the
// decoder's cost; anything else goes through the decoder, for its error.
func ParseObject(data []byte) (Object, error) {
	if validJSON(data) {
		if obj, err, ok := scanObject(data); ok {
			return obj, err
		}
	}
	return decodeObject(data)
}

// ParseObjectInPlace is ParseObject without its copy of data: the values
// are slices of data, which the caller must not change while they are in
// use (a member of a body ParseObject returned, say).
func ParseObjectInPlace(data []byte) (Object, error) {
	if validJSON(data) {
		if obj, err, ok := scanObjectIn(data); ok {
			return obj, err
		}
	}
	return decodeObject(data)
}

// ObjectsOf splits a JSON array of objects into them, their values slices
// of data (which the caller must not change while they are in use); a null
// element is a nil Object. ok is false when data is not a JSON array; err
// reports a malformed element (not an object, a member twice), with its
// index.
func ObjectsOf(data []byte) (objs []Object, bad int, err error, ok bool) {
	if !validJSON(data) {
		return nil, 0, nil, false
	}
	i := skipSpace(data, 0)
	if data[i] != '[' {
		return nil, 0, nil, false
	}
	i = skipSpace(data, i+1)
	if data[i] == ']' {
		return []Object{}, 0, nil, true
	}
	for {
		end := skipValue(data, i)
		var obj Object
		if string(data[i:end]) != "null" {
			o, err, isObj := scanObjectIn(data[i:end:end])
			if !isObj {
				return nil, len(objs), errors.New("an element must be an object"), true
			}
			if err != nil {
				return nil, len(objs), err, true
			}
			obj = o
		}
		objs = append(objs, obj)
		i = skipSpace(data, end)
		if data[i] != ',' {
			return objs, 0, nil, true
		}
		i = skipSpace(data, i+1)
	}
}

// scanObject splits valid JSON into its top-level members; ok is false when
// it is not an object. The values share one copy of data.
func scanObject(data []byte) (obj Object, err error, ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, nil, false
	}
	return scanObjectIn(append([]byte(nil), data...))
}

// scanObjectIn is scanObject with values that are slices of data itself.
func scanObjectIn(data []byte) (obj Object, err error, ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, nil, false
	}
	i = skipSpace(data, i+1)
	if data[i] == '}' {
		return Object{}, nil, true
	}
	for {
		end := skipString(data, i)
		key := data[i+1 : end-1]
		var k string
		if bytes.IndexByte(key, '\\') >= 0 || !utf8.Valid(key) {
			if json.Unmarshal(data[i:end], &k) != nil {
				return nil, nil, false
			}
		} else {
			k = string(key)
		}
		for _, f := range obj {
			if f.Key == k {
				return nil, fmt.Errorf("malformed JSON: duplicate element %q", k), true
			}
		}
		i = skipSpace(data, end)
		i = skipSpace(data, i+1) // the colon
		vend := skipValue(data, i)
		obj = append(obj, Field{Key: k, Value: json.RawMessage(data[i:vend:vend])})
		i = skipSpace(data, vend)
		if data[i] == '}' {
			return obj, nil, true
		}
		i = skipSpace(data, i+1) // the comma
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the end of the (valid) string starting at i.
//
// Most strings of a resource are short (keys, codes): they are scanned a
// byte at a time; past 32 bytes the next quote is looked for with
// bytes.IndexByte (vectorized), and taken when an even number of
// backslashes precedes it.
func skipString(data []byte, i int) int {
	end := min(len(data), i+33)
	for i++; i < end; i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	for {
		if i >= len(data) {
			return len(data) // not valid JSON
		}
		j := bytes.IndexByte(data[i:], '"')
		if j < 0 {
			return len(data) // not valid JSON
		}
		q := i + j
		n := 0
		for p := q - 1; p >= 0 && data[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q + 1
		}
		i = q + 1
	}
}

// skipValue returns the end of the (valid) value starting at i.
func skipValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for {
			switch data[i] {
			case '"':
				i = skipString(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
	default: // number, true, false, null
		for i < len(data) {
			switch data[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

func decodeObject(data []byte) (Object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("malformed JSON: %v", jsonErr(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("malformed JSON: expected an object")
	}
	var obj Object
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("malformed JSON: %v", jsonErr(err))
		}
		key := tok.(string)
		if seen[key] {
			return nil, fmt.Errorf("malformed JSON: duplicate element %q", key)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("malformed JSON at %q: %v", key, jsonErr(err))
		}
		obj = append(obj, Field{Key: key, Value: raw})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("malformed JSON: %v", jsonErr(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("malformed JSON: unexpected data after the resource")
	}
	return obj, nil
}

func jsonErr(err error) string {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return "unexpected end of input"
	}
	return err.Error()
}

// ValidID reports whether s is a FHIR logical id: 1 to 64 of A-Z, a-z, 0-9,
// '-' and '.' (the R4 pattern [A-Za-z0-9\-\.]{1,64}, checked by hand: a
// regexp match was 2% of an import).
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// Resource is a parsed resource body with the few members the server itself
// needs; everything else stays as sent.
type Resource struct {
	Type   string
	ID     string // "" when absent
	Fields Object
}

// ParseResource reads a resource body: a JSON object with a string resourceType.
func ParseResource(body []byte) (*Resource, error) {
	return resourceOf(ParseObject(body))
}

// ParseResourceInPlace is ParseResource without its copy of body: the
// Fields' values are slices of body, which the caller must not change while
// they are in use.
func ParseResourceInPlace(body []byte) (*Resource, error) {
	return resourceOf(ParseObjectInPlace(body))
}

func resourceOf(obj Object, err error) (*Resource, error) {
	if err != nil {
		return nil, Invalid("", err.Error())
	}
	r := &Resource{Fields: obj}
	rt := obj.Get("resourceType")
	if rt == nil {
		return nil, Invalid("", "the resource has no resourceType")
	}
	if err := json.Unmarshal(rt, &r.Type); err != nil || r.Type == "" {
		return nil, Invalid("resourceType", "resourceType must be a non-empty string")
	}
	if raw := obj.Get("id"); raw != nil {
		if err := json.Unmarshal(raw, &r.ID); err != nil {
			return nil, Invalid(r.Type+".id", "id must be a string")
		}
	}
	return r, nil
}

// InstantFormat is how lastUpdated is written: a FHIR instant in UTC, millisecond precision.
const InstantFormat = "2006-01-02T15:04:05.000Z07:00"

// Stamp returns body with the server-set id, meta.versionId and
// meta.lastUpdated; the other members of meta (profile, tag, security, ...)
// and of the resource are kept as sent, in order, with resourceType first.
func Stamp(body []byte, id string, version int64, lastUpdated time.Time) ([]byte, error) {
	return stamp(body, id, version, lastUpdated.UTC().Format(InstantFormat))
}

func stamp(body []byte, id string, version int64, lastUpdated string) ([]byte, error) {
	obj, err := ParseObject(body)
	if err != nil {
		return nil, err
	}
	// What Stamp returns is trusted as valid JSON (ExtractIndexOfStamped,
	// the search Bundles that splice stored bodies): no member left empty.
	if obj.Get("resourceType") == nil {
		return nil, Invalid("resourceType", "a resource needs its resourceType")
	}
	var meta Object
	if raw := obj.Get("meta"); raw != nil {
		if meta, err = ParseObject(raw); err != nil {
			return nil, Invalid("meta", "meta must be an object")
		}
	}
	v, _ := json.Marshal(fmt.Sprint(version))
	t, _ := json.Marshal(lastUpdated)
	meta = meta.Without("versionId").Without("lastUpdated")
	meta = append(Object{{Key: "versionId", Value: v}, {Key: "lastUpdated", Value: t}}, meta...)
	metaRaw, _ := meta.MarshalJSON()
	idRaw, _ := json.Marshal(id)

	out := Object{{Key: "resourceType", Value: obj.Get("resourceType")}, {Key: "id", Value: idRaw}, {Key: "meta", Value: metaRaw}}
	for _, f := range obj {
		switch f.Key {
		case "resourceType", "id", "meta":
		default:
			out = append(out, f)
		}
	}
	return out.MarshalJSON()
}

// StampAhead is Stamp done before the time is known: the stamped body with
// its lastUpdated left to At. A store takes the time of a write inside its
// write lock (so that lastUpdated follows the commit order), and a
// transaction stamps its creates ahead, outside the lock, where the JSON
// pass costs nothing to the other writers.
type StampAhead struct {
	out []byte // stamped, with a placeholder instant of the right length
	at  int    // offset of the instant's text in out
}

// instantPlaceholder marks where the instant goes.
const instantPlaceholder = "0000-00-00T00:00:00.000Z"

// PrepareStamp returns the Stamp of body with id and version, for At to
// complete with the time.
func PrepareStamp(body []byte, id string, version int64) (*StampAhead, error) {
	out, err := stamp(body, id, version, instantPlaceholder)
	if err != nil {
		return nil, err
	}
	// The instant is the first lastUpdated in out: Stamp writes meta third,
	// with versionId then lastUpdated, after the resourceType and the id,
	// which are JSON strings (a quote in them is escaped).
	at := bytes.Index(out, []byte(`"lastUpdated":"`+instantPlaceholder+`"`))
	if at < 0 {
		return nil, fmt.Errorf("fhir: stamp: lastUpdated not found")
	}
	return &StampAhead{out: out, at: at + len(`"lastUpdated":"`)}, nil
}

// PrepareStampOfNew is PrepareStamp for a body the caller marshalled itself
// (encoding/json of a struct): compact JSON, resourceType its first member,
// and neither an id nor a meta member anywhere at its top level, which only
// the caller can vouch for. It splices the id and meta in after the
// resourceType instead of parsing the body, and returns what PrepareStamp
// returns for it, byte for byte. A body that does not start as such a
// resource is refused.
func PrepareStampOfNew(body []byte, id string, version int64) (*StampAhead, error) {
	const head = `{"resourceType":"`
	if !bytes.HasPrefix(body, []byte(head)) {
		return nil, errors.New("fhir: stamp of new: the body does not start with its resourceType")
	}
	end := bytes.IndexByte(body[len(head):], '"') + len(head)
	if end < len(head)+1 || end+1 >= len(body) || (body[end+1] != ',' && body[end+1] != '}') || !plainString(string(body[len(head):end])) {
		return nil, errors.New("fhir: stamp of new: the resourceType is not a plain string member")
	}
	out := make([]byte, 0, len(body)+len(id)+len(instantPlaceholder)+64)
	out = append(out, body[:end+1]...)
	out = AppendString(append(out, `,"id":`...), id)
	out = strconv.AppendInt(append(out, `,"meta":{"versionId":"`...), version, 10)
	out = append(out, `","lastUpdated":"`...)
	at := len(out)
	out = append(append(out, instantPlaceholder...), `"}`...)
	out = append(out, body[end+1:]...)
	return &StampAhead{out: out, at: at}, nil
}

// At returns the stamped body with lastUpdated t: what Stamp returns with
// the same arguments.
// The instant is spliced in, not copied over the placeholder: a year past
// 9999 or before 0 is longer.
func (s *StampAhead) At(t time.Time) []byte {
	out := make([]byte, 0, len(s.out)+8)
	out = t.UTC().AppendFormat(append(out, s.out[:s.at]...), InstantFormat)
	return append(out, s.out[s.at+len(instantPlaceholder):]...)
}

// SameContent reports whether two resource bodies say the same thing once the
// server-set id, meta.versionId and meta.lastUpdated are left aside: an update
// that changes nothing else makes no new version.
func SameContent(a, b []byte) bool {
	na, errA := contentValue(a)
	nb, errB := contentValue(b)
	return errA == nil && errB == nil && reflect.DeepEqual(na, nb)
}

func contentValue(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	delete(m, "id")
	if meta, ok := m["meta"].(map[string]any); ok {
		delete(meta, "versionId")
		delete(meta, "lastUpdated")
		if len(meta) == 0 {
			delete(m, "meta")
		}
	}
	return m, nil
}

// ParameterResource returns the resource of the named parameter of a
// Parameters resource (as in $validate's `resource` parameter).
func ParameterResource(params *Resource, name string) ([]byte, error) {
	var p struct {
		Parameter []struct {
			Name     string          `json:"name"`
			Resource json.RawMessage `json:"resource"`
		} `json:"parameter"`
	}
	raw, _ := params.Fields.MarshalJSON()
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, Invalid("Parameters.parameter", "malformed Parameters: "+err.Error())
	}
	for _, pp := range p.Parameter {
		if pp.Name == name && pp.Resource != nil {
			return pp.Resource, nil
		}
	}
	return nil, Invalid("Parameters.parameter", "no parameter "+name+" with a resource")
}

// Marshal renders a resource the server builds (a samply model), with
// resourceType first as FHIR JSON is conventionally written: the samply
// models put it last.
func Marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	obj, err := ParseObject(b)
	if err != nil {
		return nil, err
	}
	rt := obj.Get("resourceType")
	if rt == nil {
		return b, nil
	}
	return append(Object{{Key: "resourceType", Value: rt}}, obj.Without("resourceType")...).MarshalJSON()
}
