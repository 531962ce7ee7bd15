// Package mongotest gives tests a MongoDB wire-protocol server: an in-process
// FerretDB (SQLite backend in a temporary directory) started once per test
// binary, or the real server named by the MONGODB_URI environment variable.
//
// FerretDB is enough to test documents, indexes, queries and errors; it cannot
// test transactions (it has none) nor races (it loses concurrent updates).
// Point MONGODB_URI at a MongoDB replica set to test those; see
// docs/MONGODB.md.
package mongotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// EnvURI names the environment variable that, when set, replaces the
// in-process FerretDB with a real server.
const EnvURI = "MONGODB_URI"

const dirPrefix = "mongotest-ferretdb-"

var (
	once     sync.Once
	uri      string
	startErr error
	stop     func() // stops FerretDB and removes its directory

	clientOnce sync.Once
	client     *mongo.Client
	clientErr  error

	prefix = randomHex(4)
	seq    atomic.Int64
)

// Start returns the URI of the test server: MONGODB_URI when it is set,
// otherwise the URI of an in-process FerretDB started on first use and shared
// by the whole test binary. Use Main in TestMain to stop it and remove its
// files when the tests end; directories left by killed test binaries are
// removed by the next Start.
func Start(tb testing.TB) string {
	tb.Helper()
	if u := os.Getenv(EnvURI); u != "" {
		return u
	}
	once.Do(startFerretDB)
	if startErr != nil {
		tb.Fatalf("mongotest: %v", startErr)
	}
	return uri
}

// Main runs the tests of a package and then stops FerretDB and removes its
// directory; call it from TestMain: func TestMain(m *testing.M) { mongotest.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop disconnects the helper client, stops FerretDB if it was started and
// removes its files. Tests that use Main need not call it.
func Stop() {
	if client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		client.Disconnect(ctx)
		cancel()
	}
	if stop != nil {
		stop()
		stop = nil
	}
}

// Database returns a database name no other call (in this or another test
// binary) returns, so that tests never see each other's data. The database
// is dropped when the test ends.
func Database(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("dmpfhir_%s_%d", prefix, seq.Add(1))
	serverURI := Start(tb)
	tb.Cleanup(func() {
		c, err := helperClient(serverURI)
		if err != nil {
			tb.Logf("mongotest: drop %s: %v", name, err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Database(name).Drop(ctx); err != nil {
			tb.Logf("mongotest: drop %s: %v", name, err)
		}
	})
	return name
}

func helperClient(serverURI string) (*mongo.Client, error) {
	clientOnce.Do(func() {
		client, clientErr = mongo.Connect(context.Background(), options.Client().ApplyURI(serverURI))
	})
	return client, clientErr
}

func startFerretDB() {
	sweepStaleDirs()
	dir, err := os.MkdirTemp("", dirPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		startErr = err
		return
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Logger:   logger,
		Handler:  "sqlite",
		// The data is thrown away: no need to wait for the disk.
		SQLiteURL: "file:" + dir + "/?_pragma=synchronous(off)",
	})
	if err != nil {
		os.RemoveAll(dir)
		startErr = fmt.Errorf("start FerretDB: %w", err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	uri = f.MongoDBURI() // waits for the listener
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		os.RemoveAll(dir)
	}
}

// sweepStaleDirs removes the directories of test binaries that died without
// cleaning up (their pid is in the name).
func sweepStaleDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		rest := strings.TrimPrefix(filepath.Base(d), dirPrefix)
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(d)
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
