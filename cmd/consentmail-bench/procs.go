package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process: a consentmail server or worker.
type proc struct {
	name   string
	cmd    *exec.Cmd
	out    *tail // the end of its stdout and stderr, for error messages
	exited chan struct{}
	err    error         // how it ended; set before exited is closed
	start  time.Duration // from exec to ready
}

// startProc starts bin with args and env and waits until a line of its stdout matches
// ready; it returns the match's last submatch (the whole match when there is none).
func startProc(name, bin string, args, env []string, ready *regexp.Regexp, verbose io.Writer) (*proc, string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	killWithParent(cmd)
	p := &proc{name: name, cmd: cmd, out: &tail{max: 64 << 10}, exited: make(chan struct{})}
	var logw io.Writer = p.out
	if verbose != nil {
		logw = io.MultiWriter(p.out, &prefixWriter{w: verbose, prefix: name + ": "})
	}
	cmd.Stderr = logw
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", name, err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		seen := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logw, line)
			if m := ready.FindStringSubmatch(line); m != nil && !seen {
				found <- m[len(m)-1]
				seen = true
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		p.err = cmd.Wait()
		close(p.exited)
	}()
	select {
	case v := <-found:
		p.start = time.Since(t0)
		return p, v, nil
	case <-p.exited:
		return nil, "", fmt.Errorf("%s exited before it was ready (%v):\n%s", name, p.err, p.out)
	case <-time.After(5 * time.Minute): // a store of millions opens in seconds, not minutes
		p.stop()
		return nil, "", fmt.Errorf("%s not ready within five minutes:\n%s", name, p.out)
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop asks the process to shut down gracefully (SIGTERM), kills it after 30 s, and
// returns how it ended.
func (p *proc) stop() error {
	select {
	case <-p.exited:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			return fmt.Errorf("%s: %w:\n%s", p.name, p.err, p.out)
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s did not stop within 30 s of SIGTERM; killed", p.name)
	}
}

// childEnv is this process's environment without CONSENTMAIL_* variables (the binary
// refuses unknown ones) plus vars.
func childEnv(vars map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONSENTMAIL_") {
			env = append(env, kv)
		}
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// prefixWriter writes whole lines to w, each after prefix.
type prefixWriter struct {
	mu      sync.Mutex
	w       io.Writer
	prefix  string
	pending []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending = append(p.pending, b...)
	for {
		i := bytes.IndexByte(p.pending, '\n')
		if i < 0 {
			return len(b), nil
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.pending[:i])
		p.pending = p.pending[i+1:]
	}
}

// memStatus is a process's memory as /proc/PID/status tells it, in bytes.
type memStatus struct {
	rss, hwm, anon, file int64 // VmRSS, VmHWM (peak RSS), RssAnon, RssFile
}

func readMem(pid int) (memStatus, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStatus{}, err
	}
	var m memStatus
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &m.rss
		case "VmHWM":
			dst = &m.hwm
		case "RssAnon":
			dst = &m.anon
		case "RssFile":
			dst = &m.file
		default:
			continue
		}
		f := strings.Fields(v) // "12345 kB"
		if len(f) == 2 && f[1] == "kB" {
			kb, _ := strconv.ParseInt(f[0], 10, 64)
			*dst = kb << 10
		}
	}
	return m, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// procStat is what the benchmark reads of /proc/PID/stat.
type procStat struct {
	comm string
	ppid int
	cpu  time.Duration // user + system
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// pid (comm) state ppid … utime stime: comm may hold spaces and parentheses.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	ppid, _ := strconv.Atoi(f[1])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return procStat{comm: string(b[open+1 : end]), ppid: ppid, cpu: time.Duration(utime+stime) * time.Second / clockTicks}, nil
}

// childNamed returns the pid of this process's child whose command is comm.
func childNamed(comm string) (int, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return 0, err
	}
	me := os.Getpid()
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil && st.ppid == me && st.comm == comm {
			return pid, nil
		}
	}
	return 0, errors.New("no child process " + comm)
}

// machineCPU is what /proc/stat's cpu line says all CPUs spent: idle (iowait
// included), and serving interrupts and softirqs, which the kernel charges to no
// process (loopback TCP is mostly softirq work).
type machineCPU struct {
	idle, irq time.Duration
}

// readMachineCPU reads /proc/stat; ok is false when it cannot.
func readMachineCPU() (machineCPU, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq …
	if len(f) < 8 || f[0] != "cpu" {
		return machineCPU{}, false
	}
	var v [8]int64
	for i := 4; i < 8; i++ {
		if v[i], err = strconv.ParseInt(f[i], 10, 64); err != nil {
			return machineCPU{}, false
		}
	}
	tick := func(n int64) time.Duration { return time.Duration(n) * time.Second / clockTicks }
	return machineCPU{idle: tick(v[4] + v[5]), irq: tick(v[6] + v[7])}, true
}
