package fhir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

var validJSONCases = []string{
	``, ` `, `{}`, `[]`, ` { } `, `{"a":1}`, `{"a":1,}`, `{,}`, `[1,]`, `[,1]`, `[1 2]`, `{"a" 1}`, `{"a":}`,
	`{"a":1 "b":2}`, `{1:2}`, `"x"`, `"x`, `"\"`, `"\u00e9"`, `"\u00g9"`, `"\u00e"`, `"\x"`, `"\/\b\f\n\r\t"`,
	"\"\x01\"", "\"\x7f\"", "\"\xff\xfe\"", "\"é\"", `0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`,
	`1e-`, `1e`, `-1.25e-10`, `true`, `tru`, `false`, `null`, `nul`, `nullx`, `[true,false,null]`, `{}{}`, `1 2`,
	`[[[]]]`, `[[[]]`, `]`, `}`, `{"a":[{"b":{"c":[1,2,{"d":null}]}}]}`, "{\"a\":\t1\r\n}", "\f1",
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
	strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001),
}

func TestValidJSONAgreesWithEncodingJSON(t *testing.T) {
	for _, c := range validJSONCases {
		if got, want := validJSON([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("validJSON(%.80q) = %v, json.Valid says %v", c, got, want)
		}
	}
	// every example whole, and cut short: every prefix of a valid body is invalid
	forEachExampleBody(t, func(f string, body []byte) {
		for _, b := range [][]byte{body, body[:len(body)/2], body[:len(body)*9/10]} {
			if got, want := validJSON(b), json.Valid(b); got != want {
				t.Fatalf("%s: validJSON = %v, json.Valid says %v for %.120q", f, got, want, b)
			}
		}
	})
}

func FuzzValidJSONAgreesWithEncodingJSON(f *testing.F) {
	for _, c := range validJSONCases {
		if len(c) < 1000 {
			f.Add([]byte(c))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := validJSON(data), json.Valid(data); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", data, got, want)
		}
	})
}

// compactCases are whitespace in every place JSON allows it, and inside
// strings where it must stay, escaped quotes and backslashes included.
var compactCases = []string{
	" {\n  \"a\" : [ 1 , 2 ,\t{ \"b\" : \"x y\" } ] ,\r\n \"c\":\"\\\" }\" } ",
	`"a \\"`, `[ "\\\\" , " " ]`, ` true `, "\"\u00e9 \\n\"",
}

func TestAppendCompactWritesWhatJSONCompactWrites(t *testing.T) {
	check := func(name string, data []byte) {
		t.Helper()
		var want bytes.Buffer
		wantOK := json.Compact(&want, data) == nil
		got, ok := AppendCompact([]byte("prefix"), data)
		if ok != wantOK {
			t.Fatalf("%s: ok = %v, json.Compact's error says %v", name, ok, wantOK)
		}
		if !ok {
			if string(got) != "prefix" {
				t.Fatalf("%s: invalid JSON changed dst to %q", name, got)
			}
			return
		}
		if string(got) != "prefix"+want.String() {
			t.Fatalf("%s: AppendCompact wrote %.200q, json.Compact %.200q", name, got[len("prefix"):], want.Bytes())
		}
	}
	for _, c := range append(compactCases, validJSONCases...) {
		check(fmt.Sprintf("%.40q", c), []byte(c))
	}
	// every example, whole and indented, and each of its lines (most of
	// them not JSON on their own)
	forEachExampleBody(t, func(f string, body []byte) {
		check(f, body)
		var indented bytes.Buffer
		if json.Indent(&indented, body, " ", "\t") == nil {
			check(f+" indented", indented.Bytes())
		}
	})
}

func BenchmarkValidJSON(b *testing.B) {
	data, err := os.ReadFile("../testdata/synthea/bundles/" + firstFile(b, "../testdata/synthea/bundles"))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		valid func([]byte) bool
	}{{"validJSON", validJSON}, {"encoding-json", json.Valid}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for i := 0; i < b.N; i++ {
				if !c.valid(data) {
					b.Fatal("invalid")
				}
			}
		})
	}
}

func firstFile(b *testing.B, dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		b.Fatalf("no file in %s: %v", dir, err)
	}
	return entries[0].Name()
}

func TestValidIDIsTheR4Pattern(t *testing.T) {
	pattern := regexp.MustCompile(`^[A-Za-z0-9\-\.]{1,64}$`)
	cases := []string{"", "a", "A-1.b", strings.Repeat("x", 64), strings.Repeat("x", 65), "a b", "a_b", "é", "a/b",
		"01a21779-7c70-7bfa-a67c-a66aa01fcdf3", "a\n", "-", ".", "a$"}
	for _, c := range cases {
		if got, want := ValidID(c), pattern.MatchString(c); got != want {
			t.Errorf("ValidID(%q) = %v, the pattern says %v", c, got, want)
		}
	}
}

// skipString ends a string at its closing quote, whatever backslashes and
// escaped quotes come before it.
func TestSkipStringEndsAtTheClosingQuote(t *testing.T) {
	cases := []string{"", "a", `"`, `\`, `\"`, `\\`, `\\"`, `a\\\"b`, "é\u2028<>&", `""\\\\""`, strings.Repeat(`\`, 7) + `"`}
	for n := 25; n < 40; n++ { // escapes around the 32 bytes scanned a byte at a time
		for _, tail := range []string{`"`, `\`, `\"`, `\\`, `"x`, `\x"y`} {
			cases = append(cases, strings.Repeat("a", n)+tail, strings.Repeat(`\`, n)+tail)
		}
	}
	for _, s := range cases {
		enc, _ := json.Marshal(s)
		for _, raw := range [][]byte{enc, []byte(strings.ReplaceAll(string(enc), `\u003c`, `<`))} {
			data := append(append([]byte(nil), raw...), `,"next"`...)
			if got := skipString(data, 0); got != len(raw) {
				t.Errorf("skipString(%s) = %d, want %d", data, got, len(raw))
			}
		}
	}
}
