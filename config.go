package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dmp-fhir/dmp-fhir/api"
	"github.com/dmp-fhir/dmp-fhir/auth"
)

// config is the server's configuration: every setting is a flag and an
// environment variable; a flag wins over the environment.
type config struct {
	Addr             string
	DataDir          string
	BaseURL          string
	MongoURI         string
	MongoDatabase    string
	MaxBodyBytes     int64
	MaxBundleEntries int
	InlineMaxBytes   int64 // as api.Config.InlineMaxBytes: -1 when none is kept inline
	CursorKey        string
	ShutdownTimeout  time.Duration

	LogFormat    string // json | text ("" : json, text when stderr is a terminal)
	LogLevel     slog.Level
	MetricsToken string

	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	RequestTimeout    time.Duration
	MaxInFlight       int
	// ExportTTL is how long a bulk export job and its files are kept once
	// it ended.
	ExportTTL time.Duration

	// Notifier is how patients are told of codes, first and emergency
	// accesses: outbox (a local file, the default), webhook or smtp.
	Notifier     string
	WebhookURL   string
	SMTPAddr     string
	SMTPFrom     string
	SMTPUsername string
	SMTPPassword string

	AuthIssuer       string
	AuthAudience     string
	PSCIssuer        string
	PSCJWKS          string
	PSCAudience      string
	PSCDefaultScopes string
}

func loadConfig(name string, args []string, stderr io.Writer) (config, error) {
	env := func(name, def string) string {
		if v, ok := os.LookupEnv(name); ok {
			return v
		}
		return def
	}
	var c config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Addr, "addr", env("DMP_ADDR", "127.0.0.1:8080"), "listen address (DMP_ADDR)")
	fs.StringVar(&c.DataDir, "data-dir", env("DMP_DATA_DIR", "./data"), "data directory of the embedded engine (DMP_DATA_DIR)")
	fs.StringVar(&c.BaseURL, "base-url", env("DMP_BASE_URL", ""), "absolute base URL of /fhir used in links and Location; empty: from each request (DMP_BASE_URL)")
	fs.StringVar(&c.MongoURI, "mongodb-uri", env("MONGODB_URI", ""), "MongoDB connection string; empty: embedded SQLite engine (MONGODB_URI)")
	fs.StringVar(&c.MongoDatabase, "mongodb-database", env("DMP_MONGODB_DATABASE", "dmp"), "MongoDB database name (DMP_MONGODB_DATABASE)")
	maxBody := fs.String("max-body", env("DMP_MAX_BODY_BYTES", strconv.Itoa(api.DefaultMaxBodyBytes)), "largest request body in bytes (DMP_MAX_BODY_BYTES)")
	maxEntries := fs.String("max-bundle-entries", env("DMP_MAX_BUNDLE_ENTRIES", strconv.Itoa(api.DefaultMaxBundleEntries)), "most entries in a batch or transaction Bundle (DMP_MAX_BUNDLE_ENTRIES)")
	// Secrets are read from the environment after parsing, so that -h never
	// prints them as a flag's default.
	fs.StringVar(&c.CursorKey, "cursor-key", "", "secret of at least 32 characters that signs paging cursors; empty: random per start (DMP_CURSOR_KEY)")
	inlineMax := fs.String("inline-max-bytes", env("DMP_INLINE_MAX_BYTES", strconv.Itoa(api.DefaultInlineMaxBytes)), "largest document content kept inside its resource; larger goes to blob storage, 0 for all (DMP_INLINE_MAX_BYTES)")
	fs.StringVar(&c.AuthIssuer, "auth-issuer", env("DMP_AUTH_ISSUER", auth.DefaultIssuer), "iss of the tokens this server issues (DMP_AUTH_ISSUER)")
	fs.StringVar(&c.AuthAudience, "auth-audience", env("DMP_AUTH_AUDIENCE", auth.DefaultAudience), "aud every token must carry (DMP_AUTH_AUDIENCE)")
	fs.StringVar(&c.PSCIssuer, "psc-issuer", env("DMP_PSC_ISSUER", ""), "iss of Pro Santé Connect tokens to accept; empty: none (DMP_PSC_ISSUER)")
	fs.StringVar(&c.PSCJWKS, "psc-jwks", env("DMP_PSC_JWKS", ""), "Pro Santé Connect key set: a file or an https URL (DMP_PSC_JWKS)")
	fs.StringVar(&c.PSCAudience, "psc-audience", env("DMP_PSC_AUDIENCE", ""), "aud of Pro Santé Connect tokens; empty: -auth-audience (DMP_PSC_AUDIENCE)")
	fs.StringVar(&c.PSCDefaultScopes, "psc-default-scopes", env("DMP_PSC_DEFAULT_SCOPES", ""), "scopes granted to PSC tokens that carry no SMART scope, e.g. user/*.cruds (DMP_PSC_DEFAULT_SCOPES)")
	shutdown := fs.String("shutdown-timeout", env("DMP_SHUTDOWN_TIMEOUT", "30s"), "how long in-flight requests may drain at shutdown (DMP_SHUTDOWN_TIMEOUT)")
	fs.StringVar(&c.LogFormat, "log-format", env("DMP_LOG_FORMAT", ""), "log format: json or text; empty: json, text when stderr is a terminal (DMP_LOG_FORMAT)")
	logLevel := fs.String("log-level", env("DMP_LOG_LEVEL", "info"), "least level logged: debug, info, warn or error (DMP_LOG_LEVEL)")
	fs.StringVar(&c.Notifier, "notifier", env("DMP_NOTIFIER", "outbox"), "how patients are notified: outbox (DMP_DATA_DIR/outbox.jsonl), webhook or smtp (DMP_NOTIFIER)")
	fs.StringVar(&c.WebhookURL, "notify-webhook-url", env("DMP_NOTIFY_WEBHOOK_URL", ""), "URL each notification is POSTed to as JSON, with -notifier webhook (DMP_NOTIFY_WEBHOOK_URL)")
	fs.StringVar(&c.SMTPAddr, "smtp-addr", env("DMP_SMTP_ADDR", ""), "SMTP server host:port, with -notifier smtp; STARTTLS when offered (DMP_SMTP_ADDR)")
	fs.StringVar(&c.SMTPFrom, "smtp-from", env("DMP_SMTP_FROM", ""), "sender address of the e-mails (DMP_SMTP_FROM)")
	fs.StringVar(&c.SMTPUsername, "smtp-username", env("DMP_SMTP_USERNAME", ""), "SMTP PLAIN authentication user; empty: none (DMP_SMTP_USERNAME)")
	fs.StringVar(&c.SMTPPassword, "smtp-password", "", "SMTP password (DMP_SMTP_PASSWORD; prefer the variable: flags show in ps)")
	fs.StringVar(&c.MetricsToken, "metrics-token", "", "bearer token GET /metrics needs, at least 16 characters; empty: none (DMP_METRICS_TOKEN; prefer the variable: flags show in ps)")
	durations := []struct {
		dst       *time.Duration
		raw       *string
		env, flag string
		zeroOK    bool
	}{
		{&c.ReadHeaderTimeout, fs.String("read-header-timeout", env("DMP_READ_HEADER_TIMEOUT", "10s"), "longest time to read a request's headers (DMP_READ_HEADER_TIMEOUT)"), "DMP_READ_HEADER_TIMEOUT", "read-header-timeout", false},
		{&c.ReadTimeout, fs.String("read-timeout", env("DMP_READ_TIMEOUT", "60s"), "longest time to read a whole request, body included (DMP_READ_TIMEOUT)"), "DMP_READ_TIMEOUT", "read-timeout", false},
		{&c.WriteTimeout, fs.String("write-timeout", env("DMP_WRITE_TIMEOUT", "120s"), "longest time from the end of a request's headers to the end of its response (DMP_WRITE_TIMEOUT)"), "DMP_WRITE_TIMEOUT", "write-timeout", false},
		{&c.IdleTimeout, fs.String("idle-timeout", env("DMP_IDLE_TIMEOUT", "120s"), "how long an idle keep-alive connection stays open (DMP_IDLE_TIMEOUT)"), "DMP_IDLE_TIMEOUT", "idle-timeout", false},
		{&c.RequestTimeout, fs.String("request-timeout", env("DMP_REQUEST_TIMEOUT", "60s"), "deadline of each FHIR request, store included (503 beyond); 0: none (DMP_REQUEST_TIMEOUT)"), "DMP_REQUEST_TIMEOUT", "request-timeout", true},
		{&c.ExportTTL, fs.String("export-ttl", env("DMP_EXPORT_TTL", api.DefaultExportTTL.String()), "how long a bulk $export job and its files are kept once it ended (DMP_EXPORT_TTL)"), "DMP_EXPORT_TTL", "export-ttl", false},
	}
	maxInFlight := fs.String("max-in-flight", env("DMP_MAX_IN_FLIGHT", "256"), "most FHIR requests served at once (503 + Retry-After beyond); 0: no cap (DMP_MAX_IN_FLIGHT)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["cursor-key"] {
		c.CursorKey = env("DMP_CURSOR_KEY", "")
	}
	if !set["metrics-token"] {
		c.MetricsToken = env("DMP_METRICS_TOKEN", "")
	}
	if !set["smtp-password"] {
		c.SMTPPassword = env("DMP_SMTP_PASSWORD", "")
	}
	switch c.Notifier {
	case "outbox":
	case "webhook":
		if u, err := url.Parse(c.WebhookURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return c, fmt.Errorf("DMP_NOTIFY_WEBHOOK_URL / -notify-webhook-url: %q is not an http(s) URL (needed by DMP_NOTIFIER=webhook)", c.WebhookURL)
		}
	case "smtp":
		if _, _, err := net.SplitHostPort(c.SMTPAddr); err != nil {
			return c, fmt.Errorf("DMP_SMTP_ADDR / -smtp-addr: %q is not host:port (needed by DMP_NOTIFIER=smtp)", c.SMTPAddr)
		}
		if !strings.Contains(c.SMTPFrom, "@") {
			return c, fmt.Errorf("DMP_SMTP_FROM / -smtp-from: %q is not an e-mail address", c.SMTPFrom)
		}
	default:
		return c, fmt.Errorf("DMP_NOTIFIER / -notifier: %q is not outbox, webhook or smtp", c.Notifier)
	}
	n, err := strconv.ParseInt(*maxBody, 10, 64)
	if err != nil || n <= 0 {
		return c, fmt.Errorf("DMP_MAX_BODY_BYTES / -max-body: %q is not a positive number of bytes", *maxBody)
	}
	c.MaxBodyBytes = n
	if c.MaxBundleEntries, err = strconv.Atoi(*maxEntries); err != nil || c.MaxBundleEntries <= 0 {
		return c, fmt.Errorf("DMP_MAX_BUNDLE_ENTRIES / -max-bundle-entries: %q is not a positive number", *maxEntries)
	}
	if c.InlineMaxBytes, err = strconv.ParseInt(*inlineMax, 10, 64); err != nil || c.InlineMaxBytes < 0 {
		return c, fmt.Errorf("DMP_INLINE_MAX_BYTES / -inline-max-bytes: %q is not a number of bytes (0 or more)", *inlineMax)
	} else if c.InlineMaxBytes == 0 {
		c.InlineMaxBytes = -1
	}
	if c.CursorKey != "" && len(c.CursorKey) < 32 {
		return c, errors.New("DMP_CURSOR_KEY / -cursor-key: must be at least 32 characters")
	}
	if c.ShutdownTimeout, err = time.ParseDuration(*shutdown); err != nil || c.ShutdownTimeout < 0 {
		return c, fmt.Errorf("DMP_SHUTDOWN_TIMEOUT / -shutdown-timeout: %q is not a duration such as 30s", *shutdown)
	}
	for _, d := range durations {
		v, err := time.ParseDuration(*d.raw)
		if err != nil || v < 0 || v == 0 && !d.zeroOK {
			return c, fmt.Errorf("%s / -%s: %q is not a positive duration such as 30s", d.env, d.flag, *d.raw)
		}
		*d.dst = v
	}
	if c.RequestTimeout > 0 && c.RequestTimeout >= c.WriteTimeout {
		return c, fmt.Errorf("DMP_REQUEST_TIMEOUT / -request-timeout: %s must be shorter than DMP_WRITE_TIMEOUT (%s), or the 503 could not be written", c.RequestTimeout, c.WriteTimeout)
	}
	if c.MaxInFlight, err = strconv.Atoi(*maxInFlight); err != nil || c.MaxInFlight < 0 {
		return c, fmt.Errorf("DMP_MAX_IN_FLIGHT / -max-in-flight: %q is not a number of requests (0: no cap)", *maxInFlight)
	}
	switch c.LogFormat {
	case "", "json", "text":
	default:
		return c, fmt.Errorf("DMP_LOG_FORMAT / -log-format: %q is neither json nor text", c.LogFormat)
	}
	if err := c.LogLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return c, fmt.Errorf("DMP_LOG_LEVEL / -log-level: %q is not one of debug, info, warn, error", *logLevel)
	}
	if c.MetricsToken != "" && len(c.MetricsToken) < 16 {
		return c, errors.New("DMP_METRICS_TOKEN / -metrics-token: must be at least 16 characters")
	}
	if c.BaseURL != "" {
		if u, err := parseAbsoluteURL(c.BaseURL); err != nil {
			return c, fmt.Errorf("DMP_BASE_URL / -base-url: %v", err)
		} else {
			c.BaseURL = u
		}
	}
	if (c.PSCIssuer == "") != (c.PSCJWKS == "") {
		return c, errors.New("DMP_PSC_ISSUER and DMP_PSC_JWKS: set both or neither")
	}
	if c.DataDir == "" {
		return c, errors.New("DMP_DATA_DIR / -data-dir: must not be empty")
	}
	return c, nil
}

func parseAbsoluteURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return strings.TrimRight(s, "/"), nil
}
