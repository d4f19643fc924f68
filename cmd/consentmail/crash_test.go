package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"consentmail/mailer/smtptest"
)

// childEnv makes the test binary act as the consentmail binary (see TestMain), so a
// test can kill a real server process with SIGKILL.
const childEnv = "CONSENTMAIL_TEST_CHILD_ARGS"

func TestMain(m *testing.M) {
	if os.Getenv(floorEnv) != "" {
		serveFloor()
		os.Exit(0)
	}
	if args := os.Getenv(childEnv); args != "" {
		var environ []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, childEnv+"=") {
				environ = append(environ, kv)
			}
		}
		// As main does: SIGTERM and interrupt stop the child gracefully.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := run(ctx, append([]string{"consentmail"}, strings.Fields(args)...), environ, os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startChild runs `consentmail serve` as a separate process and returns its base URL.
func startChild(tb testing.TB, env map[string]string) (*exec.Cmd, string) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=serve")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out := newLockedBuffer()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tb.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	base := out.waitFor(tb, regexp.MustCompile(`public base URL (http://[^\s)]+)`), done)
	return cmd, base
}

// TestKill9AfterAcceptedLosesNothing: every signup answered 202 is durable with its
// ledger event and its queued confirmation, even when the process is killed with
// SIGKILL right after the last answer.
func TestKill9AfterAcceptedLosesNothing(t *testing.T) {
	dir := t.TempDir()
	// The relay is down while the first process runs, so every confirmation must
	// still be in the queue when it dies.
	env := serveEnv(dir, "smtp://"+closedPort(t)+"?tls=none")
	setup := startServer(t, env, "serve")
	newClient(t, setup.BaseURL).createList("weekly")
	setup.Stop(t)

	child, base := startChild(t, env)
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				body := fmt.Sprintf(`{"email":"crash-%03d@example.org","lists":["weekly"],"consent":true}`, i)
				res, err := http.Post(base+"/api/v1/signups", "application/json", strings.NewReader(body))
				if err != nil {
					errs <- err.Error()
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusAccepted {
					errs <- fmt.Sprintf("status %d", res.StatusCode)
				}
			}
		}(w)
	}
	wg.Wait()
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	close(errs)
	for e := range errs {
		t.Fatalf("signup failed before the kill: %s", e)
	}

	sink := smtptest.New(t)
	srv := startServer(t, serveEnv(dir, sink.URL()), "serve")
	c := newClient(t, srv.BaseURL)
	msgs := sink.WaitFor(t, n, 60*time.Second)
	got := map[string]bool{}
	for _, m := range msgs {
		got[m.To[0]] = true
	}
	for i := 0; i < n; i++ {
		if e := fmt.Sprintf("crash-%03d@example.org", i); !got[e] {
			t.Errorf("no confirmation mail for %s after the crash", e)
		}
	}
	var verify struct {
		OK     bool `json:"ok"`
		Events int  `json:"events"`
	}
	c.admin("GET", "/api/v1/ledger/verify", "", &verify)
	signups := 0
	for cursor := ""; ; {
		var page struct {
			Items      []ledgerEvent `json:"items"`
			NextCursor string        `json:"next_cursor"`
		}
		c.admin("GET", "/api/v1/ledger?type=signup&limit=1000&cursor="+cursor, "", &page)
		signups += len(page.Items)
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if !verify.OK || signups != n {
		t.Fatalf("after the crash: verify ok=%v, %d signup events; want ok and %d", verify.OK, signups, n)
	}
}
