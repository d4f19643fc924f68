package queue_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"consentmail/queue"
)

// BenchmarkRedisRoundTrip measures the whole path on the package's local
// redis-server: producers enqueue one message per call, consumers reserve in batches
// and ack each batch in one call. Compare with BenchmarkBoltRoundTrip.
func BenchmarkRedisRoundTrip(b *testing.B) {
	for _, producers := range []int{64, 256} {
		b.Run(fmt.Sprintf("producers=%d", producers), func(b *testing.B) {
			const consumers, batch = 4, 64
			q := newRedisQueue(b, newRedisClient(b, 0), queue.RedisOptions{
				Prefix: newRedisPrefix(b), Visibility: time.Hour,
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var (
				acked atomic.Int64
				wg    sync.WaitGroup
				total = int64(b.N)
			)
			b.ReportAllocs()
			b.ResetTimer()
			for c := range consumers {
				wg.Go(func() {
					for acked.Load() < total {
						ds, err := q.Reserve(ctx, batch)
						if err != nil {
							if ctx.Err() == nil {
								b.Errorf("consumer %d: %v", c, err)
							}
							return
						}
						if err := q.Ack(context.Background(), ds...); err != nil {
							b.Errorf("consumer %d: %v", c, err)
							return
						}
						if acked.Add(int64(len(ds))) >= total {
							cancel()
						}
					}
				})
			}
			var next atomic.Int64
			for range producers {
				wg.Go(func() {
					m := queue.Message{Kind: "optin", Priority: queue.High, Body: benchBody}
					for next.Add(1) <= total {
						if err := q.Enqueue(context.Background(), m); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
