package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dmp-fhir/dmp-fhir/api"
	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/fhir"
)

// importOrder loads the resources others point to first, so that the
// conditional references of the later files (Practitioner?identifier=...)
// find them.
var importOrder = map[string]int{"Organization": 0, "Location": 1, "Practitioner": 2, "PractitionerRole": 3, "Patient": 4, "Device": 5, "Medication": 6, "Encounter": 7}

// importSummary counts what an import did.
type importSummary struct {
	created, updated, unchanged, failed int
	reasons                             map[string]int
}

func (s *importSummary) add(status int, outcome string, reason string) {
	switch {
	case status == http.StatusCreated:
		s.created++
	case status == http.StatusOK && outcome == "unchanged":
		s.unchanged++
	case status == http.StatusOK:
		s.updated++
	default:
		s.failed++
		if s.reasons == nil {
			s.reasons = map[string]int{}
		}
		s.reasons[reason]++
	}
}

// importCmd loads transaction or batch Bundles (.json) and NDJSON files
// (.ndjson, one resource a line) through the server's own handlers: the same
// validation, index extraction, conditional references and audit as over
// HTTP. It can run again on the same files: NDJSON resources keep their ids
// and a Bundle's urn:uuid entries become updates of ids derived from them,
// so a second run finds everything unchanged.
func importCmd(args []string, stdout, stderr io.Writer) error {
	c, paths, err := loadImportConfig(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	files, err := importFiles(paths)
	if err != nil {
		return err
	}
	importGC()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	imp, closeImport, err := openImport(ctx, c, log)
	if err != nil {
		return err
	}
	defer closeImport()
	imp.progress = newProgress(stdout, files)
	elapsed, err := imp.run(ctx, files)
	if err != nil {
		return err
	}
	sum := imp.sum
	total := sum.created + sum.updated + sum.unchanged + sum.failed
	fmt.Fprintf(stdout, "imported %d resources in %s (%.0f resources/s): %d created, %d updated, %d unchanged, %d failed\n",
		total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), sum.created, sum.updated, sum.unchanged, sum.failed)
	reasons := make([]string, 0, len(sum.reasons))
	for r := range sum.reasons {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Fprintf(stdout, "  %d failed: %s\n", sum.reasons[r], r)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// importGC sets the garbage collector of an import, unless GOGC says
// otherwise: GOGC=300 with no memory limit. An import is a batch job, not
// the server and its memory target: collecting garbage a third as often
// took 8% off its CPU for 120 MB more at the peak (bulk-10-patients:
// 4.3-4.4 s against 4.9-5.1 s).
func importGC() { setGC(os.Getenv, 300, 0) }

// openImport opens the store, the access control and the server the import
// sends its transactions through, with a system token of its own; close
// stops them in order.
func openImport(ctx context.Context, c importConfig, log *slog.Logger) (imp *importer, closeAll func(), err error) {
	var closers []func()
	closeAll = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	st, err := openStore(ctx, c.config)
	if err != nil {
		return nil, nil, err
	}
	closers = append(closers, func() { st.Close() })
	validator, err := fhir.NewValidator()
	if err != nil {
		return nil, nil, err
	}
	access, closeAccess, err := openAccess(ctx, c.config, st, log, nil)
	if err != nil {
		return nil, nil, err
	}
	closers = append(closers, closeAccess)
	server := api.New(api.Config{MaxBodyBytes: 1 << 30, MaxBundleEntries: 1 << 20, InlineMaxBytes: c.InlineMaxBytes, Logger: log, Auth: access}, st, validator)
	closers = append(closers, server.Close) // its background work (export jobs) stops before the audit writer and the store close
	token, err := access.Key.Issue(auth.Claims{Kind: auth.KindSystem, ClientID: "dmp-fhir-import", Name: "import", Scope: "system/*.cruds",
		Issuer: c.AuthIssuer, Audience: c.AuthAudience}, 24*time.Hour)
	if err != nil {
		return nil, nil, err
	}
	return &importer{server: server, token: token, batch: c.batch, workers: runtime.GOMAXPROCS(0), progress: newProgress(io.Discard, nil)}, closeAll, nil
}

// run imports the files in order and says how long that took.
func (imp *importer) run(ctx context.Context, files []string) (time.Duration, error) {
	started := time.Now()
	for i, f := range files {
		if ctx.Err() != nil {
			break
		}
		if i > 0 && importRank(f) != importRank(files[i-1]) {
			imp.wait(ctx)
		}
		if err := imp.file(ctx, f); err != nil {
			imp.wait(ctx)
			imp.progress.done()
			return time.Since(started), fmt.Errorf("%s: %w", f, err)
		}
	}
	imp.wait(ctx)
	imp.progress.done()
	return time.Since(started), nil
}

type importConfig struct {
	config
	batch int
}

func loadImportConfig(args []string, stderr io.Writer) (importConfig, []string, error) {
	var flags, paths []string
	for i := 0; i < len(args); i++ {
		if strings.HasPrefix(args[i], "-") {
			flags = append(flags, args[i])
			if !strings.Contains(args[i], "=") && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") && args[i] != "-h" && args[i] != "--help" {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		paths = append(paths, args[i])
	}
	var ic importConfig
	ic.batch = 500
	var batchFlag []string
	for i := 0; i < len(flags); i++ {
		if f := strings.TrimLeft(flags[i], "-"); f == "batch" && i+1 < len(flags) {
			batchFlag = []string{flags[i+1]}
			flags = append(flags[:i], flags[i+2:]...)
			i--
		}
	}
	if len(batchFlag) == 1 {
		if _, err := fmt.Sscan(batchFlag[0], &ic.batch); err != nil || ic.batch < 1 {
			return ic, nil, fmt.Errorf("-batch: %q is not a positive number", batchFlag[0])
		}
	}
	c, err := loadConfig("import", flags, stderr)
	if err != nil {
		return ic, nil, err
	}
	ic.config = c
	if len(paths) == 0 {
		return ic, nil, errors.New("usage: dmp-fhir import [-batch N] [serve flags] PATH... (.json Bundles, .ndjson files, or folders of them)")
	}
	return ic, paths, nil
}

// importFiles expands folders and orders the files: Bundles first (each
// carries its own references), then NDJSON by importOrder.
func importFiles(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			files = append(files, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && (strings.HasSuffix(path, ".json") || strings.HasSuffix(path, ".ndjson")) {
				files = append(files, path)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	sort.SliceStable(files, func(i, j int) bool {
		ri, rj := importRank(files[i]), importRank(files[j])
		if ri != rj {
			return ri < rj
		}
		return files[i] < files[j]
	})
	return files, nil
}

// importRank is a file's place in the import: Bundles first, then NDJSON
// files by importOrder of their type, the other types last.
func importRank(f string) int {
	if strings.HasSuffix(f, ".json") {
		return -1
	}
	typ := strings.SplitN(filepath.Base(f), ".", 2)[0]
	if r, ok := importOrder[typ]; ok {
		return r
	}
	return len(importOrder)
}

// importer sends the files' resources as transactions through the server,
// several at once (GOMAXPROCS): while one holds the store's write lock, the
// next is parsed, validated and resolved. Files of one rank of importOrder
// go together; a rank starts once the previous one is done, so that
// conditional references find what earlier ranks created. A transaction
// that fails while others run (a conditional reference to what another
// one creates, two conditional creates racing) is sent again alone once
// they are done, as a sequential import would have sent it.
type importer struct {
	server  http.Handler
	token   string
	batch   int
	workers int

	slots   chan struct{} // one per transaction in flight
	running sync.WaitGroup

	mu       sync.Mutex // guards sum, progress and retry
	sum      importSummary
	progress *progress
	retry    []pendingTx
}

type pendingTx struct {
	typ, path string
	entries   []entry
}

// submit sends a transaction (or batch) in the background.
func (imp *importer) submit(ctx context.Context, typ, path string, entries []entry) {
	if imp.slots == nil {
		imp.slots = make(chan struct{}, max(imp.workers, 1))
	}
	imp.slots <- struct{}{}
	imp.running.Add(1)
	go func() {
		defer func() { <-imp.slots; imp.running.Done() }()
		status, body := imp.post(ctx, typ, entries)
		imp.mu.Lock()
		defer imp.mu.Unlock()
		if status != http.StatusOK && ctx.Err() == nil {
			imp.retry = append(imp.retry, pendingTx{typ, path, entries})
			return
		}
		imp.countResponse(status, body, entries)
		imp.progress.advance(path, len(entries))
	}()
}

// wait lets every transaction in flight end, then sends again, one at a
// time, those that failed.
func (imp *importer) wait(ctx context.Context) {
	imp.running.Wait()
	imp.mu.Lock()
	retry := imp.retry
	imp.retry = nil
	imp.mu.Unlock()
	for _, p := range retry {
		imp.send(ctx, p.typ, p.entries)
		imp.mu.Lock()
		imp.progress.advance(p.path, len(p.entries))
		imp.mu.Unlock()
	}
}

type entry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Request  struct {
		Method      string `json:"method"`
		URL         string `json:"url"`
		IfNoneExist string `json:"ifNoneExist,omitempty"`
		IfMatch     string `json:"ifMatch,omitempty"`
	} `json:"request"`
}

func (imp *importer) file(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if strings.HasSuffix(path, ".json") {
		typ, entries, err := readBundleFile(f)
		if err != nil {
			return err
		}
		for i := range entries {
			idempotent(&entries[i])
		}
		imp.submit(ctx, typ, path, entries)
		return nil
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var pending []entry
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		// ParseResourceInPlace checks the line is JSON and reads its type
		// and id (the whole line decoded by encoding/json was a twentieth of
		// the import); the line itself goes on as it is, copied once.
		head, err := fhir.ParseResourceInPlace(line)
		if err != nil {
			imp.mu.Lock()
			imp.sum.add(0, "", "a line that is not a FHIR resource")
			imp.mu.Unlock()
			continue
		}
		var e entry
		e.Resource = append(json.RawMessage(nil), line...)
		e.Request.Method, e.Request.URL = "POST", head.Type
		if head.ID != "" {
			e.Request.Method, e.Request.URL = "PUT", head.Type+"/"+head.ID
		}
		pending = append(pending, e)
		if len(pending) == imp.batch {
			imp.submit(ctx, "transaction", path, pending)
			pending = nil
		}
	}
	if len(pending) > 0 {
		imp.submit(ctx, "transaction", path, pending)
	}
	return sc.Err()
}

// readBundleFile reads a transaction or batch Bundle: its type and its
// entries, each resource compact (a Bundle file is often indented: its
// resources are sent, and stored, compact). The file is compacted in one
// pass and split with fhir's scanner: encoding/json's decoder, then
// json.Compact of each resource, took the import's main goroutine about
// 25 ms a megabyte, beside the transactions, on a 2-core machine.
func readBundleFile(r io.Reader) (typ string, entries []entry, err error) {
	notBundle := errors.New("not a transaction or batch Bundle")
	data, err := io.ReadAll(r)
	if err != nil {
		return "", nil, err
	}
	compact, ok := fhir.AppendCompact(make([]byte, 0, len(data)), data)
	if !ok {
		return "", nil, notBundle
	}
	b, err := fhir.ParseObjectInPlace(compact)
	if err != nil {
		return "", nil, notBundle
	}
	var resourceType string
	if json.Unmarshal(b.Get("resourceType"), &resourceType) != nil || resourceType != "Bundle" ||
		json.Unmarshal(b.Get("type"), &typ) != nil || (typ != "transaction" && typ != "batch") {
		return "", nil, notBundle
	}
	raw := b.Get("entry")
	if raw == nil || string(raw) == "null" {
		return typ, nil, nil
	}
	objs, _, err, ok := fhir.ObjectsOf(raw)
	if !ok || err != nil {
		return "", nil, notBundle
	}
	entries = make([]entry, len(objs))
	for i, o := range objs {
		e := &entries[i]
		if v := o.Get("fullUrl"); v != nil && json.Unmarshal(v, &e.FullURL) != nil {
			return "", nil, notBundle
		}
		if v := o.Get("resource"); v != nil && string(v) != "null" {
			e.Resource = json.RawMessage(v)
		}
		if v := o.Get("request"); v != nil && json.Unmarshal(v, &e.Request) != nil {
			return "", nil, notBundle
		}
	}
	return typ, entries, nil
}

// idempotent turns a Bundle's create of a urn:uuid entry into an update of
// the id the uuid gives, so that importing the Bundle again changes
// nothing; references to the urn:uuid are rewritten to that id by the
// transaction as usual.
func idempotent(e *entry) {
	uuid, ok := strings.CutPrefix(e.FullURL, "urn:uuid:")
	if !ok || e.Request.Method != "POST" || e.Request.IfNoneExist != "" || !fhir.ValidID(uuid) {
		return
	}
	res, err := fhir.ParseObjectInPlace(e.Resource)
	var typ string
	if err != nil || json.Unmarshal(res.Get("resourceType"), &typ) != nil || typ == "" {
		return
	}
	body, err := res.Set("id", fhir.AppendString(nil, uuid)).MarshalJSON()
	if err != nil {
		return
	}
	e.Resource = body
	e.Request.Method, e.Request.URL = "PUT", typ+"/"+uuid
}

// send posts one Bundle and waits for it; a failed transaction is retried
// entry by entry so that each failure gets its own reason.
func (imp *importer) send(ctx context.Context, typ string, entries []entry) {
	status, body := imp.post(ctx, typ, entries)
	if status == http.StatusOK || len(entries) == 1 || ctx.Err() != nil {
		imp.mu.Lock()
		imp.countResponse(status, body, entries)
		imp.mu.Unlock()
		return
	}
	for _, e := range entries {
		imp.send(ctx, typ, []entry{e})
	}
}

// countResponse adds what a Bundle's answer says to the summary (imp.mu
// held).
func (imp *importer) countResponse(status int, body []byte, entries []entry) {
	if status == http.StatusOK {
		imp.count(body, entries)
		return
	}
	reason := reasonOf(body)
	for range entries {
		imp.sum.add(status, "", reason)
	}
}

func (imp *importer) post(ctx context.Context, typ string, entries []entry) (int, []byte) {
	req := httptest.NewRequest("POST", "/fhir", bytes.NewReader(writeBundle(typ, entries))).WithContext(ctx)
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Authorization", "Bearer "+imp.token)
	req.Header.Set("Prefer", "return=minimal")
	rec := httptest.NewRecorder()
	imp.server.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// writeBundle writes the Bundle of entries: what json.Marshal writes, but each
// resource as it is (valid JSON: a line ParseResource read, or a member of
// a Bundle file) instead of checked and compacted again.
func writeBundle(typ string, entries []entry) []byte {
	n := 64
	for i := range entries {
		n += len(entries[i].Resource) + len(entries[i].FullURL) + len(entries[i].Request.URL) + 96
	}
	b := make([]byte, 0, n)
	b = append(b, `{"resourceType":"Bundle","type":`...)
	b = append(fhir.AppendString(b, typ), `,"entry":[`...)
	for i, e := range entries {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		if e.FullURL != "" {
			b = append(fhir.AppendString(append(b, `"fullUrl":`...), e.FullURL), ',')
		}
		if len(e.Resource) > 0 {
			b = append(append(append(b, `"resource":`...), e.Resource...), ',')
		}
		b = fhir.AppendString(append(b, `"request":{"method":`...), e.Request.Method)
		b = fhir.AppendString(append(b, `,"url":`...), e.Request.URL)
		if e.Request.IfNoneExist != "" {
			b = fhir.AppendString(append(b, `,"ifNoneExist":`...), e.Request.IfNoneExist)
		}
		if e.Request.IfMatch != "" {
			b = fhir.AppendString(append(b, `,"ifMatch":`...), e.Request.IfMatch)
		}
		b = append(b, "}}"...)
	}
	return append(b, "]}"...)
}

// count adds a Bundle's entries' answers to the summary: 201 created, 200
// updated, unless the entry's outcome says unchanged or the entry is a
// conditional create that found its resource (nothing written).
func (imp *importer) count(body []byte, entries []entry) {
	var b struct {
		Entry []struct {
			Response struct {
				Status  string          `json:"status"`
				Outcome json.RawMessage `json:"outcome"`
			} `json:"response"`
		} `json:"entry"`
	}
	json.Unmarshal(body, &b)
	for i, e := range b.Entry {
		var status int
		fmt.Sscan(e.Response.Status, &status)
		outcome := reasonOf(e.Response.Outcome)
		if status == http.StatusOK && i < len(entries) && entries[i].Request.Method == "POST" {
			outcome = "unchanged"
		}
		imp.sum.add(status, outcome, outcome)
	}
}

// reasonOf is an OperationOutcome's first diagnostics, without ids.
func reasonOf(body []byte) string {
	var oo struct {
		Issue []struct {
			Diagnostics string   `json:"diagnostics"`
			Expression  []string `json:"expression"`
		} `json:"issue"`
	}
	if json.Unmarshal(body, &oo) != nil || len(oo.Issue) == 0 {
		return "unknown"
	}
	return oo.Issue[0].Diagnostics
}

// progress shows what an import has done: a line redrawn in place on a
// terminal (resources, rate, ETA by bytes), plain log lines every few
// seconds otherwise.
type progress struct {
	w         io.Writer
	tty       bool
	total     int64 // bytes of all files
	doneBytes int64
	count     int
	started   time.Time
	last      time.Time
	sizes     map[string]int64
	seen      map[string]bool
}

func newProgress(w io.Writer, files []string) *progress {
	p := &progress{w: w, started: time.Now(), sizes: map[string]int64{}, seen: map[string]bool{}}
	if f, ok := w.(*os.File); ok {
		if info, err := f.Stat(); err == nil && info.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	for _, f := range files {
		if info, err := os.Stat(f); err == nil {
			p.sizes[f] = info.Size()
			p.total += info.Size()
		}
	}
	return p
}

func (p *progress) advance(file string, n int) {
	p.count += n
	if !p.seen[file] {
		p.seen[file] = true
	}
	// Bytes are credited per finished file; within a file, by its share of
	// resources is unknown, so the ETA moves file by file.
	var done int64
	for f := range p.seen {
		done += p.sizes[f]
	}
	p.doneBytes = done
	now := time.Now()
	if !p.tty && now.Sub(p.last) < 5*time.Second {
		return
	}
	p.last = now
	elapsed := now.Sub(p.started).Seconds()
	rate := float64(p.count) / elapsed
	eta := "?"
	if p.doneBytes > 0 && p.total > 0 {
		eta = (time.Duration(elapsed*float64(p.total-p.doneBytes)/float64(p.doneBytes)) * time.Second).Round(time.Second).String()
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r%d resources  %.0f/s  ETA %s   ", p.count, rate, eta)
	} else {
		fmt.Fprintf(p.w, "import: %d resources, %.0f/s, %s\n", p.count, rate, filepath.Base(file))
	}
}

func (p *progress) done() {
	if p.tty {
		fmt.Fprintln(p.w)
	}
}
