// Package store is the storage contract of dmp-fhir: resources, their
// versions and history, lookups by index values, and transactions. Engines
// (store/sqlite, store/mongo) implement it; the rest of the code never knows
// which one it talks to. store.Run in storetest keeps the engines honest.
package store

import (
	"context"
	"errors"
	"io"
	"strconv"
	"time"
)

// Errors every engine returns for the same situations; api maps them to
// HTTP statuses in one place.
var (
	// ErrNotFound: no resource with that type and id (or no such version).
	ErrNotFound = errors.New("store: resource not found")
	// ErrDeleted: the resource exists but its current version is a deletion.
	ErrDeleted = errors.New("store: resource deleted")
	// ErrVersionMismatch: the If-Match version is not the current version.
	ErrVersionMismatch = errors.New("store: version mismatch")
	// ErrExists: a create found the id already taken.
	ErrExists = errors.New("store: resource already exists")
	// ErrConflict: a concurrent writer won the race; the caller may retry.
	ErrConflict = errors.New("store: concurrent modification")
	// ErrNoTransactions: the engine's server cannot run atomic transactions
	// (a standalone MongoDB, FerretDB).
	ErrNoTransactions = errors.New("store: transactions are not available on this server")
)

// Resource is one stored version of a resource.
type Resource struct {
	Type        string
	ID          string
	Version     int64
	LastUpdated time.Time
	// Deleted marks a deletion: the version exists in history, with no body.
	Deleted bool
	// Body is the resource JSON as the client sent it, with the server-set
	// id, meta.versionId and meta.lastUpdated. Nil when Deleted.
	Body []byte
}

// ETag is the weak entity tag of this version, W/"n".
func (r *Resource) ETag() string { return `W/"` + strconv.FormatInt(r.Version, 10) + `"` }

// Outcome says what a write did.
type Outcome int

const (
	Created   Outcome = iota + 1 // a new resource (version 1, or a new life after a delete)
	Updated                      // a new version of an existing resource
	Unchanged                    // identical content: no new version was made
	Deleted                      // a deletion version was written
	NoOp                         // delete of a missing or already deleted resource
)

// Ops are the reads and writes available inside and outside a transaction.
type Ops interface {
	// Create stores version 1 of a new resource under the given id
	// (ErrExists when the id is taken, even by a deleted resource).
	Create(ctx context.Context, typ, id string, body []byte) (*Resource, error)
	// Put stores body as the next version of typ/id, or creates it. ifMatch,
	// when not 0, is the version the writer last saw (ErrVersionMismatch
	// otherwise). Identical content makes no new version (Unchanged).
	Put(ctx context.Context, typ, id string, body []byte, ifMatch int64) (*Resource, Outcome, error)
	// Delete writes a deletion version (NoOp when missing or already deleted).
	Delete(ctx context.Context, typ, id string, ifMatch int64) (*Resource, Outcome, error)
	// Read returns the current version; ErrDeleted (with the deletion
	// version) or ErrNotFound.
	Read(ctx context.Context, typ, id string) (*Resource, error)
	// VRead returns one version; a deletion version comes with ErrDeleted.
	VRead(ctx context.Context, typ, id string, version int64) (*Resource, error)
	// FindByToken returns the ids of current (not deleted) resources of typ
	// indexed with that token, in id order, at most limit of them.
	FindByToken(ctx context.Context, typ string, token TokenQuery, limit int) ([]string, error)
}

// TokenQuery matches an indexed token: System "" matches any system (FHIR
// `code`), NoSystem only tokens without one (FHIR `|code`).
type TokenQuery struct {
	Param    string
	System   string
	Code     string
	NoSystem bool // match only tokens without a system (FHIR `|code`)
}

// Store is an opened storage engine.
type Store interface {
	Ops
	Searcher
	// Transaction runs fn so that all its writes land together or not at
	// all. fn may be called again when the engine retries a conflict, so it
	// must have no side effects outside tx. Engines that cannot do this
	// return ErrNoTransactions without calling fn.
	Transaction(ctx context.Context, fn func(tx Ops) error) error
	// History lists versions, newest first.
	History(ctx context.Context, q HistoryQuery) ([]*Resource, error)
	// Purge removes typ/id for good: every version, its index values and
	// its current row, so that neither a read, a vread, a history nor a
	// search finds it, and the id is free again. Purging a missing id is
	// not an error. It serves records that must not outlive their purpose
	// (an expired bulk export job names the patients it exported), never a
	// patient's record, whose versions are kept.
	Purge(ctx context.Context, typ, id string) error
	// Blobs is where the engine keeps large contents (a Binary's bytes).
	Blobs() Blobs
	// WriteCount returns a number that moves after every commit that wrote
	// a resource of type typ, once the commit is visible to reads and before
	// it is acknowledged, and whether it is exact: true only when this
	// process is the only writer of the engine's data (the embedded engine,
	// which locks its directory). While an exact count has not moved, what
	// was read of typ is still current; a cache may rely on nothing else.
	// Engines shared between processes (MongoDB) answer 0, false.
	WriteCount(typ string) (uint64, bool)
	// Info describes the engine.
	Info() Info
	// Ping checks the engine can serve requests.
	Ping(ctx context.Context) error
	// Close flushes and releases the engine.
	Close() error
}

// Info says which engine this is and what its server can do.
type Info struct {
	Engine       string // "sqlite" | "mongodb"
	Transactions bool   // atomic multi-resource transactions
	// ConcurrentSafe is false on servers known to lose concurrent updates
	// (FerretDB); the contract suite skips its race tests there.
	ConcurrentSafe bool
}

// HistoryQuery selects versions for instance, type or system history.
type HistoryQuery struct {
	Type  string    // "" for the whole system
	ID    string    // "" for the whole type
	Since time.Time // zero for all; versions at or after Since
	// After continues a listing after this version (keyset paging).
	After *HistoryKey
	Count int
}

// HistoryKey is a version's place in the history order: newest first by
// lastUpdated, then type, id, version descending.
type HistoryKey struct {
	LastUpdated time.Time
	Type        string
	ID          string
	Version     int64
}

// Key returns the history key of r.
func (r *Resource) Key() HistoryKey {
	return HistoryKey{LastUpdated: r.LastUpdated, Type: r.Type, ID: r.ID, Version: r.Version}
}

// Now is the store's clock: lastUpdated at millisecond precision, as FHIR
// instants are written.
func Now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// ErrBadCursor: a search continuation (Query.After) that the engine cannot
// read.
var ErrBadCursor = errors.New("store: malformed search cursor")

// Blobs stores immutable byte streams by id: the bytes of Binary resources
// too large to sit in a resource row. A resource points at its blob by id;
// the engine keeps the bytes beside its rows (files under the data
// directory, GridFS). Blobs are written before the rows that point at them,
// so that a committed row never points at a missing blob; a transaction that
// fails after its blobs were written leaves them unreferenced.
type Blobs interface {
	// Put stores what r yields under id, durably before it returns. Blobs
	// are immutable: when id already exists, Put keeps the stored bytes and
	// returns nil (callers name blobs by a hash of their content, so the
	// bytes are the same). A reader error stores nothing.
	Put(ctx context.Context, id string, r io.Reader) error
	// Get opens the blob for reading, with its size in bytes; ErrNotFound
	// when there is none. The caller closes the reader.
	Get(ctx context.Context, id string) (io.ReadCloser, int64, error)
	// Delete removes the blob; deleting a missing blob is not an error.
	Delete(ctx context.Context, id string) error
}

// ErrBadBlobID: a blob id that is not 1 to 128 letters, digits, '-', '_'
// or '.', starting with a letter or a digit.
var ErrBadBlobID = errors.New("store: malformed blob id")

// ValidBlobID reports whether id can name a blob on every engine (it is
// used as a file name).
func ValidBlobID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '-' || c == '_' || c == '.') && i > 0:
		default:
			return false
		}
	}
	return true
}
