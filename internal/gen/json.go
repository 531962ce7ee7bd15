package gen

import (
	"encoding/json"
	"strconv"
)

// obj is a JSON object that keeps its fields in order (resourceType
// first, as FHIR servers and people write it).
type obj []field

type field struct {
	k string
	v any
}

type arr []any

func (o obj) json() []byte { return o.append(make([]byte, 0, 512)) }

func (o obj) append(b []byte) []byte {
	b = append(b, '{')
	for i, f := range o {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, f.k)
		b = append(b, ':')
		b = appendValue(b, f.v)
	}
	return append(b, '}')
}

func appendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case obj:
		return x.append(b)
	case arr:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendValue(b, e)
		}
		return append(b, ']')
	case string:
		s, _ := json.Marshal(x) // JSON escaping, not Go's
		return append(b, s...)
	case bool:
		return strconv.AppendBool(b, x)
	case int:
		return strconv.AppendInt(b, int64(x), 10)
	case float64:
		return strconv.AppendFloat(b, x, 'f', -1, 64)
	}
	panic("gen: unsupported JSON value")
}
