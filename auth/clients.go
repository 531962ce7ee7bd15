package auth

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// clientsFile is the registry's file name in the data directory.
const clientsFile = "clients.json"

// clientRecord is one registered system client as kept on disk: the
// secret only as a bcrypt hash.
type clientRecord struct {
	ID         string    `json:"client_id"`
	Name       string    `json:"name"`
	Finess     string    `json:"finess"`
	Scope      string    `json:"scope"`
	SecretHash string    `json:"secret_hash"`
	Created    time.Time `json:"created"`
}

type clientsDoc struct {
	Clients []clientRecord `json:"clients"`
}

// Clients is the registry of the system clients that may get a token with
// the OAuth2 client_credentials grant (hospital information systems,
// LPS), kept in dataDir/clients.json (mode 0600). It re-reads the file when
// it changes, so that a client added with the CLI while the server runs
// can authenticate at once. It is safe for concurrent use.
type Clients struct {
	path string

	mu   sync.Mutex
	list []clientRecord
	byID map[string]clientRecord
	fi   fs.FileInfo // of the file last read; nil: no file
}

// clientDummyHash is compared against when the client id is unknown, so
// that an unknown id costs the same time as a wrong secret.
var clientDummyHash = sync.OnceValue(func() []byte {
	h, err := bcrypt.GenerateFromPassword([]byte("dmp-fhir: no such client"), bcrypt.DefaultCost)
	if err != nil {
		panic(err)
	}
	return h
})

// OpenClients opens the registry of dataDir (an absent file is an empty
// registry).
func OpenClients(dataDir string) (*Clients, error) {
	if dataDir == "" {
		return nil, errors.New("auth: clients: empty data directory")
	}
	c := &Clients{path: filepath.Join(dataDir, clientsFile), byID: map[string]clientRecord{}}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.reloadLocked(); err != nil {
		return nil, err
	}
	clientDummyHash() // pay for it now, not on the first request
	return c, nil
}

// reloadLocked re-reads the file if it changed since the last read.
func (c *Clients) reloadLocked() error {
	f, err := os.Open(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		c.list, c.byID, c.fi = nil, map[string]clientRecord{}, nil
		return nil
	}
	if err != nil {
		return fmt.Errorf("auth: clients: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("auth: clients: %w", err)
	}
	// AddClient replaces the file (a new inode); an editor may rewrite it.
	if c.fi != nil && os.SameFile(fi, c.fi) && fi.ModTime().Equal(c.fi.ModTime()) && fi.Size() == c.fi.Size() {
		return nil
	}
	if err := checkPrivateMode(c.path, fi.Mode(), false); err != nil {
		return err
	}
	data, err := readAllLimited(f, 16<<20)
	if err != nil {
		return fmt.Errorf("auth: clients %s: %w", c.path, err)
	}
	doc, err := parseClients(data)
	if err != nil {
		return fmt.Errorf("auth: clients %s: %w", c.path, err)
	}
	byID := make(map[string]clientRecord, len(doc.Clients))
	for _, r := range doc.Clients {
		byID[r.ID] = r
	}
	c.list, c.byID, c.fi = doc.Clients, byID, fi
	return nil
}

func parseClients(data []byte) (clientsDoc, error) {
	var doc clientsDoc
	if len(strings.TrimSpace(string(data))) == 0 {
		return doc, nil
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return doc, err
	}
	return doc, nil
}

// Authenticate checks a client's id and secret and returns the system
// caller it stands for (its FINESS as Organization, its registered
// scopes). An unknown id and a wrong secret give the same error, which
// wraps ErrUnauthenticated, after the same work. Other errors (an
// unreadable registry) are the server's.
func (c *Clients) Authenticate(id, secret string) (*Caller, error) {
	c.mu.Lock()
	err := c.reloadLocked()
	r, ok := c.byID[id]
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	hash := clientDummyHash()
	if ok {
		hash = []byte(r.SecretHash)
	}
	// bcrypt only reads the first 72 bytes; a longer secret is not one of ours.
	match := len(secret) <= 72 && bcrypt.CompareHashAndPassword(hash, []byte(secret)) == nil
	if !ok || !match || secret == "" {
		return nil, unauthenticated("invalid client credentials")
	}
	caller := &Caller{Kind: KindSystem, ID: r.ID, Organization: r.Finess, Name: r.Name, Scopes: ParseScopes(r.Scope)}
	if err := caller.check(); err != nil {
		return nil, fmt.Errorf("auth: client %q in %s: %w", r.ID, c.path, err)
	}
	return caller, nil
}

// ClientInfo is what the registry tells about a client (never its secret).
type ClientInfo struct {
	ID, Name, Finess, Scope string
	Created                 time.Time
}

// List returns the registered clients, in the file's order.
func (c *Clients) List() ([]ClientInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.reloadLocked(); err != nil {
		return nil, err
	}
	out := make([]ClientInfo, 0, len(c.list))
	for _, r := range c.list {
		out = append(out, ClientInfo{ID: r.ID, Name: r.Name, Finess: r.Finess, Scope: r.Scope, Created: r.Created})
	}
	return out, nil
}

// AddClient registers a system client in dataDir/clients.json and returns
// its new id and secret. The secret is shown only here: the registry keeps
// a bcrypt hash of it. name is free text; finess is the FINESS of the
// client's organization; scopes must contain at least one SMART clinical
// scope (e.g. "system/*.cruds", "system/DocumentReference.cu").
func AddClient(dataDir, name, finess, scopes string) (clientID, secret string, err error) {
	name, finess, scopes = strings.TrimSpace(name), strings.TrimSpace(finess), strings.Join(strings.Fields(scopes), " ")
	switch {
	case dataDir == "":
		return "", "", errors.New("auth: clients: empty data directory")
	case name == "" || !printable(name, 256):
		return "", "", errors.New("auth: client name: required, at most 256 characters, no control characters")
	case !reFiness.MatchString(finess):
		return "", "", fmt.Errorf("auth: client finess %q: must be a FINESS number (9 digits, or 2A/2B + 7 digits)", finess)
	case !ParseScopes(scopes).Clinical():
		return "", "", fmt.Errorf("auth: client scope %q grants nothing: give SMART scopes such as system/*.cruds or system/DocumentReference.cu", scopes)
	}
	var idRand [4]byte
	var secretRand [32]byte
	if _, err := rand.Read(idRand[:]); err != nil {
		return "", "", err
	}
	if _, err := rand.Read(secretRand[:]); err != nil {
		return "", "", err
	}
	clientID = clientSlug(name) + "-" + hex.EncodeToString(idRand[:])
	secret = base64.RawURLEncoding.EncodeToString(secretRand[:]) // 43 characters, under bcrypt's 72
	hash, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.DefaultCost)
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", "", fmt.Errorf("auth: clients: %w", err)
	}
	path := filepath.Join(dataDir, clientsFile)
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		return "", "", err
	}
	defer unlock()
	var doc clientsDoc
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if fi, err := os.Stat(path); err == nil {
			if err := checkPrivateMode(path, fi.Mode(), false); err != nil {
				return "", "", err
			}
		}
		if doc, err = parseClients(data); err != nil {
			return "", "", fmt.Errorf("auth: clients %s: %w", path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", "", fmt.Errorf("auth: clients: %w", err)
	}
	for _, r := range doc.Clients {
		if r.ID == clientID {
			return "", "", errors.New("auth: clients: generated id already taken; try again")
		}
	}
	doc.Clients = append(doc.Clients, clientRecord{
		ID: clientID, Name: name, Finess: finess, Scope: scopes, SecretHash: string(hash), Created: time.Now().UTC().Truncate(time.Second),
	})
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return "", "", err
	}
	if err := writeFileAtomic(path, append(out, '\n')); err != nil {
		return "", "", fmt.Errorf("auth: clients: %w", err)
	}
	return clientID, secret, nil
}

// clientSlug makes the readable part of a client id from its name.
func clientSlug(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case b.Len() > 0 && !dash:
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 40 {
			break
		}
	}
	s := strings.TrimRight(b.String(), "-")
	if s == "" {
		s = "client"
	}
	return s
}

// writeFileAtomic writes a 0600 file through a temporary file and a
// rename, so that a reader sees the old content or the new, never half.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil && !isWindows() {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// lockFile takes an exclusive lock by creating path, waiting up to 10 s
// for another holder; a lock older than a minute is taken as abandoned.
func lockFile(path string) (unlock func(), err error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			f.Close()
			return func() { os.Remove(path) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("auth: clients lock: %w", err)
		}
		if fi, err := os.Stat(path); err == nil && time.Since(fi.ModTime()) > time.Minute {
			os.Remove(path)
			continue
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("auth: clients: %s is held by another process (remove it if none runs)", path)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
