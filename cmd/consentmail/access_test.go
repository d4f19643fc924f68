package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"consentmail/mailer/smtptest"
	"consentmail/queue/queuetest"
)

// Failed authentication is throttled per client: after 10 bad keys in a minute the
// client gets 429 with Retry-After, even with a good key; other clients do not.
func TestFailedAuthenticationIsThrottledPerClient(t *testing.T) {
	sink := smtptest.New(t)
	env := serveEnv(t.TempDir(), sink.URL())
	env["CONSENTMAIL_TRUSTED_PROXIES"] = "127.0.0.1"
	srv := startServer(t, env, "serve")
	c := newClient(t, srv.BaseURL)
	for i := 0; i < 10; i++ {
		st, _ := c.do("GET", "/api/v1/lists", "", "", "Authorization", fmt.Sprintf("Bearer cmk_guess_%032d", i),
			"X-Forwarded-For", "198.51.100.1")
		if st != http.StatusUnauthorized {
			t.Fatalf("bad key %d: %d, want 401", i, st)
		}
	}
	req, _ := http.NewRequest("GET", c.base+"/api/v1/lists", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	req.Header.Set("X-Forwarded-For", "198.51.100.1")
	res, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("good key after 10 failures: %d (Retry-After %q), want 429 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}
	st, _ := c.do("GET", "/api/v1/lists", "", "", "Authorization", "Bearer "+testAdminKey, "X-Forwarded-For", "198.51.100.2")
	if st != http.StatusOK {
		t.Fatalf("good key from another client: %d, want 200", st)
	}
}

// Changing CONSENTMAIL_ADMIN_API_KEY revokes the key it named before; unsetting it
// revokes it too.
func TestChangedBootstrapKeyRevokesThePrevious(t *testing.T) {
	sink := smtptest.New(t)
	dir := t.TempDir()
	keyA, keyB := "cmk_bootstrap_key_A_0123456789", "cmk_bootstrap_key_B_0123456789"
	status := func(c *client, key string) int {
		st, _ := c.do("GET", "/api/v1/lists", "", "", "Authorization", "Bearer "+key)
		return st
	}
	env := serveEnv(dir, sink.URL())
	env["CONSENTMAIL_ADMIN_API_KEY"] = keyA
	srv := startServer(t, env, "serve")
	if st := status(newClient(t, srv.BaseURL), keyA); st != http.StatusOK {
		t.Fatalf("key A while configured: %d, want 200", st)
	}
	srv.Stop(t)

	env["CONSENTMAIL_ADMIN_API_KEY"] = keyB
	srv = startServer(t, env, "serve")
	c := newClient(t, srv.BaseURL)
	if st := status(c, keyA); st != http.StatusUnauthorized {
		t.Errorf("key A after the change to B: %d, want 401", st)
	}
	if st := status(c, keyB); st != http.StatusOK {
		t.Errorf("key B: %d, want 200", st)
	}
	srv.Stop(t)

	delete(env, "CONSENTMAIL_ADMIN_API_KEY")
	srv = startServer(t, env, "serve")
	if st := status(newClient(t, srv.BaseURL), keyB); st != http.StatusUnauthorized {
		t.Errorf("key B once the variable is unset: %d, want 401", st)
	}
}

// /readyz names what is down, and no internal address or error text.
func TestReadyzSaysWhatIsDownWithoutInternals(t *testing.T) {
	rs, err := queuetest.StartRedis()
	if err != nil {
		t.Skipf("redis-server: %v", err)
	}
	defer rs.Stop()
	sink := smtptest.New(t)
	env := serveEnv(t.TempDir(), sink.URL())
	env["CONSENTMAIL_REDIS_URL"] = "redis://" + rs.Addr + "/0"
	srv := startServer(t, env, "serve")
	c := newClient(t, srv.BaseURL)
	if st, body := c.do("GET", "/readyz", "", ""); st != http.StatusOK {
		t.Fatalf("readyz with Redis up: %d %s", st, body)
	}
	rs.Stop()
	st, body := c.do("GET", "/readyz", "", "")
	var got struct {
		Status string   `json:"status"`
		Down   []string `json:"down"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || st != http.StatusServiceUnavailable ||
		got.Status != "not_ready" || strings.Join(got.Down, ",") != "redis" {
		t.Fatalf("readyz with Redis down: %d %s; want 503 with status not_ready and down [redis]", st, body)
	}
	_, port, _ := strings.Cut(rs.Addr, ":")
	for _, internal := range []string{"127.0.0.1", port, "dial", "refused", "tcp"} {
		if strings.Contains(body, internal) {
			t.Errorf("readyz body %s contains %q", body, internal)
		}
	}
}
