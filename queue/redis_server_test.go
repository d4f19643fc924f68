package queue_test

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"consentmail/queue/queuetest"
)

// This file gives the package's tests a private redis-server on a free loopback port,
// started on first use and killed by TestMain when the tests are done. Each test keeps
// to its own key prefix (newRedisPrefix), so tests share the server in parallel.

var (
	redisOnce   sync.Once
	redisServer *queuetest.RedisServer // set by redisOnce
	redisErr    error                  // set by redisOnce
	prefixSeq   atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if redisServer != nil {
		redisServer.Stop()
	}
	os.Exit(code)
}

// redisAddr returns the address of the package's redis-server, starting it if needed.
// Without a redis-server binary the test is skipped, unless it runs in CI.
func redisAddr(tb testing.TB) string {
	tb.Helper()
	redisOnce.Do(func() { redisServer, redisErr = queuetest.StartRedis() })
	if errors.Is(redisErr, queuetest.ErrNoRedisServer) && os.Getenv("CI") == "" {
		tb.Skipf("%v: install Redis to run the Redis queue tests", redisErr)
	}
	if redisErr != nil {
		tb.Fatalf("start redis-server: %v", redisErr)
	}
	return redisServer.Addr
}

// newRedisClient returns a client of the package's redis-server, closed at cleanup.
func newRedisClient(tb testing.TB, db int) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: redisAddr(tb), DB: db})
	tb.Cleanup(func() { c.Close() })
	return c
}

// newRedisPrefix returns a key prefix no other test uses.
func newRedisPrefix(tb testing.TB) string {
	return fmt.Sprintf("test:%s:%d:", tb.Name(), prefixSeq.Add(1))
}
