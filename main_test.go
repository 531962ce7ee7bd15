package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as the server: a test re-runs it with
// DMP_TEST_SERVE=1 to get a real process it can signal and kill.
func TestMain(m *testing.M) {
	if os.Getenv("DMP_TEST_SERVE") == "1" {
		if err := run([]string{"serve"}, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServer starts the server as a subprocess on dataDir and waits until
// it answers /fhir/metadata.
func startServer(t *testing.T, dataDir string) (*exec.Cmd, string, *bytes.Buffer) {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DMP_TEST_SERVE=1", "DMP_ADDR="+addr, "DMP_DATA_DIR="+dataDir, "MONGODB_URI=")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	base := "http://" + addr + "/fhir"
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get(base + "/metadata"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return cmd, base, &logs
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("server did not answer /fhir/metadata:\n%s", logs.String())
	return nil, "", nil
}

// practitionerToken issues a token with the data directory's key, as
// `go run . token practitioner` does.
func practitionerToken(t *testing.T, dir string) string {
	t.Helper()
	var out bytes.Buffer
	if err := tokenCmd([]string{"practitioner", "--idnps", "810001234567", "--profession", "10", "--data-dir", dir}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out.String())
}

func do(t *testing.T, method, url, token, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

// TestAcknowledgedWritesSurviveKill9 kills the server with SIGKILL right
// after a stream of acknowledged creates, restarts it on the same data
// directory and reads every one of them back.
func TestAcknowledgedWritesSurviveKill9(t *testing.T) {
	dir := t.TempDir()
	cmd, base, _ := startServer(t, dir)
	token := practitionerToken(t, dir)
	var ids []string
	for i := 0; i < 50; i++ {
		res, b := do(t, "POST", base+"/Observation", token, fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"n%d"}}`, i))
		if res.StatusCode != 201 {
			t.Fatalf("create %d: %d %s", i, res.StatusCode, b)
		}
		var m map[string]any
		json.Unmarshal(b, &m)
		ids = append(ids, m["id"].(string))
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	_, base, _ = startServer(t, dir)
	for i, id := range ids {
		res, _ := do(t, "GET", base+"/Observation/"+id, token, "")
		if res.StatusCode != 200 {
			t.Fatalf("acknowledged write %d (%s) lost after kill -9: %d", i, id, res.StatusCode)
		}
	}
}

// TestGracefulShutdownOnSIGTERM: the server exits cleanly on SIGTERM and
// says so in its log.
func TestGracefulShutdownOnSIGTERM(t *testing.T) {
	cmd, _, logs := startServer(t, t.TempDir())
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("server did not stop after SIGTERM")
	}
	sc := bufio.NewScanner(bytes.NewReader(logs.Bytes()))
	sawDrain := false
	for sc.Scan() {
		sawDrain = sawDrain || strings.Contains(sc.Text(), "draining")
	}
	if !sawDrain {
		t.Fatalf("no shutdown line in the log:\n%s", logs)
	}
}

func TestInvalidConfigurationNamesTheSetting(t *testing.T) {
	cases := []struct {
		env, value, want string
	}{
		{"DMP_MAX_BODY_BYTES", "lots", "DMP_MAX_BODY_BYTES"},
		{"DMP_BASE_URL", "dmp.example.org/fhir", "DMP_BASE_URL"},
		{"DMP_SHUTDOWN_TIMEOUT", "soon", "DMP_SHUTDOWN_TIMEOUT"},
		{"DMP_MAX_BUNDLE_ENTRIES", "0", "DMP_MAX_BUNDLE_ENTRIES"},
		{"DMP_CURSOR_KEY", "short", "DMP_CURSOR_KEY"},
		{"DMP_INLINE_MAX_BYTES", "-1", "DMP_INLINE_MAX_BYTES"},
	}
	for _, c := range cases {
		t.Run(c.env, func(t *testing.T) {
			t.Setenv(c.env, c.value)
			_, err := loadConfig("serve", nil, io.Discard)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one naming %s", err, c.want)
			}
		})
	}
}

func TestFlagsWinOverEnvironment(t *testing.T) {
	t.Setenv("DMP_ADDR", "127.0.0.1:1")
	c, err := loadConfig("serve", []string{"-addr", "127.0.0.1:2"}, io.Discard)
	if err != nil || c.Addr != "127.0.0.1:2" {
		t.Fatalf("addr %q (%v), want the flag's", c.Addr, err)
	}
}

// TestImportLoadsSyntheaAndIsIdempotent imports the Synthea transaction
// Bundles and NDJSON files (with conditional references), then again: the
// first run creates everything without a failure, the second changes
// nothing.
func TestImportLoadsSyntheaAndIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	run := func() string {
		var out bytes.Buffer
		if err := importCmd([]string{"-data-dir", dir, "testdata/synthea/bundles", "testdata/synthea/bulk-10-patients"}, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		return lines[len(lines)-1]
	}
	first := run()
	// A few organizations and practitioners stand in several Bundles: the
	// second time they come, they are unchanged.
	if !strings.Contains(first, " 0 updated,") || !strings.Contains(first, " 0 failed") || strings.Contains(first, " 0 created") {
		t.Fatalf("first import: %s", first)
	}
	second := run()
	if !strings.Contains(second, " 0 created, 0 updated,") || !strings.Contains(second, " 0 failed") {
		t.Fatalf("second import changed something: %s", second)
	}
}

// TestInlineMaxBytesSetting: the flag wins over the environment, and 0
// sends every content to blob storage (-1 for the API).
func TestInlineMaxBytesSetting(t *testing.T) {
	t.Setenv("DMP_INLINE_MAX_BYTES", "100")
	for _, c := range []struct {
		args []string
		want int64
	}{{nil, 100}, {[]string{"-inline-max-bytes", "200"}, 200}, {[]string{"-inline-max-bytes", "0"}, -1}} {
		got, err := loadConfig("serve", c.args, io.Discard)
		if err != nil || got.InlineMaxBytes != c.want {
			t.Errorf("%v: %d (%v), want %d", c.args, got.InlineMaxBytes, err, c.want)
		}
	}
}
