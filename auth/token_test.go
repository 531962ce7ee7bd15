package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The PSC production issuer, used as the external issuer of the tests.
const tokTestPSC = "https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet"

var tokTestRSAKeys = sync.OnceValue(func() [2]*rsa.PrivateKey {
	var ks [2]*rsa.PrivateKey
	for i := range ks {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		ks[i] = k
	}
	return ks
})

// tokTestJWKS is a JWKS of public keys, each under its kid.
func tokTestJWKS(t *testing.T, keys map[string]any) []byte {
	t.Helper()
	var list []any
	for kid, pub := range keys {
		alg := map[string]string{"RSA": "RS256", "EC": "ES256", "OKP": "EdDSA"}
		m, err := jwkMembers(pub)
		if err != nil {
			t.Fatal(err)
		}
		m["kid"], m["use"], m["alg"] = kid, "sig", alg[m["kty"]]
		list = append(list, m)
	}
	// Keycloak also publishes an encryption key: it must be skipped.
	list = append(list, map[string]string{"kid": "enc-1", "kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB"})
	b, err := json.Marshal(map[string]any{"keys": list})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tokTestSign signs claims with method and key, with kid in the header
// when not empty.
func tokTestSign(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tokTestClaims are valid claims of a practitioner from iss, changed by edit
// (a nil value removes the claim).
func tokTestClaims(iss string, edit map[string]any) jwt.MapClaims {
	now := time.Now()
	m := jwt.MapClaims{
		"iss": iss, "aud": DefaultAudience, "sub": "s1", "jti": "j1",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"kind": "practitioner", "idnps": "810001234567", "profession": "10", "scope": "user/*.cruds",
	}
	for k, v := range edit {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}

type tokTestEnv struct {
	local   *SigningKey
	rsa     *rsa.PrivateKey // the PSC issuer's key, kid "psc-1"
	jwksDir string
	v       *Verifier
}

func newTokTestEnv(t *testing.T) *tokTestEnv {
	t.Helper()
	local, err := GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	e := &tokTestEnv{local: local, rsa: tokTestRSAKeys()[0], jwksDir: t.TempDir()}
	path := filepath.Join(e.jwksDir, "psc.json")
	if err := os.WriteFile(path, tokTestJWKS(t, map[string]any{"psc-1": &e.rsa.PublicKey}), 0o600); err != nil {
		t.Fatal(err)
	}
	e.v, err = NewVerifier(VerifierConfig{
		Key:      local,
		External: []ExternalIssuer{{Issuer: tokTestPSC, JWKS: path, DefaultScopes: "user/*.rs"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func tokTestWantUnauthenticated(t *testing.T, v *Verifier, raw, reason string) {
	t.Helper()
	c, err := v.Verify(context.Background(), raw)
	if err == nil {
		t.Fatalf("accepted: %+v", c)
	}
	if !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("err = %v, does not wrap ErrUnauthenticated", err)
	}
	t.Log(err)
	if reason != "" && !strings.Contains(err.Error(), reason) {
		t.Errorf("err = %q, want it to say %q", err, reason)
	}
	if len(raw) > 20 && strings.Contains(err.Error(), raw[len(raw)-20:]) {
		t.Errorf("the error echoes the token")
	}
}

func TestVerifyRejectsTokenAttacks(t *testing.T) {
	e := newTokTestEnv(t)
	now := time.Now()
	ecPub, _ := e.local.Public().(*ecdsa.PublicKey).Bytes()
	ecDER, _ := x509.MarshalPKIXPublicKey(e.local.Public())
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecDER})
	rsaDER, _ := x509.MarshalPKIXPublicKey(&e.rsa.PublicKey)
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaDER})
	rsaPKCS1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&e.rsa.PublicKey)})
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	local := func(edit map[string]any) jwt.MapClaims { return tokTestClaims(DefaultIssuer, edit) }
	psc := func(edit map[string]any) jwt.MapClaims { return tokTestClaims(tokTestPSC, edit) }
	kid := e.local.KeyID()

	noneToken := tokTestSign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, local(nil))
	valid := tokTestSign(t, jwt.SigningMethodES256, e.local.priv, kid, local(nil))
	parts := strings.Split(valid, ".")
	forged, _ := json.Marshal(local(map[string]any{"idnps": "810009999999"}))
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2]
	hdr := func(h string) string { return base64.RawURLEncoding.EncodeToString([]byte(h)) }

	tests := []struct {
		name, token, reason string
	}{
		{"alg none", noneToken, "bad signature or algorithm"},
		{"alg none handmade, empty signature", hdr(`{"alg":"none","kid":"`+kid+`"}`) + "." + parts[1] + ".", "bad signature or algorithm"},
		{"alg NONE upper case", hdr(`{"alg":"NONE","kid":"`+kid+`"}`) + "." + parts[1] + ".", ""},
		{"HS256 with the EC public key PEM as secret", tokTestSign(t, jwt.SigningMethodHS256, ecPEM, kid, local(nil)), "bad signature or algorithm"},
		{"HS256 with the EC public point as secret", tokTestSign(t, jwt.SigningMethodHS256, ecPub, kid, local(nil)), "bad signature or algorithm"},
		{"HS256 with the JWKS as secret", tokTestSign(t, jwt.SigningMethodHS256, e.local.PublicJWKS(), kid, local(nil)), "bad signature or algorithm"},
		{"HS256 with the RSA public key PEM as secret", tokTestSign(t, jwt.SigningMethodHS256, rsaPEM, "psc-1", psc(nil)), "bad signature or algorithm"},
		{"HS256 with the RSA PKCS1 PEM as secret", tokTestSign(t, jwt.SigningMethodHS256, rsaPKCS1, "psc-1", psc(nil)), "bad signature or algorithm"},
		{"HS512 with the RSA modulus as secret", tokTestSign(t, jwt.SigningMethodHS512, e.rsa.N.Bytes(), "psc-1", psc(nil)), "bad signature or algorithm"},
		{"RS384 is not allowed", tokTestSign(t, jwt.SigningMethodRS384, e.rsa, "psc-1", psc(nil)), "bad signature or algorithm"},
		{"PS256 is not allowed", tokTestSign(t, jwt.SigningMethodPS256, e.rsa, "psc-1", psc(nil)), "bad signature or algorithm"},
		{"RS256 claiming the EC key", tokTestSign(t, jwt.SigningMethodRS256, e.rsa, kid, local(nil)), "algorithm does not match the key"},
		{"expired", tokTestSign(t, jwt.SigningMethodES256, e.local.priv, kid, local(map[string]any{"exp": now.Add(-2 * time.Minute).Unix()})), "token expired"},
		{"not yet valid", tokTestSign(t, jwt.SigningMethodES256, e.local.priv, kid, local(map[string]any{"nbf": now.Add(2 * time.Minute).Unix()})), "token not valid yet"},
		{"issued in the future", tokTestSign(t, jwt.SigningMethodES256, e.local.priv, kid, local(map[string]any{"iat": now.Add(2 * time.Minute).Unix()})), "issued in the future"},
		{"no exp", tokTestSign(t, jwt.SigningMethodES256, e.local.priv, kid, local(map[string]any{"exp": nil})), "required claim"},
		{"unknown issuer", tokTestSign(t, jwt.SigningMethodES256, e.local.priv, kid, tokTestClaims("https://evil.example", nil)), "unknown issuer"},
		{"no issuer", tokTestSign(t, jwt.SigningMethodES256, e.local.priv, kid, local(map[string]any{"iss": nil})), "unknown issuer"},
		{"our key, the PSC issuer", tokTestSign(t, jwt.SigningMethodES256, e.local.priv, kid, psc(nil)), "unknown key id"},
		{"the PSC key, our issuer", tokTestSign(t, jwt.SigningMethodRS256, e.rsa, "psc-1", local(nil)), "unknown key id"},
		{"wrong audience", tokTestSign(t, jwt.SigningMethodES256, e.local.priv, kid, local(map[string]any{"aud": "another-api"})), "wrong audience"},
		{"no audience", tokTestSign(t, jwt.SigningMethodES256, e.local.priv, kid, local(map[string]any{"aud": nil})), ""},
		{"bad signature: another key under our kid", tokTestSign(t, jwt.SigningMethodES256, otherEC, kid, local(nil)), "bad signature"},
		{"bad signature: payload changed", tampered, "bad signature"},
		{"bad signature: truncated", valid[:len(valid)-4], ""},
		{"unknown kid", tokTestSign(t, jwt.SigningMethodES256, e.local.priv, "nope", local(nil)), "unknown key id"},
		{"no kid", tokTestSign(t, jwt.SigningMethodES256, e.local.priv, "", local(nil)), "no kid"},
		{"not a JWT", "hello", "malformed token"},
		{"empty", "", "no token"},
		{"too large", strings.Repeat("a", 70<<10), "too large"},
		{"practitioner without idnps", tokTestSign(t, jwt.SigningMethodES256, e.local.priv, kid, local(map[string]any{"idnps": nil})), "missing claim idnps"},
		{"practitioner without profession", tokTestSign(t, jwt.SigningMethodES256, e.local.priv, kid, local(map[string]any{"profession": nil})), "missing claim profession"},
		{"practitioner with an RPPS, not an idNatPs", tokTestSign(t, jwt.SigningMethodES256, e.local.priv, kid, local(map[string]any{"idnps": "10001234567"})), "not an idNatPs"},
		{"practitioner with a word as profession", tokTestSign(t, jwt.SigningMethodES256, e.local.priv, kid, local(map[string]any{"profession": "médecin"})), "profession"},
		{"patient without patient", tokTestSign(t, jwt.SigningMethodES256, e.local.priv, kid, local(map[string]any{"kind": "patient", "idnps": nil, "profession": nil})), "missing claim patient"},
		{"system without client_id", tokTestSign(t, jwt.SigningMethodES256, e.local.priv, kid, local(map[string]any{"kind": "system", "idnps": nil, "profession": nil})), "missing claim client_id"},
		{"our token without kind", tokTestSign(t, jwt.SigningMethodES256, e.local.priv, kid, local(map[string]any{"kind": nil})), "missing claim kind"},
		{"unknown kind", tokTestSign(t, jwt.SigningMethodES256, e.local.priv, kid, local(map[string]any{"kind": "admin"})), "claim kind"},
		{"unknown access mode", tokTestSign(t, jwt.SigningMethodES256, e.local.priv, kid, local(map[string]any{"access_mode": "urgence"})), "access_mode"},
		{"regulator not a boolean", tokTestSign(t, jwt.SigningMethodES256, e.local.priv, kid, local(map[string]any{"regulator": "maybe"})), "regulator"},
		{"PSC issuer vouching for a patient", tokTestSign(t, jwt.SigningMethodRS256, e.rsa, "psc-1", psc(map[string]any{"kind": "patient", "patient": "p1", "idnps": nil, "profession": nil})), "may not vouch"},
		{"idnps and SubjectNameID disagree", tokTestSign(t, jwt.SigningMethodRS256, e.rsa, "psc-1", psc(map[string]any{"SubjectNameID": "810009999999"})), "disagree"},
		{"regulator claims disagree", tokTestSign(t, jwt.SigningMethodRS256, e.rsa, "psc-1", psc(map[string]any{"regulator": true, "Acces_Regulation_Medicale": "FAUX"})), "disagree"},
		{"claim of the wrong JSON type", tokTestSign(t, jwt.SigningMethodES256, e.local.priv, kid, local(map[string]any{"idnps": 810001234567})), "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tokTestWantUnauthenticated(t, e.v, tt.token, tt.reason)
		})
	}
	// And the valid token the attacks started from is accepted.
	if _, err := e.v.Verify(context.Background(), valid); err != nil {
		t.Errorf("the valid token: %v", err)
	}
}

func TestVerifyAllowsClockSkewWithinLeeway(t *testing.T) {
	e := newTokTestEnv(t)
	now := time.Now()
	for name, edit := range map[string]map[string]any{
		"expired 10s ago":    {"exp": now.Add(-10 * time.Second).Unix()},
		"valid in 10s":       {"nbf": now.Add(10 * time.Second).Unix()},
		"issued 10s ahead":   {"iat": now.Add(10 * time.Second).Unix()},
		"no nbf, no iat":     {"nbf": nil, "iat": nil},
		"audience in a list": {"aud": []string{"other", DefaultAudience}},
	} {
		t.Run(name, func(t *testing.T) {
			tok := tokTestSign(t, jwt.SigningMethodES256, e.local.priv, e.local.KeyID(), tokTestClaims(DefaultIssuer, edit))
			if _, err := e.v.Verify(context.Background(), tok); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestVerifyIssuedTokensOfEachKind(t *testing.T) {
	e := newTokTestEnv(t)
	tests := []struct {
		name string
		c    Claims
		want Caller
	}{
		{"practitioner", Claims{
			Kind: KindPractitioner, IDNatPs: "810001234567", Profession: "10", Specialty: "SM26", Finess: "750712184",
			Name: "Dr Hélène Martin", Regulator: true, AccessMode: ModeCentre15, AccessReason: "appel SAMU", Scope: "openid user/*.cruds",
		}, Caller{
			Kind: KindPractitioner, ID: "810001234567", Profession: "10", Specialty: "SM26", Organization: "750712184",
			Name: "Dr Hélène Martin", Regulator: true, AccessMode: ModeCentre15, AccessReason: "appel SAMU",
			Issuer: DefaultIssuer, Subject: "810001234567",
		}},
		{"practitioner ADELI", Claims{Kind: KindPractitioner, IDNatPs: "0123456789", Profession: "60", Scope: "user/*.rs"},
			Caller{Kind: KindPractitioner, ID: "0123456789", Profession: "60", Issuer: DefaultIssuer, Subject: "0123456789"}},
		{"patient", Claims{Kind: KindPatient, Patient: "pat-1", Scope: "patient/*.rs"},
			Caller{Kind: KindPatient, ID: "pat-1", Issuer: DefaultIssuer, Subject: "pat-1"}},
		{"system", Claims{Kind: KindSystem, ClientID: "his-demo", Finess: "2A0000123", Scope: "system/*.cruds", Subject: "client:his-demo"},
			Caller{Kind: KindSystem, ID: "his-demo", Organization: "2A0000123", Issuer: DefaultIssuer, Subject: "client:his-demo"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := e.local.Issue(tt.c, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.v.Verify(context.Background(), "  "+tok+"\n")
			if err != nil {
				t.Fatal(err)
			}
			if got.Scopes.String() != strings.Join(strings.Fields(tt.c.Scope), " ") {
				t.Errorf("scopes %q, want %q", got.Scopes, tt.c.Scope)
			}
			if got.TokenID == "" {
				t.Error("no jti")
			}
			got.Scopes, got.TokenID = Scopes{}, ""
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("caller\n got %+v\nwant %+v", *got, tt.want)
			}
			// Caller.Claims gives the token back.
			again, err := e.local.Issue(got.Claims(), time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if c2, err := e.v.Verify(context.Background(), again); err != nil || c2.ID != tt.want.ID || c2.Kind != tt.want.Kind {
				t.Errorf("re-issued from Caller.Claims: %+v, %v", c2, err)
			}
		})
	}
}

func TestVerifyCustomIssuerAndAudience(t *testing.T) {
	k, _ := GenerateSigningKey()
	v, err := NewVerifier(VerifierConfig{Key: k, Issuer: "https://dmp.example.org", Audience: "https://dmp.example.org/fhir"})
	if err != nil {
		t.Fatal(err)
	}
	c := Claims{Kind: KindPatient, Patient: "p1", Scope: "patient/*.rs"}
	def, _ := k.Issue(c, time.Minute)
	tokTestWantUnauthenticated(t, v, def, "unknown issuer")
	c.Issuer = "https://dmp.example.org"
	wrongAud, _ := k.Issue(c, time.Minute)
	tokTestWantUnauthenticated(t, v, wrongAud, "wrong audience")
	c.Audience = "https://dmp.example.org/fhir"
	ok, _ := k.Issue(c, time.Minute)
	if _, err := v.Verify(context.Background(), ok); err != nil {
		t.Error(err)
	}
}

func TestVerifyPSCStyleTokenThroughJWKSFile(t *testing.T) {
	e := newTokTestEnv(t)
	claims := tokTestClaims(tokTestPSC, map[string]any{
		"kind": nil, "idnps": nil, "profession": nil, "sub": "f:550e8400:899700218896",
		"SubjectNameID":             "899700218896",
		"preferred_username":        "899700218896",
		"given_name":                "Jeanne",
		"family_name":               "Durand",
		"Acces_Regulation_Medicale": "VRAI",
		"Mode_Acces_Raison":         "patient inconscient",
		"access_mode":               "bris_de_glace",
		"scope":                     "openid scope_all",
		"SubjectRefPro":             map[string]any{"exercices": []any{map[string]any{"codeProfession": "10", "codeSavoirFaire": "SM54"}}},
	})
	c, err := e.v.Verify(context.Background(), tokTestSign(t, jwt.SigningMethodRS256, e.rsa, "psc-1", claims))
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind != KindPractitioner || c.ID != "899700218896" || c.Profession != "10" || c.Specialty != "SM54" ||
		c.Name != "Jeanne Durand" || !c.Regulator || c.AccessMode != ModeBrisDeGlace || c.AccessReason != "patient inconscient" ||
		c.Issuer != tokTestPSC || c.Subject != "f:550e8400:899700218896" {
		t.Errorf("caller %+v", c)
	}
	// No SMART scope in the token: the issuer's default scopes apply.
	if !c.Scopes.Allows("Observation", OpRead) || c.Scopes.Allows("Observation", OpCreate) || !c.Scopes.Has("scope_all") {
		t.Errorf("scopes %q", c.Scopes)
	}

	// Only preferred_username; two exercices with different professions give no profession.
	claims = tokTestClaims(tokTestPSC, map[string]any{
		"kind": nil, "idnps": nil, "profession": nil, "preferred_username": "810001234567",
		"SubjectRefPro": map[string]any{"exercices": []any{map[string]any{"codeProfession": "10"}, map[string]any{"codeProfession": "21"}}},
	})
	tokTestWantUnauthenticated(t, e.v, tokTestSign(t, jwt.SigningMethodRS256, e.rsa, "psc-1", claims), "missing claim profession")
	claims["profession"] = "21"
	if c, err := e.v.Verify(context.Background(), tokTestSign(t, jwt.SigningMethodRS256, e.rsa, "psc-1", claims)); err != nil || c.ID != "810001234567" || c.Profession != "21" {
		t.Errorf("caller %+v, %v", c, err)
	}
	// Scopes given by the token win over the defaults.
	claims["scope"] = []string{"openid", "user/Observation.r"}
	if c, err := e.v.Verify(context.Background(), tokTestSign(t, jwt.SigningMethodRS256, e.rsa, "psc-1", claims)); err != nil || c.Scopes.Allows("Observation", OpSearch) || !c.Scopes.Allows("Observation", OpRead) {
		t.Errorf("caller %+v, %v", c, err)
	}
}

func TestVerifyJWKSFileRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "jwks.json")
	ks := tokTestRSAKeys()
	write := func(keys map[string]any, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(path, tokTestJWKS(t, keys), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now().Add(-time.Hour)
	write(map[string]any{"k1": &ks[0].PublicKey}, start)
	v, err := NewVerifier(VerifierConfig{External: []ExternalIssuer{{Issuer: tokTestPSC, JWKS: path}}})
	if err != nil {
		t.Fatal(err)
	}
	tok1 := tokTestSign(t, jwt.SigningMethodRS256, ks[0], "k1", tokTestClaims(tokTestPSC, nil))
	tok2 := tokTestSign(t, jwt.SigningMethodRS256, ks[1], "k2", tokTestClaims(tokTestPSC, nil))
	if _, err := v.Verify(context.Background(), tok1); err != nil {
		t.Fatal(err)
	}
	tokTestWantUnauthenticated(t, v, tok2, "unknown key id")

	// The issuer rotates: k2 added, k1 removed.
	write(map[string]any{"k2": &ks[1].PublicKey}, start.Add(time.Minute))
	if _, err := v.Verify(context.Background(), tok2); err != nil {
		t.Fatalf("the new key was not picked up: %v", err)
	}
	tokTestWantUnauthenticated(t, v, tok1, "unknown key id")

	// A broken file keeps the keys loaded before.
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(jwksFileCheckInterval + 50*time.Millisecond)
	if _, err := v.Verify(context.Background(), tok2); err != nil {
		t.Errorf("a broken JWKS file dropped the keys: %v", err)
	}
}

func TestVerifyJWKSFileEdDSAAndES256Keys(t *testing.T) {
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, tokTestJWKS(t, map[string]any{"ed": edPub, "ec": &ec.PublicKey}), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(VerifierConfig{External: []ExternalIssuer{{Issuer: "https://idp.example", JWKS: path, Kind: KindSystem}}})
	if err != nil {
		t.Fatal(err)
	}
	claims := tokTestClaims("https://idp.example", map[string]any{"kind": nil, "idnps": nil, "profession": nil, "client_id": "lab-1", "scope": "system/DiagnosticReport.cu"})
	for name, tok := range map[string]string{
		"EdDSA": tokTestSign(t, jwt.SigningMethodEdDSA, edPriv, "ed", claims),
		"ES256": tokTestSign(t, jwt.SigningMethodES256, ec, "ec", claims),
	} {
		c, err := v.Verify(context.Background(), tok)
		if err != nil || c.Kind != KindSystem || c.ID != "lab-1" || !c.Scopes.Allows("DiagnosticReport", OpCreate) {
			t.Errorf("%s: %+v, %v", name, c, err)
		}
	}
	// The EdDSA key may not verify an ES256 token.
	tokTestWantUnauthenticated(t, v, tokTestSign(t, jwt.SigningMethodES256, ec, "ed", claims), "does not match the key")
}

// tokTestJWKSServer serves a JWKS that the test can change, counting fetches.
type tokTestJWKSServer struct {
	*httptest.Server
	body    atomic.Pointer[[]byte]
	status  atomic.Int32
	fetches atomic.Int32
}

func newTokTestJWKSServer(t *testing.T, body []byte) *tokTestJWKSServer {
	s := &tokTestJWKSServer{}
	s.set(body)
	s.status.Store(http.StatusOK)
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(s.status.Load()))
		w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *tokTestJWKSServer) set(b []byte) { s.body.Store(&b) }

func TestVerifyJWKSURLRotationAndRateLimit(t *testing.T) {
	ks := tokTestRSAKeys()
	srv := newTokTestJWKSServer(t, tokTestJWKS(t, map[string]any{"k1": &ks[0].PublicKey}))
	// A second: the checks below that no fetch happens run within it,
	// with no signing (every token is signed beforehand), even on a
	// starved CPU.
	const minRefetch = time.Second
	v, err := NewVerifier(VerifierConfig{
		HTTPClient:         srv.Client(),
		MinRefetchInterval: minRefetch,
		External:           []ExternalIssuer{{Issuer: tokTestPSC, JWKS: srv.URL + "/certs"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.fetches.Load(); n != 0 {
		t.Errorf("NewVerifier fetched %d times; a URL is fetched on first use", n)
	}
	tok1 := tokTestSign(t, jwt.SigningMethodRS256, ks[0], "k1", tokTestClaims(tokTestPSC, nil))
	tok2 := tokTestSign(t, jwt.SigningMethodRS256, ks[1], "k2", tokTestClaims(tokTestPSC, nil))
	var unknown []string
	for i := 0; i < 10; i++ {
		unknown = append(unknown, tokTestSign(t, jwt.SigningMethodRS256, ks[1], "random-"+string(rune('a'+i)), tokTestClaims(tokTestPSC, nil)))
	}
	flood := tokTestSign(t, jwt.SigningMethodRS256, ks[1], "flood", tokTestClaims(tokTestPSC, nil))
	for i := 0; i < 3; i++ {
		if _, err := v.Verify(context.Background(), tok1); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Errorf("%d fetches for three tokens of a known key, want 1", n)
	}

	// Rotation: the issuer now signs with k2.
	srv.set(tokTestJWKS(t, map[string]any{"k1": &ks[0].PublicKey, "k2": &ks[1].PublicKey}))
	// Right after a fetch, an unknown kid does not fetch again.
	for _, tok := range unknown {
		tokTestWantUnauthenticated(t, v, tok, "unknown key id")
	}
	tokTestWantUnauthenticated(t, v, tok2, "unknown key id")
	if n := srv.fetches.Load(); n != 1 {
		t.Errorf("%d fetches within the rate limit, want 1", n)
	}
	time.Sleep(minRefetch + 50*time.Millisecond)
	if _, err := v.Verify(context.Background(), tok2); err != nil {
		t.Fatalf("the rotated key was not picked up: %v", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
	// Unknown kids flooding in: at most one fetch per interval.
	time.Sleep(minRefetch + 50*time.Millisecond)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v.Verify(context.Background(), flood)
		}()
	}
	wg.Wait()
	if n := srv.fetches.Load(); n != 3 {
		t.Errorf("%d fetches after a flood of unknown kids, want 3", n)
	}
}

func TestVerifyJWKSURLPeriodicRefresh(t *testing.T) {
	ks := tokTestRSAKeys()
	srv := newTokTestJWKSServer(t, tokTestJWKS(t, map[string]any{"k1": &ks[0].PublicKey}))
	v, err := NewVerifier(VerifierConfig{
		HTTPClient: srv.Client(), RefreshInterval: 100 * time.Millisecond, MinRefetchInterval: 10 * time.Millisecond,
		External: []ExternalIssuer{{Issuer: tokTestPSC, JWKS: srv.URL}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	tok1 := tokTestSign(t, jwt.SigningMethodRS256, ks[0], "k1", tokTestClaims(tokTestPSC, nil))
	// The issuer retires k1.
	srv.set(tokTestJWKS(t, map[string]any{"k2": &ks[1].PublicKey}))
	time.Sleep(150 * time.Millisecond)
	// The stale set still answers this token and refreshes in the background.
	if _, err := v.Verify(context.Background(), tok1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := v.Verify(context.Background(), tok1)
		if err != nil {
			break // k1 is gone after the refresh
		}
		if time.Now().After(deadline) {
			t.Fatalf("no periodic refresh: %d fetches", srv.fetches.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestVerifyJWKSURLUnavailable(t *testing.T) {
	srv := newTokTestJWKSServer(t, []byte("oops"))
	srv.status.Store(http.StatusInternalServerError)
	v, err := NewVerifier(VerifierConfig{
		HTTPClient: srv.Client(), MinRefetchInterval: time.Millisecond,
		External: []ExternalIssuer{{Issuer: tokTestPSC, JWKS: srv.URL}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Refresh(context.Background()); err == nil {
		t.Error("Refresh reported no error for a failing JWKS URL")
	}
	tok := tokTestSign(t, jwt.SigningMethodRS256, tokTestRSAKeys()[0], "k1", tokTestClaims(tokTestPSC, nil))
	tokTestWantUnauthenticated(t, v, tok, "keys are unavailable")
}

func TestNewVerifierRefusesBadConfiguration(t *testing.T) {
	k, _ := GenerateSigningKey()
	missing := filepath.Join(t.TempDir(), "none.json")
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}`), 0o600)
	tests := []struct {
		name string
		cfg  VerifierConfig
	}{
		{"nothing trusted", VerifierConfig{}},
		{"http URL", VerifierConfig{External: []ExternalIssuer{{Issuer: tokTestPSC, JWKS: "http://auth.example/certs"}}}},
		{"missing file", VerifierConfig{External: []ExternalIssuer{{Issuer: tokTestPSC, JWKS: missing}}}},
		{"JWKS with only an HMAC key", VerifierConfig{External: []ExternalIssuer{{Issuer: tokTestPSC, JWKS: bad}}}},
		{"issuer without JWKS", VerifierConfig{External: []ExternalIssuer{{Issuer: tokTestPSC}}}},
		{"external issuer equal to ours", VerifierConfig{Key: k, External: []ExternalIssuer{{Issuer: DefaultIssuer, JWKS: "https://x.example/certs"}}}},
		{"unknown kind", VerifierConfig{External: []ExternalIssuer{{Issuer: tokTestPSC, JWKS: "https://x.example/certs", Kind: "admin"}}}},
		{"huge leeway", VerifierConfig{Key: k, Leeway: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewVerifier(tt.cfg); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestParseJWKSSkipsUnusableKeys(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	m, _ := jwkMembers(&small.PublicKey)
	m["kid"] = "small"
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good, _ := jwkMembers(&ec.PublicKey)
	good["kid"] = "good"
	noKid, _ := jwkMembers(&ec.PublicKey)
	wrongAlg, _ := jwkMembers(&ec.PublicKey)
	wrongAlg["kid"], wrongAlg["alg"] = "hs", "HS256"
	b, _ := json.Marshal(map[string]any{"keys": []any{m, good, noKid, wrongAlg}})
	keys, err := parseJWKS(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys["good"].pub == nil {
		t.Errorf("keys = %v, want only the good one", keys)
	}
	dup, _ := json.Marshal(map[string]any{"keys": []any{good, good}})
	if _, err := parseJWKS(dup); err == nil {
		t.Error("two keys with one kid were accepted")
	}
}

// TestVerifiedTokenIsRememberedButNotShared: a token checked once is
// answered again from memory, each time with its own copy of the caller.
func TestVerifiedTokenIsRememberedButNotShared(t *testing.T) {
	e := newTokTestEnv(t)
	tok, err := e.local.Issue(Claims{Kind: KindPractitioner, IDNatPs: "810001234567", Profession: "10", Scope: "user/*.rs"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	first, err := e.v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	first.ID = "changed by a caller"
	second, err := e.v.Verify(context.Background(), tok)
	if err != nil || second.ID != "810001234567" {
		t.Fatalf("second verification: %+v, %v", second, err)
	}
	if _, ok := e.v.verified.get(sha256.Sum256([]byte(tok)), time.Now()); !ok {
		t.Fatal("the verified token is not remembered")
	}
	// A token whose signature is broken is not helped by its sibling's entry.
	broken := tok[:len(tok)-4] + "AAAA"
	if broken == tok {
		broken = tok[:len(tok)-4] + "BBBB"
	}
	tokTestWantUnauthenticated(t, e.v, broken, "")
}
