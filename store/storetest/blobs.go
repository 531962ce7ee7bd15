package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/dmp-fhir/dmp-fhir/store"
)

// blobTests is the blob storage part of the contract (Run runs it).
var blobTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"BlobPutThenGetReturnsTheBytes", testBlobRoundTrip},
	{"BlobsAreImmutable", testBlobImmutable},
	{"BlobGetUnknownIsNotFound", testBlobUnknown},
	{"BlobDeleteRemovesAndIsIdempotent", testBlobDelete},
	{"BlobMalformedIDsAreRefused", testBlobBadIDs},
	{"BlobReaderErrorStoresNothing", testBlobReaderError},
	{"BlobConcurrentPutsOfOneIDAllSucceed", testBlobConcurrentPuts},
}

// pattern is n bytes that differ from one offset to the next, so that a
// chunk written twice or out of place shows.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7+i/251) ^ seed
	}
	return b
}

func getBlob(t *testing.T, s store.Store, id string) []byte {
	t.Helper()
	rc, size, err := s.Blobs().Get(ctx(), id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	if int64(len(got)) != size {
		t.Fatalf("get %s: size %d, read %d bytes", id, size, len(got))
	}
	return got
}

func testBlobRoundTrip(t *testing.T, s store.Store) {
	// 0 bytes, one byte, several GridFS chunks (255 KiB each) and a partial one.
	for i, n := range []int{0, 1, 1000, 700 << 10} {
		id := fmt.Sprintf("blob-%d", i)
		want := pattern(n, byte(i))
		if err := s.Blobs().Put(ctx(), id, bytes.NewReader(want)); err != nil {
			t.Fatalf("put %d bytes: %v", n, err)
		}
		if got := getBlob(t, s, id); !bytes.Equal(got, want) {
			t.Fatalf("%d bytes stored, %d read back, or different bytes", n, len(got))
		}
	}
}

func testBlobImmutable(t *testing.T, s store.Store) {
	first := pattern(5000, 1)
	if err := s.Blobs().Put(ctx(), "same-id", bytes.NewReader(first)); err != nil {
		t.Fatal(err)
	}
	if err := s.Blobs().Put(ctx(), "same-id", bytes.NewReader(pattern(10, 2))); err != nil {
		t.Fatalf("second put of an id: %v, want nil (the blob is kept)", err)
	}
	if got := getBlob(t, s, "same-id"); !bytes.Equal(got, first) {
		t.Fatalf("a second put replaced the blob (%d bytes)", len(got))
	}
}

func testBlobUnknown(t *testing.T, s store.Store) {
	if _, _, err := s.Blobs().Get(ctx(), "nothing-here"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get: %v, want ErrNotFound", err)
	}
}

func testBlobDelete(t *testing.T, s store.Store) {
	if err := s.Blobs().Put(ctx(), "gone", strings.NewReader("bytes")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := s.Blobs().Delete(ctx(), "gone"); err != nil {
			t.Fatalf("delete %d: %v", i+1, err)
		}
	}
	if _, _, err := s.Blobs().Get(ctx(), "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get after delete: %v, want ErrNotFound", err)
	}
	// Deleted, the id can be written again.
	if err := s.Blobs().Put(ctx(), "gone", strings.NewReader("again")); err != nil {
		t.Fatal(err)
	}
	if got := getBlob(t, s, "gone"); string(got) != "again" {
		t.Fatalf("after delete and put: %q", got)
	}
}

func testBlobBadIDs(t *testing.T, s store.Store) {
	for _, id := range []string{"", "../escape", "a/b", ".hidden", "-dash", "sp ace", strings.Repeat("x", 129)} {
		if err := s.Blobs().Put(ctx(), id, strings.NewReader("x")); !errors.Is(err, store.ErrBadBlobID) {
			t.Errorf("put %q: %v, want ErrBadBlobID", id, err)
		}
		if _, _, err := s.Blobs().Get(ctx(), id); !errors.Is(err, store.ErrBadBlobID) {
			t.Errorf("get %q: %v, want ErrBadBlobID", id, err)
		}
	}
}

// failingReader yields n bytes, then fails.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("connection reset")
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	for i := range p {
		p[i] = 'x'
	}
	f.n -= len(p)
	return len(p), nil
}

func testBlobReaderError(t *testing.T, s store.Store) {
	if err := s.Blobs().Put(ctx(), "torn", &failingReader{n: 600 << 10}); err == nil {
		t.Fatal("put from a failing reader succeeded")
	}
	if _, _, err := s.Blobs().Get(ctx(), "torn"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a failed put left a blob: %v", err)
	}
	want := pattern(600<<10, 9)
	if err := s.Blobs().Put(ctx(), "torn", bytes.NewReader(want)); err != nil {
		t.Fatalf("put after a failed put: %v", err)
	}
	if got := getBlob(t, s, "torn"); !bytes.Equal(got, want) {
		t.Fatal("the put after a failed one reads back different bytes")
	}
}

func testBlobConcurrentPuts(t *testing.T, s store.Store) {
	want := pattern(300<<10, 4)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Blobs().Put(ctx(), "shared", bytes.NewReader(want))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent put: %v", err)
		}
	}
	if got := getBlob(t, s, "shared"); !bytes.Equal(got, want) {
		t.Fatal("concurrent puts of one id read back different bytes")
	}
}
