// Command dmp-fhir is the FHIR R4 server of the French Dossier Médical
// Partagé. `go run .` serves on the embedded SQLite engine; MONGODB_URI
// switches to MongoDB.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dmp-fhir/dmp-fhir/api"
	"github.com/dmp-fhir/dmp-fhir/fhir"
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
  version   print the version
  help      this text

Run "dmp-fhir serve -h" for the server's settings.`)
}

func openStore(ctx context.Context, c config) (store.Store, error) {
	if c.MongoURI != "" {
		return mongo.Open(ctx, c.MongoURI, c.MongoDatabase)
	}
	return sqlite.Open(c.DataDir)
}

func serve(args []string, stderr io.Writer) error {
	c, err := loadConfig(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	started := time.Now()
	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	st, err := openStore(openCtx, c)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	}()
	validator, err := fhir.NewValidator()
	if err != nil {
		return err
	}
	handler := api.New(api.Config{BaseURL: c.BaseURL, MaxBodyBytes: c.MaxBodyBytes, Version: version, Logger: log}, st, validator)

	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      120 * time.Second,
		IdleTimeout:       120 * time.Second,
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
