package clientip_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"consentmail/preferences/clientip"
)

func TestResolve(t *testing.T) {
	trusted, err := clientip.ParseTrusted([]string{"127.0.0.1", "10.0.0.0/8", "2001:db8:ff::/48"})
	if err != nil {
		t.Fatal(err)
	}
	r := clientip.New(trusted)
	tests := []struct {
		name string
		peer string
		xff  []string
		want string
	}{
		{"untrusted peer: header ignored", "192.0.2.9", []string{"198.51.100.1"}, "192.0.2.9"},
		{"no header", "127.0.0.1", nil, "127.0.0.1"},
		{"one hop", "127.0.0.1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"left part is the client's text", "127.0.0.1", []string{"6.6.6.6, 198.51.100.1"}, "198.51.100.1"},
		{"trusted hops skipped", "127.0.0.1", []string{"6.6.6.6, 198.51.100.1, 10.1.2.3"}, "198.51.100.1"},
		{"several headers", "127.0.0.1", []string{"6.6.6.6", "198.51.100.1, 10.1.2.3"}, "198.51.100.1"},
		{"with port", "127.0.0.1", []string{"198.51.100.1:4711"}, "198.51.100.1"},
		{"ipv6 with port", "127.0.0.1", []string{"[2001:db8::7]:4711"}, "2001:db8::7"},
		{"mapped ipv4", "127.0.0.1", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
		{"trusted ipv6 proxy", "127.0.0.1", []string{"2001:db8::7, 2001:db8:ff::1"}, "2001:db8::7"},
		{"garbage rightmost: the proxy", "127.0.0.1", []string{"<script>"}, "127.0.0.1"},
		{"garbage behind a trusted hop: that hop", "127.0.0.1", []string{"junk, 10.9.9.9"}, "10.9.9.9"},
		{"all trusted: the leftmost", "127.0.0.1", []string{"10.0.0.1, 10.0.0.2"}, "10.0.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := r.Resolve(netip.MustParseAddr(tc.peer), tc.xff)
			if got.String() != tc.want {
				t.Errorf("Resolve(%s, %q) = %s, want %s", tc.peer, tc.xff, got, tc.want)
			}
		})
	}
	if got := clientip.New(nil).Resolve(netip.MustParseAddr("127.0.0.1"), []string{"198.51.100.1"}); got.String() != "127.0.0.1" {
		t.Errorf("without trusted proxies: %s, want the peer", got)
	}
	if _, err := clientip.ParseTrusted([]string{"proxy.example"}); err == nil {
		t.Errorf("ParseTrusted accepted a host name")
	}
}

func TestKey(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.1":         "198.51.100.1",
		"::ffff:198.51.100.1":  "198.51.100.1",
		"2001:db8:1:2::1":      "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::9": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":      "2001:db8:1:3::/64",
		"fe80::1%eth0":         "fe80::/64",
		"not an address":       "not an address",
	} {
		if got := clientip.Key(in); got != want {
			t.Errorf("Key(%q) = %q, want %q", in, got, want)
		}
	}
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestLimiterPerClientAndPer64(t *testing.T) {
	clk := &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := clientip.NewLimiter(2, time.Minute, 0, clk.now)
	for i, ip := range []string{"2001:db8::1", "2001:db8::2"} {
		if ok, _ := l.Allow(ip); !ok {
			t.Fatalf("take %d: refused", i)
		}
	}
	ok, wait := l.Allow("2001:db8::3")
	if ok || wait <= 0 || wait > 30*time.Second {
		t.Fatalf("third take in one /64: ok %v wait %v, want refused for up to 30s", ok, wait)
	}
	if ok, _ := l.Allow("2001:db8:0:1::1"); !ok {
		t.Fatalf("another /64 refused")
	}
	if w := l.Wait("2001:db8::9"); w <= 0 {
		t.Fatalf("Wait for an empty bucket: %v, want > 0", w)
	}
	clk.t = clk.t.Add(30 * time.Second)
	if w := l.Wait("2001:db8::9"); w != 0 {
		t.Fatalf("Wait after a refill: %v, want 0", w)
	}
}

// Memory stays bounded however many clients come, and the clients seen recently keep
// their count.
func TestLimiterMemoryIsBounded(t *testing.T) {
	clk := &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	const max = 1000
	l := clientip.NewLimiter(1, time.Hour, max, clk.now)
	for i := 0; i < 100_000; i++ {
		l.Allow(fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255))
		if i%500 == 0 {
			if ok, _ := l.Allow("198.51.100.1"); ok && i > 0 {
				t.Fatalf("after %d other clients the busy client got a second token within the hour", i)
			}
		}
		if n := l.Len(); n > max {
			t.Fatalf("%d clients remembered, bound %d", n, max)
		}
	}
	clk.t = clk.t.Add(2 * time.Hour)
	l.Allow("198.51.100.2")
	if n := l.Len(); n != 1 {
		t.Fatalf("after an idle period: %d clients remembered, want 1", n)
	}
}
