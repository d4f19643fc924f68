package mailer_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"consentmail/mailer"
	"consentmail/mailer/smtptest"
)

// delayProxy is a smtptest.DelayProxy to target, closed by tb's cleanup.
func delayProxy(tb testing.TB, target string, rtt time.Duration) string {
	tb.Helper()
	p, err := smtptest.NewDelayProxy(target, rtt)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	return p.Addr()
}

// BenchmarkSystemMail sends b.N system mails from 16 concurrent callers (the queue's
// consumers) to a relay 10 ms away, through the sender alone and through the
// Coalescer; it reports messages per second.
//
//	go test ./mailer -run '^$' -bench SystemMail -benchtime 2000x
func BenchmarkSystemMail(b *testing.B) {
	sink := smtptest.New(b)
	addr := delayProxy(b, sink.Addr(), 10*time.Millisecond)
	for _, mode := range []string{"alone", "coalesced"} {
		b.Run(mode, func(b *testing.B) {
			relays, err := mailer.ParseRelays("smtp://" + addr + "?tls=none&max_conns=4")
			if err != nil {
				b.Fatal(err)
			}
			s, err := mailer.NewSender(relays, mailer.Options{HeloName: "test.localhost"})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			send := s.Send
			if mode == "coalesced" {
				c := mailer.NewCoalescer(s, 4, 10)
				defer c.Close()
				send = c.Send
			}
			var next sync.WaitGroup
			work := make(chan int)
			var failed error
			var mu sync.Mutex
			for range 16 {
				next.Add(1)
				go func() {
					defer next.Done()
					for i := range work {
						err := send(context.Background(), &mailer.Message{From: "news@example.org",
							To: fmt.Sprintf("p%d@example.org", i), Subject: "Confirm", Text: "Hello\n"})
						if err != nil {
							mu.Lock()
							failed = err
							mu.Unlock()
						}
					}
				}()
			}
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				work <- i
			}
			close(work)
			next.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
			b.ReportMetric(0, "ns/op")
			if failed != nil {
				b.Fatal(failed)
			}
		})
	}
}
