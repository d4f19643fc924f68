package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"consentmail/mailer/smtptest"
)

// signupFrom signs email up to list as a request that came through the proxy with
// the X-Forwarded-For value xff, and returns the status.
func (c *client) signupFrom(xff, email, list string) (int, http.Header) {
	c.tb.Helper()
	req, err := http.NewRequest("POST", c.base+"/api/v1/signups", strings.NewReader(
		fmt.Sprintf(`{"email":%q,"lists":[%q],"consent":true}`, email, list)))
	if err != nil {
		c.tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", xff)
	res, err := c.http.Do(req)
	if err != nil {
		c.tb.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode, res.Header
}

// Behind trusted proxies the client is the rightmost X-Forwarded-For hop that is not
// one of them, parsed: what the client writes to the left changes nothing, the
// ledger's ip is always an address, and IPv6 clients are counted per /64.
func TestClientIPBehindTrustedProxies(t *testing.T) {
	sink := smtptest.New(t)
	env := serveEnv(t.TempDir(), sink.URL())
	env["CONSENTMAIL_TRUSTED_PROXIES"] = "127.0.0.1, 10.0.0.0/8"
	env["CONSENTMAIL_SIGNUP_RATE"] = "3/min"
	srv := startServer(t, env, "serve")
	c := newClient(t, srv.BaseURL)
	c.createList("weekly")

	// One client behind two proxies (10.0.0.5 is trusted) varies the part it writes.
	for i := 1; i <= 4; i++ {
		xff := fmt.Sprintf("198.51.100.%d, 203.0.113.7, 10.0.0.5", i)
		st, h := c.signupFrom(xff, fmt.Sprintf("left-%d@example.org", i), "weekly")
		want := http.StatusAccepted
		if i == 4 {
			want = http.StatusTooManyRequests
		}
		if st != want {
			t.Fatalf("signup %d with X-Forwarded-For %q: %d, want %d", i, xff, st, want)
		}
		if st == http.StatusTooManyRequests && h.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After")
		}
	}
	// IPv6 addresses of one /64 share the limit.
	for i := 1; i <= 4; i++ {
		xff := fmt.Sprintf("2001:db8:1:2::%x", i*0x1111)
		st, _ := c.signupFrom(xff, fmt.Sprintf("six-%d@example.org", i), "weekly")
		want := http.StatusAccepted
		if i == 4 {
			want = http.StatusTooManyRequests
		}
		if st != want {
			t.Fatalf("signup %d from %s: %d, want %d (one /64, 3/min)", i, xff, st, want)
		}
	}
	if st, _ := c.signupFrom("2001:db8:1:3::1", "other64@example.org", "weekly"); st != http.StatusAccepted {
		t.Fatalf("signup from another /64: %d, want 202", st)
	}
	// Text that is no address never reaches the ledger.
	if st, _ := c.signupFrom("<script>x</script>, not-an-ip", "garbage@example.org", "weekly"); st != http.StatusAccepted {
		t.Fatalf("signup with a garbled header: %d, want 202", st)
	}

	want := map[string]string{"left-1@example.org": "203.0.113.7", "six-1@example.org": "2001:db8:1:2::1111",
		"other64@example.org": "2001:db8:1:3::1", "garbage@example.org": "127.0.0.1"}
	for email, ip := range want {
		var found struct {
			ID string `json:"id"`
		}
		if st := c.admin("GET", "/api/v1/subscribers/lookup?email="+email, "", &found); st != http.StatusOK {
			t.Fatalf("lookup %s: %d", email, st)
		}
		ev := c.ledger("type=signup&subscriber=" + found.ID)
		if len(ev) != 1 || ev[0].IP != ip {
			t.Errorf("%s: signup events %+v, want one with ip %s", email, ev, ip)
		}
	}
}
