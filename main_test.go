package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dmp-fhir/dmp-fhir/api"
	"github.com/dmp-fhir/dmp-fhir/auth"
	"github.com/dmp-fhir/dmp-fhir/store"
	"github.com/dmp-fhir/dmp-fhir/store/sqlite"
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

// unusedAddr returns a loopback address where nothing listens, and keeps it
// so until the test ends: the port is bound by a socket that never
// listens, so that a connection to it is refused and no other process (the
// api tests open many servers at once) can take it meanwhile.
func unusedAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

// listenAddr returns the address of the server's "dmp-fhir listening" log
// line (JSON or text), "" while there is none.
func listenAddr(logs string) string {
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, "dmp-fhir listening") {
			continue
		}
		var l struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "dmp-fhir listening" {
			return l.Addr
		}
		if _, rest, ok := strings.Cut(line, `msg="dmp-fhir listening" addr=`); ok {
			addr, _, _ := strings.Cut(rest, " ")
			return addr
		}
	}
	return ""
}

// startServer starts the server as a subprocess on dataDir and waits until
// it answers /fhir/metadata. The server binds a port of its own choosing
// (127.0.0.1:0) and the test reads it from its log: a port picked here and
// bound later by the server could be taken in between by another process,
// and the test would then talk to that one.
func startServer(t *testing.T, dataDir string, env ...string) (*exec.Cmd, string, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "DMP_TEST_SERVE=1", "DMP_ADDR=127.0.0.1:0", "DMP_LOG_LEVEL=info", "DMP_DATA_DIR="+dataDir, "MONGODB_URI="), env...)
	var logs syncBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	addr := ""
	for time.Now().Before(deadline) {
		if addr == "" {
			addr = listenAddr(logs.String())
		}
		if addr != "" {
			if res, err := http.Get("http://" + addr + "/fhir/metadata"); err == nil {
				res.Body.Close()
				if res.StatusCode == 200 {
					return cmd, "http://" + addr + "/fhir", &logs
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("server did not answer /fhir/metadata (listening on %q):\n%s", addr, logs.String())
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
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
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
		{"DMP_LOG_FORMAT", "xml", "DMP_LOG_FORMAT"},
		{"DMP_LOG_LEVEL", "loud", "DMP_LOG_LEVEL"},
		{"DMP_METRICS_TOKEN", "short", "DMP_METRICS_TOKEN"},
		{"DMP_READ_HEADER_TIMEOUT", "0", "DMP_READ_HEADER_TIMEOUT"},
		{"DMP_READ_TIMEOUT", "-1s", "DMP_READ_TIMEOUT"},
		{"DMP_WRITE_TIMEOUT", "2 minutes", "DMP_WRITE_TIMEOUT"},
		{"DMP_IDLE_TIMEOUT", "x", "DMP_IDLE_TIMEOUT"},
		{"DMP_REQUEST_TIMEOUT", "soon", "DMP_REQUEST_TIMEOUT"},
		{"DMP_REQUEST_TIMEOUT", "10m", "DMP_WRITE_TIMEOUT"}, // longer than the write timeout: the 503 could not be sent
		{"DMP_MAX_IN_FLIGHT", "-1", "DMP_MAX_IN_FLIGHT"},
		{"DMP_MAX_IN_FLIGHT", "many", "DMP_MAX_IN_FLIGHT"},
		{"DMP_EXPORT_TTL", "0", "DMP_EXPORT_TTL"},
		{"DMP_INLINE_MAX_BYTES", "-1", "DMP_INLINE_MAX_BYTES"},
		{"DMP_NOTIFIER", "pigeon", "DMP_NOTIFIER"},
		{"DMP_NOTIFIER", "webhook", "DMP_NOTIFY_WEBHOOK_URL"}, // webhook without its URL
		{"DMP_NOTIFIER", "smtp", "DMP_SMTP_ADDR"},             // smtp without its server
	}
	for _, c := range cases {
		t.Run(c.env+"="+c.value, func(t *testing.T) {
			t.Setenv(c.env, c.value)
			_, err := loadConfig("serve", nil, io.Discard)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one naming %s", err, c.want)
			}
		})
	}
}

func TestFlagsWinOverEnvironment(t *testing.T) {
	for k, v := range map[string]string{"DMP_ADDR": "127.0.0.1:1", "DMP_REQUEST_TIMEOUT": "5s", "DMP_MAX_IN_FLIGHT": "9", "DMP_LOG_LEVEL": "error", "DMP_METRICS_TOKEN": "from-the-environment-0"} {
		t.Setenv(k, v)
	}
	c, err := loadConfig("serve", []string{"-addr", "127.0.0.1:2", "-request-timeout", "7s", "-max-in-flight", "3", "-log-level", "debug", "-metrics-token", "from-the-command-line"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:2" || c.RequestTimeout != 7*time.Second || c.MaxInFlight != 3 || c.LogLevel != slog.LevelDebug || c.MetricsToken != "from-the-command-line" {
		t.Fatalf("%+v, want the flags' values", c)
	}
	t.Setenv("DMP_REQUEST_TIMEOUT", "0")
	t.Setenv("DMP_MAX_IN_FLIGHT", "0")
	if c, err := loadConfig("serve", nil, io.Discard); err != nil || c.RequestTimeout != 0 || c.MaxInFlight != 0 {
		t.Fatalf("0 turns the deadline and the cap off: %+v %v", c, err)
	}
}

// TestHelpShowsNoSecret: -h prints each setting's default, taken from the
// environment; the secrets' values must not be among them.
func TestHelpShowsNoSecret(t *testing.T) {
	t.Setenv("DMP_CURSOR_KEY", "cursor-key-from-the-environment-0123456789")
	t.Setenv("DMP_METRICS_TOKEN", "metrics-token-from-the-environment")
	var help bytes.Buffer
	if _, err := loadConfig("serve", []string{"-h"}, &help); err == nil || !strings.Contains(help.String(), "-metrics-token") {
		t.Fatalf("-h: %v\n%s", err, help.String())
	}
	if strings.Contains(help.String(), "from-the-environment") {
		t.Fatalf("-h shows a secret:\n%s", help.String())
	}
	c, err := loadConfig("serve", nil, io.Discard)
	if err != nil || c.CursorKey != "cursor-key-from-the-environment-0123456789" || c.MetricsToken != "metrics-token-from-the-environment" {
		t.Fatalf("secrets not read from the environment: %v", err)
	}
}

// TestLogFormat: JSON unless asked for text (a terminal is detected only
// on a real one); the level filters.
func TestLogFormat(t *testing.T) {
	f, err := os.Create(t.TempDir() + "/log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	for _, c := range []struct {
		name    string
		w       io.Writer
		format  string
		level   slog.Level
		want    string
		debugOK bool
	}{
		{"default to a file", f, "", slog.LevelInfo, `{"time":`, false},
		{"default to a buffer", &buf, "", slog.LevelInfo, `{"time":`, false},
		{"text", &buf, "text", slog.LevelInfo, `time=`, false},
		{"json at debug", &buf, "json", slog.LevelDebug, `{"time":`, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			buf.Reset()
			f.Truncate(0)
			f.Seek(0, 0)
			log := slog.New(newLogHandler(c.w, c.format, c.level))
			log.Debug("d")
			log.Info("i")
			out := buf.String()
			if c.w == f {
				b, _ := os.ReadFile(f.Name())
				out = string(b)
			}
			debug := strings.Contains(out, `"msg":"d"`) || strings.Contains(out, "msg=d")
			if !strings.HasPrefix(out, c.want) || debug != c.debugOK {
				t.Fatalf("format %q level %v wrote %q", c.format, c.level, out)
			}
		})
	}
}

// TestServeExposesMetricsBehindItsToken starts the real server with
// DMP_METRICS_TOKEN: /metrics needs it, and shows what main wires (the
// timed store, the audit journal's group commits) after one create.
func TestServeExposesMetricsBehindItsToken(t *testing.T) {
	dir := t.TempDir()
	const metricsToken = "scrape-me-with-this-0123"
	_, base, logs := startServer(t, dir, "DMP_METRICS_TOKEN="+metricsToken, "DMP_LOG_FORMAT=json")
	token := practitionerToken(t, dir)
	if res, b := do(t, "POST", base+"/Observation", token, `{"resourceType":"Observation","status":"final","code":{"text":"x"}}`); res.StatusCode != 201 || res.Header.Get("X-Request-Id") == "" {
		t.Fatalf("create: %d %s", res.StatusCode, b)
	}
	root := strings.TrimSuffix(base, "/fhir")
	if res, _ := do(t, "GET", root+"/metrics", "", ""); res.StatusCode != 401 {
		t.Fatalf("/metrics without its token: %d", res.StatusCode)
	}
	res, b := do(t, "GET", root+"/metrics", metricsToken, "")
	if res.StatusCode != 200 {
		t.Fatalf("/metrics: %d %s", res.StatusCode, b)
	}
	for _, want := range []string{
		`dmp_http_requests_total{method="POST",route="/fhir/:type",status="201"} 1`,
		`dmp_store_operation_duration_seconds_count{engine="sqlite",operation="create",outcome="ok"}`,
		`dmp_audit_batch_size_count`,
		`dmp_audit_queue_depth`,
		`dmp_build_info{version="dev"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(logs.String(), `"msg":"request"`) {
		t.Errorf("no JSON request line in the log:\n%s", logs.String())
	}
}

// syncBuffer is a log sink safe for the process's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
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

// TestHealthcheckProbesReadyz: the image's HEALTHCHECK succeeds against a
// ready server (a wildcard listen address is probed on the loopback) and
// fails where nothing listens.
func TestHealthcheckProbesReadyz(t *testing.T) {
	_, base, _ := startServer(t, t.TempDir())
	addr := strings.TrimSuffix(strings.TrimPrefix(base, "http://"), "/fhir")
	_, port, _ := net.SplitHostPort(addr)
	for _, c := range []struct {
		addr string
		ok   bool
	}{
		{addr, true},
		{"0.0.0.0:" + port, true},
		{":" + port, true},
		{unusedAddr(t), false},
		{"no-port", false},
	} {
		var out bytes.Buffer
		err := run([]string{"healthcheck", "-addr", c.addr, "-timeout", "5s"}, &out, io.Discard)
		if (err == nil) != c.ok {
			t.Errorf("healthcheck -addr %s: %v (%s)", c.addr, err, out.String())
		}
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

// crashBundle is one transaction of the crash test: a patient, three
// observations and a document whose content (over the inline limit) goes
// to blob storage, every entry carrying the marker.
func crashBundle(marker string) string {
	id := func(k int) string { return fmt.Sprintf("urn:uuid:%08x-0000-4000-8000-%012d", k, len(marker)) }
	ident := `"identifier":[{"system":"urn:test:crash","value":"` + marker + `"}]`
	data := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte(marker+" "), 200))
	entries := []string{
		`{"fullUrl":"` + id(1) + `","resource":{"resourceType":"Patient",` + ident + `,"name":[{"family":"Crash"}]},"request":{"method":"POST","url":"Patient"}}`,
		`{"resource":{"resourceType":"DocumentReference",` + ident + `,"status":"current","subject":{"reference":"` + id(1) + `"},"content":[{"attachment":{"contentType":"text/plain","data":"` + data + `"}}]},"request":{"method":"POST","url":"DocumentReference"}}`,
	}
	for k := 0; k < 3; k++ {
		entries = append(entries, `{"resource":{"resourceType":"Observation",`+ident+`,"status":"final","code":{"text":"n`+fmt.Sprint(k)+`"},"subject":{"reference":"`+id(1)+`"}},"request":{"method":"POST","url":"Observation"}}`)
	}
	return `{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`
}

// TestTransactionsAreWholeOrAbsentAfterKill9 streams transactions from
// several clients, kills the server with SIGKILL while they run, restarts
// it on the same data directory and checks each transaction: every
// acknowledged one is entirely there (its patient, document, Binary and
// blob, observations), every other one entirely there or entirely absent.
func TestTransactionsAreWholeOrAbsentAfterKill9(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DMP_INLINE_MAX_BYTES", "256") // the documents' content goes to blob storage
	cmd, base, _ := startServer(t, dir)
	token := practitionerToken(t, dir)
	// A hospital system feeds the records (it may before the patients' DMPs exist).
	var out bytes.Buffer
	if err := tokenCmd([]string{"system", "-client", "his-crash", "-data-dir", dir}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	feeder := strings.TrimSpace(out.String())

	const clients, perClient = 4, 400
	var mu sync.Mutex
	acked := map[string]bool{}
	var sent []string
	stop := make(chan struct{})
	enough := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for n := 0; n < perClient; n++ {
				select {
				case <-stop:
					return
				default:
				}
				marker := fmt.Sprintf("crash-%d-%d", g, n)
				mu.Lock()
				sent = append(sent, marker)
				mu.Unlock()
				req, _ := http.NewRequest("POST", base, strings.NewReader(crashBundle(marker)))
				req.Header.Set("Content-Type", "application/fhir+json")
				req.Header.Set("Authorization", "Bearer "+feeder)
				res, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					t.Errorf("transaction %s: %d", marker, res.StatusCode)
					return
				}
				mu.Lock()
				acked[marker] = true
				if len(acked) >= 40 {
					once.Do(func() { close(enough) })
				}
				mu.Unlock()
			}
		}(g)
	}
	select {
	case <-enough:
	case <-time.After(60 * time.Second):
		t.Fatal("40 transactions were not acknowledged within a minute")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil { // clients still sending
		t.Fatal(err)
	}
	cmd.Wait()
	close(stop)
	wg.Wait()

	// The server starts again on what the kill left.
	cmd, base, _ = startServer(t, dir)
	if res, b := do(t, "GET", base+"/Observation?_count=1", token, ""); res.StatusCode != 200 {
		t.Fatalf("after restart: %d %s", res.StatusCode, b)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()

	st, err := sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	count := func(typ, marker string) []string {
		ids, err := st.FindByToken(ctx, typ, store.TokenQuery{Param: "identifier", System: "urn:test:crash", Code: marker}, 10)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	whole, absent := 0, 0
	for _, marker := range sent {
		pats, docs, obs := count("Patient", marker), count("DocumentReference", marker), count("Observation", marker)
		switch {
		case len(pats) == 1 && len(docs) == 1 && len(obs) == 3:
			whole++
			checkDocumentContent(t, st, docs[0], marker)
		case len(pats) == 0 && len(docs) == 0 && len(obs) == 0:
			if acked[marker] {
				t.Errorf("acknowledged transaction %s is missing after kill -9", marker)
			}
			absent++
		default:
			t.Errorf("transaction %s is partial: %d patients, %d documents, %d observations", marker, len(pats), len(docs), len(obs))
		}
	}
	t.Logf("%d transactions sent, %d acknowledged; after the kill %d whole, %d absent", len(sent), len(acked), whole, absent)
}

// checkDocumentContent: the document's Binary exists and its blob holds the
// bytes the attachment's hash names.
func checkDocumentContent(t *testing.T, st store.Store, docID, marker string) {
	t.Helper()
	ctx := context.Background()
	doc, err := st.Read(ctx, "DocumentReference", docID)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Content []struct {
			Attachment struct{ URL, Hash string } `json:"attachment"`
		} `json:"content"`
	}
	json.Unmarshal(doc.Body, &d)
	binID, ok := strings.CutPrefix(d.Content[0].Attachment.URL, "Binary/")
	if !ok {
		t.Fatalf("document of %s: attachment url %q", marker, d.Content[0].Attachment.URL)
	}
	bin, err := st.Read(ctx, "Binary", binID)
	if err != nil {
		t.Fatalf("the Binary of %s's document: %v", marker, err)
	}
	var b struct {
		Meta struct {
			Extension []struct{ URL, ValueString string } `json:"extension"`
		} `json:"meta"`
	}
	json.Unmarshal(bin.Body, &b)
	blob := ""
	for _, e := range b.Meta.Extension {
		if strings.HasSuffix(e.URL, "/binary-blob") {
			blob = e.ValueString
		}
	}
	if blob == "" {
		t.Fatalf("the Binary of %s points at no blob: %s", marker, bin.Body)
	}
	rc, _, err := st.Blobs().Get(ctx, blob)
	if err != nil {
		t.Fatalf("the blob of %s: %v", marker, err)
	}
	defer rc.Close()
	h := sha1.New()
	io.Copy(h, rc)
	if got := base64.StdEncoding.EncodeToString(h.Sum(nil)); got != d.Content[0].Attachment.Hash {
		t.Fatalf("the blob of %s does not hold the document's bytes", marker)
	}
}

// TestWebhookNotifierFromSettings: DMP_NOTIFIER=webhook sends the patients'
// notifications (here a DMP creation code) to the URL the settings give,
// and nothing to the local outbox.
func TestWebhookNotifierFromSettings(t *testing.T) {
	got := make(chan map[string]any, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n map[string]any
		json.NewDecoder(r.Body).Decode(&n)
		got <- n
	}))
	defer hook.Close()
	dir := t.TempDir()
	_, base, logs := startServer(t, dir, "DMP_NOTIFIER=webhook", "DMP_NOTIFY_WEBHOOK_URL="+hook.URL)
	body := `{"resourceType":"Parameters","parameter":[{"name":"system","valueString":"urn:oid:1.2.250.1.213.1.4.10"},{"name":"nir","valueString":"255081416802538"},{"name":"birthDate","valueString":"1955-08-14"},{"name":"email","valueString":"paul@example.org"}]}`
	res, err := http.Post(base+"/Patient/$dmp-request-code", "application/fhir+json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 202 {
		t.Fatalf("request code: %d\n%s", res.StatusCode, logs.String())
	}
	select {
	case n := <-got:
		if n["to"] != "paul@example.org" || n["kind"] != "dmp-code" {
			t.Fatalf("webhook got %v", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the webhook received nothing")
	}
	if _, err := os.Stat(filepath.Join(dir, "outbox.jsonl")); !os.IsNotExist(err) {
		t.Fatalf("an outbox file was written: %v", err)
	}
}

// The server sets its collector (GOGC 300, a 256 MiB soft limit) only where
// the environment leaves it open: GOGC or GOMEMLIMIT, when set, win.
func TestServerGCDefersToTheEnvironment(t *testing.T) {
	percent := debug.SetGCPercent(100)
	limit := debug.SetMemoryLimit(-1)
	defer func() { debug.SetGCPercent(percent); debug.SetMemoryLimit(limit) }()
	cases := []struct {
		name        string
		env         map[string]string
		wantPercent int
		wantLimit   int64
	}{
		{"nothing set", nil, serverGCPercent, serverMemoryLimit},
		{"GOGC set", map[string]string{"GOGC": "50"}, 77, serverMemoryLimit},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "1GiB"}, serverGCPercent, 1 << 40},
		{"both set", map[string]string{"GOGC": "off", "GOMEMLIMIT": "1GiB"}, 77, 1 << 40},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// what the runtime took from the environment at start, in this test
			debug.SetGCPercent(77)
			debug.SetMemoryLimit(1 << 40)
			serverGC(func(k string) string { return c.env[k] })
			if got := debug.SetGCPercent(77); got != c.wantPercent {
				t.Errorf("GC percent %d, want %d", got, c.wantPercent)
			}
			if got := debug.SetMemoryLimit(-1); got != c.wantLimit {
				t.Errorf("memory limit %d, want %d", got, c.wantLimit)
			}
		})
	}
}

// The benchmark switches take effect on a loopback address only, each
// turning off exactly what it names.
func TestBenchSwitchesOnlyOnLoopback(t *testing.T) {
	cases := []struct {
		name             string
		env              string
		addr             string
		wantErr          bool
		wantUnrestricted bool
		wantAudit        bool
	}{
		{"none", "", "0.0.0.0:8080", false, false, true},
		{"unrestricted on loopback", "DMP_BENCH_UNRESTRICTED", "127.0.0.1:0", false, true, true},
		{"no audit on loopback", "DMP_BENCH_NO_AUDIT", "localhost:8080", false, false, false},
		{"no audit on every interface", "DMP_BENCH_NO_AUDIT", ":8080", true, false, true},
		{"no audit on a public address", "DMP_BENCH_NO_AUDIT", "192.0.2.1:8080", true, false, true},
		{"unrestricted on every interface", "DMP_BENCH_UNRESTRICTED", "0.0.0.0:8080", true, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, k := range []string{"DMP_BENCH_UNRESTRICTED", "DMP_BENCH_NO_AUDIT", "DMP_BENCH_PPROF"} {
				t.Setenv(k, "")
			}
			if c.env != "" {
				t.Setenv(c.env, "1")
			}
			access := &api.Auth{Auditor: &auth.Auditor{}}
			err := benchSwitches(c.addr, access, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if (err != nil) != c.wantErr {
				t.Fatalf("error %v, want one: %v", err, c.wantErr)
			}
			if access.Unrestricted != c.wantUnrestricted || (access.Auditor != nil) != c.wantAudit {
				t.Errorf("unrestricted %v, audit %v; want %v, %v", access.Unrestricted, access.Auditor != nil, c.wantUnrestricted, c.wantAudit)
			}
		})
	}
}
