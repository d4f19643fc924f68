package queue_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"consentmail/queue"
)

// benchBody is the size of a confirmation message's body: ids and a token, no PII.
var benchBody = make([]byte, 96)

func newBenchBolt(b *testing.B) *boltStore {
	b.Helper()
	return newBoltStore(b, queue.BoltOptions{Visibility: time.Hour})
}

// BenchmarkBoltEnqueue measures producers enqueuing one message per call, as signup
// handlers do, with many of them in flight so that db.Batch group-commits.
func BenchmarkBoltEnqueue(b *testing.B) {
	for _, producers := range []int{64, 256} {
		b.Run(fmt.Sprintf("producers=%d", producers), func(b *testing.B) {
			s := newBenchBolt(b)
			ctx := context.Background()
			b.SetParallelism(max(producers/runtimeProcs(), 1))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				m := queue.Message{Kind: "optin", Priority: queue.High, Body: benchBody}
				for pb.Next() {
					if err := s.q.Enqueue(ctx, m); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkBoltRoundTrip measures the whole path: producers enqueue one message per
// call, consumers reserve in batches and ack each batch in one call.
func BenchmarkBoltRoundTrip(b *testing.B) {
	for _, producers := range []int{64, 256} {
		b.Run(fmt.Sprintf("producers=%d", producers), func(b *testing.B) { benchRoundTrip(b, producers) })
	}
}

func benchRoundTrip(b *testing.B, producers int) {
	const consumers, batch = 4, 64
	s := newBenchBolt(b)
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
				ds, err := s.q.Reserve(ctx, batch)
				if err != nil {
					if ctx.Err() == nil {
						b.Errorf("consumer %d: %v", c, err)
					}
					return
				}
				if err := s.q.Ack(context.Background(), ds...); err != nil {
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
				if err := s.q.Enqueue(context.Background(), m); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
