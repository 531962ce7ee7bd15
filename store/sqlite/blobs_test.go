package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmp-fhir/dmp-fhir/store/sqlite"
)

// TestBlobsAreFilesUnderTheDataDirectory: a blob is one file under
// <data>/blobs; the temporary files a crash left behind are removed at the
// next Open once old enough to be nobody's write in progress.
func TestBlobsAreFilesUnderTheDataDirectory(t *testing.T) {
	dir := t.TempDir()
	s, err := sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Blobs().Put(context.Background(), "abcdef", strings.NewReader("pdf bytes")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if b, err := os.ReadFile(filepath.Join(dir, sqlite.BlobDir, "ab", "abcdef")); err != nil || string(b) != "pdf bytes" {
		t.Fatalf("blob file: %q %v", b, err)
	}
	tmp := filepath.Join(dir, sqlite.BlobDir, "tmp")
	stale, young := filepath.Join(tmp, "put-stale"), filepath.Join(tmp, "put-young")
	for _, p := range []string{stale, young} {
		if err := os.WriteFile(p, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(stale, old, old)
	s, err = sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("a stale temporary file survived Open: %v", err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Fatalf("a recent temporary file (another process's write) was removed: %v", err)
	}
}
