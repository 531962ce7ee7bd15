// Command dmpbench loads a generated dataset into a fresh dmp-fhir server
// and measures it: read by id, patient search, $everything, ingest, and a
// mix, in closed loop (N clients back to back) and open loop (a fixed
// rate), beside two floors measured in the same run (a bare gin handler and
// a store read with no HTTP). It builds the server and runs it as a
// subprocess, so that the CPU time and memory reported are the server's
// own. See docs/PERFORMANCE.md.
//
//	go run ./cmd/dmpbench -dataset D1 -duration 10s -c 1,16 -no-audit -unrestricted -out results.csv
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmp-fhir/dmp-fhir/internal/gen"
	"github.com/dmp-fhir/dmp-fhir/store/sqlite"
)

func main() {
	if addr := os.Getenv("DMPBENCH_FLOOR_ADDR"); addr != "" {
		if err := serveFloor(addr); err != nil {
			fmt.Fprintln(os.Stderr, "dmpbench floor:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "dmpbench:", err)
		os.Exit(1)
	}
}

// allWorkloads are the names -workloads takes, in the order they run.
var allWorkloads = []string{"floor", "W1", "W2", "W3", "W5", "W4", "store"}

type options struct {
	dataset      gen.Dataset
	duration     time.Duration
	warmup       time.Duration
	clients      []int
	rounds       int
	interleave   bool
	rate         float64
	workloads    []string
	unrestricted bool
	noAudit      bool
	pprofDir     string
	out          string
	dataDir      string
	keep         bool
	src, bin     string
	loadWorkers  int
	ingestSize   int
	quiet        bool
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("dmpbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	dataset := fs.String("dataset", "D0", "D00 (3 patients, ~1k resources), D0 (10, ~10k), D1 (100, ~100k) or D2 (1,000, ~1M)")
	seed := fs.Int64("seed", gen.DefaultSeed, "seed of the generated data")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time of each workload run")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured time before each run")
	clients := fs.String("c", "16", "closed-loop clients, or a comma-separated list (each workload runs once per value; W5 at the largest)")
	fs.IntVar(&o.rounds, "rounds", 1, "runs of each measurement, back to back: the table shows the median run (by req/s; by resources/s for W3 and W4) and the range, the CSV every run")
	fs.BoolVar(&o.interleave, "interleave", false, "with -rounds: run every measurement once a round, the rounds one after the other, instead of each measurement's rounds back to back (so that a slow or fast minute of a shared machine does not fall on every run of one workload)")
	fs.Float64Var(&o.rate, "rate", 0, "open-loop rate of W5 in operations/s; 0: half of what W5 did in closed loop")
	workloads := fs.String("workloads", strings.Join(allWorkloads, ","), "comma-separated: floor (gin floor), W1, W2, W3, W4, W5, store (store floor)")
	fs.BoolVar(&o.unrestricted, "unrestricted", false, "also run W1 and W2 on a server started with the benchmark switch DMP_BENCH_UNRESTRICTED=1 (consent and audit off)")
	fs.BoolVar(&o.noAudit, "no-audit", false, "also run W1 and W2 on a server started with the benchmark switch DMP_BENCH_NO_AUDIT=1 (the audit off, consent still decided): with -unrestricted, it splits their cost between the consent decision and the audit")
	fs.StringVar(&o.pprofDir, "pprof", "", "directory for the server's CPU profile of each run (the benchmark switch DMP_BENCH_PPROF)")
	fs.StringVar(&o.out, "out", "results.csv", "CSV file of the results")
	fs.StringVar(&o.dataDir, "data", "", "data directory of the server; empty: a new temporary one. One that holds a dmpbench manifest of the same dataset is reused without loading")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary data directory")
	fs.StringVar(&o.src, "src", ".", "the dmp-fhir module to build")
	fs.StringVar(&o.bin, "bin", "", "a dmp-fhir binary to run instead of building one")
	fs.IntVar(&o.loadWorkers, "load-c", 4, "patients loaded at once")
	fs.IntVar(&o.ingestSize, "ingest-size", 0, "resources of each W4 patient Bundle; 0: the dataset's median patient")
	fs.BoolVar(&o.quiet, "q", false, "no progress output")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if o.dataset, err = gen.Preset(*dataset, *seed); err != nil {
		return nil, err
	}
	for _, s := range strings.Split(*clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 1024 {
			return nil, fmt.Errorf("-c %q: want numbers of clients from 1 to 1024", *clients)
		}
		o.clients = append(o.clients, n)
	}
	for _, w := range strings.Split(*workloads, ",") {
		w = strings.TrimSpace(w)
		if !slices.Contains(allWorkloads, w) {
			return nil, fmt.Errorf("-workloads: unknown %q (say %s)", w, strings.Join(allWorkloads, ", "))
		}
		o.workloads = append(o.workloads, w)
	}
	if o.rounds < 1 || o.rounds > 100 {
		return nil, errors.New("-rounds must be from 1 to 100")
	}
	if o.duration <= 0 || o.warmup < 0 {
		return nil, errors.New("-duration must be positive and -warmup not negative")
	}
	return o, nil
}

func (o *options) has(w string) bool { return slices.Contains(o.workloads, w) }

// run is the whole benchmark; its results go to o.out and out.
func run(ctx context.Context, args []string, out, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	progress := stderr
	if o.quiet {
		progress = io.Discard
	}
	say := func(format string, a ...any) { fmt.Fprintf(progress, format+"\n", a...) }

	work, err := os.MkdirTemp("", "dmpbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	dataDir := o.dataDir
	if dataDir == "" {
		dataDir = filepath.Join(work, "data")
		if o.keep {
			if dataDir, err = os.MkdirTemp("", "dmpbench-data-"); err != nil {
				return err
			}
			say("data directory kept: %s", dataDir)
		}
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	bin := o.bin
	if bin == "" {
		say("building the server (go build in %s)", o.src)
		if bin, err = buildServer(o.src, work); err != nil {
			return err
		}
	}
	tok, err := newTokens(dataDir)
	if err != nil {
		return err
	}
	say("machine: %s; load average before: %s", machine(), loadavg())

	var results []result
	h := &harness{o: o, bin: bin, dataDir: dataDir, logPath: filepath.Join(work, "server.log"), say: say}
	if o.keep || o.dataDir != "" {
		h.logPath = filepath.Join(dataDir, "server.log")
	}
	defer h.stop()

	// Load, or reuse a loaded data directory.
	manifest := filepath.Join(dataDir, "dmpbench-manifest.json")
	l, err := readManifest(manifest, o.dataset)
	if err != nil {
		return err
	}
	if l == nil {
		if err := h.start(serverFull); err != nil {
			return err
		}
		say("loading %s: %d patients, ~%d resources (%d patients at once)", o.dataset.Name, o.dataset.Patients, o.dataset.Resources, o.loadWorkers)
		m := &sysMeter{inner: h.srv.meter()}
		m.begin()
		started := time.Now()
		l, err = loadDataset(ctx, newClient(h.srv.addr, o.loadWorkers), tok, o.dataset, o.loadWorkers, progress)
		if err != nil {
			return fmt.Errorf("loading %s: %w", o.dataset.Name, err)
		}
		r := result{Workload: "load", Mode: "setup", Clients: o.loadWorkers, Duration: time.Since(started), Ops: len(l.Patients), Resources: l.Resources,
			Note: fmt.Sprintf("%d DMPs created ($dmp-create) and consented, %d resources in transaction Bundles of at most %d entries, masked documents masked", len(l.Patients), l.Resources, maxBundleEntries)}
		m.end(&r)
		r.Requests = r.Ops
		results = append(results, r)
		b, _ := json.Marshal(l)
		if err := os.WriteFile(manifest, b, 0o644); err != nil {
			return err
		}
	} else {
		say("reusing the %s data of %s (%d patients, %d resources)", l.Dataset, dataDir, len(l.Patients), l.Resources)
	}
	// Start-up with the data in place.
	if err := h.start(serverFull); err != nil {
		return err
	}
	results = append(results, result{Workload: "startup", Mode: "setup", Duration: h.srv.startup, Requests: 1,
		Note: fmt.Sprintf("ready (GET /readyz 200) %d ms after exec with %d resources stored; the server logged startup_ms=%s", h.srv.startup.Milliseconds(), l.Resources, serverLogStartup(h.logPath))})

	cmax := slices.Max(o.clients)
	b := &bench{c: newClient(h.srv.addr, 1024), tok: tok, l: l, d: o.dataset, ingestSize: o.ingestSize}
	if b.everything, err = b.probeEverything(ctx); err != nil {
		return err
	}
	b.prime(ctx)
	// repeat runs one measurement o.rounds times and returns the median
	// run (median's order) for what depends on it; interleaved, it runs it
	// once, as round `round` of every measurement.
	round := 0
	repeat := func(one func() result) result {
		start := len(results)
		first, last := 1, o.rounds
		if round > 0 {
			first, last = round, round
		}
		for i := first; i <= last && ctx.Err() == nil; i++ {
			if o.rounds > 1 {
				say("round %d of %d", i, o.rounds)
			}
			r := one()
			r.Round = i
			results = append(results, r)
		}
		return median(results[start:])
	}
	runs := func(name string, fn op) {
		for _, c := range o.clients {
			if ctx.Err() != nil {
				return
			}
			repeat(func() result { return h.closed(ctx, name, c, fn) })
		}
	}

	// W5's open-loop rate when -rate is 0: half what W5 did in closed loop in
	// the first pass (the median of its rounds, or round 1 when interleaved).
	var w5Rate float64
	// measureRound runs the measurements of the server under test: each once
	// when interleaved, each o.rounds times in a row otherwise.
	measureRound := func() error {
		if o.has("floor") {
			self, err := os.Executable()
			if err != nil {
				return err
			}
			floor, err := startProc(self, nil, []string{"DMPBENCH_FLOOR_ADDR=127.0.0.1:0"}, floorMsg, "/floor", filepath.Join(work, "floor.log"))
			if err != nil {
				return err
			}
			fc := newClient(floor.addr, 1024)
			for _, c := range o.clients {
				say("floor-gin c=%d", c)
				repeat(func() result {
					return closedLoop(ctx, "floor-gin", c, o.warmup, o.duration, floorGin(fc), 1, h.meterOf(floor, "floor-gin", c))
				})
			}
			floor.stop()
		}
		if o.has("W1") {
			runs("W1-read", b.readByID)
		}
		if o.has("W2") {
			runs("W2-search", b.patientSearch)
		}
		for _, v := range []struct {
			on     bool
			sw     serverSwitch
			suffix string
		}{{o.noAudit, serverNoAudit, "-no-audit"}, {o.unrestricted, serverUnrestricted, "-unrestricted"}} {
			if !v.on || !o.has("W1") && !o.has("W2") {
				continue
			}
			if err := h.start(v.sw); err != nil {
				return err
			}
			b.c = newClient(h.srv.addr, 1024)
			b.prime(ctx)
			if o.has("W1") {
				runs("W1-read"+v.suffix, b.readByID)
			}
			if o.has("W2") {
				runs("W2-search"+v.suffix, b.patientSearch)
			}
			if err := h.start(serverFull); err != nil {
				return err
			}
			b.c = newClient(h.srv.addr, 1024)
			b.prime(ctx)
		}
		if o.has("W3") {
			if b.everything {
				runs("W3-everything", b.everythingOp)
			} else {
				say("W3 skipped: GET /fhir/Patient/{id}/$everything is not served (404)")
				results = append(results, result{Workload: "W3-everything", Mode: "skipped", Note: "the server answers 404 to $everything"})
			}
		}
		if o.has("W5") {
			r := repeat(func() result {
				r := h.closed(ctx, "W5-mixed", cmax, b.mixed)
				b.noteMix(&r)
				return r
			})
			rate := o.rate
			if rate == 0 {
				if w5Rate == 0 { // every round offers the first one's rate
					w5Rate = float64(r.Ops) / r.Duration.Seconds() / 2
				}
				rate = w5Rate
			}
			if rate >= 1 && ctx.Err() == nil {
				repeat(func() result {
					h.quiesce(ctx)
					say("W5-mixed open loop at %.0f ops/s", rate)
					r := openLoop(ctx, "W5-mixed", rate, 4096, o.warmup, o.duration, b.mixed, 5, h.meterOf(h.srv, "W5-mixed-open", 0))
					h.noteBacklog(ctx, &r)
					b.noteMix(&r)
					return r
				})
			}
		}
		if o.has("W4") {
			for _, c := range o.clients {
				repeat(func() result {
					fn, stopGen := b.ingest(ctx)
					defer stopGen()
					return h.closed(ctx, "W4-ingest-bundle", c, fn)
				})
			}
			runs("W4-ingest-tx2", b.smallTx)
		}
		return nil
	}
	passes := 1
	if o.interleave {
		passes = o.rounds
	}
	for r := 1; r <= passes && ctx.Err() == nil; r++ {
		if o.interleave {
			round = r
		}
		if err := measureRound(); err != nil {
			return err
		}
	}
	round = 0
	if err := h.stop(); err != nil {
		return err
	}
	if o.has("store") {
		st, err := sqlite.Open(dataDir)
		if err != nil {
			return err
		}
		for _, c := range o.clients {
			say("floor-store c=%d", c)
			repeat(func() result {
				r := closedLoop(ctx, "floor-store", c, o.warmup, o.duration, floorStore(st, l.readable), 1, &selfMeter{})
				r.Note = "sqlite Store.Read in dmpbench's process: no HTTP, no JSON, no access control; CPU is dmpbench's"
				return r
			})
		}
		st.Close()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	results = groupRounds(results)
	say("load average after: %s", loadavg())
	fmt.Fprintf(out, "dataset %s (%d patients, %d resources), %s per run after %s of warm-up\n", o.dataset.Name, len(l.Patients), l.Resources, o.duration, o.warmup)
	printTable(out, o.dataset.Name, results)
	if err := writeCSV(o.out, o.dataset.Name, results); err != nil {
		return err
	}
	fmt.Fprintf(out, "results: %s\n", o.out)
	return nil
}

// harness runs the server under test.
type harness struct {
	o       *options
	bin     string
	dataDir string
	logPath string
	say     func(string, ...any)
	srv     *proc
	pprof   string // address of the server's pprof, when -pprof
}

// serverSwitch is the benchmark switch a server is started with.
type serverSwitch int

const (
	serverFull         serverSwitch = iota // consent and audit on, as in production
	serverNoAudit                          // DMP_BENCH_NO_AUDIT=1: consent decided, nothing audited
	serverUnrestricted                     // DMP_BENCH_UNRESTRICTED=1: neither
)

// start (re)starts the server with the benchmark switch sw.
func (h *harness) start(sw serverSwitch) error {
	if err := h.stop(); err != nil {
		return err
	}
	env := []string{"DMP_DATA_DIR=" + h.dataDir, "DMP_ADDR=127.0.0.1:0", "DMP_MAX_BODY_BYTES=" + strconv.Itoa(64<<20)}
	switch sw {
	case serverNoAudit:
		env = append(env, "DMP_BENCH_NO_AUDIT=1")
	case serverUnrestricted:
		env = append(env, "DMP_BENCH_UNRESTRICTED=1")
	}
	h.pprof = ""
	if h.o.pprofDir != "" {
		env = append(env, "DMP_BENCH_PPROF=127.0.0.1:0")
	}
	var err error
	if h.srv, err = startProc(h.bin, []string{"serve"}, env, listenMsg, "/readyz", h.logPath); err != nil {
		return err
	}
	if h.o.pprofDir != "" {
		// Logged before the server listens.
		if h.pprof = logAddr(h.srv.logged(), pprofMsg); h.pprof == "" {
			return fmt.Errorf("the server logged no %q line; see %s", pprofMsg, h.logPath)
		}
	}
	return nil
}

func (h *harness) stop() error {
	if h.srv == nil {
		return nil
	}
	err := h.srv.stop()
	h.srv = nil
	return err
}

// quiesce waits (at most 5 minutes) until the server has copied every
// journaled AuditEvent into the store (dmp_audit_journal_backlog of
// /metrics is 0), so that a run does not pay for the audit of the one
// before (a Bundle's entries are audited one by one).
// It returns the backlog it found and how long it took to drain.
func (h *harness) quiesce(ctx context.Context) (float64, time.Duration) {
	start := time.Now()
	deadline := start.Add(5 * time.Minute)
	waited := false
	first := 0.0
	for time.Now().Before(deadline) && ctx.Err() == nil {
		resp, err := http.Get("http://" + h.srv.addr + "/metrics")
		if err != nil {
			return first, time.Since(start)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		backlog := -1.0
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "dmp_audit_journal_backlog "); ok {
				backlog, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
			}
		}
		if backlog <= 0 { // drained, or no such metric
			if waited {
				h.say("  audit backlog drained")
			}
			return first, time.Since(start)
		}
		if !waited {
			first = backlog
			h.say("  waiting for the audit backlog (%.0f AuditEvents) to reach the store", backlog)
			waited = true
		}
		sleep(ctx, 100*time.Millisecond)
	}
	return first, time.Since(start)
}

// closed runs one closed-loop workload against the server.
func (h *harness) closed(ctx context.Context, name string, c int, fn op) result {
	h.quiesce(ctx)
	h.say("%s c=%d", name, c)
	r := closedLoop(ctx, name, c, h.o.warmup, h.o.duration, fn, int64(c), h.meterOf(h.srv, name, c))
	h.noteBacklog(ctx, &r)
	return r
}

// noteBacklog says in r's note how far the audit's copy into the store
// lagged at the end of the run, and the rate it sustains with the lag.
func (h *harness) noteBacklog(ctx context.Context, r *result) {
	if backlog, took := h.quiesce(ctx); backlog > 0 {
		r.Note = strings.TrimSpace(fmt.Sprintf("%s audit backlog of %.0f AuditEvents at the end, in the store %.1f s later (%.0f req/s with that time);",
			r.Note, backlog, took.Seconds(), float64(r.Requests)/(r.Duration+took).Seconds()))
	}
}

// meterOf measures p, and profiles it when -pprof asked for it.
func (h *harness) meterOf(p *proc, name string, c int) meter {
	m := &sysMeter{inner: p.meter()}
	if h.o.pprofDir == "" || p != h.srv || h.pprof == "" {
		return m
	}
	return &profMeter{inner: m, url: fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", h.pprof, int(h.o.duration.Seconds())),
		path: filepath.Join(h.o.pprofDir, fmt.Sprintf("%s-%s-c%d.pprof", h.o.dataset.Name, name, c))}
}

// profMeter records the server's CPU profile over the measured time.
type profMeter struct {
	inner meter
	url   string
	path  string
	done  chan struct{}
}

func (m *profMeter) begin() {
	m.inner.begin()
	m.done = make(chan struct{})
	go func() {
		defer close(m.done)
		resp, err := http.Get(m.url)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		os.MkdirAll(filepath.Dir(m.path), 0o755)
		if f, err := os.Create(m.path); err == nil {
			io.Copy(f, resp.Body)
			f.Close()
		}
	}()
}

func (m *profMeter) end(r *result) {
	m.inner.end(r)
	// The heap as the run ends, beside the CPU profile.
	heap := strings.Replace(m.url, "/profile?", "/heap?gc=1&", 1)
	if resp, err := http.Get(heap); err == nil {
		if f, err := os.Create(strings.TrimSuffix(m.path, ".pprof") + ".heap.pprof"); err == nil {
			io.Copy(f, resp.Body)
			f.Close()
		}
		resp.Body.Close()
	}
	<-m.done
}

// serveFloor is the gin floor: one route answering a fixed 1 KB JSON body.
func serveFloor(addr string) error {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	body := []byte(`{"resourceType":"Basic","id":"floor","text":"` + strings.Repeat("x", 1024-len(`{"resourceType":"Basic","id":"floor","text":""}`)) + `"}`)
	e.GET("/floor", func(c *gin.Context) { c.Data(http.StatusOK, "application/fhir+json", body) })
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	slog.New(slog.NewJSONHandler(os.Stderr, nil)).Info(floorMsg, "addr", ln.Addr().String())
	return http.Serve(ln, e)
}

// readManifest returns the loaded dataset described in path, nil when
// there is none.
func readManifest(path string, d gen.Dataset) (*loaded, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var l loaded
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if l.Dataset != d.Name || l.Seed != d.Seed {
		return nil, fmt.Errorf("%s holds dataset %s seed %d, not %s seed %d: use another -data", path, l.Dataset, l.Seed, d.Name, d.Seed)
	}
	l.index()
	return &l, nil
}
