package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
