package preferences_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkSignupParallel measures signups of distinct addresses with many requests in
// flight, as on a busy signup form: each call waits for the fsync of its transaction,
// so throughput comes from the group committer putting many signups in one fsync.
func BenchmarkSignupParallel(b *testing.B) {
	for _, inflight := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			s := newStore(b) // real bbolt file, fsync on (bbolt's default)
			mustCreateList(b, s, "news")
			ctx := context.Background()
			var n atomic.Int64
			b.SetParallelism(max(inflight/runtime.GOMAXPROCS(0), 1))
			if inflight == 1 {
				b.SetParallelism(1)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					in := signupInput(fmt.Sprintf("bench-%d@example.org", n.Add(1)), "news")
					if err := s.Signup(ctx, in, noEnqueue); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signups/s")
		})
	}
}

// BenchmarkVerifyLedger measures walking and re-hashing the whole chain.
func BenchmarkVerifyLedger(b *testing.B) {
	for _, events := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("events=%d", events), func(b *testing.B) {
			s := newStore(b)
			fillLedger(b, s, events)
			ctx := context.Background()
			for b.Loop() {
				res, err := s.VerifyLedger(ctx)
				if err != nil || !res.OK || res.Events != uint64(events) {
					b.Fatalf("VerifyLedger = %+v, %v; want OK with %d events", res, err, events)
				}
			}
			b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// fillLedger writes n signup events quickly: many writers at once, fsync off while filling.
func fillLedger(tb testing.TB, s *testStore, n int) {
	tb.Helper()
	mustCreateList(tb, s, "news")
	s.DB.NoSync = true
	defer func() { s.DB.NoSync = false }()
	const workers = 64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				in := signupInput(fmt.Sprintf("fill-%d@example.org", i), "news")
				if err := s.Signup(context.Background(), in, noEnqueue); err != nil {
					tb.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := s.DB.Sync(); err != nil {
		tb.Fatal(err)
	}
}
