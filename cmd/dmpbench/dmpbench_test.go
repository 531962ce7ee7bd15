package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestHarnessRunsOnD0 keeps the benchmark working: it builds the server,
// loads D0 (10 DMPs, ~10k resources) through the API, and runs W1, W2 (also
// with the benchmark switch that turns the audit off) and W4 for two
// seconds each (W4 with records of 20 resources: a median record, or even
// one of 100, can take over the two seconds on a busy machine, and a run in
// which no request ends is a run with no figures).
// It asserts that the requests succeed and that the CSV is written; it
// asserts no timing.
func TestHarnessRunsOnD0(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "results.csv")
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := run(ctx, []string{"-dataset", "D0", "-duration", "2s", "-warmup", "200ms", "-c", "2",
		"-workloads", "W1,W2,W4", "-no-audit", "-ingest-size", "20", "-src", "../..", "-data", filepath.Join(dir, "data"), "-q", "-out", out}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("dmpbench: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	t.Log(stdout.String())
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	seen := map[string]bool{}
	for _, r := range rows[1:] {
		name := r[col["workload"]]
		seen[name] = true
		requests, _ := strconv.Atoi(r[col["requests"]])
		errors, _ := strconv.Atoi(r[col["errors"]])
		resources, _ := strconv.Atoi(r[col["resources"]])
		if requests == 0 || errors != 0 {
			t.Errorf("%s: %d requests succeeded, %d failed (%s)", name, requests, errors, r[col["note"]])
		}
		if name == "load" && resources < 9_000 {
			t.Errorf("load: %d resources, want D0's ~10,000", resources)
		}
		if strings.HasPrefix(name, "W") && r[col["cpu_ms_per_req"]] == "" {
			t.Errorf("%s: no server CPU measured", name)
		}
	}
	for _, w := range []string{"load", "startup", "W1-read", "W2-search", "W1-read-no-audit", "W2-search-no-audit", "W4-ingest-bundle", "W4-ingest-tx2"} {
		if !seen[w] {
			t.Errorf("no %s row in the CSV", w)
		}
	}
}

// The Bundle scanning the load generator relies on reads what the server
// writes.
func TestBundleScanning(t *testing.T) {
	b := []byte(`{"resourceType":"Bundle","link":[{"relation":"self","url":"http://h/fhir/Observation?a=1\u0026b=2"},` +
		`{"relation":"next","url":"http://h/fhir/Observation?_count=50\u0026_cursor=x%2By"}],` +
		`"entry":[{"fullUrl":"http://h/fhir/Observation/1","resource":{}},{"fullUrl":"http://h/fhir/Observation/2","resource":{}}]}`)
	if n := entries(b); n != 2 {
		t.Errorf("entries: %d, want 2", n)
	}
	if got, want := nextLink(b), "http://h/fhir/Observation?_count=50&_cursor=x%2By"; got != want {
		t.Errorf("next: %q, want %q", got, want)
	}
	if got := nextLink([]byte(`{"link":[{"relation":"self","url":"x"}]}`)); got != "" {
		t.Errorf("next of a last page: %q", got)
	}
	tx := []byte(`{"entry":[{"response":{"status":"201 Created","location":"Observation/a/_history/1"}},{"response":{"location":"DiagnosticReport/b/_history/1"}}]}`)
	if got := locations(tx); len(got) != 2 || refOf(got[0]) != "Observation/a" || refOf(got[1]) != "DiagnosticReport/b" {
		t.Errorf("locations: %q", got)
	}
}

// The table shows the median run of each series of rounds, judged by
// req/s (res/s for W3 and W4), and the range; the set-up rows and single
// runs pass through.
func TestSummarizeKeepsTheMedianRound(t *testing.T) {
	all := []result{
		{Workload: "load", Mode: "setup", Duration: time.Second, Requests: 10},
		closedRun("W1-read", 1, 1, 900, 900), closedRun("W1-read", 1, 2, 1100, 1100), closedRun("W1-read", 1, 3, 1000, 1000),
		closedRun("W1-read", 16, 1, 4000, 4000), closedRun("W1-read", 16, 2, 3000, 3000),
		closedRun("W3-everything", 16, 1, 500, 40000), closedRun("W3-everything", 16, 2, 400, 50000), closedRun("W3-everything", 16, 3, 450, 45000),
		closedRun("W4-ingest-tx2", 16, 1, 600, 1200),
	}
	got := summaryLines(all)
	want := []string{
		"load c=0 round 0: ",
		"W1-read c=1 round 3: 900-1100 req/s (3)",
		"W1-read c=16 round 2: 3000-4000 req/s (2)",
		"W3-everything c=16 round 3: 40000-50000 res/s (3)",
		"W4-ingest-tx2 c=16 round 1: ",
	}
	if !slices.Equal(got, want) {
		t.Errorf("summary\n got %q\nwant %q", got, want)
	}
}

// Interleaved rounds come out one measurement after the other; grouped,
// each measurement's runs are together in round order, where its first run
// was, and summarize takes their median.
func TestInterleavedRoundsAreGroupedByMeasurement(t *testing.T) {
	all := []result{
		{Workload: "load", Mode: "setup", Duration: time.Second, Requests: 10},
		closedRun("W1-read", 1, 1, 900, 900), closedRun("W1-read", 16, 1, 4000, 4000), closedRun("W2-search", 16, 1, 1000, 1000),
		closedRun("W1-read", 1, 2, 1100, 1100), closedRun("W1-read", 16, 2, 3000, 3000), closedRun("W2-search", 16, 2, 1200, 1200),
		closedRun("W1-read", 1, 3, 1000, 1000), closedRun("W1-read", 16, 3, 5000, 5000), closedRun("W2-search", 16, 3, 1100, 1100),
	}
	got := summaryLines(groupRounds(all))
	want := []string{
		"load c=0 round 0: ",
		"W1-read c=1 round 3: 900-1100 req/s (3)",
		"W1-read c=16 round 1: 3000-5000 req/s (3)",
		"W2-search c=16 round 3: 1000-1200 req/s (3)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("summary\n got %q\nwant %q", got, want)
	}
}

// closedRun is one closed-loop run of a measurement, for the summary tests.
func closedRun(w string, c, round, requests, resources int) result {
	return result{Workload: w, Mode: "closed", Clients: c, Round: round, Duration: time.Second, Requests: requests, Resources: resources}
}

// summaryLines is summarize's medians and ranges, a line each.
func summaryLines(all []result) []string {
	medians, spread := summarize(all)
	var out []string
	for i, m := range medians {
		out = append(out, fmt.Sprintf("%s c=%d round %d: %s", m.Workload, m.Clients, m.Round, spread[i]))
	}
	return out
}

// The cost of consent and audit is read off the runs with a benchmark
// switch beside the runs with both on, at the same concurrency; the two
// parts are shares of the unrestricted request and add up.
func TestAccessCostsSplitConsentFromAudit(t *testing.T) {
	cpu := func(w string, c int, msPerReq float64) result {
		r := closedRun(w, c, 1, 1000, 1000)
		r.ServerCPU = time.Duration(msPerReq * float64(time.Millisecond) * 1000)
		return r
	}
	cases := []struct {
		name string
		runs []result
		want []string
	}{
		{"both switches", []result{cpu("W1-read", 16, 0.240), cpu("W1-read-no-audit", 16, 0.110), cpu("W1-read-unrestricted", 16, 0.100)},
			[]string{"W1-read c=16, server CPU per request: 0.240 ms, 0.110 with the audit off, 0.100 with consent and audit off: the consent decision +10%, the audit +130%, both +140% (2.4x)"}},
		{"unrestricted only", []result{cpu("W2-search", 16, 1.200), cpu("W2-search-unrestricted", 16, 0.600)},
			[]string{"W2-search c=16, server CPU per request: 1.200 ms, 0.600 with consent and audit off: both +100% (2.0x)"}},
		{"no-audit only", []result{cpu("W2-search", 16, 1.200), cpu("W2-search-no-audit", 16, 0.800)},
			[]string{"W2-search c=16, server CPU per request: 1.200 ms, 0.800 with the audit off: the audit +50%"}},
		{"another concurrency is not compared", []result{cpu("W1-read", 1, 0.300), cpu("W1-read-unrestricted", 16, 0.100)}, nil},
		{"no switch", []result{cpu("W1-read", 16, 0.240), cpu("W2-search", 16, 1.2)}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := accessCosts(c.runs); !slices.Equal(got, c.want) {
				t.Errorf("got\n%q\nwant\n%q", got, c.want)
			}
		})
	}
}
