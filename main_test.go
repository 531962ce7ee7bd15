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
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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
