package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/dmp-fhir/dmp-fhir/store"
)

// The DMP's own records, kept in the store beside the FHIR resources under
// type names that are no FHIR type, so that no route of the API reaches them.
const (
	// TypeIdentity is keyed by a digest of the patient's INS: its creation
	// is what makes "one DMP per INS" race-free (the store refuses a second
	// create of the same id).
	TypeIdentity = "DMPIdentity"
	// TypeAccount is the patient's sign-in: keyed by the DMP identifier.
	TypeAccount = "DMPAccount"
	// TypeCode is a pending one-time creation code, keyed like the identity.
	TypeCode = "DMPCode"
)

// InternalType says whether typ is one of the DMP's own record types.
func InternalType(typ string) bool {
	return typ == TypeIdentity || typ == TypeAccount || typ == TypeCode
}

// Limits of the patient's sign-in and of the creation codes.
const (
	MaxPasswordFailures = 5                // then the account is locked
	LockoutDuration     = 15 * time.Minute // for this long
	CodeTTL             = 15 * time.Minute // a creation code expires after this
	MaxCodeAttempts     = 5                // wrong codes before a new request is needed
	MinPasswordLength   = 12
)

// IdentityKey is the store id of the records of one INS (system|value): a
// SHA-256 digest, so that the id says nothing readable of the number.
func IdentityKey(system, value string) string {
	sum := sha256.Sum256([]byte(system + "|" + value))
	return hex.EncodeToString(sum[:])
}

// Identity ties an INS to its DMP.
type Identity struct {
	ResourceType string    `json:"resourceType"`
	Patient      string    `json:"patient"`
	Account      string    `json:"account"` // the DMP identifier
	Created      time.Time `json:"created"`
}

// Account is the patient's sign-in: the password only as an argon2id hash.
type Account struct {
	ResourceType string    `json:"resourceType"`
	Patient      string    `json:"patient"`
	PasswordHash string    `json:"passwordHash"`
	Failures     int       `json:"failures,omitempty"`
	LockedUntil  time.Time `json:"lockedUntil,omitzero"`
	Changed      time.Time `json:"changed"`
}

// Locked says whether the account refuses sign-ins at now.
func (a *Account) Locked(now time.Time) bool { return now.Before(a.LockedUntil) }

// Failed counts a wrong password; the fifth in a row locks the account.
func (a *Account) Failed(now time.Time) {
	a.Failures++
	if a.Failures >= MaxPasswordFailures {
		a.Failures = 0
		a.LockedUntil = now.Add(LockoutDuration)
	}
}

// OneTimeCode is a pending creation code: only its salted digest is kept.
type OneTimeCode struct {
	ResourceType string    `json:"resourceType"`
	Salt         string    `json:"salt"`
	Digest       string    `json:"digest"`
	Expires      time.Time `json:"expires"`
	Attempts     int       `json:"attempts,omitempty"`
	BirthDate    string    `json:"birthDate"`
}

// NewOneTimeCode draws a 6-digit code for a birth date, valid CodeTTL from now.
func NewOneTimeCode(birthDate string, now time.Time) (code string, rec *OneTimeCode, err error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", nil, err
	}
	code = fmt.Sprintf("%06d", n.Int64())
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", nil, err
	}
	rec = &OneTimeCode{ResourceType: TypeCode, Salt: hex.EncodeToString(salt), Expires: now.Add(CodeTTL), BirthDate: birthDate}
	rec.Digest = rec.digest(code)
	return code, rec, nil
}

func (c *OneTimeCode) digest(code string) string {
	sum := sha256.Sum256([]byte(c.Salt + "|" + code))
	return hex.EncodeToString(sum[:])
}

// Matches compares a code in constant time.
func (c *OneTimeCode) Matches(code string) bool {
	return subtle.ConstantTimeCompare([]byte(c.digest(code)), []byte(c.Digest)) == 1
}

// ---------------------------------------------------------------------------
// Passwords.

// argon2id parameters: OWASP's minimum (19 MiB, 2 passes, 1 lane), enough
// against offline guessing of a random 16-character password, cheap enough
// for a 2-core server signing patients in.
const (
	argonMemory  = 19 * 1024
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
)

// HashPassword returns the PHC string of an argon2id hash of password.
func HashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding.EncodeToString
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads, b64(salt), b64(key)), nil
}

// dummyHash is checked against when there is no account, so that an
// unknown identifier takes as long to refuse as a wrong password.
var dummyHash, _ = HashPassword("no account has this password")

// CheckPassword compares password with a PHC argon2id string in constant
// time; an empty or malformed hash never matches (but costs the same).
func CheckPassword(hash, password string) bool {
	ok := true
	if hash == "" {
		hash, ok = dummyHash, false
	}
	parts := strings.Split(hash, "$")
	var m, t uint32
	var p uint8
	if len(parts) != 6 || parts[1] != "argon2id" {
		parts, ok = strings.Split(dummyHash, "$"), false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1 && ok
}

// PasswordProblem says why a new password is refused ("" when it is fine).
func PasswordProblem(password string) string {
	if len([]rune(password)) < MinPasswordLength {
		return fmt.Sprintf("the password must have at least %d characters", MinPasswordLength)
	}
	var lower, upper, digit, other bool
	for _, r := range password {
		switch {
		case r >= 'a' && r <= 'z':
			lower = true
		case r >= 'A' && r <= 'Z':
			upper = true
		case r >= '0' && r <= '9':
			digit = true
		default:
			other = true
		}
	}
	classes := 0
	for _, b := range []bool{lower, upper, digit, other} {
		if b {
			classes++
		}
	}
	if classes < 3 {
		return "the password must mix at least three of: lower case, upper case, digits, other characters"
	}
	return ""
}

// credentialAlphabet leaves out look-alike characters (0/O, 1/I/l).
const credentialAlphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz"

func randomString(n int, alphabet string) (string, error) {
	var sb strings.Builder
	max := big.NewInt(int64(len(alphabet)))
	for range n {
		i, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", err
		}
		sb.WriteByte(alphabet[i.Int64()])
	}
	return sb.String(), nil
}

// NewCredentials draws a DMP identifier (12 upper-case characters in three
// groups, easy to copy from a letter) and an initial password that passes
// PasswordProblem.
func NewCredentials() (identifier, password string, err error) {
	const upper = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
	id, err := randomString(12, upper)
	if err != nil {
		return "", "", err
	}
	for {
		password, err = randomString(16, credentialAlphabet)
		if err != nil {
			return "", "", err
		}
		if PasswordProblem(password) == "" {
			break
		}
	}
	return id[:4] + "-" + id[4:8] + "-" + id[8:], password, nil
}

// ---------------------------------------------------------------------------
// Reading and writing the records.

// ReadRecord reads one of the DMP's records into v and returns its version.
func ReadRecord(ctx context.Context, ops store.Ops, typ, id string, v any) (int64, error) {
	r, err := ops.Read(ctx, typ, id)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(r.Body, v); err != nil {
		return 0, fmt.Errorf("%s record %s: %w", typ, id, err)
	}
	return r.Version, nil
}

// WriteRecord writes v as the next version of a record: ifMatch is the
// version read (0 for any), create=true refuses an existing id.
func WriteRecord(ctx context.Context, ops store.Ops, typ, id string, v any, ifMatch int64, create bool) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if create {
		_, err = ops.Create(ctx, typ, id, body)
		return err
	}
	_, _, err = ops.Put(ctx, typ, id, body, ifMatch)
	return err
}

// ErrNoAccount: no account for these credentials.
var ErrNoAccount = errors.New("auth: unknown DMP identifier or wrong password")
