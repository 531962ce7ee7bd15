package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// cpuOfStat reads user+system CPU time from a /proc/<pid>/stat file.
func cpuOfStat(path string) time.Duration {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// busyCPU is the CPU time the whole machine spent not idle.
func busyCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var busy int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i > 7 { // guest time is counted in user already
			break
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * time.Second / clockTicks
}

// sysMeter adds to a process's figures what dmpbench itself and every
// other process of the machine used meanwhile, in cores.
type sysMeter struct {
	inner       meter
	start       time.Time
	busy, bench time.Duration
}

func (m *sysMeter) begin() {
	m.inner.begin()
	m.start, m.busy, m.bench = time.Now(), busyCPU(), cpuOfStat("/proc/self/stat")
}

func (m *sysMeter) end(r *result) {
	m.inner.end(r)
	wall := time.Since(m.start).Seconds()
	bench := cpuOfStat("/proc/self/stat") - m.bench
	others := busyCPU() - m.busy - bench - r.ServerCPU
	if others < 0 {
		others = 0
	}
	r.BenchCores, r.OtherCores = bench.Seconds()/wall, others.Seconds()/wall
}

// selfMeter measures dmpbench's own process (the store floor runs in it).
type selfMeter struct {
	start  time.Time
	b0, c0 time.Duration
}

func (m *selfMeter) begin() {
	m.start, m.b0, m.c0 = time.Now(), busyCPU(), cpuOfStat("/proc/self/stat")
}

func (m *selfMeter) end(r *result) {
	wall := time.Since(m.start).Seconds()
	r.ServerCPU = cpuOfStat("/proc/self/stat") - m.c0
	others := busyCPU() - m.b0 - r.ServerCPU
	if others < 0 {
		others = 0
	}
	r.BenchCores, r.OtherCores = r.ServerCPU.Seconds()/wall, others.Seconds()/wall
}

// machine describes the processor and the memory.
func machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(line, "MemTotal:")), " kB"), 10, 64)
		mem = fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
	}
	return fmt.Sprintf("%d CPUs %s, %s memory, %s", runtime.NumCPU(), model, mem, runtime.Version())
}

// loadavg is the machine's load average (1, 5, 15 minutes).
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
