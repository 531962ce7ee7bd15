package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// buildServer builds the dmp-fhir binary from the module at src into dir.
func buildServer(src, dir string) (string, error) {
	bin := filepath.Join(dir, "dmp-fhir")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = src
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build in %s: %w", src, err)
	}
	return bin, nil
}

// listenMsg is the message of the line the server logs once it listens,
// with the address it bound in its addr field; pprofMsg that of the line
// of the benchmark switch DMP_BENCH_PPROF; floorMsg that of the gin floor.
const (
	listenMsg = "dmp-fhir listening"
	pprofMsg  = "BENCHMARK SWITCH DMP_BENCH_PPROF: net/http/pprof served"
	floorMsg  = "dmpbench floor listening"
)

// logAddr returns the addr field of the first complete line of log (JSON or
// slog's text) whose message is msg, "" when there is none.
func logAddr(log []byte, msg string) string {
	if i := bytes.LastIndexByte(log, '\n'); i >= 0 {
		log = log[:i] // a line still being written is read next time
	} else {
		return ""
	}
	text := []byte("msg=" + strconv.Quote(msg) + " addr=")
	for _, line := range bytes.Split(log, []byte("\n")) {
		if !bytes.Contains(line, []byte(msg)) {
			continue
		}
		var l struct{ Msg, Addr string }
		if json.Unmarshal(line, &l) == nil && l.Msg == msg {
			return l.Addr
		}
		if _, rest, ok := bytes.Cut(line, text); ok {
			addr, _, _ := bytes.Cut(rest, []byte(" "))
			return string(addr)
		}
	}
	return ""
}

// proc is a server process started by dmpbench: its own CPU time and
// memory are what the figures report.
type proc struct {
	cmd       *exec.Cmd
	addr      string
	log       *os.File
	logPath   string
	logOffset int64         // where the process's lines start in logPath
	startup   time.Duration // from exec to the first 200 of /readyz (or /)
	exited    chan error
}

// logged returns what the process has logged so far.
func (p *proc) logged() []byte {
	f, err := os.Open(p.logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, _ := io.ReadAll(io.NewSectionReader(f, p.logOffset, 1<<62))
	return b
}

// startProc runs bin with env added to dmpbench's environment, and waits
// until ready answers 200 on the address it logs (a line whose message is
// msg) in logPath. The process binds a port of its own choosing (its
// address in env is 127.0.0.1:0): a port picked here and bound later by
// the process could be taken in between by another one.
func startProc(bin string, args, env []string, msg, ready, logPath string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fi, err := logf.Stat()
	if err != nil {
		logf.Close()
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The server dies with dmpbench, even when dmpbench is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &proc{cmd: cmd, log: logf, logPath: logPath, logOffset: fi.Size(), exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-p.exited:
			logf.Close()
			return nil, fmt.Errorf("%s exited before it was ready (%v); see %s", filepath.Base(bin), err, logPath)
		default:
		}
		if p.addr == "" {
			p.addr = logAddr(p.logged(), msg)
		}
		if p.addr != "" {
			resp, err := client.Get("http://" + p.addr + ready)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					p.startup = time.Since(started)
					return p, nil
				}
			}
		}
		if time.Now().After(deadline) {
			p.stop()
			if p.addr == "" {
				return nil, fmt.Errorf("%s logged no %q line with its address within 60 s (is DMP_LOG_LEVEL above info?); see %s", filepath.Base(bin), msg, logPath)
			}
			return nil, fmt.Errorf("%s not ready after 60 s; see %s", filepath.Base(bin), logPath)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// stop asks the process to shut down (SIGTERM), and kills it after 30 s.
func (p *proc) stop() error {
	if p == nil {
		return nil
	}
	defer p.log.Close()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("server exited with %v", err)
		}
		return nil
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
		return errors.New("server did not stop within 30 s: killed")
	}
}

// cpu returns the process's user+system CPU time so far.
func (p *proc) cpu() time.Duration {
	return cpuOfStat(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
}

// clockTicks is USER_HZ, 100 on Linux.
const clockTicks = 100

// resetPeak sets the process's peak RSS (VmHWM) back to its current RSS,
// so that the next reading is the peak of one workload. False when the
// kernel refused (the reading is then the peak since the start).
func (p *proc) resetPeak() bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("5"), 0) == nil
}

// peakRSS reads VmHWM, in bytes.
func (p *proc) peakRSS() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// procMeter measures a process's CPU time and peak RSS over a run.
type procMeter struct {
	p      *proc
	reset  bool
	before time.Duration
}

func (p *proc) meter() *procMeter { return &procMeter{p: p} }

func (m *procMeter) begin() {
	m.reset = m.p.resetPeak()
	m.before = m.p.cpu()
}

func (m *procMeter) end(r *result) {
	r.ServerCPU = m.p.cpu() - m.before
	r.PeakRSS = m.p.peakRSS()
	if !m.reset {
		r.Note = strings.TrimSpace(r.Note + " peak RSS since the server started")
	}
}

// serverLogStartup reads the startup_ms the server logged last.
func serverLogStartup(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	i := bytes.LastIndex(b, []byte(`"startup_ms":`))
	if i < 0 {
		return ""
	}
	rest := b[i+len(`"startup_ms":`):]
	j := bytes.IndexAny(rest, ",}")
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}
