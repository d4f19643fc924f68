package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"consentmail/mailer/smtptest"
)

// floorEnv makes the test binary serve the floor (see TestMain).
const floorEnv = "CONSENTMAIL_BENCH_FLOOR"

// serveFloor is what the overload benchmark asks of a server, done with the least work
// any Fiber server can: every signup refused with the same 503 as consentmail's (a body
// written once), no middleware, no store, no mail; a list created and the metrics
// answered so that the benchmark runs as it does against consentmail. Measured with
// the same generator on the same machine, it is the floor under the latency any
// server's refusals can have there. It stops on SIGTERM.
func serveFloor() {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	refusal := []byte(`{"error":{"code":"overloaded","message":"too many signups at once; nothing was recorded; retry in a second"}}`)
	app.Get("/healthz", func(c *fiber.Ctx) error { return c.SendString("ok") })
	app.Post("/api/v1/lists", func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusCreated) })
	app.Get("/metrics", func(c *fiber.Ctx) error {
		return c.SendString(`consentmail_signups_total{outcome="accepted"} 0` + "\n")
	})
	app.Post("/api/v1/signups", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderRetryAfter, "1")
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Status(fiber.StatusServiceUnavailable).Send(refusal)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("API and pages: http://%s\n", ln.Addr())
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
		<-sig
		_ = app.Shutdown()
	}()
	_ = app.Listener(ln)
}

var rssAnonRe = regexp.MustCompile(`(?m)^RssAnon:\s+(\d+) kB`)

// rssAnon is the RssAnon of process pid, in bytes (0 when it cannot be read).
func rssAnon(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	m := rssAnonRe.FindSubmatch(b)
	if m == nil {
		return 0
	}
	kb, _ := strconv.ParseUint(string(m[1]), 10, 64)
	return kb << 10
}

// BenchmarkSignupsOverload offers signups open-loop at a fixed rate, far above what the
// server can take (BENCH_OFFERED per second, 24,000 by default: four times this
// machine's capacity), and checks load shedding: each signup is answered 202 within
// the latency target or refused at once with 503 and Retry-After; every 202 is
// recorded (the server's own count of accepted signups equals the 202s); the heap
// stays bounded. It reports the offered and accepted rates, the latency of each kind
// of answer and the server's peak heap. BENCH_SIGNUP_CONCURRENCY sets the server's
// CONSENTMAIL_SIGNUP_CONCURRENCY. BENCH_SERVER_BIN=path runs that consentmail binary
// in a child process instead of the server in this one, so that the generator and the
// server are scheduled as two programs on the machine, as a server and its clients are.
// BENCH_SERVER_BIN=floor runs instead, as a child, the least any server can do
// (serveFloor): the machine's floor for the same load.
//
//	go test ./cmd/consentmail -run '^$' -bench SignupsOverload -benchtime 100000x
func BenchmarkSignupsOverload(b *testing.B) {
	offered := 24000.0
	if v, err := strconv.ParseFloat(os.Getenv("BENCH_OFFERED"), 64); err == nil && v > 0 {
		offered = v
	}
	sink := smtptest.New(b)
	env := serveEnv(b.TempDir(), sink.URL()+"&max_conns=4")
	env["CONSENTMAIL_SIGNUP_RATE"] = "0"
	env["CONSENTMAIL_LOG_LEVEL"] = "error"
	if v := os.Getenv("BENCH_SIGNUP_CONCURRENCY"); v != "" {
		env["CONSENTMAIL_SIGNUP_CONCURRENCY"] = v
	}
	srv := startServer(b, env, "serve")
	c := newClient(b, srv.BaseURL)
	c.createList("weekly")

	// The server's memory, sampled: in this process its heap; in a child process
	// (BENCH_SERVER_BIN) its anonymous resident memory, which holds the heap.
	var peakHeap atomic.Uint64
	stopSampling := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(50 * time.Millisecond):
			}
			n := uint64(0)
			if srv.Pid != 0 {
				n = rssAnon(srv.Pid)
			} else {
				runtime.ReadMemStats(&ms)
				n = ms.HeapInuse
			}
			if n > peakHeap.Load() {
				peakHeap.Store(n)
			}
		}
	}()

	// The generator shares the two CPUs with the server it measures, so it costs as
	// little as it can: maxOpen workers started before the clock, each reusing its
	// request and response; a pacer hands each signup to an idle worker at its time.
	// A signup that finds none is counted, not sent (the generator's own bound).
	const maxOpen = 2048
	hc := &fasthttp.Client{MaxConnsPerHost: maxOpen, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	url := srv.BaseURL + "/api/v1/signups"
	type result struct{ ok, shed []time.Duration }
	results := make([]result, maxOpen)
	var other, notSent, badShed atomic.Int64 // badShed: a 503 without Retry-After
	due := make(chan int)                    // unbuffered: a send succeeds only into an idle worker
	var wg, ready sync.WaitGroup
	for w := range maxOpen {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(res)
			// Each worker opens its connection before the clock starts: the offered
			// load is signups, not a storm of 2,048 dials in its first second.
			req.SetRequestURI(srv.BaseURL + "/healthz")
			if err := hc.Do(req, res); err != nil || res.StatusCode() != fasthttp.StatusOK {
				other.Add(1)
			}
			ready.Done()
			req.Reset()
			req.SetRequestURI(url)
			req.Header.SetMethod("POST")
			req.Header.SetContentType("application/json")
			var body []byte
			r := &results[w]
			for i := range due {
				body = append(strconv.AppendInt(append(body[:0], `{"email":"over-`...), int64(i), 10),
					`@example.org","lists":["weekly"],"consent":true}`...)
				req.SetBodyRaw(body)
				t0 := time.Now()
				err := hc.Do(req, res)
				d := time.Since(t0)
				switch {
				case err == nil && res.StatusCode() == fasthttp.StatusAccepted:
					r.ok = append(r.ok, d)
				case err == nil && res.StatusCode() == fasthttp.StatusServiceUnavailable:
					if len(res.Header.Peek("Retry-After")) == 0 {
						badShed.Add(1)
					}
					r.shed = append(r.shed, d)
				default:
					other.Add(1)
				}
			}
		}()
	}
	ready.Wait()
	interval := time.Duration(float64(time.Second) / offered)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		select {
		case due <- i:
		default:
			notSent.Add(1)
		}
	}
	close(due)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(stopSampling)
	var okLat, shedLat []time.Duration
	for _, r := range results {
		okLat, shedLat = append(okLat, r.ok...), append(shedLat, r.shed...)
	}
	accepted, shed := len(okLat), len(shedLat)

	if other.Load() > 0 || badShed.Load() > 0 {
		b.Fatalf("%d answers neither 202 nor 503, %d 503s without Retry-After", other.Load(), badShed.Load())
	}
	// Every 202 is recorded: the server's count of accepted signups is the 202s.
	_, metrics := c.do("GET", "/metrics", "", "")
	m := regexp.MustCompile(`consentmail_signups_total\{outcome="accepted"\} (\d+)`).FindStringSubmatch(metrics)
	if m == nil || m[1] != strconv.Itoa(accepted) {
		b.Fatalf("the server accepted %v signups, the clients got %d 202s", m, accepted)
	}
	pct := func(l []time.Duration, p float64) float64 {
		if len(l) == 0 {
			return 0
		}
		slices.Sort(l)
		return float64(l[int(float64(len(l)-1)*p)].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "offered/s")
	b.ReportMetric(float64(accepted)/elapsed.Seconds(), "accepted/s")
	b.ReportMetric(float64(shed)/elapsed.Seconds(), "shed/s")
	b.ReportMetric(pct(okLat, 0.99), "p99_accepted_ms")
	b.ReportMetric(pct(shedLat, 0.99), "p99_shed_ms")
	memMetric := "peak_heap_MiB"
	if srv.Pid != 0 {
		memMetric = "peak_rss_anon_MiB" // the child's anonymous memory: heap, stacks, what the runtime keeps
	}
	b.ReportMetric(float64(peakHeap.Load())/(1<<20), memMetric)
	b.ReportMetric(0, "ns/op")
	b.Logf("%d offered in %v: %d accepted (p50 %.1f ms, p99 %.1f ms), %d shed (p99 %.1f ms), %d not sent by the generator; peak heap %.0f MiB",
		b.N, elapsed, accepted, pct(okLat, 0.5), pct(okLat, 0.99), shed, pct(shedLat, 0.99), notSent.Load(),
		float64(peakHeap.Load())/(1<<20))
}
