package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"
)

// Kind is what sort of caller a token speaks for.
type Kind string

// The kinds of caller.
const (
	KindPractitioner Kind = "practitioner" // a health professional, identified by idNatPs
	KindPatient      Kind = "patient"      // the patient (titulaire), identified by their Patient id
	KindSystem       Kind = "system"       // a registered system (hospital information system, LPS), by client id
)

// Caller is the verified identity of a request.
type Caller struct {
	Kind Kind
	// ID is, for a practitioner, the idNatPs ("8"+RPPS, e.g. 810001234567,
	// or "0"+ADELI); for a patient, the Patient resource id; for a system,
	// the client id.
	ID string
	// Profession is the TRE_G15 profession code: 10 médecin, 21
	// pharmacien, 40 chirurgien-dentiste, 50 sage-femme, 60 infirmier, ...
	Profession string
	// Specialty is the savoir-faire (TRE_R38, e.g. SM26) or pharmacist
	// sub-section, when known.
	Specialty string
	// Organization is the FINESS of the caller's organization
	// (practitioner or system), when known.
	Organization string
	Name         string
	// Regulator: a SAMU (centre 15) regulating doctor.
	Regulator bool
	// AccessMode is the token's access mode: normal, bris_de_glace or
	// centre_15 ("" when the token does not say).
	AccessMode   string
	AccessReason string
	Scopes       Scopes
	// Issuer, Subject and TokenID are the token's iss, sub and jti (empty
	// for a caller that did not come from a token).
	Issuer, Subject, TokenID string
}

// MissingScope returns the scope that would allow op on resourceType for
// this caller ("" when its scopes allow it), with the context of its kind:
// user/ for a practitioner, patient/ for a patient, system/ for a system.
func (c *Caller) MissingScope(resourceType string, op Interaction) string {
	if c.Scopes.Allows(resourceType, op) {
		return ""
	}
	ctx := "user"
	switch c.Kind {
	case KindPatient:
		ctx = "patient"
	case KindSystem:
		ctx = "system"
	}
	return ctx + "/" + resourceType + "." + string(op)
}

// Claims returns claims that Issue turns into a token for this caller
// (e.g. after Clients.Authenticate, for a client_credentials grant).
func (c *Caller) Claims() Claims {
	cl := Claims{
		Kind: c.Kind, Profession: c.Profession, Specialty: c.Specialty, Finess: c.Organization,
		Name: c.Name, Regulator: c.Regulator, AccessMode: c.AccessMode, AccessReason: c.AccessReason,
		Scope: c.Scopes.String(),
	}
	switch c.Kind {
	case KindPractitioner:
		cl.IDNatPs = c.ID
	case KindPatient:
		cl.Patient = c.ID
	case KindSystem:
		cl.ClientID = c.ID
	}
	return cl
}

// Claim names of a token. The server's own tokens use the short names;
// Verify also reads the Pro Santé Connect (PSC) names given in brackets.
//
//	kind           practitioner | patient | system (absent in PSC tokens: the issuer's Kind)
//	idnps          practitioner's idNatPs         [PSC SubjectNameID, then preferred_username]
//	profession     TRE_G15 profession code        [PSC SubjectRefPro.exercices[].codeProfession, when all agree]
//	specialty      savoir-faire code              [PSC SubjectRefPro.exercices[].codeSavoirFaire, one exercice]
//	finess         FINESS of the organization
//	name           display name                   [OIDC given_name + family_name]
//	regulator      bool, SAMU regulating doctor   [PSC Acces_Regulation_Medicale "VRAI" / "FAUX"]
//	access_mode    normal | bris_de_glace | centre_15
//	access_reason  reason of an emergency access  [PSC Mode_Acces_Raison]
//	patient        Patient id of a patient caller (also the SMART launch context name)
//	client_id      client id of a system caller (RFC 9068)
//	scope          space-separated scopes (a JSON array of strings is accepted too)
//	iss sub aud exp nbf iat jti  as in RFC 7519; exp is required, kid is required in the header
const (
	claimKind         = "kind"
	claimIDNatPs      = "idnps"
	claimProfession   = "profession"
	claimSpecialty    = "specialty"
	claimFiness       = "finess"
	claimName         = "name"
	claimRegulator    = "regulator"
	claimAccessMode   = "access_mode"
	claimAccessReason = "access_reason"
	claimPatient      = "patient"
	claimClientID     = "client_id"
	claimScope        = "scope"
)

// Claims are the identity claims of a token the server issues (see
// SigningKey.Issue). The id claim that counts is the one of the kind:
// IDNatPs for a practitioner, Patient for a patient, ClientID for a system.
type Claims struct {
	Kind         Kind
	IDNatPs      string
	Profession   string
	Specialty    string
	Finess       string
	Name         string
	Regulator    bool
	AccessMode   string
	AccessReason string
	Patient      string
	ClientID     string
	Scope        string // space-separated
	// Issuer and Audience default to DefaultIssuer and DefaultAudience;
	// they must match the Verifier's configuration. Subject defaults to
	// the caller's id.
	Issuer, Audience, Subject string
}

// caller checks the claims and returns the identity they name.
func (c Claims) caller() (*Caller, error) {
	caller := &Caller{
		Kind: c.Kind, Profession: c.Profession, Specialty: c.Specialty, Organization: c.Finess, Name: c.Name,
		Regulator: c.Regulator, AccessMode: c.AccessMode, AccessReason: c.AccessReason, Scopes: ParseScopes(c.Scope),
	}
	switch c.Kind {
	case KindPractitioner:
		caller.ID = c.IDNatPs
	case KindPatient:
		caller.ID = c.Patient
	case KindSystem:
		caller.ID = c.ClientID
	default:
		return nil, fmt.Errorf("auth: kind %q: must be practitioner, patient or system", c.Kind)
	}
	if err := caller.check(); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return caller, nil
}

var (
	reDigits    = regexp.MustCompile(`^[0-9]{1,4}$`)
	reFiness    = regexp.MustCompile(`^([0-9]{9}|2[AB][0-9]{7})$`)
	reFHIRID    = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	reClientID  = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,128}$`)
	reSpecialty = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// ValidIDNatPs checks the shape of a professional's national identifier:
// "8" followed by the 11-digit RPPS number, or "0" followed by the 9-digit
// ADELI number.
func ValidIDNatPs(s string) error {
	ok := (len(s) == 12 && s[0] == '8') || (len(s) == 10 && s[0] == '0')
	for i := 0; ok && i < len(s); i++ {
		ok = s[i] >= '0' && s[i] <= '9'
	}
	if !ok {
		return fmt.Errorf("idnps %q is not an idNatPs: 8 + the 11-digit RPPS (e.g. 810001234567) or 0 + the 9-digit ADELI", s)
	}
	return nil
}

// printable reports whether s is at most max bytes of text without control
// characters.
func printable(s string, max int) bool {
	if len(s) > max {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return false
		}
	}
	return true
}

// check says whether the caller is a well-formed identity of its kind.
// Its messages name the claim but never echo a long value.
func (c *Caller) check() error {
	switch c.Kind {
	case KindPractitioner:
		if c.ID == "" {
			return errors.New("missing claim idnps")
		}
		if err := ValidIDNatPs(c.ID); err != nil {
			if len(c.ID) > 20 {
				return errors.New("claim idnps is not an idNatPs (8 + RPPS or 0 + ADELI)")
			}
			return err
		}
		if c.Profession == "" {
			return errors.New("missing claim profession")
		}
		if !reDigits.MatchString(c.Profession) {
			return errors.New("claim profession is not a TRE_G15 code (digits, e.g. 10)")
		}
		if c.Specialty != "" && !reSpecialty.MatchString(c.Specialty) {
			return errors.New("claim specialty is not a code (e.g. SM26)")
		}
	case KindPatient:
		if c.ID == "" {
			return errors.New("missing claim patient")
		}
		if !reFHIRID.MatchString(c.ID) {
			return errors.New("claim patient is not a Patient id")
		}
	case KindSystem:
		if c.ID == "" {
			return errors.New("missing claim client_id")
		}
		if !reClientID.MatchString(c.ID) {
			return errors.New("claim client_id is not a client id")
		}
	default:
		return errors.New("claim kind must be practitioner, patient or system")
	}
	if c.Kind != KindPractitioner && (c.Regulator || c.Profession != "" || c.Specialty != "") {
		return fmt.Errorf("claims profession, specialty and regulator are for practitioners, not a %s", c.Kind)
	}
	if c.Organization != "" && !reFiness.MatchString(c.Organization) {
		return errors.New("claim finess is not a FINESS number (9 characters)")
	}
	switch c.AccessMode {
	case "", ModeNormal, ModeBrisDeGlace, ModeCentre15:
	default:
		return errors.New("claim access_mode must be normal, bris_de_glace or centre_15")
	}
	if !printable(c.Name, 256) {
		return errors.New("claim name is too long or has control characters")
	}
	if !printable(c.AccessReason, 1024) {
		return errors.New("claim access_reason is too long or has control characters")
	}
	return nil
}

// ErrUnauthenticated is the error of every token or credential that does
// not prove who the caller is. The errors Verify and Authenticate return
// wrap it with a short reason that may be shown to the client (it never
// contains the token or the secret): answer 401.
var ErrUnauthenticated = errors.New("unauthenticated")

func unauthenticated(reason string) error { return fmt.Errorf("%w: %s", ErrUnauthenticated, reason) }

// reasonError carries a client-safe reason out of the jwt key function.
type reasonError struct{ reason string }

func (e *reasonError) Error() string { return e.reason }

// Defaults of VerifierConfig.
const (
	DefaultLeeway         = 30 * time.Second
	DefaultJWKSRefresh    = time.Hour
	DefaultJWKSMinRefetch = time.Minute
)

const (
	defaultJWKSFetchTimeout = 10 * time.Second
	maxTokenBytes           = 64 << 10
	maxJWKSBytes            = 1 << 20
	jwksFileCheckInterval   = time.Second

	// The only algorithms a token may use.
	verifierAlgRS256 = "RS256"
	verifierAlgES256 = "ES256"
	verifierAlgEdDSA = "EdDSA"

	// PSC's values of Acces_Regulation_Medicale.
	pscRegulationTrue  = "VRAI"
	pscRegulationFalse = "FAUX"
)

// VerifierConfig is what NewVerifier needs.
type VerifierConfig struct {
	// Issuer is the iss of the server's own tokens (those Key signs);
	// default DefaultIssuer.
	Issuer string
	// Audience is the aud every token must carry (unless its external
	// issuer says otherwise); default DefaultAudience.
	Audience string
	// Key is the server's own signing key; nil when only external issuers
	// are trusted.
	Key *SigningKey
	// External are the other issuers trusted, e.g. Pro Santé Connect.
	External []ExternalIssuer
	// Leeway is the clock skew allowed on exp, nbf and iat; default
	// DefaultLeeway (30 s).
	Leeway time.Duration
	// HTTPClient fetches URL key sets; default a client with a 10 s
	// timeout.
	HTTPClient *http.Client
	// RefreshInterval is how old a URL key set may get before it is
	// fetched again in the background; default DefaultJWKSRefresh (1 h).
	RefreshInterval time.Duration
	// MinRefetchInterval is the least time between two fetches of a URL
	// key set (a token with an unknown kid triggers one); default
	// DefaultJWKSMinRefetch (1 min).
	MinRefetchInterval time.Duration
	// Logger receives key set load failures; default slog.Default().
	Logger *slog.Logger
}

// ExternalIssuer is an identity provider whose tokens the server accepts.
type ExternalIssuer struct {
	// Issuer is the exact iss of its tokens, e.g.
	// https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet for Pro
	// Santé Connect.
	Issuer string
	// JWKS is where its public keys are: a file path (re-read when it
	// changes) or an https:// URL (e.g. the issuer's
	// .../protocol/openid-connect/certs), fetched again on an unknown kid
	// (at most once per MinRefetchInterval) and every RefreshInterval.
	JWKS string
	// Audience is the aud its tokens must carry; default the
	// VerifierConfig's Audience.
	Audience string
	// Kind is the only kind of caller it may vouch for, used when a token
	// has no kind claim; default KindPractitioner (PSC).
	Kind Kind
	// DefaultScopes are granted when a token carries no SMART clinical
	// scope (PSC tokens say "openid scope_all"), e.g. "user/*.cruds";
	// empty: such a token may do nothing.
	DefaultScopes string
}

// Verifier checks bearer tokens: the server's own and those of the
// external issuers. It is safe for concurrent use.
type Verifier struct {
	issuers map[string]*verifierIssuer
	log     *slog.Logger
	// verified remembers the tokens already checked: clients send the same
	// token with every request, and checking its signature again (ECDSA
	// P-256: ~0.1 ms) was a sixth of a read's CPU.
	verified verifiedCache
}

// A verified token is trusted again without its signature check for at most
// verifiedTTL and never past its exp, and only while its issuer still has
// the key that signed it (looked up again at each use, which also keeps the
// key set's refresh going): a key removed from a JWKS stops being honoured
// at once.
const (
	verifiedTTL     = time.Minute
	verifiedEntries = 10_000
)

type verifiedCache struct {
	mu sync.Mutex
	m  map[[32]byte]verifiedToken
}

type verifiedToken struct {
	caller   Caller
	until    time.Time
	issuer   *verifierIssuer
	kid      string
	verifier any // the public key that verified it
}

func (vc *verifiedCache) get(key [32]byte, now time.Time) (verifiedToken, bool) {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	t, ok := vc.m[key]
	if !ok || !now.Before(t.until) {
		return verifiedToken{}, false
	}
	return t, true
}

// sameKey says whether two public keys are the same key.
func sameKey(a, b any) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

func (vc *verifiedCache) put(key [32]byte, t verifiedToken, exp, now time.Time) {
	until := now.Add(verifiedTTL)
	if exp.Before(until) {
		until = exp
	}
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if vc.m == nil {
		vc.m = make(map[[32]byte]verifiedToken)
	}
	if len(vc.m) >= verifiedEntries {
		for k, t := range vc.m {
			if !now.Before(t.until) {
				delete(vc.m, k)
			}
		}
		if len(vc.m) >= verifiedEntries {
			clear(vc.m)
		}
	}
	t.until = until
	vc.m[key] = t
}

type verifierIssuer struct {
	iss           string
	parser        *jwt.Parser
	keys          keySource
	kind          Kind // "": any kind (the server's own tokens)
	defaultScopes string
}

// keySource finds the public key of a kid.
type keySource interface {
	key(ctx context.Context, kid string) (verifyKey, error)
}

// staticKeys is a key set that never changes (the server's own key).
type staticKeys map[string]verifyKey

func (s staticKeys) key(_ context.Context, kid string) (verifyKey, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return verifyKey{}, &reasonError{"unknown key id"}
}

// NewVerifier returns a verifier of the server's own tokens (when cfg.Key
// is set) and of the external issuers' tokens. A file key set is read now
// (an error here is a configuration error); a URL key set is fetched on
// first use (call Refresh to fetch it now).
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Issuer == "" {
		cfg.Issuer = DefaultIssuer
	}
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.Leeway < 0 || cfg.Leeway > 5*time.Minute {
		return nil, fmt.Errorf("auth: leeway %s: must be between 0 and 5m", cfg.Leeway)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: defaultJWKSFetchTimeout}
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = DefaultJWKSRefresh
	}
	if cfg.MinRefetchInterval <= 0 {
		cfg.MinRefetchInterval = DefaultJWKSMinRefetch
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	v := &Verifier{issuers: map[string]*verifierIssuer{}, log: cfg.Logger}
	newParser := func(iss, aud string) *jwt.Parser {
		return jwt.NewParser(
			jwt.WithValidMethods([]string{verifierAlgRS256, verifierAlgES256, verifierAlgEdDSA}),
			jwt.WithIssuer(iss),
			jwt.WithAudience(aud),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
		)
	}
	if cfg.Key != nil {
		v.issuers[cfg.Issuer] = &verifierIssuer{
			iss:    cfg.Issuer,
			parser: newParser(cfg.Issuer, cfg.Audience),
			keys:   staticKeys{cfg.Key.kid: {alg: verifierAlgES256, pub: cfg.Key.Public()}},
		}
	}
	for _, e := range cfg.External {
		if e.Issuer == "" || e.JWKS == "" {
			return nil, errors.New("auth: an external issuer needs its iss and its JWKS (file or https URL)")
		}
		if _, dup := v.issuers[e.Issuer]; dup {
			return nil, fmt.Errorf("auth: issuer %q is configured twice", e.Issuer)
		}
		if e.Kind == "" {
			e.Kind = KindPractitioner
		}
		switch e.Kind {
		case KindPractitioner, KindPatient, KindSystem:
		default:
			return nil, fmt.Errorf("auth: issuer %q: kind %q must be practitioner, patient or system", e.Issuer, e.Kind)
		}
		if e.Audience == "" {
			e.Audience = cfg.Audience
		}
		src, err := newJWKSSource(e.Issuer, e.JWKS, cfg)
		if err != nil {
			return nil, err
		}
		v.issuers[e.Issuer] = &verifierIssuer{
			iss: e.Issuer, parser: newParser(e.Issuer, e.Audience), keys: src,
			kind: e.Kind, defaultScopes: e.DefaultScopes,
		}
	}
	if len(v.issuers) == 0 {
		return nil, errors.New("auth: no token issuer: give the server's signing key or an external issuer")
	}
	return v, nil
}

// Refresh loads every external key set now (file or URL), ignoring the
// rate limit: main may call it at start to report an unreachable JWKS.
func (v *Verifier) Refresh(ctx context.Context) error {
	var errs []error
	for _, is := range v.issuers {
		if s, ok := is.keys.(*jwksSource); ok {
			if err := s.load(ctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// tokenClaims is how Verify reads a token's payload.
type tokenClaims struct {
	jwt.RegisteredClaims
	Kind                    string          `json:"kind"`
	IDNatPs                 string          `json:"idnps"`
	SubjectNameID           string          `json:"SubjectNameID"`
	PreferredUsername       string          `json:"preferred_username"`
	Profession              string          `json:"profession"`
	Specialty               string          `json:"specialty"`
	Finess                  string          `json:"finess"`
	Name                    string          `json:"name"`
	GivenName               string          `json:"given_name"`
	FamilyName              string          `json:"family_name"`
	Regulator               json.RawMessage `json:"regulator"`
	AccesRegulationMedicale json.RawMessage `json:"Acces_Regulation_Medicale"`
	AccessMode              string          `json:"access_mode"`
	AccessReason            string          `json:"access_reason"`
	ModeAccesRaison         string          `json:"Mode_Acces_Raison"`
	Patient                 string          `json:"patient"`
	ClientID                string          `json:"client_id"`
	Scope                   json.RawMessage `json:"scope"`
	SubjectRefPro           json.RawMessage `json:"SubjectRefPro"`
}

// Verify checks a bearer token (without the "Bearer " prefix) and returns
// who it speaks for. Every failure wraps ErrUnauthenticated with a reason
// safe to show the client.
//
// Checked: the signature, by the key of the token's kid in the key set of
// its issuer (RS256, ES256 or EdDSA only: never none nor HMAC); iss among
// the configured issuers; aud; exp (required), nbf and iat with the
// leeway; the claims the caller's kind requires (practitioner: idnps and
// profession; patient: patient; system: client_id) and their shape.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Caller, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, unauthenticated("no token")
	}
	if len(raw) > maxTokenBytes {
		return nil, unauthenticated("token too large")
	}
	now := time.Now()
	cacheKey := sha256.Sum256([]byte(raw))
	if t, ok := v.verified.get(cacheKey, now); ok {
		if k, err := t.issuer.keys.key(ctx, t.kid); err == nil && sameKey(k.pub, t.verifier) {
			c := t.caller
			return &c, nil
		}
	}
	// Find the issuer before checking anything, to use its keys and its
	// rules; everything read here is checked again by the issuer's parser.
	var peek jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &peek); err != nil {
		return nil, unauthenticated(jwtReason(err))
	}
	is, ok := v.issuers[peek.Issuer]
	if !ok {
		return nil, unauthenticated("unknown issuer")
	}
	var tc tokenClaims
	var usedKID string
	var usedKey any
	_, err := is.parser.ParseWithClaims(raw, &tc, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		usedKID, usedKey = kid, nil
		if kid == "" {
			return nil, &reasonError{"token has no kid"}
		}
		k, err := is.keys.key(ctx, kid)
		if err != nil {
			return nil, err
		}
		alg := t.Method.Alg()
		if k.alg != "" && k.alg != alg {
			return nil, &reasonError{"algorithm does not match the key"}
		}
		usedKey = k.pub
		switch p := k.pub.(type) {
		case *rsa.PublicKey:
			if alg == verifierAlgRS256 {
				return p, nil
			}
		case *ecdsa.PublicKey:
			if alg == verifierAlgES256 && p.Curve == elliptic.P256() {
				return p, nil
			}
		case ed25519.PublicKey:
			if alg == verifierAlgEdDSA {
				return p, nil
			}
		}
		return nil, &reasonError{"algorithm does not match the key"}
	})
	if err != nil {
		return nil, unauthenticated(jwtReason(err))
	}
	c, reason := is.caller(&tc)
	if reason != "" {
		return nil, unauthenticated(reason)
	}
	if tc.ExpiresAt != nil && usedKey != nil {
		v.verified.put(cacheKey, verifiedToken{caller: *c, issuer: is, kid: usedKID, verifier: usedKey}, tc.ExpiresAt.Time, now)
	}
	return c, nil
}

// jwtReason turns a jwt error into a short client-safe reason.
func jwtReason(err error) string {
	var re *reasonError
	switch {
	case errors.As(err, &re):
		return re.reason
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token issued in the future"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "token lacks a required claim (exp, aud or iss)"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature or algorithm"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "unverifiable token (unsupported algorithm)"
	}
	return "invalid token"
}

// caller maps verified claims to the caller; reason is "" when they name
// a valid identity.
func (is *verifierIssuer) caller(tc *tokenClaims) (*Caller, string) {
	kind := Kind(tc.Kind)
	switch {
	case kind == "" && is.kind == "":
		return nil, "missing claim kind"
	case kind == "":
		kind = is.kind
	case is.kind != "" && kind != is.kind:
		return nil, "this issuer may not vouch for that kind of caller"
	}
	c := &Caller{
		Kind: kind, Specialty: tc.Specialty, Organization: tc.Finess, Name: tc.Name,
		AccessMode: tc.AccessMode, AccessReason: tc.AccessReason,
		Issuer: tc.Issuer, Subject: tc.Subject, TokenID: tc.ID, Profession: tc.Profession,
	}
	if c.Name == "" {
		c.Name = strings.TrimSpace(tc.GivenName + " " + tc.FamilyName)
	}
	if c.AccessReason == "" {
		c.AccessReason = tc.ModeAccesRaison
	}
	scope, ok := scopeClaim(tc.Scope)
	if !ok {
		return nil, "claim scope is not a string"
	}
	c.Scopes = ParseScopes(scope)
	if !c.Scopes.Clinical() && is.defaultScopes != "" {
		c.Scopes = ParseScopes(strings.TrimSpace(scope + " " + is.defaultScopes))
	}
	switch kind {
	case KindPractitioner:
		switch {
		case tc.IDNatPs != "" && tc.SubjectNameID != "" && tc.IDNatPs != tc.SubjectNameID:
			return nil, "claims idnps and SubjectNameID disagree"
		case tc.IDNatPs != "":
			c.ID = tc.IDNatPs
		case tc.SubjectNameID != "":
			c.ID = tc.SubjectNameID
		default:
			c.ID = tc.PreferredUsername
		}
		reg, err := regulatorClaims(tc.Regulator, tc.AccesRegulationMedicale)
		if err != "" {
			return nil, err
		}
		c.Regulator = reg
		if c.Profession == "" || c.Specialty == "" {
			prof, spec := pscExercice(tc.SubjectRefPro)
			if c.Profession == "" {
				c.Profession = prof
			}
			if c.Specialty == "" {
				c.Specialty = spec
			}
		}
	case KindPatient:
		c.ID = tc.Patient
	case KindSystem:
		c.ID = tc.ClientID
	}
	if err := c.check(); err != nil {
		return nil, err.Error()
	}
	return c, ""
}

// scopeClaim reads a scope claim: a space-separated string, or a JSON
// array of strings.
func scopeClaim(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return strings.Join(list, " "), true
	}
	return "", false
}

// boolClaim reads true/false, "true"/"false" or PSC's "VRAI"/"FAUX".
func boolClaim(raw json.RawMessage) (value, present, ok bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return false, false, true
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b, true, true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return false, true, false
	}
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "TRUE", pscRegulationTrue:
		return true, true, true
	case "FALSE", pscRegulationFalse:
		return false, true, true
	}
	return false, true, false
}

// regulatorClaims reads regulator and PSC's Acces_Regulation_Medicale;
// when both are present they must agree.
func regulatorClaims(ours, psc json.RawMessage) (bool, string) {
	a, aPresent, ok := boolClaim(ours)
	if !ok {
		return false, "claim regulator is not a boolean"
	}
	b, bPresent, ok := boolClaim(psc)
	if !ok {
		return false, "claim Acces_Regulation_Medicale is not VRAI or FAUX"
	}
	if aPresent && bPresent && a != b {
		return false, "claims regulator and Acces_Regulation_Medicale disagree"
	}
	return a || b, ""
}

// pscExercice reads PSC's SubjectRefPro: the profession when every
// exercice has the same one, the savoir-faire when there is one exercice.
// Anything unexpected gives nothing (and the profession is then missing).
func pscExercice(raw json.RawMessage) (profession, specialty string) {
	if len(raw) == 0 {
		return "", ""
	}
	var ref struct {
		Exercices []struct {
			CodeProfession  string `json:"codeProfession"`
			CodeSavoirFaire string `json:"codeSavoirFaire"`
		} `json:"exercices"`
	}
	if json.Unmarshal(raw, &ref) != nil || len(ref.Exercices) == 0 {
		return "", ""
	}
	profession = ref.Exercices[0].CodeProfession
	for _, e := range ref.Exercices[1:] {
		if e.CodeProfession != profession {
			return "", ""
		}
	}
	if len(ref.Exercices) == 1 {
		specialty = ref.Exercices[0].CodeSavoirFaire
	}
	return profession, specialty
}

// jwksSource is an external issuer's key set, from a file or an https URL,
// kept fresh as described on ExternalIssuer.JWKS.
type jwksSource struct {
	issuer, location string
	isURL            bool
	client           *http.Client
	refresh          time.Duration
	minRefetch       time.Duration
	log              *slog.Logger

	mu        sync.RWMutex
	keys      map[string]verifyKey
	loadedAt  time.Time // last successful load
	checkedAt time.Time // last fetch attempt (URL) or stat (file)
	modTime   time.Time // file
	size      int64     // file

	loadMu     sync.Mutex // one load at a time
	refreshing atomic.Bool
}

func newJWKSSource(issuer, location string, cfg VerifierConfig) (*jwksSource, error) {
	s := &jwksSource{
		issuer: issuer, location: location, client: cfg.HTTPClient,
		refresh: cfg.RefreshInterval, minRefetch: cfg.MinRefetchInterval, log: cfg.Logger,
	}
	if strings.Contains(location, "://") {
		u, err := url.Parse(location)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("auth: issuer %q: JWKS %q must be a file path or an https:// URL", issuer, location)
		}
		s.isURL = true
		return s, nil
	}
	if err := s.load(context.Background()); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *jwksSource) lookup(kid string) (verifyKey, bool, time.Time, time.Time) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.keys[kid]
	return k, ok, s.loadedAt, s.checkedAt
}

func (s *jwksSource) key(ctx context.Context, kid string) (verifyKey, error) {
	now := time.Now()
	k, ok, loadedAt, checkedAt := s.lookup(kid)
	if !s.isURL {
		// A file is cheap to stat: on a miss at once, else once a second,
		// so that an added key works and a removed key stops working.
		if !ok || now.Sub(checkedAt) >= jwksFileCheckInterval {
			s.reloadFileIfChanged()
			k, ok, _, _ = s.lookup(kid)
		}
	} else if !ok {
		// An unknown kid may be a rotated key: fetch again, at most once
		// per minRefetch whatever the tokens say.
		if now.Sub(checkedAt) >= s.minRefetch {
			s.loadMu.Lock()
			if _, _, _, c := s.lookup(kid); time.Since(c) >= s.minRefetch {
				if err := s.loadLocked(ctx); err != nil {
					s.log.Warn("auth: JWKS fetch failed", "issuer", s.issuer, "jwks", s.location, "err", err)
				}
			}
			s.loadMu.Unlock()
			k, ok, loadedAt, _ = s.lookup(kid)
			if ok {
				return k, nil
			}
		}
		if loadedAt.IsZero() {
			return verifyKey{}, &reasonError{"the issuer's keys are unavailable"}
		}
	} else if now.Sub(loadedAt) >= s.refresh && now.Sub(checkedAt) >= s.minRefetch && s.refreshing.CompareAndSwap(false, true) {
		// Periodic refresh in the background: this token uses the key
		// already known.
		go func() {
			defer s.refreshing.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), defaultJWKSFetchTimeout)
			defer cancel()
			s.loadMu.Lock()
			defer s.loadMu.Unlock()
			if err := s.loadLocked(ctx); err != nil {
				s.log.Warn("auth: JWKS refresh failed", "issuer", s.issuer, "jwks", s.location, "err", err)
			}
		}()
	}
	if !ok {
		return verifyKey{}, &reasonError{"unknown key id"}
	}
	return k, nil
}

// reloadFileIfChanged re-reads a file key set whose modification time or
// size changed; a failed read keeps the keys loaded before.
func (s *jwksSource) reloadFileIfChanged() {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	fi, err := os.Stat(s.location)
	s.mu.Lock()
	s.checkedAt = time.Now()
	changed := err == nil && (!fi.ModTime().Equal(s.modTime) || fi.Size() != s.size)
	s.mu.Unlock()
	if err != nil {
		s.log.Warn("auth: JWKS file", "issuer", s.issuer, "jwks", s.location, "err", err)
		return
	}
	if changed {
		if err := s.loadLocked(context.Background()); err != nil {
			s.log.Warn("auth: JWKS file reload failed", "issuer", s.issuer, "jwks", s.location, "err", err)
		}
	}
}

func (s *jwksSource) load(ctx context.Context) error {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	return s.loadLocked(ctx)
}

// loadLocked reads the key set; the caller holds loadMu.
func (s *jwksSource) loadLocked(ctx context.Context) error {
	var (
		data    []byte
		err     error
		modTime time.Time
		size    int64
	)
	if s.isURL {
		s.mu.Lock()
		s.checkedAt = time.Now()
		s.mu.Unlock()
		data, err = s.fetch(ctx)
	} else {
		data, modTime, size, err = readJWKSFile(s.location)
	}
	var keys map[string]verifyKey
	if err == nil {
		keys, err = parseJWKS(data)
	}
	if err != nil {
		return fmt.Errorf("auth: issuer %q: JWKS %s: %w", s.issuer, s.location, err)
	}
	s.mu.Lock()
	s.keys, s.loadedAt = keys, time.Now()
	if !s.isURL {
		s.modTime, s.size, s.checkedAt = modTime, size, s.loadedAt
	}
	s.mu.Unlock()
	return nil
}

func readJWKSFile(path string) ([]byte, time.Time, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, time.Time{}, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, 0, err
	}
	data, err := readAllLimited(f, maxJWKSBytes)
	return data, fi.ModTime(), fi.Size(), err
}

func (s *jwksSource) fetch(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, defaultJWKSFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.location, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxJWKSBytes)
	}
	return data, nil
}
