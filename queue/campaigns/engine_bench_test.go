package campaigns_test

import (
	"fmt"
	"testing"
	"time"

	"consentmail/preferences"
	"consentmail/queue/campaigns"
)

// BenchmarkCampaignSend runs whole campaigns in one process, from the store to a
// go-smtp sink: the engine, the queue, the tracker and the workers of each mode. It
// reports messages per second; the cross-process figures are cmd/consentmail-bench's.
//
//	go test ./queue/campaigns -run '^$' -bench CampaignSend -benchtime 20000x
func BenchmarkCampaignSend(b *testing.B) {
	for _, mode := range []sendMode{modeBolt, modeRedis} {
		b.Run(string(mode), func(b *testing.B) {
			e := newSendEnv(b, mode, envOptions{concurrency: 16, batch: 100, window: 20000})
			e.list("news")
			rows := make([]preferences.ImportRow, 0, preferences.MaxImportBatch)
			for i := range b.N {
				addr := fmt.Sprintf("p%07d@example.org", i)
				rows = append(rows, preferences.ImportRow{Email: addr, IndexKey: addr, Name: "Person " + addr, Locale: "en",
					Attributes: []byte(`{"city":"Lyon"}`), ConsentedAt: time.Now(), ConsentSource: "bench"})
				if len(rows) == cap(rows) || i == b.N-1 {
					if _, err := e.prefs.Import(e.ctx, "news", "bench", rows, nil); err != nil {
						b.Fatal(err)
					}
					rows = rows[:0]
				}
			}
			c := e.create(campaigns.Input{Lists: []string{"news"}, Subject: "News for {{.Subscriber.Name}}",
				HTML: `<style>p{color:#333}</style><h1>Hello {{.Subscriber.Name}}</h1><p>From {{.Subscriber.Attributes.city}}: ` +
					"lots of news this month, " + fmt.Sprint(make([]int, 200)) + `</p>`})
			b.ResetTimer()
			start := time.Now()
			e.act(c.ID, campaigns.ActionStart)
			for e.sink.Received() < b.N { // not WaitFor: it parses every kept message
				select {
				case <-e.sink.Changed():
				case <-time.After(time.Minute):
					b.Fatalf("%d of %d messages after a minute without progress", e.sink.Received(), b.N)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
