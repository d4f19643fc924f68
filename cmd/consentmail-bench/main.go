// Command consentmail-bench measures campaign sending end to end. It builds an
// audience of N confirmed subscribers, runs one campaign to it through the real
// consentmail binary into a go-smtp sink on loopback, and prints messages per second,
// time to first message, peak memory and the CPU each process used, for the embedded
// queue (mode embedded), for Redis with one worker process (redis1) and with two
// (redis2). It also drives the same sink with a minimal raw SMTP client in a child
// process, no templating and no store: mode raw pipelines MAIL, RCPT and BDAT LAST as
// consentmail's sender does with go-smtp (one round trip per message), mode raw-data
// pipelines MAIL, RCPT and DATA (two). The best of these two is the ceiling the
// campaign modes are compared with. Mode raw-gosmtp sends with go-smtp's own client
// (Client.SendMail on kept connections, four round trips per message), as a Go program
// without consentmail would: issue 13's acceptance ratio is the campaign's rate over it.
//
//	go run ./cmd/consentmail-bench                          N = 100,000, every mode
//	go run ./cmd/consentmail-bench -n 1000000 -modes raw,redis1
//
// Every server and worker is a child process, so that its memory is its own: peak
// memory is the kernel's high-water mark (VmHWM) of the process that sends, and the
// CPU split shows what each process, the kernel's softirqs (loopback TCP) and the
// machine's other processes took. The benchmark reads /proc, so it runs on Linux; it
// builds the consentmail binary with the go command, so run it inside the module or
// give -consentmail; the Redis modes need redis-server in PATH.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"consentmail/mailer"
)

func main() {
	rawSenderChild()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "consentmail-bench:", err)
		os.Exit(1)
	}
}

// Modes, in the order they run. The raw ones come first: they give the ceiling.
const (
	modeRaw     = "raw"      // raw client, MAIL/RCPT/BDAT LAST pipelined: what our sender speaks to go-smtp
	modeRawData = "raw-data" // raw client, MAIL/RCPT/DATA pipelined, then the data: two round trips
	// go-smtp's own client, Client.SendMail per message on kept connections: what a Go
	// program sending mail without a product does (issue 13's acceptance ratio).
	modeRawGoSMTP = "raw-gosmtp"
	modeEmbedded  = "embedded"
	modeRedis1    = "redis1"
	modeRedis2    = "redis2"
)

var allModes = []string{modeRaw, modeRawData, modeRawGoSMTP, modeEmbedded, modeRedis1, modeRedis2}

// config is the parsed command line.
type config struct {
	n       int
	conns   int
	rtt     time.Duration // round trip to the relay added by a delaying proxy; 0 none
	rawSize int           // bytes of the raw modes' message
	modes   []string
	binary  string // the consentmail binary; built when empty
	keep    bool
	profile string // directory of the sending processes' profiles; "" none
	profSec int
	verbose bool
}

// run is the whole command: the smoke test calls it as the shell would.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseArgs(args, stderr)
	if err != nil {
		return err
	}
	b, err := newBench(cfg, stdout, stderr)
	if err != nil {
		return err
	}
	defer b.close()
	fmt.Fprintf(stdout, "consentmail-bench: N=%d recipients, relay max_conns=%d, round trip %v, GOMAXPROCS=%d, %d CPUs, %s\n",
		cfg.n, cfg.conns, cfg.rtt, runtime.GOMAXPROCS(0), runtime.NumCPU(), cpuModel())
	results, err := b.runAll(ctx)
	printResults(stdout, results)
	if err != nil {
		return err
	}
	var failed []string
	for _, r := range results {
		if r.err != nil {
			failed = append(failed, r.mode+": "+r.err.Error())
		}
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

func parseArgs(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("consentmail-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	fs.IntVar(&cfg.n, "n", 100_000, "recipients in the audience, and messages of the raw modes")
	fs.IntVar(&cfg.rawSize, "raw-size", 5100, "bytes of the raw modes' message: by default about the size of the campaign's rendered message, so that the sink does the same work")
	fs.DurationVar(&cfg.rtt, "rtt", 0, "round trip to the relay: the senders reach the sink through a proxy delaying each chunk by half of it each way (a relay this far away)")
	fs.IntVar(&cfg.conns, "conns", mailer.DefaultMaxConns, "SMTP connections: the relay's max_conns (per worker process), and the raw client's; by default consentmail's own default")
	modes := fs.String("modes", strings.Join(allModes, ","), "comma-separated modes to run: "+strings.Join(allModes, ", "))
	fs.StringVar(&cfg.binary, "consentmail", "", "consentmail binary to run (default: go build consentmail/cmd/consentmail into the temporary directory)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (data directories, binary) and print its path")
	fs.StringVar(&cfg.profile, "profile", "", "directory where the sending processes' Go profiles go (MODE-PROCESS-cpu.pprof over the campaign's first -profile-seconds, MODE-PROCESS-heap.pprof when half the messages are in), fetched through CONSENTMAIL_DEBUG_ADDR")
	fs.IntVar(&cfg.profSec, "profile-seconds", 2, "length of the CPU profile")
	fs.BoolVar(&cfg.verbose, "v", false, "also print the logs of the consentmail processes to stderr")
	if len(args) > 0 {
		args = args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.n < 1 {
		return config{}, fmt.Errorf("-n %d: want at least 1", cfg.n)
	}
	if cfg.conns < 1 || cfg.conns > 1000 {
		return config{}, fmt.Errorf("-conns %d: want 1-1000, as max_conns", cfg.conns)
	}
	for _, m := range strings.Split(*modes, ",") {
		m = strings.TrimSpace(m)
		if m == "" {
			continue
		}
		if !slices.Contains(allModes, m) {
			return config{}, fmt.Errorf("-modes: unknown mode %q; want %s", m, strings.Join(allModes, ", "))
		}
		if !slices.Contains(cfg.modes, m) {
			cfg.modes = append(cfg.modes, m)
		}
	}
	if len(cfg.modes) == 0 {
		return config{}, errors.New("-modes: no mode given")
	}
	// Always in the canonical order, so that the ceiling is known before the others.
	slices.SortFunc(cfg.modes, func(a, b string) int { return slices.Index(allModes, a) - slices.Index(allModes, b) })
	return cfg, nil
}

// cpuModel returns the first "model name" of /proc/cpuinfo, or "unknown CPU".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
