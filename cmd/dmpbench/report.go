package main

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

var csvHeader = []string{"dataset", "workload", "mode", "clients", "rate_ops_s", "duration_s", "ops", "requests", "errors",
	"req_s", "p50_ms", "p90_ms", "p99_ms", "max_ms", "resources", "resources_s", "cpu_ms_per_req", "peak_rss_mb", "bench_cores", "other_cores", "note", "round"}

func cores(c float64) string {
	if c == 0 {
		return ""
	}
	return strconv.FormatFloat(c, 'f', 2, 64)
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 2, 64)
}

func (r result) row(dataset string) []string {
	rss := ""
	if r.PeakRSS > 0 {
		rss = strconv.FormatFloat(float64(r.PeakRSS)/(1<<20), 'f', 0, 64)
	}
	cpu := ""
	if r.ServerCPU > 0 {
		cpu = strconv.FormatFloat(r.cpuMsPerReq(), 'f', 3, 64)
	}
	rate := ""
	if r.Rate > 0 {
		rate = strconv.FormatFloat(r.Rate, 'f', 0, 64)
	}
	clients := ""
	if r.Clients > 0 {
		clients = strconv.Itoa(r.Clients)
	}
	note := r.Note
	if r.FirstErr != "" {
		note += " first error: " + r.FirstErr
	}
	row := []string{dataset, r.Workload, r.Mode, clients, rate, strconv.FormatFloat(r.Duration.Seconds(), 'f', 3, 64),
		strconv.Itoa(r.Ops), strconv.Itoa(r.Requests), strconv.Itoa(r.Errors), "",
		ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max), strconv.Itoa(r.Resources), "",
		cpu, rss, cores(r.BenchCores), cores(r.OtherCores), note, ""}
	if r.Round > 0 {
		row[21] = strconv.Itoa(r.Round)
	}
	if r.Duration > 0 {
		row[9], row[15] = strconv.FormatFloat(r.reqPerSec(), 'f', 0, 64), strconv.FormatFloat(r.resPerSec(), 'f', 0, 64)
	}
	if r.Mode == "setup" || r.Mode == "skipped" {
		row[9], row[10], row[11], row[12], row[13] = "", "", "", "", ""
	}
	return row
}

// writeCSV writes the results, one row a workload run.
func writeCSV(path, dataset string, results []result) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write(csvHeader)
	for _, r := range results {
		w.Write(r.row(dataset))
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// figure is the rate a run is judged by: resources/s for $everything and
// ingest (W3, W4), whose requests differ in size, else requests/s.
func (r result) figure() (float64, string) {
	if strings.HasPrefix(r.Workload, "W3") || strings.HasPrefix(r.Workload, "W4") {
		return r.resPerSec(), "res/s"
	}
	return r.reqPerSec(), "req/s"
}

// median is the run of rounds with the median figure (the lower middle one
// of an even number).
func median(rounds []result) result {
	if len(rounds) == 0 {
		return result{}
	}
	sorted := slices.Clone(rounds)
	slices.SortStableFunc(sorted, func(a, b result) int {
		fa, _ := a.figure()
		fb, _ := b.figure()
		return cmp.Compare(fa, fb)
	})
	return sorted[(len(sorted)-1)/2]
}

// summarize replaces each series of rounds of one measurement (the same
// workload, mode and clients, rounds 1 to n in a row) by its median run,
// and says the range of its figure over the series ("" for a single run).
func summarize(results []result) (medians []result, spread []string) {
	for i := 0; i < len(results); {
		j := i + 1
		for j < len(results) && results[j].Round == results[j-1].Round+1 && results[j].Round > 1 &&
			results[j].Workload == results[i].Workload && results[j].Mode == results[i].Mode && results[j].Clients == results[i].Clients {
			j++
		}
		medians = append(medians, median(results[i:j]))
		if j-i > 1 {
			lo, unit := results[i].figure()
			hi := lo
			for _, r := range results[i+1 : j] {
				f, _ := r.figure()
				lo, hi = min(lo, f), max(hi, f)
			}
			spread = append(spread, fmt.Sprintf("%.0f-%.0f %s (%d)", lo, hi, unit, j-i))
		} else {
			spread = append(spread, "")
		}
		i = j
	}
	return medians, spread
}

// printTable writes the short table of stdout: the median run of each
// series of rounds, with the range of its figure over the rounds.
func printTable(out io.Writer, dataset string, all []result) {
	results, spread := summarize(all)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "workload\tmode\tc\treq/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\terrors\tres/s\tCPU ms/req\tpeak RSS MB\tbench cores\tother cores\trange (runs)\t")
	for i, r := range results {
		if r.Mode == "setup" || r.Mode == "skipped" {
			continue
		}
		row := r.row(dataset)
		mode := row[2]
		if r.Mode == "open" {
			mode = "open@" + row[4]
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", row[1], mode, row[3], row[9], row[10], row[11], row[12], row[13], row[8], row[15], row[16], row[17], row[18], row[19], spread[i])
	}
	w.Flush()
	for _, r := range results {
		if r.Workload == "load" {
			fmt.Fprintf(out, "  load: %d resources in %s, %.0f resources/s; server %s CPU, peak RSS %.0f MB\n", r.Resources,
				r.Duration.Round(time.Millisecond), r.resPerSec(), r.ServerCPU.Round(time.Millisecond), float64(r.PeakRSS)/(1<<20))
		}
		if r.Note != "" || r.FirstErr != "" {
			fmt.Fprintf(out, "  %s: %s\n", r.Workload, r.row(dataset)[20])
		}
	}
	for _, line := range accessCosts(results) {
		fmt.Fprintf(out, "  %s\n", line)
	}
}

// accessCosts splits the server's CPU per request of W1 and W2 between the
// consent decision and the audit, from the runs with a benchmark switch
// (-no-audit, -unrestricted) beside the runs with both on. Both costs are
// shares of the unrestricted request, so that they add up.
func accessCosts(medians []result) []string {
	find := func(workload string, clients int) (float64, bool) {
		for _, r := range medians {
			if r.Workload == workload && r.Mode == "closed" && r.Clients == clients && r.ServerCPU > 0 {
				return r.cpuMsPerReq(), true
			}
		}
		return 0, false
	}
	pct := func(part, whole float64) string { return fmt.Sprintf("%+.0f%%", 100*part/whole) }
	var out []string
	for _, r := range medians {
		if r.Mode != "closed" || r.Workload != "W1-read" && r.Workload != "W2-search" {
			continue
		}
		full, ok := find(r.Workload, r.Clients)
		if !ok {
			continue
		}
		noAudit, hasNoAudit := find(r.Workload+"-no-audit", r.Clients)
		unrestricted, hasUnrestricted := find(r.Workload+"-unrestricted", r.Clients)
		line := fmt.Sprintf("%s c=%d, server CPU per request: %.3f ms", r.Workload, r.Clients, full)
		switch {
		case hasNoAudit && hasUnrestricted:
			line += fmt.Sprintf(", %.3f with the audit off, %.3f with consent and audit off: the consent decision %s, the audit %s, both %s (%.1fx)",
				noAudit, unrestricted, pct(noAudit-unrestricted, unrestricted), pct(full-noAudit, unrestricted), pct(full-unrestricted, unrestricted), full/unrestricted)
		case hasNoAudit:
			line += fmt.Sprintf(", %.3f with the audit off: the audit %s", noAudit, pct(full-noAudit, noAudit))
		case hasUnrestricted:
			line += fmt.Sprintf(", %.3f with consent and audit off: both %s (%.1fx)", unrestricted, pct(full-unrestricted, unrestricted), full/unrestricted)
		default:
			continue
		}
		out = append(out, line)
	}
	return out
}

// groupRounds puts the runs of each measurement (workload, mode, clients)
// together, in round order, where its first run was: interleaved rounds
// come out of the harness one measurement after the other.
func groupRounds(results []result) []result {
	type key struct {
		workload, mode string
		clients        int
	}
	first := map[key]int{}
	for i, r := range results {
		k := key{r.Workload, r.Mode, r.Clients}
		if _, ok := first[k]; !ok {
			first[k] = i
		}
	}
	out := slices.Clone(results)
	slices.SortStableFunc(out, func(a, b result) int {
		ka, kb := key{a.Workload, a.Mode, a.Clients}, key{b.Workload, b.Mode, b.Clients}
		if c := cmp.Compare(first[ka], first[kb]); c != 0 {
			return c
		}
		return cmp.Compare(a.Round, b.Round)
	})
	return out
}
