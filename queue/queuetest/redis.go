package queuetest

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
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServer is a redis-server process owned by tests.
type RedisServer struct {
	Addr string // 127.0.0.1:PORT
	cmd  *exec.Cmd
	dir  string
	done chan struct{} // closed once the log reader has seen the process's output end
}

// ErrNoRedisServer is returned by StartRedis when redis-server is not installed.
var ErrNoRedisServer = errors.New("redis-server not found in PATH")

// Redis starts a private redis-server for tb, stopped at tb's cleanup, and returns its
// address. Without a redis-server binary the test is skipped, unless it runs in CI
// (CI set), where that is a failure.
func Redis(tb testing.TB) string {
	tb.Helper()
	s, err := StartRedis()
	if errors.Is(err, ErrNoRedisServer) && os.Getenv("CI") == "" {
		tb.Skipf("%v: install Redis to run this test", err)
	}
	if err != nil {
		tb.Fatalf("start redis-server: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s.Addr
}

// StartRedis starts a private redis-server on a free loopback port (no persistence)
// and waits until it answers PING. Stop it with Stop. It returns ErrNoRedisServer when
// no redis-server binary is installed.
func StartRedis() (*RedisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNoRedisServer
	}
	dir, err := os.MkdirTemp("", "consentmail-redis-")
	if err != nil {
		return nil, err
	}
	// A port found free may be taken before redis-server binds it: try a few.
	for range 5 {
		var s *RedisServer
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
func launchRedis(bin, dir string) (*RedisServer, error) {
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
	s := &RedisServer{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, dir: dir, done: make(chan struct{})}

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
		s.Stop()
		return nil, fmt.Errorf("redis-server on port %d not ready within 10s", port)
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		s.Stop()
		return nil, fmt.Errorf("redis-server on port %d: PING: %w", port, err)
	}
	return s, nil
}

// Stop kills the server and removes its directory.
func (s *RedisServer) Stop() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	<-s.done
	os.RemoveAll(s.dir)
}
