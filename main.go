// Command dmp-fhir is the FHIR R4 server of the French Dossier Médical
// Partagé. `go run .` serves on the embedded SQLite engine; MONGODB_URI
// switches to MongoDB.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/smtp"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/dmp-fhir/dmp-fhir/api"
	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/fhir"
	"github.com/dmp-fhir/dmp-fhir/internal/metrics"
	"github.com/dmp-fhir/dmp-fhir/store"
	"github.com/dmp-fhir/dmp-fhir/store/mongo"
	"github.com/dmp-fhir/dmp-fhir/store/sqlite"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "dmp-fhir:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args, stderr)
	case "token":
		return tokenCmd(args, stdout, stderr)
	case "client":
		return clientCmd(args, stdout, stderr)
	case "outbox":
		return outboxCmd(args, stdout, stderr)
	case "reindex":
		return reindex(args, stdout, stderr)
	case "import":
		return importCmd(args, stdout, stderr)
	case "healthcheck":
		return healthcheck(args, stdout, stderr)
	case "seed":
		return seedCmd(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "dmp-fhir", version)
		return nil
	case "help":
		usage(stdout)
		return nil
	default:
		usage(stderr)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, `usage: dmp-fhir [command] [flags]

commands:
  serve     start the FHIR server (default)
  token     print a token signed with the local key: token practitioner|system|patient ...
  client    register a system client: client add --name ... --finess ... --scope ...; client list
  outbox    list the notifications sent to patients: outbox [--to PATIENT]
  import    load transaction/batch Bundles (.json) and NDJSON files: import PATH...
  seed      load demo DMPs (5 patients, professionals, every DMP category) into the stopped server's store
  reindex   extract the search values of every stored resource again
  healthcheck  exit 0 if the server at DMP_ADDR is ready (GET /readyz): a container's HEALTHCHECK
  version   print the version
  help      this text

Run "dmp-fhir serve -h" for the server's settings.`)
}

// slowOpenNotice is how long opening the store may take before serve says
// why it is waiting.
const slowOpenNotice = 2 * time.Second

func openStore(ctx context.Context, c config) (store.Store, error) {
	if c.MongoURI != "" {
		return mongo.Open(ctx, c.MongoURI, c.MongoDatabase)
	}
	return sqlite.Open(c.DataDir)
}

// The server's garbage collector, unless GOGC or GOMEMLIMIT say otherwise:
// collections a quarter as often (GOGC=300), bounded by a soft limit on the
// Go heap so that the process stays within its memory. Under D1 (4 rounds
// alternated) the medians of W1, W2 and W3 rose 5%, 14% and 13%, a search
// page's CPU fell 15%, ingest did not move, and the peak RSS was 360 MB
// (GOGC=400 alone had let it reach 697 MB under ingest). A machine with more
// memory for the server raises GOMEMLIMIT.
const (
	serverGCPercent   = 300
	serverMemoryLimit = 256 << 20
)

// serverGC applies the server's collector settings those of the
// environment (getenv) leave open.
func serverGC(getenv func(string) string) { setGC(getenv, serverGCPercent, serverMemoryLimit) }

// setGC sets the collector's percent and, when limit > 0, its soft memory
// limit, each unless the environment (getenv) sets it: GOGC, GOMEMLIMIT.
func setGC(getenv func(string) string, percent int, limit int64) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(percent)
	}
	if limit > 0 && getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(limit)
	}
}

func serve(args []string, stderr io.Writer) error {
	c, err := loadConfig("serve", args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	logHandler := newLogHandler(stderr, c.LogFormat, c.LogLevel)
	log := slog.New(logHandler)
	serverGC(os.Getenv)
	m := metrics.New(version)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	started := time.Now()
	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	// A database written by an older version is brought to the current
	// layout when it is opened: say so when that takes a while, so that an
	// operator does not take the silence for a hang.
	slow := time.AfterFunc(slowOpenNotice, func() {
		log.Warn("the store is still opening (the embedded database brings a database written by an older version to the current layout at its first start: seconds per 100,000 resources)")
	})
	raw, err := openStore(openCtx, c)
	cancel()
	noticed := !slow.Stop()
	if err != nil {
		return err
	}
	if noticed {
		log.Info("store opened", "ms", time.Since(started).Milliseconds())
	}
	st := m.Store(raw) // every storage operation timed for /metrics
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	}()
	validator, err := fhir.NewValidator()
	if err != nil {
		return err
	}
	access, closeAccess, err := openAccess(ctx, c, st, log, m)
	if err != nil {
		return err
	}
	defer closeAccess()
	if err := benchSwitches(c.Addr, access, log); err != nil {
		return err
	}
	handler := api.New(api.Config{
		BaseURL: c.BaseURL, MaxBodyBytes: c.MaxBodyBytes, MaxBundleEntries: c.MaxBundleEntries, InlineMaxBytes: c.InlineMaxBytes,
		CursorKey: []byte(c.CursorKey), Version: version, Logger: log, Auth: access,
		Metrics: m, MetricsToken: c.MetricsToken, RequestTimeout: c.RequestTimeout, MaxInFlight: c.MaxInFlight,
		ExportTTL: c.ExportTTL,
	}, st, validator)
	defer handler.Close() // the export jobs stop before the store closes

	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(logHandler, slog.LevelWarn),
	}
	log.Info("dmp-fhir listening", "addr", ln.Addr().String(), "engine", st.Info().Engine, "version", version, "startup_ms", time.Since(started).Milliseconds())

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: draining in-flight requests")
	drain, cancelDrain := context.WithTimeout(context.Background(), c.ShutdownTimeout)
	defer cancelDrain()
	if err := srv.Shutdown(drain); err != nil {
		log.Error("shutdown", "err", err)
	}
	return nil
}

// healthcheck asks the server at -addr whether it is ready (GET /readyz)
// and exits non-zero when not: the HEALTHCHECK of an image that has no
// shell nor curl. A wildcard listen address is probed on the loopback.
func healthcheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", tokenEnv("DMP_ADDR", "127.0.0.1:8080"), "address the server listens on (DMP_ADDR)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("DMP_ADDR / -addr: %v", err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	client := &http.Client{Timeout: *timeout}
	res, err := client.Get("http://" + net.JoinHostPort(host, port) + "/readyz")
	if err != nil {
		return fmt.Errorf("healthcheck: %v", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: not ready: %d %s", res.StatusCode, bytes.TrimSpace(body))
	}
	fmt.Fprintf(stdout, "ready: %s\n", bytes.TrimSpace(body))
	return nil
}

// newLogHandler is the server's log handler: JSON lines, or text when format
// says so or, with no format set, when w is a terminal.
func newLogHandler(w io.Writer, format string, level slog.Level) slog.Handler {
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	opts := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.NewTextHandler(w, opts)
	}
	return slog.NewJSONHandler(w, opts)
}

// benchSwitches applies the benchmark-only switches that cmd/dmpbench sets
// in the server's environment. They are not settings: no flag, no entry in
// the configuration table, never for production (docs/PERFORMANCE.md), and
// refused unless the server listens on a loopback address.
// DMP_BENCH_UNRESTRICTED=1 turns the consent decision and the audit off
// (api.Auth.Unrestricted), DMP_BENCH_NO_AUDIT=1 the audit only (every read
// is still decided by the patient's consent), to measure what each costs;
// DMP_BENCH_PPROF=host:port serves net/http/pprof on that loopback address.
func benchSwitches(addr string, access *api.Auth, log *slog.Logger) error {
	unrestricted, noAudit, prof := os.Getenv("DMP_BENCH_UNRESTRICTED") == "1", os.Getenv("DMP_BENCH_NO_AUDIT") == "1", os.Getenv("DMP_BENCH_PPROF")
	if !unrestricted && !noAudit && prof == "" {
		return nil
	}
	for _, a := range []string{addr, prof} {
		if a == "" {
			continue
		}
		host, _, err := net.SplitHostPort(a)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			return fmt.Errorf("DMP_BENCH_UNRESTRICTED / DMP_BENCH_NO_AUDIT / DMP_BENCH_PPROF are benchmark switches, refused on %q: only on a loopback address", a)
		}
	}
	if unrestricted {
		log.Warn("BENCHMARK SWITCH DMP_BENCH_UNRESTRICTED=1: consent and audit are OFF; never in production")
		access.Unrestricted = true
	}
	if noAudit {
		// The API records nothing without an auditor (api.Server.audited);
		// the journal stays open, idle, and is closed with the others.
		log.Warn("BENCHMARK SWITCH DMP_BENCH_NO_AUDIT=1: the audit is OFF (consent is still decided); never in production")
		access.Auditor = nil
	}
	if prof != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		ln, err := net.Listen("tcp", prof)
		if err != nil {
			return err
		}
		log.Warn("BENCHMARK SWITCH DMP_BENCH_PPROF: net/http/pprof served", "addr", ln.Addr().String())
		go http.Serve(ln, mux)
	}
	return nil
}

// reindex re-extracts the search index values of every current resource,
// for when the search parameter definitions changed.
func reindex(args []string, stdout, stderr io.Writer) error {
	c, err := loadConfig("reindex", args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	st, err := openStore(ctx, c)
	if err != nil {
		return err
	}
	defer st.Close()
	started := time.Now()
	last := 0
	err = st.Reindex(ctx, func(done int) {
		last = done
		fmt.Fprintf(stdout, "reindexed %d resources\n", done)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "done: %d resources in %s\n", last, time.Since(started).Round(time.Millisecond))
	return nil
}

// openAccess builds the access machinery: the signing key and the token
// verifier (own tokens, and Pro Santé Connect's when configured), the
// registered clients, the audit writer and the patients' notifier.
func openAccess(ctx context.Context, c config, st store.Store, log *slog.Logger, m *metrics.Metrics) (*api.Auth, func(), error) {
	key, err := auth.LoadOrCreateSigningKey(c.DataDir)
	if err != nil {
		return nil, nil, err
	}
	vc := auth.VerifierConfig{Issuer: c.AuthIssuer, Audience: c.AuthAudience, Key: key, Logger: log}
	if c.PSCIssuer != "" {
		vc.External = append(vc.External, auth.ExternalIssuer{
			Issuer: c.PSCIssuer, JWKS: c.PSCJWKS, Audience: c.PSCAudience,
			Kind: auth.KindPractitioner, DefaultScopes: c.PSCDefaultScopes,
		})
	}
	verifier, err := auth.NewVerifier(vc)
	if err != nil {
		return nil, nil, err
	}
	if err := verifier.Refresh(ctx); err != nil {
		log.Warn("external key sets could not be fetched yet", "err", err)
	}
	clients, err := auth.OpenClients(c.DataDir)
	if err != nil {
		return nil, nil, err
	}
	notifier, closeNotifier, err := openNotifier(c)
	if err != nil {
		return nil, nil, err
	}
	// The audit journal makes an access's record durable with one shared
	// fsync; AuditEvent resources are written from it in the background.
	auditor, err := auth.OpenAuditor(st, auth.AuditorOptions{Logger: log, JournalDir: filepath.Join(c.DataDir, "audit"), OnBatch: m.AuditBatch})
	if err != nil {
		closeNotifier()
		return nil, nil, err
	}
	closeAll := func() {
		if err := auditor.Close(); err != nil {
			log.Error("closing the audit writer", "err", err)
		}
		closeNotifier()
	}
	return &api.Auth{
		Verifier: verifier, Auditor: auditor, Notifier: notifier, Key: key, Clients: clients,
		Issuer: c.AuthIssuer, Audience: c.AuthAudience,
	}, closeAll, nil
}

// openNotifier builds the patients' notifier the settings name: the local
// outbox file, a webhook, or an SMTP server.
func openNotifier(c config) (auth.Notifier, func(), error) {
	switch c.Notifier {
	case "webhook":
		return auth.NewWebhook(c.WebhookURL, nil), func() {}, nil
	case "smtp":
		var a smtp.Auth
		if c.SMTPUsername != "" {
			host, _, _ := net.SplitHostPort(c.SMTPAddr)
			a = smtp.PlainAuth("", c.SMTPUsername, c.SMTPPassword, host)
		}
		return auth.NewSMTP(c.SMTPAddr, c.SMTPFrom, a), func() {}, nil
	}
	outbox, err := auth.NewOutbox(c.DataDir)
	if err != nil {
		return nil, nil, err
	}
	return outbox, func() { outbox.Close() }, nil
}

// outboxCmd lists the notifications of the local outbox.
func outboxCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("outbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", tokenEnv("DMP_DATA_DIR", "./data"), "data directory (DMP_DATA_DIR)")
	to := fs.String("to", "", "only the notifications to this patient id or address")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	ob, err := auth.NewOutbox(*dataDir)
	if err != nil {
		return err
	}
	defer ob.Close()
	list, err := ob.List(*to)
	if err != nil {
		return err
	}
	for _, n := range list {
		fmt.Fprintf(stdout, "%s  to=%s  kind=%s  %s\n%s\n\n", n.Time.UTC().Format(time.RFC3339), n.To, n.Kind, n.Subject, n.Body)
	}
	return nil
}
