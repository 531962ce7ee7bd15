package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
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

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// proc is a server process started by dmpbench: its own CPU time and
// memory are what the figures report.
type proc struct {
	cmd     *exec.Cmd
	addr    string
	log     *os.File
	startup time.Duration // from exec to the first 200 of /readyz (or /)
	exited  chan error
}

// startProc runs bin with env added to dmpbench's environment, and waits
// until ready answers 200 on addr.
func startProc(bin string, args, env []string, addr, ready, logPath string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
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
	p := &proc{cmd: cmd, addr: addr, log: logf, exited: make(chan error, 1)}
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
		resp, err := client.Get("http://" + addr + ready)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				p.startup = time.Since(started)
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			p.stop()
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
