package preferences_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/preferences"
	"consentmail/preferences/internal/preftest"
)

// BenchmarkErasureLargeStore erases people one after another from a store of
// CONSENTMAIL_BENCH_SUBSCRIBERS confirmed subscribers (default 100,000; the README's
// figures are at 1,000,000 and 10,000,000) while signups go on, and reports the time
// of an erasure with every step done, the longest a signup waited meanwhile, and, for
// comparison, one scan of the data file: what every erasure did twice, under the write
// lock, before data keys were wrapped per group. CONSENTMAIL_BENCH_DIR keeps the store
// between runs (it is built once; a larger one takes minutes and about 1.9 GB per
// million subscribers).
//
//	CONSENTMAIL_BENCH_SUBSCRIBERS=1000000 go test ./preferences -run '^$' -bench ErasureLargeStore -benchtime 50x
func BenchmarkErasureLargeStore(b *testing.B) {
	path, ids := largeStore(b)

	s := preftest.NewStoreWith(b, path, testSecret)
	eraser := preferences.NewEraser(s.Store, nil, nil)
	ctx := context.Background()
	st, _ := os.Stat(path)

	// Signups meanwhile: the longest one is what an erasure holds up.
	var stop atomic.Bool
	var longest atomic.Int64
	var signups sync.WaitGroup
	signups.Go(func() {
		for i := 0; !stop.Load(); i++ {
			start := time.Now()
			in := signupInput(fmt.Sprintf("during-%d-%d@example.org", time.Now().UnixNano(), i), "news")
			if err := s.Signup(ctx, in, noEnqueue); err != nil {
				b.Error(err)
				return
			}
			if d := int64(time.Since(start)); d > longest.Load() {
				longest.Store(d)
			}
		}
	})
	first := mrand.IntN(len(ids)) // a store kept between runs has its earlier victims erased
	var erasures time.Duration
	b.ResetTimer()
	for i := range b.N {
		id := ids[(first+i*7919)%len(ids)] // spread over the groups
		start := time.Now()
		if _, err := eraser.Erase(ctx, id, "bench"); err != nil {
			b.Fatalf("erase %s: %v", id, err)
		}
		erasures += time.Since(start)
	}
	b.StopTimer()
	stop.Store(true)
	signups.Wait()

	// What one erasure cost before: a scan of the whole file (under the write lock).
	needle := make([]byte, 32)
	rand.Read(needle)
	start := time.Now()
	if n := scanFile(b, path, needle); n != 0 {
		b.Fatalf("found %d copies of random bytes", n)
	}
	scan := time.Since(start)
	b.ReportMetric(float64(erasures.Microseconds())/float64(b.N)/1000, "ms/erasure")
	b.ReportMetric(float64(longest.Load())/1e6, "ms-longest-signup")
	b.ReportMetric(scan.Seconds()*1000, "ms/file-scan")
	b.ReportMetric(float64(st.Size())/(1<<20), "MiB-store")
}

// BenchmarkSignupLargeStore measures signups (64 in flight, fsync on) into the store of
// CONSENTMAIL_BENCH_SUBSCRIBERS subscribers (see BenchmarkErasureLargeStore): how the
// cost of a signup grows with the store.
//
//	CONSENTMAIL_BENCH_SUBSCRIBERS=1000000 go test ./preferences -run '^$' -bench SignupLargeStore -benchtime 20000x
func BenchmarkSignupLargeStore(b *testing.B) {
	path, _ := largeStore(b)
	s := preftest.NewStoreWith(b, path, testSecret)
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			in := signupInput(fmt.Sprintf("large-%d-%d@example.org", time.Now().UnixNano(), n.Add(1)), "news")
			if err := s.Signup(ctx, in, noEnqueue); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signups/s")
}

// largeStore returns the path of the store of CONSENTMAIL_BENCH_SUBSCRIBERS (default
// 100,000) confirmed subscribers in CONSENTMAIL_BENCH_DIR (default a temporary
// directory), built if need be, and its subscribers' ids.
func largeStore(b *testing.B) (string, []string) {
	n := 100_000
	if v := os.Getenv("CONSENTMAIL_BENCH_SUBSCRIBERS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1000 {
			b.Fatalf("CONSENTMAIL_BENCH_SUBSCRIBERS=%q: want a number of at least 1000", v)
		}
	}
	dir := os.Getenv("CONSENTMAIL_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	path := filepath.Join(dir, fmt.Sprintf("erasure-%d.db", n))
	return path, buildLargeStore(b, path, n)
}

// buildLargeStore fills the store at path with n subscribers confirmed on "news" by
// import (fsync off while filling, synced at the end), unless it holds them already,
// and returns their ids.
func buildLargeStore(b *testing.B, path string, n int) []string {
	b.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, FreelistType: bbolt.FreelistMapType, NoFreelistSync: true})
	if err != nil {
		b.Fatal(err)
	}
	db.NoSync = true
	s, err := preferences.New(db, testSecret, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	ids := func() []string {
		var out []string
		db.View(func(tx *bbolt.Tx) error {
			return tx.Bucket([]byte("prefs.subscribers")).ForEach(func(k, _ []byte) error {
				out = append(out, string(k))
				return nil
			})
		})
		return out
	}
	if have := ids(); len(have) >= n {
		s.Close()
		db.Close()
		return have[:n]
	}
	if _, err := s.CreateList(ctx, preferences.List{ID: "news", Name: "News", Purpose: "news", ConsentText: "yes", Public: true}); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			rows := make([]preferences.ImportRow, 0, preferences.MaxImportBatch)
			for {
				from := int(next.Add(preferences.MaxImportBatch)) - preferences.MaxImportBatch
				if from >= n {
					return
				}
				rows = rows[:0]
				for i := from; i < min(from+preferences.MaxImportBatch, n); i++ {
					email := fmt.Sprintf("person-%d@example.org", i)
					rows = append(rows, preferences.ImportRow{Email: email, IndexKey: email, Name: "Person " + strconv.Itoa(i),
						Locale: "en", ConsentedAt: time.Now().Add(-time.Hour), ConsentSource: "bench"})
				}
				if _, err := s.Import(ctx, "news", "bench", rows, nil); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	db.NoSync = false
	if err := db.Sync(); err != nil {
		b.Fatal(err)
	}
	out := ids()
	s.Close()
	db.Close()
	return out
}

// scanFile counts the copies of needle in the file at path, reading it as the erasure
// of older versions did, 4 MiB at a time.
func scanFile(b *testing.B, path string, needle []byte) int {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4<<20+len(needle)-1)
	found := 0
	for off := int64(0); ; off += 4 << 20 {
		n, err := f.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			b.Fatal(err)
		}
		found += bytes.Count(buf[:n], needle)
		if n < len(buf) {
			return found
		}
	}
}
