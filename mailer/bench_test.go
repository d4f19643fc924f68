package mailer_test

import (
	"context"
	"fmt"
	"testing"

	"consentmail/mailer"
	"consentmail/mailer/smtptest"
)

// BenchmarkSend pushes messages from many goroutines through one Sender into a local
// sink, reporting messages per second. go test -run '^$' -bench BenchmarkSend ./mailer
func BenchmarkSend(b *testing.B) {
	for _, conns := range []int{4, 16} {
		b.Run(fmt.Sprintf("max_conns=%d", conns), func(b *testing.B) {
			sink := smtptest.New(b)
			s := newSender(b, relaysOf(b, fmt.Sprintf("%s&max_conns=%d", sink.URL(), conns)), mailer.Options{})
			msg := &mailer.Message{
				From: "Newsletter <news@example.org>", To: "ana@example.net", Subject: "Our March news",
				Text: "Hello Ana,\n\nHere is what happened this month.\n\nUnsubscribe: https://example.org/u/tok\n",
				HTML: "<p>Hello Ana,</p><p>Here is what happened this month.</p><p><a href=\"https://example.org/u/tok\">Unsubscribe</a></p>",
				Headers: map[string]string{
					"List-Unsubscribe":      "<https://example.org/u/tok>",
					"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
					"List-Id":               "<news.example.org>",
				},
			}
			b.SetParallelism(8) // 8×GOMAXPROCS senders, as a queue's workers would be
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.Send(context.Background(), msg); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
