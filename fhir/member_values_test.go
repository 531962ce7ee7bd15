package fhir

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
)

// The patterns memberValues replaced: the reference it must match.
var (
	referenceOrURLPattern = regexp.MustCompile(`"(?:reference|url)"\s*:\s*"([^"]*)"`)
	referencePattern      = regexp.MustCompile(`"reference"\s*:\s*"([^"]*)"`)
)

func patternValues(re *regexp.Regexp, body []byte) [][2]int {
	var out [][2]int
	for _, m := range re.FindAllSubmatchIndex(body, -1) {
		out = append(out, [2]int{m[2], m[3]})
	}
	return out
}

func checkMemberValues(t *testing.T, body []byte) {
	t.Helper()
	if bytes.IndexByte(body, '\\') >= 0 || bytes.IndexByte(body, '\f') >= 0 {
		return // not the scan's input (and \f is a space to the pattern only)
	}
	if got, want := memberValues(body, true), patternValues(referenceOrURLPattern, body); !reflect.DeepEqual(got, want) {
		t.Fatalf("reference and url values of %.200q:\n got %v\nwant %v", body, got, want)
	}
	if got, want := memberValues(body, false), patternValues(referencePattern, body); !reflect.DeepEqual(got, want) {
		t.Fatalf("reference values of %.200q:\n got %v\nwant %v", body, got, want)
	}
}

var memberValuesCases = []string{
	`{"subject":{"reference":"Patient/1"},"content":[{"attachment":{"url":"Binary/2"}}]}`,
	`{"subject": {"reference" :	"Patient/1"}, "url" :"http://x"}`,
	`{"reference":12,"url":null,"x":{"reference":""}}`,
	`{"code":"url","display":"reference"}`,
	`{"a":["url","reference",{"url":"u"}]}`,
	`""reference":"x"`,
	`"reference":"unterminated`,
	`"reference" : `,
	`"url""reference":"y"`,
	`{"referenceRange":[{"text":"r"}],"urls":"u","reference":"z"}`,
}

func TestMemberValuesFindWhatThePatternFound(t *testing.T) {
	for _, c := range memberValuesCases {
		checkMemberValues(t, []byte(c))
	}
	forEachExampleBody(t, func(_ string, body []byte) { checkMemberValues(t, body) })
}

// forEachExampleBody calls fn with every example file of testdata (HL7
// examples, Synthea Bundles and NDJSON) whole, then with each of its lines.
func forEachExampleBody(t *testing.T, fn func(file string, body []byte)) {
	t.Helper()
	files, _ := filepath.Glob("../testdata/examples/*/*.json")
	more, _ := filepath.Glob("../testdata/synthea/*/*")
	files = append(files, more...)
	if len(files) < 50 {
		t.Fatalf("only %d example files found", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fn(f, data)
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			fn(f, sc.Bytes())
		}
	}
}

func FuzzMemberValuesFindWhatThePatternFound(f *testing.F) {
	for _, c := range memberValuesCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkMemberValues(t, body) })
}
