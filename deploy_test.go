package main

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// dockerfile is the Dockerfile read as instructions: continuation lines
// joined, comments dropped.
type dockerInstruction struct{ cmd, args string }

func readDockerfile(t *testing.T) []dockerInstruction {
	t.Helper()
	raw, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var out []dockerInstruction
	var cur strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// shellWords splits a shell command line: blanks separate words, double
// and single quotes group.
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	in, quote := false, rune(0)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '"' || r == '\'':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words
}

// TestDockerfileIsMultiStageStaticNonRoot checks the image's shape: a Go
// build stage of go.mod's Go version, a distroless or scratch final stage,
// a non-root user, DMP_DATA_DIR on a volume, the port of DMP_ADDR exposed,
// and a HEALTHCHECK the image can run (the binary's own probe).
func TestDockerfileIsMultiStageStaticNonRoot(t *testing.T) {
	ins := readDockerfile(t)
	var froms []string
	env := map[string]string{}
	var user, volume, expose, healthcheck, entrypoint string
	for _, in := range ins {
		switch in.cmd {
		case "FROM":
			froms = append(froms, in.args)
		case "ENV":
			for _, kv := range shellWords(in.args) {
				if k, v, ok := strings.Cut(kv, "="); ok {
					env[k] = v
				}
			}
		case "USER":
			user = in.args
		case "VOLUME":
			volume = in.args
		case "EXPOSE":
			expose = in.args
		case "HEALTHCHECK":
			healthcheck = in.args
		case "ENTRYPOINT":
			entrypoint = in.args
		}
	}
	gomod, _ := os.ReadFile("go.mod")
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(gomod))
	if len(froms) < 2 || goVersion == nil || !strings.HasPrefix(froms[0], "golang:"+goVersion[1]) {
		t.Errorf("build stage %q, want golang:%v", froms, goVersion)
	}
	if final := froms[len(froms)-1]; !strings.Contains(final, "distroless/static") && final != "scratch" {
		t.Errorf("final stage %q, want distroless/static or scratch", final)
	}
	if uid, _, _ := strings.Cut(user, ":"); user == "" || uid == "0" || uid == "root" {
		t.Errorf("USER %q: the server must not run as root", user)
	}
	if dir := env["DMP_DATA_DIR"]; dir == "" || !strings.Contains(volume, `"`+dir+`"`) {
		t.Errorf("DMP_DATA_DIR %q is not the VOLUME %s", dir, volume)
	}
	if _, port, _ := strings.Cut(env["DMP_ADDR"], ":"); !strings.HasPrefix(env["DMP_ADDR"], "0.0.0.0:") || port != expose {
		t.Errorf("DMP_ADDR %q and EXPOSE %q disagree (or the server listens on the loopback only)", env["DMP_ADDR"], expose)
	}
	bin := regexp.MustCompile(`"(/[^"]+)"`).FindStringSubmatch(entrypoint)
	if bin == nil || !strings.Contains(healthcheck, `["`+bin[1]+`", "healthcheck"]`) {
		t.Errorf("HEALTHCHECK %q does not run %v healthcheck", healthcheck, bin)
	}
}

// TestDockerfileBuildLineMakesAStaticBinary runs the Dockerfile's `go build`
// line here, with its environment and flags: the binary builds, is static
// (no ELF interpreter) and knows the version it was given.
func TestDockerfileBuildLineMakesAStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the whole binary with -trimpath")
	}
	args := map[string]string{}
	var build []string
	for _, in := range readDockerfile(t) {
		if in.cmd == "ARG" {
			if k, v, ok := strings.Cut(in.args, "="); ok {
				args[k] = v
			}
		}
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			build = shellWords(in.args)
		}
	}
	if build == nil {
		t.Fatal("no RUN ... go build in the Dockerfile")
	}
	line := strings.Join(build, " ")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "-X main.version=${VERSION}"} {
		if !strings.Contains(line, want) {
			t.Errorf("the build line %q lacks %s", line, want)
		}
	}
	const version = "9.9.9-test"
	var env []string
	for len(build) > 0 && strings.Contains(build[0], "=") {
		env = append(env, build[0])
		build = build[1:]
	}
	if len(build) < 2 || build[0] != "go" || build[1] != "build" {
		t.Fatalf("unexpected build command %q", build)
	}
	out := filepath.Join(t.TempDir(), "dmp-fhir")
	var goArgs []string
	for i := 1; i < len(build); i++ {
		a := strings.ReplaceAll(build[i], "${VERSION}", version)
		if a == "-o" && i+1 < len(build) {
			goArgs = append(goArgs, "-o", out)
			i++
			continue
		}
		goArgs = append(goArgs, a)
	}
	if args["VERSION"] == "" {
		t.Errorf("ARG VERSION has no default")
	}
	cmd := exec.Command("go", goArgs...)
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(goArgs, " "), err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary is dynamically linked (it has an ELF interpreter)")
		}
	}
	if f.Section(".symtab") != nil {
		t.Errorf("the binary keeps its symbol table: -s was not applied")
	}
	got, err := exec.Command(out, "version").Output()
	if err != nil || !bytes.Equal(bytes.TrimSpace(got), []byte("dmp-fhir "+version)) {
		t.Errorf("version: %q %v", got, err)
	}
}

// TestComposeRunsAgainstAReplicaSet checks deploy/compose.yaml's wiring:
// MongoDB started with --replSet, an init service that runs rs.initiate for
// that set and that dmp-fhir waits for, MONGODB_URI naming the set and
// the MongoDB service, the data directory on a named volume, health checks,
// and the image built from this repository's Dockerfile.
func TestComposeRunsAgainstAReplicaSet(t *testing.T) {
	raw, err := os.ReadFile("deploy/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type service struct {
		Image       string            `yaml:"image"`
		Build       map[string]any    `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Ports       []string          `yaml:"ports"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	}
	var doc struct {
		Services map[string]service `yaml:"services"`
		Volumes  map[string]any     `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("deploy/compose.yaml: %v", err)
	}
	app, ok := doc.Services["dmp-fhir"]
	if !ok {
		t.Fatal("no dmp-fhir service")
	}

	// Built from this repository's Dockerfile.
	ctx, _ := app.Build["context"].(string)
	dockerfile, _ := app.Build["dockerfile"].(string)
	if _, err := os.Stat(filepath.Join("deploy", ctx, dockerfile)); err != nil || dockerfile == "" {
		t.Errorf("build %v does not name this repository's Dockerfile", app.Build)
	}

	// MONGODB_URI names the replica set and a MongoDB service of the file.
	uri := app.Environment["MONGODB_URI"]
	m := regexp.MustCompile(`^mongodb://([a-z0-9-]+):(\d+)/.*[?&]replicaSet=([A-Za-z0-9_-]+)`).FindStringSubmatch(uri)
	if m == nil {
		t.Fatalf("MONGODB_URI %q names no replica set", uri)
	}
	mongoName, port, set := m[1], m[2], m[3]
	mongo, ok := doc.Services[mongoName]
	if !ok {
		t.Fatalf("MONGODB_URI points at %q, which is not a service", mongoName)
	}
	if cmd := strings.Join(mongo.Command, " "); !strings.Contains(cmd, "mongod") || !strings.Contains(cmd, "--replSet "+set) {
		t.Errorf("%s runs %q, not mongod --replSet %s", mongoName, cmd, set)
	}
	if len(mongo.Healthcheck.Test) == 0 {
		t.Errorf("%s has no healthcheck for the init step to wait on", mongoName)
	}

	// An init service initiates that set with the host the URI uses, after
	// MongoDB is healthy; dmp-fhir waits for it to complete.
	var initName string
	for name, s := range doc.Services {
		script := strings.Join(s.Command, " ")
		if strings.Contains(script, "rs.initiate") {
			initName = name
			if !strings.Contains(script, `_id: "`+set+`"`) || !strings.Contains(script, `host: "`+mongoName+":"+port+`"`) {
				t.Errorf("%s initiates %q, not the set %s with member %s:%s", name, script, set, mongoName, port)
			}
			if s.DependsOn[mongoName].Condition != "service_healthy" {
				t.Errorf("%s does not wait for %s to be healthy", name, mongoName)
			}
		}
	}
	if initName == "" {
		t.Fatal("no service runs rs.initiate")
	}
	if app.DependsOn[initName].Condition != "service_completed_successfully" {
		t.Errorf("dmp-fhir does not wait for %s to complete: %+v", initName, app.DependsOn)
	}

	// The data directory is on a named volume.
	dataDir := app.Environment["DMP_DATA_DIR"]
	onVolume := false
	for _, v := range app.Volumes {
		src, dst, _ := strings.Cut(v, ":")
		if dst == dataDir {
			_, onVolume = doc.Volumes[src]
		}
	}
	if dataDir == "" || !onVolume {
		t.Errorf("DMP_DATA_DIR %q is not on a named volume: %v", dataDir, app.Volumes)
	}

	// Listening beyond the container, published, and health-checked by the
	// binary's own probe.
	if !strings.HasPrefix(app.Environment["DMP_ADDR"], "0.0.0.0:") || len(app.Ports) == 0 {
		t.Errorf("DMP_ADDR %q, ports %v: not reachable from outside the container", app.Environment["DMP_ADDR"], app.Ports)
	}
	if hc := strings.Join(app.Healthcheck.Test, " "); !strings.HasSuffix(hc, "dmp-fhir healthcheck") {
		t.Errorf("dmp-fhir healthcheck %q", hc)
	}
}
