package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/dmp-fhir/dmp-fhir/store"
)

// BlobDir is the folder of the blobs inside the data directory.
const BlobDir = "blobs"

// fileBlobs keeps each blob in a file of its own under <data>/blobs, in a
// folder named by the id's first two characters (blobs/ab/abcdef...). A
// blob is written to blobs/tmp, flushed to disk, then renamed into place
// and its folder flushed: a blob is either whole under its name or absent,
// whatever the moment a crash hits.
type fileBlobs struct {
	dir string // <data>/blobs
	tmp string // <data>/blobs/tmp
}

var _ store.Blobs = (*fileBlobs)(nil)

// staleTemp is how old a temporary file must be for Open to remove it: a
// file that young may be the write in progress of another process on the
// same data directory (the import command beside a server).
const staleTemp = time.Hour

func openBlobs(dataDir string) (*fileBlobs, error) {
	b := &fileBlobs{dir: filepath.Join(dataDir, BlobDir)}
	b.tmp = filepath.Join(b.dir, "tmp")
	if err := os.MkdirAll(b.tmp, 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: blob directory: %w", err)
	}
	// Leftovers of writes a crash interrupted: never renamed, so never
	// pointed at.
	entries, err := os.ReadDir(b.tmp)
	if err != nil {
		return nil, fmt.Errorf("sqlite: blob directory: %w", err)
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleTemp {
			os.Remove(filepath.Join(b.tmp, e.Name()))
		}
	}
	return b, nil
}

// Blobs returns the engine's blob storage: files under the data directory.
func (s *Store) Blobs() store.Blobs { return s.blobs }

func (b *fileBlobs) path(id string) string {
	shard := id
	if len(shard) > 2 {
		shard = shard[:2]
	}
	return filepath.Join(b.dir, shard, id)
}

func (b *fileBlobs) Put(ctx context.Context, id string, r io.Reader) (err error) {
	if !store.ValidBlobID(id) {
		return store.ErrBadBlobID
	}
	final := b.path(id)
	if _, err := os.Stat(final); err == nil {
		return nil // immutable: the same id holds the same bytes
	}
	f, err := os.CreateTemp(b.tmp, "put-*")
	if err != nil {
		return fmt.Errorf("sqlite: blob %s: %w", id, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = io.Copy(f, ctxReader{ctx, r}); err != nil {
		return fmt.Errorf("sqlite: blob %s: %w", id, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("sqlite: blob %s: sync: %w", id, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("sqlite: blob %s: %w", id, err)
	}
	shard := filepath.Dir(final)
	_, statErr := os.Stat(shard)
	newShard := errors.Is(statErr, os.ErrNotExist)
	if err = os.MkdirAll(shard, 0o700); err != nil {
		return fmt.Errorf("sqlite: blob %s: %w", id, err)
	}
	if err = os.Rename(f.Name(), final); err != nil {
		return fmt.Errorf("sqlite: blob %s: %w", id, err)
	}
	// The rename is durable once the folder holding the new name is.
	if err = syncDir(shard); err != nil {
		return fmt.Errorf("sqlite: blob %s: %w", id, err)
	}
	if newShard {
		if err = syncDir(b.dir); err != nil {
			return fmt.Errorf("sqlite: blob %s: %w", id, err)
		}
	}
	return nil
}

func (b *fileBlobs) Get(ctx context.Context, id string) (io.ReadCloser, int64, error) {
	if !store.ValidBlobID(id) {
		return nil, 0, store.ErrBadBlobID
	}
	f, err := os.Open(b.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, store.ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: blob %s: %w", id, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("sqlite: blob %s: %w", id, err)
	}
	return f, info.Size(), nil
}

func (b *fileBlobs) Delete(ctx context.Context, id string) error {
	if !store.ValidBlobID(id) {
		return store.ErrBadBlobID
	}
	p := b.path(id)
	if err := os.Remove(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("sqlite: blob %s: %w", id, err)
	}
	return syncDir(filepath.Dir(p))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
