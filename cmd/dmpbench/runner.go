package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// op is one unit of a workload: it issues one or more HTTP requests and
// reports each on the recorder. sched is when the op was due (open loop:
// its first request's latency counts from then, so that a slow server
// cannot hide its queue; closed loop: when the worker started it).
type op func(ctx context.Context, r *recorder, rng *rand.Rand, sched time.Time)

// recorder collects one worker's measurements.
type recorder struct {
	buf       bytes.Buffer // the last answer
	ops       int
	lat       []time.Duration // of successful requests
	errors    int
	resources int
	firstErr  string
	// A request counts when it ends while live is true (closed loop: the
	// measured window), or, without live, when counting is true (open
	// loop: the op was due in the measured window).
	live     *atomic.Bool
	counting bool
	// startedLive: the op under way started in the measured window; its
	// failures count even when they end after it (a request that hangs
	// past the window is an error, not nothing).
	startedLive bool
}

func (r *recorder) counts() bool {
	if r.live != nil {
		return r.live.Load()
	}
	return r.counting
}

// ok records a successful request that started at start and carried n
// resources.
func (r *recorder) ok(start time.Time, n int) {
	if !r.counts() {
		return
	}
	r.lat = append(r.lat, time.Since(start))
	r.resources += n
}

// fail records a failed request.
func (r *recorder) fail(format string, args ...any) {
	if !r.counts() && !r.startedLive {
		return
	}
	r.errors++
	if r.firstErr == "" {
		r.firstErr = fmt.Sprintf(format, args...)
	}
}

// result is a workload's figures.
type result struct {
	Workload  string
	Mode      string // closed | open | floor
	Clients   int
	Rate      float64 // open loop: the offered rate
	Duration  time.Duration
	Ops       int // workload units completed (an op may be several requests)
	Requests  int // successful
	Errors    int
	Resources int
	P50, P90  time.Duration
	P99, Max  time.Duration
	ServerCPU time.Duration // of the measured process over Duration
	PeakRSS   int64         // bytes; 0 when not measured
	// BenchCores and OtherCores are the cores that dmpbench itself and
	// every other process of the machine used over Duration.
	BenchCores, OtherCores float64
	Note                   string
	FirstErr               string
	Round                  int // of -rounds, from 1; 0 for the set-up rows
}

func (r result) reqPerSec() float64 { return float64(r.Requests) / r.Duration.Seconds() }
func (r result) resPerSec() float64 { return float64(r.Resources) / r.Duration.Seconds() }
func (r result) cpuMsPerReq() float64 {
	if r.Requests+r.Errors == 0 {
		return 0
	}
	return float64(r.ServerCPU.Microseconds()) / 1000 / float64(r.Requests+r.Errors)
}

func merge(name, mode string, clients int, d time.Duration, recs []*recorder) result {
	res := result{Workload: name, Mode: mode, Clients: clients, Duration: d}
	var all []time.Duration
	for _, r := range recs {
		all = append(all, r.lat...)
		res.Errors += r.errors
		res.Resources += r.resources
		res.Ops += r.ops
		if res.FirstErr == "" {
			res.FirstErr = r.firstErr
		}
	}
	res.Requests = len(all)
	if len(all) > 0 {
		sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
		q := func(p float64) time.Duration { return all[int(p*float64(len(all)-1))] }
		res.P50, res.P90, res.P99, res.Max = q(0.50), q(0.90), q(0.99), all[len(all)-1]
	}
	return res
}

// closedLoop runs c workers, each issuing ops back to back, for warmup
// (not counted) then d: the requests that end within d count.
func closedLoop(ctx context.Context, name string, c int, warmup, d time.Duration, fn op, seed int64, m meter) result {
	recs := make([]*recorder, c)
	var counting, stop atomic.Bool
	var wg sync.WaitGroup
	var measuredStart time.Time
	for i := range recs {
		recs[i] = &recorder{live: &counting}
		wg.Add(1)
		go func(r *recorder, rng *rand.Rand) {
			defer wg.Done()
			for !stop.Load() && ctx.Err() == nil {
				r.startedLive = counting.Load()
				fn(ctx, r, rng, time.Now())
				if r.counts() {
					r.ops++
				}
			}
		}(recs[i], rand.New(rand.NewSource(seed+int64(i))))
	}
	sleep(ctx, warmup)
	counting.Store(true)
	m.begin()
	measuredStart = time.Now()
	sleep(ctx, d)
	counting.Store(false)
	elapsed := time.Since(measuredStart)
	var res result
	m.end(&res)
	stop.Store(true) // ops under way finish, uncounted: no request is cut off
	wg.Wait()
	r := merge(name, "closed", c, elapsed, recs)
	r.ServerCPU, r.PeakRSS, r.Note, r.BenchCores, r.OtherCores = res.ServerCPU, res.PeakRSS, res.Note, res.BenchCores, res.OtherCores
	return r
}

// openLoop starts ops at a fixed rate whatever the answers, for warmup
// (not counted) then d; at most maxInFlight at once (an op due beyond
// that is counted as an error: the server did not keep up).
func openLoop(ctx context.Context, name string, rate float64, maxInFlight int, warmup, d time.Duration, fn op, seed int64, m meter) result {
	var (
		mu       sync.Mutex
		recs     []*recorder
		wg       sync.WaitGroup
		inFlight atomic.Int64
		dropped  int
	)
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	measureFrom, end := start.Add(warmup), start.Add(warmup+d)
	rng := rand.New(rand.NewSource(seed))
	began := false
	var res result
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if !due.Before(end) || ctx.Err() != nil {
			break
		}
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		counting := !due.Before(measureFrom)
		if counting && !began {
			m.begin()
			began = true
		}
		if inFlight.Load() >= int64(maxInFlight) {
			if counting {
				dropped++
			}
			continue
		}
		inFlight.Add(1)
		wg.Add(1)
		opSeed := rng.Int63()
		go func() {
			defer wg.Done()
			defer inFlight.Add(-1)
			r := &recorder{counting: counting}
			fn(ctx, r, rand.New(rand.NewSource(opSeed)), due)
			if counting {
				r.ops++
			}
			mu.Lock()
			recs = append(recs, r)
			mu.Unlock()
		}()
	}
	if began {
		m.end(&res)
	}
	wg.Wait()
	out := merge(name, "open", 0, d, recs)
	out.ServerCPU, out.PeakRSS, out.Note, out.BenchCores, out.OtherCores = res.ServerCPU, res.PeakRSS, res.Note, res.BenchCores, res.OtherCores
	res = out
	res.Rate = rate
	res.Errors += dropped
	if dropped > 0 {
		res.Note = fmt.Sprintf("%d ops not started: %d already in flight", dropped, maxInFlight)
	}
	return res
}

// meter measures the process under test over the counted part of a run.
type meter interface {
	begin()
	end(r *result)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
