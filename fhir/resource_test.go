package fhir

import (
	"bytes"
	"encoding/json"
	"fmt"
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

// A stamp prepared ahead and completed with the time is the stamp: on every
// example resource, for times of every length and zone, and it refuses what
// Stamp refuses.
func TestAStampPreparedAheadIsTheStamp(t *testing.T) {
	paris := time.FixedZone("Europe/Paris", 3600)
	times := []time.Time{
		time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 26, 23, 59, 59, 999_999_999, paris),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), // five digits: longer than the placeholder
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	var checked int
	forEachExampleBody(t, func(file string, body []byte) {
		if len(body) == 0 || body[0] != '{' {
			return
		}
		for i, at := range times {
			id, version := fmt.Sprintf("id-%d", i), int64(1+i*7)
			want, errStamp := Stamp(body, id, version, at)
			st, errAhead := PrepareStamp(body, id, version)
			if (errStamp == nil) != (errAhead == nil) {
				t.Fatalf("%s: Stamp error %v, PrepareStamp error %v", file, errStamp, errAhead)
			}
			if errStamp != nil {
				return
			}
			if got := st.At(at); !bytes.Equal(got, want) {
				t.Fatalf("%s at %v: prepared ahead\n%s\nStamp\n%s", file, at, got, want)
			}
			checked++
		}
	})
	if checked < 1000 {
		t.Fatalf("only %d stamps compared", checked)
	}
	if _, err := PrepareStamp([]byte(`{"code":{"text":"x"}}`), "a", 1); err == nil {
		t.Fatal("a body without resourceType was prepared")
	}
}

// TestPrepareStampOfNewIsStamp checks the splice against Stamp on every
// example turned into what a caller may give it: compact, resourceType
// first, no id and no meta.
func TestPrepareStampOfNewIsStamp(t *testing.T) {
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	var checked int
	forEachExampleBody(t, func(file string, body []byte) {
		obj, err := ParseObject(body)
		if err != nil || obj.Get("resourceType") == nil {
			return
		}
		fresh := Object{{Key: "resourceType", Value: obj.Get("resourceType")}}
		for _, f := range obj {
			if f.Key != "resourceType" && f.Key != "id" && f.Key != "meta" {
				fresh = append(fresh, f)
			}
		}
		body, _ = fresh.MarshalJSON()
		want, err := Stamp(body, "new-1", 1, at)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		st, err := PrepareStampOfNew(body, "new-1", 1)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if got := st.At(at); !bytes.Equal(got, want) {
			t.Fatalf("%s: spliced\n%s\nStamp\n%s", file, got, want)
		}
		checked++
	})
	if checked < 500 {
		t.Fatalf("only %d stamps compared", checked)
	}
	for _, body := range []string{
		`{"code":{"text":"x"}}`,
		`{ "resourceType":"Basic"}`,
		`{"resourceType":"Basic" ,"code":{}}`,
		`{"resourceType":"","code":{}}`,
		`{"resourceType":"Ba\"sic","code":{}}`,
		`{"resourceType":"Basic"`,
	} {
		if _, err := PrepareStampOfNew([]byte(body), "a", 1); err == nil {
			t.Errorf("%s was stamped", body)
		}
	}
	if st, err := PrepareStampOfNew([]byte(`{"resourceType":"Basic"}`), "a", 1); err != nil || string(st.At(at)) != `{"resourceType":"Basic","id":"a","meta":{"versionId":"1","lastUpdated":"2026-11-27T08:00:00.000Z"}}` {
		t.Errorf("a resource of its resourceType alone: %v", err)
	}
}

// TestAppendStringIsEncodingJSONs: AppendString writes every string as
// encoding/json does: plain ASCII, text in other languages, every character
// JSON or HTML escaping touches, the line and paragraph separators, invalid
// UTF-8, and every rune up to U+3000 and a sample beyond, alone and inside
// text.
func TestAppendStringIsEncodingJSONs(t *testing.T) {
	cases := []string{"", "vital-signs", "http://loinc.org|8867-4", "Accès normal", "日本語のテキスト", "emoji 🩺 ok",
		`quote " here`, `back\slash`, "tab\there", "nl\n", "\x00\x1f\x7f", "<b>&amp;</b>", "a\u2028b\u2029c",
		"bad \xff utf-8", "cut \xe2\x80", "\xed\xa0\x80 surrogate", "\uFFFD replacement"}
	for r := rune(0); r < 0x3000; r++ {
		cases = append(cases, string(r), "x"+string(r)+"y")
	}
	for r := rune(0x3000); r < 0x110000; r += 997 {
		cases = append(cases, string(r))
	}
	for _, s := range cases {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendString([]byte("ab"), s); !bytes.Equal(got, append([]byte("ab"), want...)) {
			t.Errorf("AppendString(%q) = %s, want ab%s", s, got, want)
		}
	}
}
