package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/dmp-fhir/dmp-fhir/auth"
)

// tokenCmdVerifier verifies with the key the CLI created in dataDir.
func tokenCmdVerifier(t *testing.T, dataDir string, cfg auth.VerifierConfig) *auth.Verifier {
	t.Helper()
	key, err := auth.LoadOrCreateSigningKey(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Key = key
	v, err := auth.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestTokenCommandPrintsTokensTheVerifierAccepts(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want auth.Caller
		ops  string // an allowed resource type and interaction, e.g. "Observation c"
		deny string // a refused one
	}{
		{"practitioner defaults", []string{"practitioner", "--idnps", "810001234567", "--profession", "10"},
			auth.Caller{Kind: auth.KindPractitioner, ID: "810001234567", Profession: "10"}, "Observation c", ""},
		{"practitioner everything", []string{"practitioner", "-idnps", "0123456789", "-profession", "60", "-specialty", "SM26",
			"-finess", "750712184", "-name", "Dr Hélène Martin", "-regulator", "-access-mode", "centre_15", "-reason", "appel 15",
			"-scope", "user/Observation.rs", "-ttl", "5m"},
			auth.Caller{Kind: auth.KindPractitioner, ID: "0123456789", Profession: "60", Specialty: "SM26", Organization: "750712184",
				Name: "Dr Hélène Martin", Regulator: true, AccessMode: "centre_15", AccessReason: "appel 15"}, "Observation r", "Observation c"},
		{"system defaults", []string{"system", "--client", "his-demo"},
			auth.Caller{Kind: auth.KindSystem, ID: "his-demo"}, "DocumentReference d", ""},
		{"system with finess", []string{"system", "--client", "his-demo", "--finess", "750712184", "--scope", "system/*.cu"},
			auth.Caller{Kind: auth.KindSystem, ID: "his-demo", Organization: "750712184"}, "Binary c", "Binary r"},
		{"patient defaults", []string{"patient", "--patient", "pat-1"},
			auth.Caller{Kind: auth.KindPatient, ID: "pat-1"}, "Observation s", "Observation c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append(append([]string(nil), tt.args...), "-data-dir", dir)
			if err := tokenCmd(args, &stdout, &stderr); err != nil {
				t.Fatalf("%v (stderr %s)", err, stderr.String())
			}
			out := stdout.String()
			if strings.Count(out, "\n") != 1 || strings.Count(out, ".") != 2 {
				t.Fatalf("stdout is not one JWT line: %q", out)
			}
			c, err := tokenCmdVerifier(t, dir, auth.VerifierConfig{}).Verify(context.Background(), strings.TrimSpace(out))
			if err != nil {
				t.Fatal(err)
			}
			if c.Kind != tt.want.Kind || c.ID != tt.want.ID || c.Profession != tt.want.Profession || c.Specialty != tt.want.Specialty ||
				c.Organization != tt.want.Organization || c.Name != tt.want.Name || c.Regulator != tt.want.Regulator ||
				c.AccessMode != tt.want.AccessMode || c.AccessReason != tt.want.AccessReason {
				t.Errorf("caller %+v, want %+v", *c, tt.want)
			}
			check := func(s string, want bool) {
				if s == "" {
					return
				}
				typ, op, _ := strings.Cut(s, " ")
				if got := c.Scopes.Allows(typ, auth.Interaction(op)); got != want {
					t.Errorf("scopes %q: Allows(%s) = %v", c.Scopes, s, got)
				}
			}
			check(tt.ops, true)
			check(tt.deny, false)
		})
	}
}

func TestTokenCommandReadsDataDirIssuerAndAudienceFromTheEnvironment(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DMP_DATA_DIR", dir)
	t.Setenv("DMP_AUTH_ISSUER", "https://dmp.example.org")
	t.Setenv("DMP_AUTH_AUDIENCE", "https://dmp.example.org/fhir")
	var stdout, stderr bytes.Buffer
	if err := tokenCmd([]string{"patient", "-patient", "p1"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	v := tokenCmdVerifier(t, dir, auth.VerifierConfig{Issuer: "https://dmp.example.org", Audience: "https://dmp.example.org/fhir"})
	if _, err := v.Verify(context.Background(), strings.TrimSpace(stdout.String())); err != nil {
		t.Error(err)
	}
}

func TestTokenCommandRefusesBadInputClearly(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no kind", nil, "practitioner, system or patient"},
		{"unknown kind", []string{"admin"}, "unknown kind"},
		{"no idnps", []string{"practitioner", "-profession", "10"}, "-idnps is required"},
		{"RPPS without the 8", []string{"practitioner", "-idnps", "10001234567", "-profession", "10"}, "8 + the 11-digit RPPS"},
		{"letters in idnps", []string{"practitioner", "-idnps", "8100012345AB", "-profession", "10"}, "not an idNatPs"},
		{"no profession", []string{"practitioner", "-idnps", "810001234567"}, "-profession is required"},
		{"profession as a word", []string{"practitioner", "-idnps", "810001234567", "-profession", "medecin"}, "TRE_G15 code in digits"},
		{"bad access mode", []string{"practitioner", "-idnps", "810001234567", "-profession", "10", "-access-mode", "urgence"}, "-access-mode"},
		{"bad finess", []string{"practitioner", "-idnps", "810001234567", "-profession", "10", "-finess", "123"}, "FINESS"},
		{"scope granting nothing", []string{"practitioner", "-idnps", "810001234567", "-profession", "10", "-scope", "openid"}, "grants nothing"},
		{"ttl too long", []string{"practitioner", "-idnps", "810001234567", "-profession", "10", "-ttl", "48h"}, "-ttl"},
		{"no client", []string{"system"}, "-client is required"},
		{"no patient", []string{"patient"}, "-patient is required"},
		{"bad patient id", []string{"patient", "-patient", "a/b"}, "Patient id"},
		{"stray argument", []string{"patient", "-patient", "p1", "extra"}, "unexpected argument"},
		{"unknown flag", []string{"patient", "-nope"}, "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := tokenCmd(append(tt.args, "-data-dir", dir), &stdout, &stderr)
			if len(tt.args) == 0 {
				err = tokenCmd(nil, &stdout, &stderr)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to say %q", err, tt.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q on error", stdout.String())
			}
		})
	}
}

func TestClientCommandAddPrintsCredentialsThatAuthenticate(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if err := clientCmd([]string{"add", "--name", "HIS demo", "--finess", "750712184", "--scope", "system/*.cu", "--data-dir", dir}, &stdout, &stderr); err != nil {
		t.Fatalf("%v (stderr %s)", err, stderr.String())
	}
	var id, secret string
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "client_id":
			id = v
		case "client_secret":
			secret = v
		default:
			t.Errorf("unexpected stdout line %q", line)
		}
	}
	cl, err := auth.OpenClients(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cl.Authenticate(id, secret)
	if err != nil {
		t.Fatal(err)
	}
	if c.Organization != "750712184" || !c.Scopes.Allows("DocumentReference", auth.OpCreate) || c.Scopes.Allows("DocumentReference", auth.OpRead) {
		t.Errorf("caller %+v", c)
	}

	stdout.Reset()
	if err := clientCmd([]string{"list", "-data-dir", dir}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), id) || strings.Contains(stdout.String(), secret) {
		t.Errorf("list: %q", stdout.String())
	}

	for _, args := range [][]string{{"add", "-finess", "750712184"}, {"add", "-name", "x"}, {"remove"}, nil} {
		stdout.Reset()
		if err := clientCmd(append(args, "-data-dir", dir), &stdout, &stderr); err == nil || stdout.Len() != 0 {
			t.Errorf("client %v: err %v, stdout %q", args, err, stdout.String())
		}
	}
}
