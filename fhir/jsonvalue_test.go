package fhir

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The fast decoder gives exactly what encoding/json gives (UseNumber) for
// every official and French example and the edge cases below, valid or not.
func TestDecodeJSONObjectAgreesWithEncodingJSON(t *testing.T) {
	var bodies [][]byte
	for _, dir := range []string{"../testdata/examples", "../testdata/pdsm", "../testdata/synthea"} {
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(path, ".json") {
				b, _ := os.ReadFile(path)
				bodies = append(bodies, b)
			}
			return nil
		})
	}
	if len(bodies) < 100 {
		t.Fatalf("only %d examples found", len(bodies))
	}
	for _, s := range []string{
		`{}`, ` { } `, "{\n\t\"a\" : 1 ,\r\n \"b\":[1,{\"c\":\"}\"}], \"d\":\"x\\\"}\" }\n",
		`{"k\u00e9y":true,"n":null,"f":-1.5e3,"s":"\\","o":{"a":[[],{}]},"e":[]}`,
		`{"a":"]","a":"last wins"}`, `{"a":"\ud83d\ude00 \u0000 \/"}`, "{\"bad\":\"\xff\xfe\"}",
		`{"a":1} trailing`, `[1]`, `"x"`, `{"a":`, ``, `{"a":01}`, `{"a":1}{"b":2}`,
	} {
		bodies = append(bodies, []byte(s))
	}
	for _, b := range bodies {
		fast, okFast := decodeJSONObject(b, false)
		std, okStd := decodeJSONObjectStd(b)
		if okFast != okStd || !reflect.DeepEqual(fast, std) {
			t.Fatalf("%.100q: fast (%v) %v\nencoding/json (%v) %v", b, okFast, fast, okStd, std)
		}
	}
}

func BenchmarkDecodeJSONObject(b *testing.B) {
	body, err := os.ReadFile("../testdata/examples/Observation/Observation-blood-pressure.json")
	if err != nil {
		b.Fatal(err)
	}
	for _, d := range []struct {
		name   string
		decode func([]byte) (map[string]any, bool)
	}{
		{"fast", func(b []byte) (map[string]any, bool) { return decodeJSONObject(b, false) }},
		{"fast-known-valid", func(b []byte) (map[string]any, bool) { return decodeJSONObject(b, true) }},
		{"encoding-json", decodeJSONObjectStd},
	} {
		b.Run(d.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := d.decode(body); !ok {
					b.Fatal("not decoded")
				}
			}
		})
	}
}

// What Stamp returns is indexed without validating it again, and the index
// is the same as ExtractIndex's, for every example that stamps.
func TestExtractIndexOfStampedAgreesWithExtractIndex(t *testing.T) {
	n := 0
	for _, dir := range []string{"../testdata/examples", "../testdata/pdsm"} {
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !strings.HasSuffix(path, ".json") {
				return nil
			}
			b, _ := os.ReadFile(path)
			stamped, err := Stamp(b, "stamped-id", 3, time.Date(2026, 11, 26, 6, 0, 0, 0, time.UTC))
			if err != nil {
				return nil
			}
			n++
			if got, want := ExtractIndexOfStamped(stamped), ExtractIndex(stamped); !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %+v, ExtractIndex %+v", path, got, want)
			}
			return nil
		})
	}
	if n < 100 {
		t.Fatalf("only %d examples stamped", n)
	}
}
