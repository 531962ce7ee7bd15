package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dmp-fhir/dmp-fhir/auth"
)

// tokenUsage is the help of the token and client commands.
const tokenUsage = `usage:
  dmp-fhir token practitioner -idnps 810001234567 -profession 10 [-specialty SM26] [-finess 750712184]
                              [-name "Dr Martin"] [-regulator] [-access-mode normal|bris_de_glace|centre_15]
                              [-reason "..."] [-scope "user/*.cruds"] [-ttl 1h]
  dmp-fhir token system -client his-demo [-finess 750712184] [-scope "system/*.cruds"] [-ttl 1h]
  dmp-fhir token patient -patient ID [-scope "patient/*.rs"] [-ttl 1h]
  dmp-fhir client add -name "HIS demo" -finess 750712184 [-scope "system/*.cruds"]
  dmp-fhir client list

Tokens are signed with the server's key (DMP_DATA_DIR/keys/signing-key.pem, created if absent) and
printed alone on stdout:  TOKEN=$(dmp-fhir token practitioner -idnps 810001234567 -profession 10)
Common flags: -data-dir (DMP_DATA_DIR, ./data), -issuer (DMP_AUTH_ISSUER, dmp-fhir),
-audience (DMP_AUTH_AUDIENCE, dmp-fhir); flags may also be written with two dashes.`

// tokenEnv returns the environment variable name, or def when unset.
func tokenEnv(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// tokenFlags are the flags every token command has.
type tokenFlags struct {
	dataDir, issuer, audience, scope string
	ttl                              time.Duration
}

func newTokenFlagSet(name string, stderr io.Writer, defaultScope string) (*flag.FlagSet, *tokenFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, tokenUsage)
		fmt.Fprintf(stderr, "\nflags of %s:\n", name)
		fs.PrintDefaults()
	}
	t := &tokenFlags{}
	fs.StringVar(&t.dataDir, "data-dir", tokenEnv("DMP_DATA_DIR", "./data"), "data directory holding keys/signing-key.pem (DMP_DATA_DIR)")
	fs.StringVar(&t.issuer, "issuer", tokenEnv("DMP_AUTH_ISSUER", auth.DefaultIssuer), "iss of the token: the server's issuer (DMP_AUTH_ISSUER)")
	fs.StringVar(&t.audience, "audience", tokenEnv("DMP_AUTH_AUDIENCE", auth.DefaultAudience), "aud of the token: the server's audience (DMP_AUTH_AUDIENCE)")
	fs.StringVar(&t.scope, "scope", defaultScope, "space-separated SMART scopes")
	fs.DurationVar(&t.ttl, "ttl", time.Hour, "lifetime of the token (at most 24h)")
	return fs, t
}

// parseTokenFlags parses args; done is true when only help was asked.
func parseTokenFlags(fs *flag.FlagSet, args []string) (done bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, err
	}
	if fs.NArg() > 0 {
		return false, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return false, nil
}

// tokenCmd is the "token" command: it prints a token signed with the
// server's key for a practitioner, a system or a patient, for development
// and tests.
func tokenCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, tokenUsage)
		if len(args) == 0 {
			return errors.New("token: say practitioner, system or patient")
		}
		return nil
	}
	kind, args := args[0], args[1:]
	var (
		fs *flag.FlagSet
		t  *tokenFlags
		c  auth.Claims
	)
	switch kind {
	case "practitioner":
		fs, t = newTokenFlagSet("token practitioner", stderr, "user/*.cruds")
		fs.StringVar(&c.IDNatPs, "idnps", "", "idNatPs: 8 + 11-digit RPPS, or 0 + 9-digit ADELI (required)")
		fs.StringVar(&c.Profession, "profession", "", "TRE_G15 profession code: 10 médecin, 21 pharmacien, 40 chirurgien-dentiste, 50 sage-femme, 60 infirmier... (required)")
		fs.StringVar(&c.Specialty, "specialty", "", "savoir-faire code, e.g. SM26")
		fs.StringVar(&c.Finess, "finess", "", "FINESS of the organization")
		fs.StringVar(&c.Name, "name", "", "display name")
		fs.BoolVar(&c.Regulator, "regulator", false, "a SAMU (centre 15) regulating doctor")
		fs.StringVar(&c.AccessMode, "access-mode", "", "normal, bris_de_glace or centre_15")
		fs.StringVar(&c.AccessReason, "reason", "", "reason of a bris de glace access")
	case "system":
		fs, t = newTokenFlagSet("token system", stderr, "system/*.cruds")
		fs.StringVar(&c.ClientID, "client", "", "client id (required)")
		fs.StringVar(&c.Finess, "finess", "", "FINESS of the client's organization")
	case "patient":
		fs, t = newTokenFlagSet("token patient", stderr, "patient/*.rs")
		fs.StringVar(&c.Patient, "patient", "", "id of the Patient resource (required)")
	default:
		fmt.Fprintln(stderr, tokenUsage)
		return fmt.Errorf("token: unknown kind %q: say practitioner, system or patient", kind)
	}
	if done, err := parseTokenFlags(fs, args); done || err != nil {
		return err
	}
	c.Kind = auth.Kind(kind)
	c.Scope, c.Issuer, c.Audience = t.scope, t.issuer, t.audience
	if err := checkTokenClaims(c); err != nil {
		return fmt.Errorf("token %s: %w", kind, err)
	}
	if t.ttl <= 0 || t.ttl > auth.MaxTTL {
		return fmt.Errorf("token %s: -ttl %s: must be more than 0 and at most %s", kind, t.ttl, auth.MaxTTL)
	}
	if c.AccessMode == auth.ModeBrisDeGlace && c.AccessReason == "" {
		fmt.Fprintln(stderr, "warning: bris_de_glace without -reason: the server will refuse the access")
	}
	if c.AccessMode == auth.ModeCentre15 && !c.Regulator {
		fmt.Fprintln(stderr, "warning: centre_15 without -regulator: the server will refuse the access")
	}
	key, err := auth.LoadOrCreateSigningKey(t.dataDir)
	if err != nil {
		return err
	}
	tok, err := key.Issue(c, t.ttl)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// checkTokenClaims gives the flag-level errors a person at a terminal
// needs; Issue checks everything again.
func checkTokenClaims(c auth.Claims) error {
	switch c.Kind {
	case auth.KindPractitioner:
		if c.IDNatPs == "" {
			return errors.New("-idnps is required (8 + 11-digit RPPS, e.g. 810001234567, or 0 + 9-digit ADELI)")
		}
		if err := auth.ValidIDNatPs(c.IDNatPs); err != nil {
			return fmt.Errorf("-idnps: %v", err)
		}
		if c.Profession == "" {
			return errors.New("-profession is required (TRE_G15 code, e.g. 10 for médecin)")
		}
		if strings.Trim(c.Profession, "0123456789") != "" || len(c.Profession) > 4 {
			return fmt.Errorf("-profession %q: must be a TRE_G15 code in digits (10 médecin, 21 pharmacien, 40 chirurgien-dentiste, 50 sage-femme, 60 infirmier...)", c.Profession)
		}
		switch c.AccessMode {
		case "", auth.ModeNormal, auth.ModeBrisDeGlace, auth.ModeCentre15:
		default:
			return fmt.Errorf("-access-mode %q: must be normal, bris_de_glace or centre_15", c.AccessMode)
		}
	case auth.KindSystem:
		if c.ClientID == "" {
			return errors.New("-client is required (the client id)")
		}
	case auth.KindPatient:
		if c.Patient == "" {
			return errors.New("-patient is required (the id of the Patient resource)")
		}
	}
	if !auth.ParseScopes(c.Scope).Clinical() {
		return fmt.Errorf("-scope %q grants nothing: give SMART scopes such as user/*.cruds or patient/*.rs", c.Scope)
	}
	return nil
}

// clientCmd is the "client" command: "client add" registers a system
// client for the OAuth2 client_credentials grant and prints its id and
// secret (shown this once); "client list" prints the registered clients.
func clientCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, tokenUsage)
		if len(args) == 0 {
			return errors.New("client: say add or list")
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("client "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", tokenEnv("DMP_DATA_DIR", "./data"), "data directory holding clients.json (DMP_DATA_DIR)")
	switch sub {
	case "add":
		name := fs.String("name", "", "name of the client system (required)")
		finess := fs.String("finess", "", "FINESS of the client's organization (required)")
		scope := fs.String("scope", "system/*.cruds", "space-separated SMART scopes the client may get")
		if done, err := parseTokenFlags(fs, args); done || err != nil {
			return err
		}
		if *name == "" || *finess == "" {
			return errors.New("client add: -name and -finess are required")
		}
		id, secret, err := auth.AddClient(*dataDir, *name, *finess, *scope)
		if err != nil {
			return err
		}
		fmt.Fprintln(stderr, "Client registered. Keep the secret now: it is stored only as a bcrypt hash and cannot be shown again.")
		_, err = fmt.Fprintf(stdout, "client_id=%s\nclient_secret=%s\n", id, secret)
		return err
	case "list":
		if done, err := parseTokenFlags(fs, args); done || err != nil {
			return err
		}
		cl, err := auth.OpenClients(*dataDir)
		if err != nil {
			return err
		}
		list, err := cl.List()
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "CLIENT_ID\tNAME\tFINESS\tSCOPE\tCREATED")
		for _, c := range list {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", c.ID, c.Name, c.Finess, c.Scope, c.Created.Format(time.RFC3339))
		}
		return w.Flush()
	default:
		fmt.Fprintln(stderr, tokenUsage)
		return fmt.Errorf("client: unknown command %q: say add or list", sub)
	}
}
