package api

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/dmp-fhir/dmp-fhir/fhir"
)

// readBundle reads what json.Unmarshal read of a Bundle, for every example
// Bundle and for the odd ones below, and refuses what it refused.
func TestReadBundleReadsWhatJSONUnmarshalRead(t *testing.T) {
	bodies := []string{
		`{"resourceType":"Bundle","type":"batch"}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":null}`,
		`{"resourceType":"Bundle","type":null,"entry":[null,{},{"request":null,"resource":null,"fullUrl":null}]}`,
		`{"resourceType":"Bundle","type":"batch","entry":[{"fullUrl":"urn:uuid:\u0061bc","request":{"method":"GET","url":"Patient?name=\u00e9l\"o","ifNoneMatch":"*","ifMatch":"W/\"1\"","ifNoneExist":"x=1","extra":1},"resource":{"resourceType":"Patient" , "id" : "p"}}]}`,
		"{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":[{\"fullUrl\":\"\xff\xfe\",\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}}]}",
	}
	refused := []string{
		`{"resourceType":"Bundle","type":1}`,
		`{"resourceType":"Bundle","type":"batch","entry":{}}`,
		`{"resourceType":"Bundle","type":"batch","entry":[1]}`,
		`{"resourceType":"Bundle","type":"batch","entry":[{"fullUrl":2}]}`,
		`{"resourceType":"Bundle","type":"batch","entry":[{"request":[]}]}`,
		`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"url":true}}]}`,
	}
	for _, pattern := range []string{"../testdata/examples/Bundle/*.json", "../testdata/synthea/bundles/*.json", "../testdata/pdsm/Bundle-*.json"} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			bodies = append(bodies, string(data))
		}
	}
	if len(bodies) < 20 {
		t.Fatalf("only %d Bundles", len(bodies))
	}
	for _, body := range bodies {
		res, err := fhir.ParseResource([]byte(body))
		if err != nil {
			t.Fatalf("%.80s: %v", body, err)
		}
		got, err := readBundle(res.Fields)
		var want parsedBundle
		if werr := json.Unmarshal([]byte(body), &want); werr != nil {
			t.Fatalf("%.80s: json.Unmarshal: %v", body, werr)
		}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%.80s: readBundle %+v %v\njson.Unmarshal %+v", body, got, err, want)
		}
	}
	for _, body := range refused {
		res, err := fhir.ParseResource([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		var want parsedBundle
		if json.Unmarshal([]byte(body), &want) == nil {
			t.Fatalf("%s: json.Unmarshal took it", body)
		}
		if _, err := readBundle(res.Fields); err == nil {
			t.Fatalf("%s: readBundle took it", body)
		}
	}
}

func BenchmarkBundleEntries(b *testing.B) {
	files, _ := filepath.Glob("../testdata/synthea/bundles/*.json")
	body, err := os.ReadFile(files[0])
	if err != nil {
		b.Fatal(err)
	}
	res, err := fhir.ParseResource(body)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("readBundle", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for i := 0; i < b.N; i++ {
			readBundle(res.Fields)
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for i := 0; i < b.N; i++ {
			var p parsedBundle
			json.Unmarshal(body, &p)
		}
	})
}
