package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/dmp-fhir/dmp-fhir/store/sqlite"
)

// TestImportOfBundlesSentTogetherIsThatOfOneByOne: the import sends several
// transactions at once; Bundles that need another one of the same import
// (a conditional reference to the Practitioner a.json creates) or that
// race on the same conditional create (the Organization of every file)
// still load with no failure and no duplicate, and a second run changes
// nothing.
func TestImportOfBundlesSentTogetherIsThatOfOneByOne(t *testing.T) {
	src := t.TempDir()
	write := func(name string, entries ...string) {
		body := `{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const org = `{"fullUrl":"urn:uuid:0a000000-0000-4000-8000-000000000000","resource":{"resourceType":"Organization","identifier":[{"system":"urn:test:org","value":"shared"}],"name":"Shared"},"request":{"method":"POST","url":"Organization","ifNoneExist":"identifier=urn:test:org|shared"}}`
	write("a.json", `{"fullUrl":"urn:uuid:0b000000-0000-4000-8000-000000000000","resource":{"resourceType":"Practitioner","identifier":[{"system":"urn:test:ps","value":"p1"}]},"request":{"method":"POST","url":"Practitioner","ifNoneExist":"identifier=urn:test:ps|p1"}}`, org)
	const patients = 6
	for i := range patients {
		pat := fmt.Sprintf("urn:uuid:0c000000-0000-4000-8000-%012d", i)
		write(fmt.Sprintf("b%d.json", i), org,
			`{"fullUrl":"`+pat+`","resource":{"resourceType":"Patient","name":[{"family":"P`+fmt.Sprint(i)+`"}]},"request":{"method":"POST","url":"Patient"}}`,
			`{"fullUrl":"urn:uuid:0d000000-0000-4000-8000-`+fmt.Sprintf("%012d", i)+`","resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"`+pat+`"},"performer":[{"reference":"Practitioner?identifier=urn:test:ps|p1"}]},"request":{"method":"POST","url":"Observation"}}`)
	}
	dir := t.TempDir()
	run := func() string {
		var out bytes.Buffer
		if err := importCmd([]string{"-data-dir", dir, src}, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		return strings.Join(lines[len(lines)-1:], "\n")
	}
	// Created: the Practitioner, the Organization once, each patient and
	// their Observation; the Organization of the other files is found.
	want := fmt.Sprintf("%d created, 0 updated, %d unchanged, 0 failed", 2+2*patients, patients)
	if first := run(); !strings.Contains(first, want) {
		t.Fatalf("first import: %s, want %s", first, want)
	}
	if second := run(); !strings.Contains(second, " 0 created, 0 updated,") || !strings.Contains(second, " 0 failed") {
		t.Fatalf("second import changed something: %s", second)
	}
}

// writeBundle writes the Bundle json.Marshal wrote before it: the same JSON
// once decoded, for the entries of every kind the import sends.
func TestWriteBundleSaysWhatJSONMarshalSays(t *testing.T) {
	var entries []entry
	files, _ := filepath.Glob("testdata/synthea/bulk-10-patients/*.ndjson")
	if len(files) == 0 {
		t.Fatal("no NDJSON file in testdata/synthea/bulk-10-patients")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 64<<20)
		for i := 0; sc.Scan() && i < 20; i++ {
			var e entry
			e.Resource = append(json.RawMessage(nil), sc.Bytes()...)
			e.Request.Method, e.Request.URL = "PUT", filepath.Base(f)+"/x"
			entries = append(entries, e)
		}
	}
	var withAll entry
	withAll.FullURL = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"
	withAll.Resource = json.RawMessage(`{"resourceType":"Patient","text":{"div":"<div>\u00e9 & \"é\"</div>"}}`)
	withAll.Request.Method, withAll.Request.URL = "POST", "Patient"
	withAll.Request.IfNoneExist = "identifier=urn:oid:1.2.250.1.213.1.4.10|2770763<22082910&x=\"é\""
	withAll.Request.IfMatch = `W/"3"`
	var deletion entry
	deletion.Request.Method, deletion.Request.URL = "DELETE", "Observation?code=http://loinc.org|8867-4"
	entries = append(entries, withAll, deletion)
	for _, typ := range []string{"transaction", "batch"} {
		var got, want any
		if err := json.Unmarshal(writeBundle(typ, entries), &got); err != nil {
			t.Fatalf("writeBundle wrote JSON that does not decode: %v", err)
		}
		marshalled, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": typ, "entry": entries})
		json.Unmarshal(marshalled, &want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("writeBundle(%s) differs from json.Marshal's Bundle", typ)
		}
	}
}

// The resources of an indented Bundle file are stored compact, as they
// were when the import sent its Bundles through json.Marshal.
func TestImportStoresTheResourcesOfAnIndentedBundleCompact(t *testing.T) {
	src, dir := t.TempDir(), t.TempDir()
	const id = "0e000000-0000-4000-8000-000000000001"
	body := "{\n  \"resourceType\": \"Bundle\",\n  \"type\": \"transaction\",\n  \"entry\": [\n    {\n" +
		"      \"fullUrl\": \"urn:uuid:" + id + "\",\n" +
		"      \"resource\": {\n        \"resourceType\": \"Patient\",\n        \"name\": [ { \"family\": \"Indent\" } ]\n      },\n" +
		"      \"request\": { \"method\": \"POST\", \"url\": \"Patient\" }\n    }\n  ]\n}\n"
	if err := os.WriteFile(filepath.Join(src, "indented.json"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := importCmd([]string{"-data-dir", dir, src}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "1 created") {
		t.Fatalf("import: %s", out.String())
	}
	st, err := sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := st.Read(context.Background(), "Patient", id)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsAny(r.Body, "\n") || bytes.Contains(r.Body, []byte("  ")) || bytes.Contains(r.Body, []byte(`": `)) {
		t.Fatalf("stored with the file's indentation: %s", r.Body)
	}
}

// BenchmarkImportSyntheaBundles times `dmp-fhir import` of the 6 Synthea
// transaction Bundles of testdata (1,323 resources) into a new embedded
// store each time, opening the store and the server untimed, with all an
// import does: validation, conditional references, index extraction and
// audit. Its resources/s is issue #6's figure:
//
//	go test -run '^$' -bench ImportSyntheaBundles -benchtime 20x -count 5 .
func BenchmarkImportSyntheaBundles(b *testing.B) {
	const src = "testdata/synthea/bundles"
	files, err := importFiles([]string{src})
	if err != nil || len(files) == 0 {
		b.Fatalf("no file to import in %s: %v", src, err)
	}
	previous := debug.SetGCPercent(100)
	debug.SetGCPercent(previous)
	importGC()
	defer debug.SetGCPercent(previous)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var resources int
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		c, _, err := loadImportConfig([]string{"-data-dir", b.TempDir(), src}, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		imp, closeImport, err := openImport(context.Background(), c, log)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC() // the setup's garbage, which a new process has not
		b.StartTimer()
		took, err := imp.run(context.Background(), files)
		b.StopTimer()
		closeImport()
		if err != nil {
			b.Fatal(err)
		}
		if imp.sum.failed > 0 {
			b.Fatalf("%d resources failed: %v", imp.sum.failed, imp.sum.reasons)
		}
		resources += imp.sum.created + imp.sum.updated + imp.sum.unchanged
		elapsed += took
		b.StartTimer()
	}
	b.ReportMetric(float64(resources)/elapsed.Seconds(), "resources/s")
}
