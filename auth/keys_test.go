package auth

import (
	"context"
	"crypto"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestJWKThumbprintMatchesRFC7638Example(t *testing.T) {
	// RFC 7638 §3.1.
	n, _ := base64.RawURLEncoding.DecodeString("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
	got, err := jwkThumbprint(&rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537})
	if err != nil {
		t.Fatal(err)
	}
	if want := "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Errorf("thumbprint = %s, want %s", got, want)
	}
}

func TestLoadOrCreateSigningKeyCreatesPrivateFileAndReusesIt(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreateSigningKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "keys", "signing-key.pem")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	di, err := os.Stat(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("key file mode %04o, want 0600", fi.Mode().Perm())
		}
		if di.Mode().Perm() != 0o700 {
			t.Errorf("keys dir mode %04o, want 0700", di.Mode().Perm())
		}
	}
	k2, err := LoadOrCreateSigningKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k1.KeyID() != k2.KeyID() || k1.KeyID() == "" {
		t.Errorf("second load has kid %q, first %q", k2.KeyID(), k1.KeyID())
	}
	if want, _ := jwkThumbprint(k1.Public()); k1.KeyID() != want {
		t.Errorf("kid %q is not the RFC 7638 thumbprint %q", k1.KeyID(), want)
	}
	// A token of the first load verifies with the second.
	tok, err := k1.Issue(Claims{Kind: KindPatient, Patient: "p1", Scope: "patient/*.rs"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(VerifierConfig{Key: k2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Errorf("token of the first load: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "keys"))
	if len(entries) != 1 {
		t.Errorf("keys dir holds %d entries, want only the key (no temporary file left)", len(entries))
	}
}

func TestLoadOrCreateSigningKeyConcurrentStartsAgree(t *testing.T) {
	dir := t.TempDir()
	kids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range kids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := LoadOrCreateSigningKey(dir)
			if err != nil {
				t.Error(err)
				return
			}
			kids[i] = k.KeyID()
		}()
	}
	wg.Wait()
	for _, kid := range kids[1:] {
		if kid != kids[0] {
			t.Fatalf("concurrent starts got different keys: %v", kids)
		}
	}
}

func TestLoadOrCreateSigningKeyRefusesOpenPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	tests := []struct {
		name     string
		fileMode os.FileMode
		dirMode  os.FileMode
	}{
		{"key readable by others", 0o644, 0o700},
		{"key readable by group", 0o640, 0o700},
		{"key writable by group", 0o620, 0o700},
		{"keys dir open to others", 0o600, 0o755},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := LoadOrCreateSigningKey(dir); err != nil {
				t.Fatal(err)
			}
			keys := filepath.Join(dir, "keys")
			if err := os.Chmod(filepath.Join(keys, "signing-key.pem"), tt.fileMode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(keys, tt.dirMode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreateSigningKey(dir)
			if err == nil || !strings.Contains(err.Error(), "chmod") {
				t.Errorf("err = %v, want a refusal that says chmod", err)
			}
		})
	}
}

func TestLoadOrCreateSigningKeyRefusesGarbage(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keys, "signing-key.pem"), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateSigningKey(dir); err == nil {
		t.Error("a garbage key file was accepted")
	}
}

func TestPublicJWKSIsTheSigningKey(t *testing.T) {
	k, err := GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(k.PublicJWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("%d keys", len(set.Keys))
	}
	j := set.Keys[0]
	if j["kid"] != k.KeyID() || j["alg"] != "ES256" || j["kty"] != "EC" || j["crv"] != "P-256" || j["use"] != "sig" {
		t.Errorf("JWK = %v", j)
	}
	if _, ok := j["d"]; ok {
		t.Error("the JWKS leaks the private key")
	}
	keys, err := parseJWKS(k.PublicJWKS())
	if err != nil {
		t.Fatal(err)
	}
	if !keys[k.KeyID()].pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) {
		t.Error("the JWKS key is not the signing key")
	}
}

func TestIssueRefusesBadLifetimeAndClaims(t *testing.T) {
	k, err := GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	ok := Claims{Kind: KindPractitioner, IDNatPs: "810001234567", Profession: "10", Scope: "user/*.rs"}
	tests := []struct {
		name string
		c    Claims
		ttl  time.Duration
	}{
		{"zero ttl", ok, 0},
		{"negative ttl", ok, -time.Minute},
		{"ttl over a day", ok, MaxTTL + time.Second},
		{"no kind", Claims{IDNatPs: "810001234567", Profession: "10"}, time.Hour},
		{"bad kind", Claims{Kind: "admin", IDNatPs: "810001234567", Profession: "10"}, time.Hour},
		{"practitioner without idnps", Claims{Kind: KindPractitioner, Profession: "10"}, time.Hour},
		{"practitioner with rpps only", Claims{Kind: KindPractitioner, IDNatPs: "10001234567", Profession: "10"}, time.Hour},
		{"practitioner without profession", Claims{Kind: KindPractitioner, IDNatPs: "810001234567"}, time.Hour},
		{"practitioner with word profession", Claims{Kind: KindPractitioner, IDNatPs: "810001234567", Profession: "medecin"}, time.Hour},
		{"bad finess", Claims{Kind: KindPractitioner, IDNatPs: "810001234567", Profession: "10", Finess: "12"}, time.Hour},
		{"bad access mode", Claims{Kind: KindPractitioner, IDNatPs: "810001234567", Profession: "10", AccessMode: "urgence"}, time.Hour},
		{"patient without id", Claims{Kind: KindPatient}, time.Hour},
		{"patient with bad id", Claims{Kind: KindPatient, Patient: "a/b"}, time.Hour},
		{"patient as regulator", Claims{Kind: KindPatient, Patient: "p1", Regulator: true}, time.Hour},
		{"system without client", Claims{Kind: KindSystem}, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tok, err := k.Issue(tt.c, tt.ttl); err == nil {
				t.Errorf("issued %q", tok[:10])
			}
		})
	}
}

func TestValidIDNatPs(t *testing.T) {
	for s, want := range map[string]bool{
		"810001234567": true, "0123456789": true,
		"10001234567": false, "81000123456": false, "8100012345678": false, "012345678": false,
		"81000123456a": false, "310001234567": false, "": false,
	} {
		if got := ValidIDNatPs(s) == nil; got != want {
			t.Errorf("ValidIDNatPs(%q) ok = %v, want %v", s, got, want)
		}
	}
}
