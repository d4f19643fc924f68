package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"consentmail/mailer/smtptest"
	"consentmail/queue/queuetest"
)

// The configuration every consentmail child gets; none of it is secret outside the
// benchmark's temporary directory.
const (
	benchSecret   = "consentmail-bench-secret-0123456789abcdef0123456789abcdef"
	benchAdminKey = "consentmail-bench-admin-key-0123456789"
)

var (
	listeningRe = regexp.MustCompile(`public base URL (http://[^\s)]+)\)`)
	workerRe    = regexp.MustCompile(`consentmail worker consuming the Redis queue`)
)

// bench is one invocation: the sink, the temporary directory, and what the campaign
// modes share (the binary, the audience).
type bench struct {
	cfg      config
	progress io.Writer // short progress lines
	verbose  io.Writer // children's logs; nil unless -v
	tmp      string
	sink     *sink
	proxy    *smtptest.DelayProxy // between the senders and the sink with -rtt; nil without

	binary       string
	audienceDir  string
	audienceTook time.Duration
}

func newBench(cfg config, stdout, stderr io.Writer) (*bench, error) {
	tmp, err := os.MkdirTemp("", "consentmail-bench-")
	if err != nil {
		return nil, err
	}
	s, err := newSink()
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("sink: %w", err)
	}
	b := &bench{cfg: cfg, progress: stderr, tmp: tmp, sink: s, binary: cfg.binary}
	if cfg.rtt > 0 {
		if b.proxy, err = smtptest.NewDelayProxy(s.addr(), cfg.rtt); err != nil {
			s.close()
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("relay proxy: %w", err)
		}
	}
	if cfg.verbose {
		b.verbose = stderr
	}
	if cfg.keep {
		fmt.Fprintf(stdout, "temporary directory (kept): %s\n", tmp)
	}
	return b, nil
}

// relayAddr is where the senders reach the sink: through the proxy with -rtt.
func (b *bench) relayAddr() string {
	if b.proxy != nil {
		return b.proxy.Addr()
	}
	return b.sink.addr()
}

func (b *bench) close() {
	if b.proxy != nil {
		b.proxy.Close()
	}
	b.sink.close()
	if !b.cfg.keep {
		os.RemoveAll(b.tmp)
	}
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.progress, "consentmail-bench: "+format+"\n", args...)
}

// runAll runs every mode in order and returns their results; it stops early only when
// ctx ends or what the campaign modes share cannot be prepared.
func (b *bench) runAll(ctx context.Context) ([]result, error) {
	var results []result
	for _, mode := range b.cfg.modes {
		if err := ctx.Err(); err != nil {
			return results, err
		}
		var r result
		switch mode {
		case modeRaw, modeRawData, modeRawGoSMTP:
			r = b.runRaw(ctx, mode)
		default:
			if err := b.prepare(ctx); err != nil {
				return results, err
			}
			r = b.runCampaign(ctx, mode)
		}
		if r.err != nil {
			b.logf("%s: %v", mode, r.err)
		}
		results = append(results, r)
	}
	return results, nil
}

// prepare builds the consentmail binary unless one was given, and the audience, once.
func (b *bench) prepare(ctx context.Context) error {
	if b.binary == "" {
		b.binary = filepath.Join(b.tmp, "consentmail")
		b.logf("building %s", b.binary)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.binary, "consentmail/cmd/consentmail")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build consentmail/cmd/consentmail: %w\n%s", err, out)
		}
	}
	if b.audienceDir == "" {
		dir := filepath.Join(b.tmp, "audience")
		b.logf("building an audience of %d confirmed subscribers", b.cfg.n)
		start := time.Now()
		if err := buildAudience(ctx, dir, b.cfg.n, []byte(benchSecret)); err != nil {
			return fmt.Errorf("build audience: %w", err)
		}
		b.audienceDir, b.audienceTook = dir, time.Since(start)
		size := int64(0)
		if fi, err := os.Stat(filepath.Join(dir, dbFile)); err == nil {
			size = fi.Size()
		}
		b.logf("audience built in %v (%s, %s)", b.audienceTook.Round(time.Millisecond), dbFile, mb(size))
	}
	return nil
}

// result is what one mode measured.
type result struct {
	mode  string
	err   error
	n     int
	rate  float64       // messages per second: n / (n-th message at the sink − start)
	first time.Duration // start → first message at the sink; 0 for the raw modes
	total time.Duration // start → campaign finished (raw: → last reply)
	sink  sinkCounts
	stats *campaignStats // nil for the raw modes
	// Memory of the sending processes (one per worker; the server when embedded) and
	// of the API process of the Redis modes.
	senders []procMem
	api     *procMem
	cpu     cpuSplit
	notes   []string
}

// sinkCounts is what the sink saw in one mode.
type sinkCounts struct {
	got, distinct, dups, missing, unexpected, conns, bytes int64
}

func countsOf(s *sink, r *round) sinkCounts {
	return sinkCounts{got: r.got.Load(), distinct: r.distinct.Load(), dups: r.dups.Load(), missing: r.missing(),
		unexpected: r.unexpected.Load(), conns: s.connections(r), bytes: r.bytes.Load()}
}

// check returns an error unless exactly n distinct recipients got one message each.
func (c sinkCounts) check(n int) error {
	if c.distinct == int64(n) && c.dups == 0 && c.unexpected == 0 {
		return nil
	}
	return fmt.Errorf("sink got %d messages for %d distinct recipients of %d: %d duplicates, %d missing, %d to unknown addresses",
		c.got, c.distinct, n, c.dups, c.missing, c.unexpected)
}

// procMem is one process's memory: RSS before the campaign, the kernel's high-water
// mark after it, and the peaks of its anonymous and file-backed (bbolt's mmap) parts,
// sampled every 50 ms.
type procMem struct {
	name                            string
	pid                             int
	before, hwm, peakAnon, peakFile int64
}

func (b *bench) runRaw(ctx context.Context, mode string) result {
	res := result{mode: mode, n: b.cfg.n}
	b.logf("%s: %d messages over %d connections", mode, b.cfg.n, b.cfg.conns)
	r := b.sink.reset(b.cfg.n)
	sender, err := startRawSender(ctx, b.relayAddr(), b.cfg.conns, b.cfg.n, mode, b.cfg.rawSize)
	if err != nil {
		res.err = err
		return res
	}
	// The child's CPU is read from its rusage once it has exited, less what it had
	// used to connect.
	before, _ := readStat(sender.pid())
	cpu := startCPU([]watch{{name: "bench+sink"}})
	t0 := time.Now()
	err = sender.run()
	res.total = time.Since(t0)
	res.cpu = cpu.stop()
	st := sender.cmd.ProcessState
	res.cpu.procs = append(res.cpu.procs, watch{name: "raw sender", pid: sender.pid()})
	res.cpu.used = append(res.cpu.used, st.UserTime()+st.SystemTime()-before.cpu)
	res.sink = countsOf(b.sink, r)
	if err == nil {
		err = res.sink.check(b.cfg.n)
	}
	if err != nil {
		res.err = err
		return res
	}
	res.rate = float64(b.cfg.n) / r.nthAt().Sub(t0).Seconds()
	switch mode {
	case modeRaw:
		res.notes = append(res.notes, "MAIL+RCPT+BDAT LAST pipelined, 1 round trip per message")
	case modeRawData:
		res.notes = append(res.notes, "MAIL+RCPT+DATA pipelined, then the data: 2 round trips per message")
	case modeRawGoSMTP:
		res.notes = append(res.notes, "go-smtp's Client.SendMail on kept connections: MAIL, RCPT, DATA, the data, 4 round trips per message")
	}
	res.notes = append(res.notes, fmt.Sprintf("%d-byte message, sent from a child process", len(rawMessage(b.cfg.rawSize))))
	return res
}

// runCampaign starts the processes of mode on a fresh copy of the audience, runs one
// campaign to it and measures it.
func (b *bench) runCampaign(ctx context.Context, mode string) (res result) {
	res = result{mode: mode, n: b.cfg.n}
	b.logf("%s: starting", mode)
	dir := filepath.Join(b.tmp, mode)
	if err := copyDB(b.audienceDir, dir); err != nil {
		res.err = fmt.Errorf("copy audience: %w", err)
		return res
	}
	if !b.cfg.keep {
		defer os.RemoveAll(dir)
	}
	env := map[string]string{
		"CONSENTMAIL_DATA_DIR":      dir,
		"CONSENTMAIL_HTTP_ADDR":     "127.0.0.1:0",
		"CONSENTMAIL_SECRET":        benchSecret,
		"CONSENTMAIL_ADMIN_API_KEY": benchAdminKey,
		"CONSENTMAIL_SMTP_URL":      fmt.Sprintf("smtp://%s?tls=none&max_conns=%d", b.relayAddr(), b.cfg.conns),
		"CONSENTMAIL_LOG_LEVEL":     "warn",
	}
	var procs []*proc
	defer func() {
		// Workers first, then the API: what is left in flight is no longer measured.
		for i := len(procs) - 1; i >= 0; i-- {
			if err := procs[i].stop(); err != nil {
				res.notes = append(res.notes, "stop: "+err.Error())
			}
		}
	}()
	watches := []watch{{name: "bench+sink"}}
	workers := 0
	if mode != modeEmbedded {
		workers = 1
		if mode == modeRedis2 {
			workers = 2
		}
		rs, err := queuetest.StartRedis()
		if err != nil {
			res.err = fmt.Errorf("redis: %w", err)
			return res
		}
		defer rs.Stop()
		env["CONSENTMAIL_REDIS_URL"] = "redis://" + rs.Addr + "/0"
		if pid, err := childNamed("redis-server"); err == nil {
			watches = append(watches, watch{name: "redis", pid: pid})
		}
	}
	name, args := "serve", []string{"serve"}
	if workers > 0 {
		name, args = "api", []string{"serve", "--role", "api"}
	}
	prof := newProfiler(b.cfg.profile, b.cfg.profSec)
	debugEnv := func(name string) map[string]string {
		if prof == nil {
			return env
		}
		a, err := prof.addr(name)
		if err != nil {
			return env
		}
		e := maps.Clone(env)
		e["CONSENTMAIL_DEBUG_ADDR"] = a
		return e
	}
	server, base, err := startProc(name, b.binary, args, childEnv(debugEnv(name)), listeningRe, b.verbose)
	if err != nil {
		res.err = err
		return res
	}
	procs = append(procs, server)
	watches = append(watches, watch{name: name, pid: server.pid()})
	senders := []*proc{server}
	if workers > 0 {
		senders = nil
		env["CONSENTMAIL_BASE_URL"] = base // the links workers put in mail point at the API
		for i := range workers {
			wname := "worker"
			if workers > 1 {
				wname = fmt.Sprintf("worker%d", i+1)
			}
			w, _, err := startProc(wname, b.binary, []string{"worker"}, childEnv(debugEnv(wname)), workerRe, b.verbose)
			if err != nil {
				res.err = err
				return res
			}
			procs = append(procs, w)
			senders = append(senders, w)
			watches = append(watches, watch{name: wname, pid: w.pid()})
		}
	}
	api := newAPIClient(base, benchAdminKey)
	id, err := api.createCampaign(ctx)
	if err != nil {
		res.err = err
		return res
	}

	mem := startMem(senders, server, workers > 0)
	r := b.sink.reset(b.cfg.n)
	cpu := startCPU(watches)
	t0 := time.Now()
	err = api.startCampaign(ctx, id)
	if prof != nil {
		prof.start(ctx, mode, r)
		defer func() { res.notes = append(res.notes, prof.wait()...) }()
	}
	if err == nil {
		err = b.waitSink(ctx, r, procs)
	}
	if err == nil {
		res.stats, err = api.waitFinished(ctx, id, 2*time.Minute)
	}
	res.total = time.Since(t0)
	res.cpu = cpu.stop()
	res.senders, res.api = mem.stop()
	res.sink = countsOf(b.sink, r)
	if r.got.Load() > 0 {
		res.first = r.firstAt().Sub(t0)
	}
	if err != nil {
		res.err = err
		return res
	}
	res.rate = float64(b.cfg.n) / r.nthAt().Sub(t0).Seconds()
	switch err := res.sink.check(b.cfg.n); {
	case err != nil:
		res.err = err
	case res.stats.Sent != int64(b.cfg.n) || res.stats.Failed != 0 || res.stats.Skipped != 0:
		res.err = fmt.Errorf("campaign stats: sent %d, failed %d, skipped %d; want sent %d", res.stats.Sent,
			res.stats.Failed, res.stats.Skipped, b.cfg.n)
	}
	var started []string
	for _, p := range procs {
		started = append(started, fmt.Sprintf("%s %v", p.name, p.start.Round(time.Millisecond)))
	}
	res.notes = append(res.notes, "ready after start: "+strings.Join(started, ", "),
		fmt.Sprintf("audience built in %v (once for all modes)", b.audienceTook.Round(time.Millisecond)))
	return res
}

// waitSink waits until round r is complete. It gives up when a child exits or when
// no message arrives for a minute.
func (b *bench) waitSink(ctx context.Context, r *round, procs []*proc) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last, lastChange := r.got.Load(), time.Now()
	for {
		select {
		case <-r.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		for _, p := range procs {
			select {
			case <-p.exited:
				return fmt.Errorf("%s exited during the campaign (%v):\n%s", p.name, p.err, p.out)
			default:
			}
		}
		if got := r.got.Load(); got != last {
			last, lastChange = got, time.Now()
		} else if time.Since(lastChange) > time.Minute {
			return fmt.Errorf("stalled: the sink got %d of %d messages, none in the last minute", got, r.n)
		}
	}
}

// watch names a process whose CPU time is measured; pid 0 is the benchmark itself.
type watch struct {
	name string
	pid  int
}

// cpuSplit is the CPU time each watched process used over wall, and what all the
// machine's CPUs spent idle and serving interrupts (machineOK false: unknown).
type cpuSplit struct {
	wall      time.Duration
	procs     []watch
	used      []time.Duration
	machine   machineCPU
	machineOK bool
}

type cpuMeter struct {
	procs []watch
	t0    time.Time
	at0   []time.Duration
	m0    machineCPU
	m0OK  bool
}

func cpuOf(w watch) time.Duration {
	if w.pid == 0 {
		return selfCPU()
	}
	st, err := readStat(w.pid)
	if err != nil {
		return 0
	}
	return st.cpu
}

func startCPU(procs []watch) *cpuMeter {
	m := &cpuMeter{procs: procs, t0: time.Now()}
	m.m0, m.m0OK = readMachineCPU()
	for _, w := range procs {
		m.at0 = append(m.at0, cpuOf(w))
	}
	return m
}

func (m *cpuMeter) stop() cpuSplit {
	s := cpuSplit{wall: time.Since(m.t0), procs: m.procs}
	for i, w := range m.procs {
		s.used = append(s.used, cpuOf(w)-m.at0[i])
	}
	if m1, ok := readMachineCPU(); ok && m.m0OK {
		s.machine, s.machineOK = machineCPU{idle: m1.idle - m.m0.idle, irq: m1.irq - m.m0.irq}, true
	}
	return s
}

// memMeter samples the RSS of the senders and the API process until stopped.
type memMeter struct {
	mem   []procMem // senders, then the API process if separate
	apiAt int       // index of the API process in mem, or -1
	stopc chan struct{}
	wg    sync.WaitGroup
}

func startMem(senders []*proc, server *proc, separateAPI bool) *memMeter {
	m := &memMeter{apiAt: -1, stopc: make(chan struct{})}
	procs := slices.Clone(senders)
	if separateAPI {
		m.apiAt = len(procs)
		procs = append(procs, server)
	}
	for _, p := range procs {
		st, _ := readMem(p.pid())
		m.mem = append(m.mem, procMem{name: p.name, pid: p.pid(), before: st.rss, peakAnon: st.anon, peakFile: st.file})
	}
	m.wg.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.stopc:
				return
			case <-t.C:
			}
			m.sample()
		}
	})
	return m
}

func (m *memMeter) sample() {
	for i := range m.mem {
		if st, err := readMem(m.mem[i].pid); err == nil {
			m.mem[i].peakAnon = max(m.mem[i].peakAnon, st.anon)
			m.mem[i].peakFile = max(m.mem[i].peakFile, st.file)
			m.mem[i].hwm = st.hwm
		}
	}
}

// stop ends sampling and returns the senders' memory and the API process's.
func (m *memMeter) stop() ([]procMem, *procMem) {
	close(m.stopc)
	m.wg.Wait()
	m.sample()
	if m.apiAt < 0 {
		return m.mem, nil
	}
	api := m.mem[m.apiAt]
	return m.mem[:m.apiAt], &api
}

// errNoCeiling is shown in place of a percentage when no raw mode ran.
var errNoCeiling = errors.New("no raw mode ran")

// ceiling returns the best rate of the hand-written raw modes that succeeded (the
// least an SMTP client can do; not raw-gosmtp, a reference of its own).
func ceiling(results []result) (float64, string, error) {
	best, mode := 0.0, ""
	for _, r := range results {
		if (r.mode == modeRaw || r.mode == modeRawData) && r.err == nil && r.rate > best {
			best, mode = r.rate, r.mode
		}
	}
	if best == 0 {
		return 0, "", errNoCeiling
	}
	return best, mode, nil
}

// succeeded returns the result of mode, nil when it did not run or failed.
func succeeded(results []result, mode string) *result {
	for i, r := range results {
		if r.mode == mode && r.err == nil {
			return &results[i]
		}
	}
	return nil
}

// mb formats bytes as decimal megabytes, the unit of the targets.
func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func printResults(w io.Writer, results []result) {
	if len(results) == 0 {
		return
	}
	ceil, ceilMode, ceilErr := ceiling(results)
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-10s %9s %14s %11s %19s %13s %16s\n", "mode", "msgs/s", "% of ceiling", "first msg", "peak RSS (sender)", "of it anon", "peak RSS (api)")
	for _, r := range results {
		rate, pct, first, sender, anon, api := "FAILED", "-", "-", "-", "-", "-"
		if r.err == nil {
			rate = fmt.Sprintf("%.0f", r.rate)
			if ceilErr == nil {
				pct = fmt.Sprintf("%.0f%%", 100*r.rate/ceil)
			}
		}
		if r.first > 0 {
			first = fmt.Sprintf("%.0f ms", float64(r.first.Microseconds())/1000)
		}
		if len(r.senders) > 0 {
			m := maxHWM(r.senders)
			sender, anon = mb(m.hwm), mb(m.peakAnon)
		}
		if r.api != nil {
			api = mb(r.api.hwm)
		}
		fmt.Fprintf(w, "%-10s %9s %14s %11s %19s %13s %16s\n", r.mode, rate, pct, first, sender, anon, api)
	}
	fmt.Fprintln(w, "peak RSS is the kernel's high-water mark (VmHWM), file-backed pages included: the binary's and bbolt's mmap;")
	fmt.Fprintln(w, "\"of it anon\" is the peak of the anonymous part (heap, stacks), sampled every 50 ms.")
	if ceilErr == nil {
		fmt.Fprintf(w, "ceiling: %s, %.0f msgs/s\n", ceilMode, ceil)
	} else {
		fmt.Fprintf(w, "ceiling: none (%v); run mode %s for it\n", ceilErr, modeRaw)
	}
	for _, r := range results {
		printDetails(w, r)
	}
	printTargets(w, results, ceil, ceilErr)
}

func maxHWM(ms []procMem) procMem {
	best := ms[0]
	for _, m := range ms[1:] {
		if m.hwm > best.hwm {
			best = m
		}
	}
	return best
}

func printDetails(w io.Writer, r result) {
	fmt.Fprintf(w, "\n%s:", r.mode)
	if r.err != nil {
		fmt.Fprintf(w, " FAILED: %v", r.err)
	}
	fmt.Fprintln(w)
	if r.stats != nil {
		fmt.Fprintf(w, "  total %v from start to finished; campaign stats: audience %d, queued %d, sent %d, failed %d, skipped %d\n",
			r.total.Round(time.Millisecond), r.stats.Audience, r.stats.Queued, r.stats.Sent, r.stats.Failed, r.stats.Skipped)
	} else {
		fmt.Fprintf(w, "  total %v\n", r.total.Round(time.Millisecond))
	}
	avg := int64(0)
	if r.sink.got > 0 {
		avg = r.sink.bytes / r.sink.got
	}
	fmt.Fprintf(w, "  sink: %d messages (%d bytes on average), %d distinct recipients, %d duplicates, %d missing, %d unknown; %d connections\n",
		r.sink.got, avg, r.sink.distinct, r.sink.dups, r.sink.missing, r.sink.unexpected, r.sink.conns)
	for _, m := range r.senders {
		fmt.Fprintf(w, "  memory of %s (sender): RSS %s before the campaign, peak %s (peak anonymous %s, file-backed %s)\n",
			m.name, mb(m.before), mb(m.hwm), mb(m.peakAnon), mb(m.peakFile))
	}
	if r.api != nil {
		fmt.Fprintf(w, "  memory of %s: RSS %s before the campaign, peak %s (peak anonymous %s, file-backed %s)\n",
			r.api.name, mb(r.api.before), mb(r.api.hwm), mb(r.api.peakAnon), mb(r.api.peakFile))
	}
	if c := r.cpu; c.wall > 0 {
		capacity := c.wall.Seconds() * float64(runtime.NumCPU())
		fmt.Fprintf(w, "  cpu over %.2f s × %d CPUs:", c.wall.Seconds(), runtime.NumCPU())
		sum := 0.0
		for i, p := range c.procs {
			s := c.used[i].Seconds()
			sum += s
			sep := ","
			if i == 0 {
				sep = ""
			}
			fmt.Fprintf(w, "%s %s %.2f s (%.0f%%)", sep, p.name, s, 100*s/capacity)
		}
		if c.machineOK {
			// Interrupt time is charged to whichever process was running too: it is
			// shown as a part of the above, not added to it.
			idle, irq := c.machine.idle.Seconds(), c.machine.irq.Seconds()
			fmt.Fprintf(w, "; other processes %.0f%%, idle %.0f%% (interrupts and softirqs, mostly loopback TCP: %.0f%%, within the above)\n",
				max(0, 100*(1-(sum+idle)/capacity)), 100*idle/capacity, 100*irq/capacity)
		} else {
			fmt.Fprintf(w, "; idle or elsewhere %.0f%%\n", max(0, 100*(1-sum/capacity)))
		}
		if r.err == nil && r.rate > 0 {
			fmt.Fprintf(w, "  cpu per message:")
			for i, p := range c.procs {
				sep := ","
				if i == 0 {
					sep = ""
				}
				fmt.Fprintf(w, "%s %s %.1f µs", sep, p.name, float64(c.used[i].Nanoseconds())/1000/float64(r.n))
			}
			fmt.Fprintln(w)
		}
	}
	for _, n := range r.notes {
		fmt.Fprintf(w, "  %s\n", n)
	}
}

// printTargets compares the results with issue 13's targets: campaign rates, the
// embedded rate over the ceiling, the first message, and the anonymous memory of every
// process (the mapped store is file-backed, counted apart).
func printTargets(w io.Writer, results []result, ceil float64, ceilErr error) {
	fmt.Fprintln(w, "\ntargets (issue 13):")
	verdict := func(ok bool) string {
		if ok {
			return "ok"
		}
		return "MISSED"
	}
	const maxAnon = 64 << 20
	for _, r := range results {
		if r.err != nil || r.stats == nil {
			continue
		}
		switch r.mode {
		case modeEmbedded:
			fmt.Fprintf(w, "  embedded ≥ 15,000 msgs/s: %.0f %s\n", r.rate, verdict(r.rate >= 15000))
			if ceilErr == nil {
				fmt.Fprintf(w, "  embedded ≥ 85%% of the ceiling: %.1f%% %s\n", 100*r.rate/ceil, verdict(r.rate >= 0.85*ceil))
			}
			if g := succeeded(results, modeRawGoSMTP); g != nil && g.sink.got > 0 {
				fmt.Fprintf(w, "  embedded ≥ 85%% of the raw go-smtp sender (%d-byte messages): %.1f%% %s\n",
					g.sink.bytes/g.sink.got, 100*r.rate/g.rate, verdict(r.rate >= 0.85*g.rate))
			}
		case modeRedis1:
			fmt.Fprintf(w, "  redis1 ≥ 18,000 msgs/s: %.0f %s\n", r.rate, verdict(r.rate >= 18000))
		}
		fmt.Fprintf(w, "  %s first message < 100 ms: %v %s\n", r.mode, r.first.Round(time.Millisecond), verdict(r.first < 100*time.Millisecond))
		procs := slices.Clone(r.senders)
		if r.api != nil {
			procs = append(procs, *r.api)
		}
		for _, m := range procs {
			fmt.Fprintf(w, "  %s anonymous memory of %s ≤ 64 MiB: %s %s\n", r.mode, m.name, mb(m.peakAnon), verdict(m.peakAnon <= maxAnon))
		}
	}
}
