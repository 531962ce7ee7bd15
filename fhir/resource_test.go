package fhir

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// TestParseObjectScanIsTheDecoders: the scan of valid JSON splits an object
// exactly as the decoder does (members, order, raw values, keys with
// escapes), and refuses what it refuses with the same error.
func TestParseObjectScanIsTheDecoders(t *testing.T) {
	cases := []string{
		`{}`, ` { } `, `{"a":1}`, "{\n \"a\" : [1, {\"b\":\"}\"}] ,\t\"c\":\"x\\\"y\" }\n",
		`{"resourceType":"Patient","id":"p1","meta":{"versionId":"1"},"active":true,"x":null,"n":-1.5e3}`,
		`{"\u0061b":1,"c\\d":{"e":[[],{}]}}`, `{"a":"\u00e9\"\\"}`, `{"a":1,"a":2}`, `{"a":1,"\u0061":2}`,
		`[1]`, `"s"`, `1`, `null`, `{"a":1} x`, `{"a":1}{}`, `{"a":}`, `{`, ``, `{"a":1,}`,
		"{\"\xff\":1}",
	}
	files, _ := filepath.Glob("../testdata/examples/*/*.json")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, string(b))
	}
	for _, c := range cases {
		want, werr := decodeObject([]byte(c))
		got, gerr := ParseObject([]byte(c))
		if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
			t.Errorf("%.80q: error %v, want %v", c, gerr, werr)
			continue
		}
		if werr == nil && !reflect.DeepEqual(fields(got), fields(want)) {
			t.Errorf("%.80q: %v, want %v", c, fields(got), fields(want))
		}
	}
}

func fields(o Object) []string {
	out := []string{}
	for _, f := range o {
		out = append(out, f.Key, string(f.Value))
	}
	return out
}

// Stamp returns valid JSON, which the index and the search Bundles trust
// without validating it again: a body without a resourceType is refused
// (it would have been written "resourceType":,), not stamped.
func TestStampReturnsValidJSONOrRefuses(t *testing.T) {
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{`{"resourceType":"Basic","code":{"text":"x"}}`, true},
		{`{"id":"old","meta":{"versionId":"9","tag":[{"code":"t"}]},"resourceType":"Basic"}`, true},
		{`{"code":{"text":"x"}}`, false},
		{`{}`, false},
		{`[1]`, false},
	} {
		out, err := Stamp([]byte(tc.body), "new", 2, time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok %v", tc.body, err, tc.ok)
			continue
		}
		if tc.ok && !json.Valid(out) {
			t.Errorf("%s: stamped into invalid JSON %s", tc.body, out)
		}
	}
}
