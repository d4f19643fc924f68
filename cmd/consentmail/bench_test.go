package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/valyala/fasthttp"

	"consentmail/mailer/smtptest"
)

// confirmWithin is the longest a confirmation may take to reach the relay after its
// signup's 202, saturating load included (issue 13).
const confirmWithin = 5 * time.Second

// BenchmarkSignups measures durable signups per second against the real server: 32
// concurrent HTTP clients (BENCH_CLIENTS=N for another number), distinct addresses,
// fsync on, the confirmation mails going through the queue to a go-smtp sink. It
// reports throughput, latency percentiles and the data directory's size per 10,000
// subscribers; and, a signup being done when its confirmation is at the relay, how
// long after its 202 that was and the rate counted until the last one
// (done_signups/s). It fails when a confirmation took longer than confirmWithin.
//
//	go test ./cmd/consentmail -run '^$' -bench Signups -benchtime 50000x
//
// BENCH_STATS=1 also prints every bucket's size; BENCH_NO_MAIL=1 points the relay at a
// closed port, to see the signup path with mail failing fast instead of being sent.
func BenchmarkSignups(b *testing.B) {
	sink := smtptest.New(b)
	dir := b.TempDir()
	env := serveEnv(dir, sink.URL()+"&max_conns=4")
	if os.Getenv("BENCH_NO_MAIL") != "" {
		env["CONSENTMAIL_SMTP_URL"] = "smtp://" + closedPort(b) + "?tls=none"
	}
	env["CONSENTMAIL_SIGNUP_RATE"] = "0"
	env["CONSENTMAIL_LOG_LEVEL"] = "error"
	srv := startServer(b, env, "serve")
	c := newClient(b, srv.BaseURL)
	c.createList("weekly")

	// When each confirmation reached the relay, by signup index: a signup is done once
	// its confirmation is there (issue 13), so the benchmark reports how long after its
	// 202 that was, and the rate counted until the last one.
	answered := make([]int64, b.N)
	arrived := make([]atomic.Int64, b.N)
	sink.FailData(func(rcpt string) *smtp.SMTPError {
		// Parsed by hand: the sink shares the CPUs with the server it measures.
		n, _ := strings.CutSuffix(strings.TrimPrefix(rcpt, "bench-"), "@example.org")
		if i, err := strconv.Atoi(n); err == nil && i >= 0 && i < len(arrived) {
			arrived[i].CompareAndSwap(0, time.Now().UnixNano())
		}
		return nil
	})

	clients := 32 // the figure; BENCH_CLIENTS=N measures a load that leaves room
	if v := os.Getenv("BENCH_CLIENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("BENCH_CLIENTS=%q: want a number of clients, at least 1", v)
		}
		clients = n
	}
	b.ReportMetric(float64(clients), "clients")
	// fasthttp's client keeps the load generator's own CPU small, as wrk would: the
	// server shares the machine's two cores with it.
	hc := &fasthttp.Client{MaxConnsPerHost: clients}
	url := srv.BaseURL + "/api/v1/signups"
	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	var failures atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				req.SetRequestURI(url)
				req.Header.SetMethod("POST")
				req.Header.SetContentType("application/json")
				req.SetBodyString(fmt.Sprintf(`{"email":"bench-%d@example.org","name":"Bench %d","lists":["weekly"],"consent":true,"source":"bench"}`, i, i))
				t0 := time.Now()
				err := hc.DoTimeout(req, res, 30*time.Second)
				lat[w] = append(lat[w], time.Since(t0))
				answered[i] = time.Now().UnixNano()
				if err != nil || res.StatusCode() != fasthttp.StatusAccepted {
					failures.Add(1)
				}
				fasthttp.ReleaseRequest(req)
				fasthttp.ReleaseResponse(res)
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if f := failures.Load(); f > 0 {
		b.Fatalf("%d signups failed", f)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) float64 { return float64(all[int(float64(len(all)-1)*p)].Microseconds()) / 1000 }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "signups/s")
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	b.ReportMetric(0, "ns/op")

	b.Logf("%d signups in %v: %.0f/s, p50 %.2f ms, p99 %.2f ms; %d confirmations sent meanwhile",
		b.N, elapsed, float64(b.N)/elapsed.Seconds(), pct(0.5), pct(0.99), sink.Received())

	// Let the confirmations drain, then weigh the data directory.
	drain := time.Now()
	for os.Getenv("BENCH_NO_MAIL") == "" && sink.Received() < b.N {
		select {
		case <-sink.Changed():
		case <-time.After(time.Minute):
			b.Fatalf("confirmations stalled at %d of %d", sink.Received(), b.N)
		}
	}
	b.Logf("all %d confirmations delivered %v after the last signup", b.N, time.Since(drain))
	if os.Getenv("BENCH_NO_MAIL") == "" {
		delays := make([]time.Duration, b.N)
		var last int64
		for i := range delays {
			at := arrived[i].Load()
			if at == 0 {
				b.Fatalf("no confirmation reached the relay for signup %d", i)
			}
			delays[i], last = time.Duration(at-answered[i]), max(last, at)
		}
		slices.Sort(delays)
		counted := float64(b.N) / time.Duration(last-start.UnixNano()).Seconds()
		b.ReportMetric(counted, "done_signups/s")
		b.ReportMetric(float64(delays[len(delays)*99/100].Microseconds())/1000, "confirm_p99_ms")
		b.ReportMetric(float64(delays[len(delays)-1].Microseconds())/1000, "confirm_max_ms")
		b.Logf("a signup's confirmation reached the relay %v after its 202 at the median, %v at the 99th percentile, %v at most; %.0f signups/s counted until the last one",
			delays[len(delays)/2], delays[len(delays)*99/100], delays[len(delays)-1], counted)
		// Issue 13's promise, which the committer's yield trades latency against: under
		// this load a confirmation may trail its signup, by seconds at most.
		if worst := delays[len(delays)-1]; worst > confirmWithin {
			b.Errorf("a confirmation reached the relay %v after its 202: more than %v", worst, confirmWithin)
		}
	}
	srv.Stop(b)
	if os.Getenv("BENCH_STATS") != "" {
		dumpStats(b, dir)
	}
	var size int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			size += info.Size()
		}
		return nil
	})
	b.ReportMetric(float64(size)/float64(b.N)*10000/(1<<20), "MiB/10k_subscribers")
}
