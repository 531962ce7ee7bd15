package auth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestClientsAddThenAuthenticate(t *testing.T) {
	dir := t.TempDir()
	id, secret, err := AddClient(dir, "HIS Démo (CHU)", "750712184", "system/*.cruds openid")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id, "his-d-mo-chu-") {
		t.Errorf("client id %q does not come from the name", id)
	}
	if len(secret) < 40 {
		t.Errorf("secret %d characters, want at least 40", len(secret))
	}
	path := filepath.Join(dir, "clients.json")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("clients.json mode %04o, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), secret) {
		t.Error("clients.json holds the secret in clear")
	}
	if !strings.Contains(string(data), `"$2`) {
		t.Error("clients.json holds no bcrypt hash")
	}

	cl, err := OpenClients(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cl.Authenticate(id, secret)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind != KindSystem || c.ID != id || c.Organization != "750712184" || c.Name != "HIS Démo (CHU)" ||
		!c.Scopes.Allows("DocumentReference", OpCreate) || c.Scopes.String() != "system/*.cruds openid" {
		t.Errorf("caller %+v", c)
	}
	list, err := cl.List()
	if err != nil || len(list) != 1 || list[0].ID != id || list[0].Finess != "750712184" {
		t.Errorf("List = %+v, %v", list, err)
	}

	// The client gets a token the verifier accepts.
	k, _ := GenerateSigningKey()
	v, _ := NewVerifier(VerifierConfig{Key: k})
	tok, err := k.Issue(c.Claims(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(context.Background(), tok)
	if err != nil || got.Kind != KindSystem || got.ID != id || got.Organization != "750712184" {
		t.Errorf("verified %+v, %v", got, err)
	}
}

func TestClientsAuthenticateRefusesSameWay(t *testing.T) {
	dir := t.TempDir()
	id, secret, err := AddClient(dir, "lab", "750712184", "system/DiagnosticReport.cu")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := OpenClients(dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, id, secret string }{
		{"wrong secret", id, secret + "x"},
		{"secret of another length", id, secret[:10]},
		{"empty secret", id, ""},
		{"unknown id", "nobody", secret},
		{"empty id", "", secret},
		{"secret over 72 bytes sharing the prefix", id, secret + strings.Repeat("a", 40)},
	}
	var msg string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := cl.Authenticate(tt.id, tt.secret)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("err = %v, not ErrUnauthenticated", err)
			}
			if msg == "" {
				msg = err.Error()
			} else if err.Error() != msg {
				t.Errorf("err = %q, differs from %q: it tells an unknown id from a wrong secret", err, msg)
			}
			if strings.Contains(err.Error(), secret) {
				t.Error("the error echoes the secret")
			}
		})
	}
}

func TestClientsAddedWhileOpenAreUsable(t *testing.T) {
	dir := t.TempDir()
	cl, err := OpenClients(dir) // no file yet
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Authenticate("x", "y"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("empty registry: %v", err)
	}
	id1, s1, err := AddClient(dir, "one", "750712184", "system/*.rs")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Authenticate(id1, s1); err != nil {
		t.Fatalf("a client added after OpenClients: %v", err)
	}
	id2, s2, err := AddClient(dir, "two", "2B0000456", "system/*.c")
	if err != nil {
		t.Fatal(err)
	}
	for id, s := range map[string]string{id1: s1, id2: s2} {
		if _, err := cl.Authenticate(id, s); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	// A secret never crosses over to another client.
	if _, err := cl.Authenticate(id1, s2); err == nil {
		t.Error("client one accepted client two's secret")
	}
}

func TestClientsConcurrentAddAndAuthenticate(t *testing.T) {
	dir := t.TempDir()
	id0, s0, err := AddClient(dir, "first", "750712184", "system/*.rs")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := OpenClients(dir)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	ids := make([]string, 4)
	for i := range ids {
		wg.Add(2)
		go func() {
			defer wg.Done()
			id, _, err := AddClient(dir, "more", "750712184", "system/*.rs")
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		}()
		go func() {
			defer wg.Done()
			if _, err := cl.Authenticate(id0, s0); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	list, err := cl.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 5 {
		t.Errorf("%d clients after 4 concurrent adds, want 5 (none lost)", len(list))
	}
}

func TestAddClientRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ name, cname, finess, scope string }{
		{"no name", "", "750712184", "system/*.cruds"},
		{"control character in name", "a\nb", "750712184", "system/*.cruds"},
		{"finess too short", "x", "7507", "system/*.cruds"},
		{"finess letters", "x", "75071218A", "system/*.cruds"},
		{"no finess", "x", "", "system/*.cruds"},
		{"scope granting nothing", "x", "750712184", "openid"},
		{"no scope", "x", "750712184", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if id, _, err := AddClient(dir, tt.cname, tt.finess, tt.scope); err == nil {
				t.Errorf("added %q", id)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "clients.json")); err == nil {
		t.Error("a refused client left a registry behind")
	}
}

func TestClientsRefuseOpenRegistryFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	dir := t.TempDir()
	if _, _, err := AddClient(dir, "x", "750712184", "system/*.rs"); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "clients.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenClients(dir); err == nil || !strings.Contains(err.Error(), "chmod") {
		t.Errorf("OpenClients: %v, want a refusal that says chmod", err)
	}
	if _, _, err := AddClient(dir, "y", "750712184", "system/*.rs"); err == nil {
		t.Error("AddClient wrote to a registry open to others")
	}
}
