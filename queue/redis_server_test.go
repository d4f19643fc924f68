package queue_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// This file gives the package's tests a private redis-server on a free loopback port,
// started on first use and killed by TestMain when the tests are done. Each test keeps
// to its own key prefix (newRedisPrefix), so tests share the server in parallel.

var (
	redisOnce   sync.Once
	redisServer *localRedis // set by redisOnce
	redisErr    error       // set by redisOnce
	prefixSeq   atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if redisServer != nil {
		redisServer.stop()
	}
	os.Exit(code)
}

// localRedis is a redis-server process owned by the tests.
type localRedis struct {
	addr string
	cmd  *exec.Cmd
	dir  string
	done chan struct{} // closed once the log reader has seen the process's output end
}

var errNoRedisServer = errors.New("redis-server not found in PATH")

// redisAddr returns the address of the package's redis-server, starting it if needed.
// Without a redis-server binary the test is skipped, unless it runs in CI.
func redisAddr(tb testing.TB) string {
	tb.Helper()
	redisOnce.Do(func() { redisServer, redisErr = startRedis() })
	if errors.Is(redisErr, errNoRedisServer) && os.Getenv("CI") == "" {
		tb.Skipf("%v: install Redis to run the Redis queue tests", redisErr)
	}
	if redisErr != nil {
		tb.Fatalf("start redis-server: %v", redisErr)
	}
	return redisServer.addr
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

func startRedis() (*localRedis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errNoRedisServer
	}
	dir, err := os.MkdirTemp("", "queue-redis-")
	if err != nil {
		return nil, err
	}
	// A port found free may be taken before redis-server binds it: try a few.
	for range 5 {
		var s *localRedis
		if s, err = launchRedis(bin, dir); err == nil {
			return s, nil
		}
	}
	os.RemoveAll(dir)
	return nil, err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// launchRedis starts redis-server and waits until it says it accepts connections and
// answers PING.
func launchRedis(bin, dir string) (*localRedis, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin,
		"--save", "", "--appendonly", "no",
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", dir, "--daemonize", "no")
	killWithParent(cmd)
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, err
	}
	pw.Close()
	s := &localRedis{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, dir: dir, done: make(chan struct{})}

	ready := make(chan error, 1)
	go func() {
		defer close(s.done)
		defer pr.Close()
		var log strings.Builder
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Ready to accept connections") {
				ready <- nil
				_, _ = io.Copy(io.Discard, pr) // keep draining, or the server blocks
				return
			}
		}
		ready <- fmt.Errorf("redis-server on port %d exited:\n%s", port, log.String())
	}()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	select {
	case err := <-ready:
		if err != nil {
			_ = cmd.Wait()
			return nil, err
		}
	case <-timeout.C:
		s.stop()
		return nil, fmt.Errorf("redis-server on port %d not ready within 10s", port)
	}
	c := redis.NewClient(&redis.Options{Addr: s.addr})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		s.stop()
		return nil, fmt.Errorf("redis-server on port %d: PING: %w", port, err)
	}
	return s, nil
}

func (s *localRedis) stop() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	<-s.done
	os.RemoveAll(s.dir)
}
