package auth

import (
	"crypto"
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
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults of the server's own tokens: the iss it writes and the aud every
// token must carry. Configuration may change both.
const (
	DefaultIssuer   = "dmp-fhir"
	DefaultAudience = "dmp-fhir"
)

// MaxTTL is the longest lifetime Issue gives a token: a token is a bearer
// credential to health data.
const MaxTTL = 24 * time.Hour

// Where LoadOrCreateSigningKey keeps the key, under the data directory.
const (
	signingKeyDir  = "keys"
	signingKeyFile = "signing-key.pem"
)

// SigningKey is the server's own ES256 (ECDSA P-256) key: it signs the
// tokens the server issues (the CLI's development tokens, client_credentials
// tokens) and its public half is published as a JWKS. Its key id is the
// RFC 7638 JWK thumbprint of the public key.
type SigningKey struct {
	priv *ecdsa.PrivateKey
	kid  string
	jwks []byte
}

// GenerateSigningKey returns a new key that lives in memory only (tests,
// ephemeral instances).
func GenerateSigningKey() (*SigningKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("auth: generating the signing key: %w", err)
	}
	return newSigningKey(priv)
}

func newSigningKey(priv *ecdsa.PrivateKey) (*SigningKey, error) {
	kid, err := jwkThumbprint(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	jwk, err := publicJWK(&priv.PublicKey, kid, "ES256")
	if err != nil {
		return nil, err
	}
	jwks, err := json.Marshal(map[string]any{"keys": []any{jwk}})
	if err != nil {
		return nil, err
	}
	return &SigningKey{priv: priv, kid: kid, jwks: jwks}, nil
}

// LoadOrCreateSigningKey returns the key kept in dataDir/keys/signing-key.pem
// (PKCS #8 PEM), generating it on first use (directory mode 0700, file mode
// 0600). It refuses a key file readable or writable by group or others, and
// a keys directory open to them: chmod 600 / 700 them, or remove them to
// get a new key (every token issued with the old one then stops working).
// Two processes starting at once end up with the same key.
func LoadOrCreateSigningKey(dataDir string) (*SigningKey, error) {
	if dataDir == "" {
		return nil, errors.New("auth: signing key: empty data directory")
	}
	dir := filepath.Join(dataDir, signingKeyDir)
	path := filepath.Join(dir, signingKeyFile)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	if err := checkPrivate(dir, true); err != nil {
		return nil, err
	}
	k, err := loadSigningKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("auth: generating the signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	// Write a temporary file (CreateTemp makes it 0600), then link it to
	// its name: a link never replaces a key another process just created.
	tmp, err := os.CreateTemp(dir, ".signing-key-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil && !isWindows() {
		tmp.Close()
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	if err := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	syncDir(dir)
	return loadSigningKey(path)
}

// loadSigningKey reads a PKCS #8 PEM ECDSA P-256 key, refusing a file open
// to group or others.
func loadSigningKey(path string) (*SigningKey, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	defer f.Close()
	if err := checkPrivateFile(f, path); err != nil {
		return nil, err
	}
	data, err := readAllLimited(f, 64<<10)
	if err != nil {
		return nil, fmt.Errorf("auth: signing key %s: %w", path, err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("auth: signing key %s: not a PEM \"PRIVATE KEY\" (PKCS #8)", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auth: signing key %s: %w", path, err)
	}
	priv, ok := key.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() {
		return nil, fmt.Errorf("auth: signing key %s: not an ECDSA P-256 key", path)
	}
	return newSigningKey(priv)
}

// checkPrivate refuses a file or directory whose mode gives group or
// others any permission.
func checkPrivate(path string, isDir bool) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return checkPrivateMode(path, fi.Mode(), isDir)
}

func checkPrivateFile(f *os.File, path string) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return checkPrivateMode(path, fi.Mode(), false)
}

func checkPrivateMode(path string, mode fs.FileMode, isDir bool) error {
	if isWindows() { // no Unix permission bits
		return nil
	}
	if mode.Perm()&0o077 != 0 {
		want := "600"
		if isDir {
			want = "700"
		}
		return fmt.Errorf("auth: %s is open to group or others (mode %04o): run chmod %s %s", path, mode.Perm(), want, path)
	}
	return nil
}

func isWindows() bool { return runtime.GOOS == "windows" }

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

func readAllLimited(f *os.File, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

// KeyID returns the key's id (its RFC 7638 thumbprint), the kid of every
// token it signs.
func (k *SigningKey) KeyID() string { return k.kid }

// Public returns the public key (*ecdsa.PublicKey).
func (k *SigningKey) Public() crypto.PublicKey { return &k.priv.PublicKey }

// PublicJWKS returns the public key as a JSON Web Key Set, to serve at a
// /jwks endpoint. The caller must not modify the slice.
func (k *SigningKey) PublicJWKS() []byte { return k.jwks }

// Issue signs a token for the identity in c, valid from now for ttl (at
// most MaxTTL). The claims must name a valid identity for their kind, as
// Verify requires. The token carries iss (c.Issuer or DefaultIssuer), aud
// (c.Audience or DefaultAudience), sub (c.Subject or the caller's id), iat,
// nbf, exp, a random jti and kid in its header.
func (k *SigningKey) Issue(c Claims, ttl time.Duration) (string, error) {
	if ttl <= 0 || ttl > MaxTTL {
		return "", fmt.Errorf("auth: token lifetime %s: must be more than 0 and at most %s", ttl, MaxTTL)
	}
	caller, err := c.caller()
	if err != nil {
		return "", err
	}
	iss, aud, sub := c.Issuer, c.Audience, c.Subject
	if iss == "" {
		iss = DefaultIssuer
	}
	if aud == "" {
		aud = DefaultAudience
	}
	if sub == "" {
		sub = caller.ID
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	now := time.Now()
	m := jwt.MapClaims{
		"iss":  iss,
		"sub":  sub,
		"aud":  aud,
		"iat":  now.Unix(),
		"nbf":  now.Unix(),
		"exp":  now.Add(ttl).Unix(),
		"jti":  base64.RawURLEncoding.EncodeToString(jti[:]),
		"kind": string(caller.Kind),
	}
	set := func(name, v string) {
		if v != "" {
			m[name] = v
		}
	}
	switch caller.Kind {
	case KindPractitioner:
		set(claimIDNatPs, caller.ID)
		set(claimProfession, caller.Profession)
		set(claimSpecialty, caller.Specialty)
		if caller.Regulator {
			m[claimRegulator] = true
		}
	case KindPatient:
		set(claimPatient, caller.ID)
	case KindSystem:
		set(claimClientID, caller.ID)
	}
	set(claimFiness, caller.Organization)
	set(claimName, caller.Name)
	set(claimAccessMode, caller.AccessMode)
	set(claimAccessReason, caller.AccessReason)
	set(claimScope, caller.Scopes.String())
	t := jwt.NewWithClaims(jwt.SigningMethodES256, m)
	t.Header["kid"] = k.kid
	return t.SignedString(k.priv)
}

// b64 encodes JWK members.
func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwkMembers returns the required public members of a key's JWK (RFC 7517,
// RFC 8037), which are also the members of its RFC 7638 thumbprint.
func jwkMembers(pub crypto.PublicKey) (map[string]string, error) {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() {
			return nil, errors.New("auth: only P-256 ECDSA keys are supported")
		}
		b, err := p.Bytes() // 0x04 || X || Y
		if err != nil {
			return nil, err
		}
		return map[string]string{"kty": "EC", "crv": "P-256", "x": b64(b[1:33]), "y": b64(b[33:])}, nil
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "n": b64(p.N.Bytes()), "e": b64(big.NewInt(int64(p.E)).Bytes())}, nil
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "crv": "Ed25519", "x": b64(p)}, nil
	}
	return nil, fmt.Errorf("auth: unsupported public key type %T", pub)
}

// jwkThumbprint is the RFC 7638 thumbprint of a public key: SHA-256 of its
// required members in lexicographic order, without white space.
func jwkThumbprint(pub crypto.PublicKey) (string, error) {
	m, err := jwkMembers(pub)
	if err != nil {
		return "", err
	}
	// encoding/json writes map keys sorted and no white space, which is
	// exactly the RFC 7638 form for these members (base64url and ASCII
	// names need no escaping).
	b, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return b64(sum[:]), nil
}

// publicJWK returns the JWK of a public key with its kid, alg and use=sig.
func publicJWK(pub crypto.PublicKey, kid, alg string) (map[string]string, error) {
	m, err := jwkMembers(pub)
	if err != nil {
		return nil, err
	}
	m["kid"], m["alg"], m["use"] = kid, alg, "sig"
	return m, nil
}

// verifyKey is a public key of a key set, with the algorithm it may be
// used with ("" when the JWK does not say: any algorithm of its type).
type verifyKey struct {
	alg string
	pub crypto.PublicKey
}

// jwkJSON is a JSON Web Key as far as verification needs it.
type jwkJSON struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// parseJWKS reads a JSON Web Key Set. Keys that cannot verify an RS256,
// ES256 or EdDSA signature (encryption keys, other algorithms, curves or
// key types, RSA keys under 2048 bits) and keys without a kid are skipped;
// a set with no usable key, a malformed set or two usable keys with the
// same kid are errors.
func parseJWKS(data []byte) (map[string]verifyKey, error) {
	var set struct {
		Keys []jwkJSON `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %v", err)
	}
	keys := map[string]verifyKey{}
	for _, j := range set.Keys {
		if j.Kid == "" || (j.Use != "" && j.Use != "sig") {
			continue
		}
		k, ok := j.key()
		if !ok {
			continue
		}
		if _, dup := keys[j.Kid]; dup {
			return nil, fmt.Errorf("two keys with kid %q", j.Kid)
		}
		keys[j.Kid] = k
	}
	if len(keys) == 0 {
		return nil, errors.New("no usable signing key (RS256, ES256 or EdDSA with a kid)")
	}
	return keys, nil
}

func (j jwkJSON) key() (verifyKey, bool) {
	dec := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			return nil
		}
		return b
	}
	switch j.Kty {
	case "RSA":
		if j.Alg != "" && j.Alg != "RS256" {
			return verifyKey{}, false
		}
		n, e := dec(j.N), dec(j.E)
		if len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return verifyKey{}, false
		}
		N := new(big.Int).SetBytes(n)
		E := new(big.Int).SetBytes(e)
		if N.BitLen() < 2048 || E.Int64() < 3 || E.Bit(0) == 0 || E.BitLen() > 31 {
			return verifyKey{}, false
		}
		return verifyKey{alg: "RS256", pub: &rsa.PublicKey{N: N, E: int(E.Int64())}}, true
	case "EC":
		if (j.Alg != "" && j.Alg != "ES256") || j.Crv != "P-256" {
			return verifyKey{}, false
		}
		x, y := dec(j.X), dec(j.Y)
		if len(x) != 32 || len(y) != 32 {
			return verifyKey{}, false
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return verifyKey{}, false
		}
		return verifyKey{alg: "ES256", pub: pub}, true
	case "OKP":
		if (j.Alg != "" && j.Alg != "EdDSA" && j.Alg != "Ed25519") || j.Crv != "Ed25519" {
			return verifyKey{}, false
		}
		x := dec(j.X)
		if len(x) != ed25519.PublicKeySize {
			return verifyKey{}, false
		}
		return verifyKey{alg: "EdDSA", pub: ed25519.PublicKey(x)}, true
	}
	return verifyKey{}, false
}
