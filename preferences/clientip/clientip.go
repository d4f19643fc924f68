// Package clientip decides who the client of an HTTP request is, once for every
// handler, and counts requests per client in bounded memory.
//
// Behind proxies (CONSENTMAIL_TRUSTED_PROXIES), the client is the rightmost hop of
// X-Forwarded-For that is not a trusted proxy, parsed as an IP address: a proxy
// appends the address it received the request from, so everything left of that hop
// was written by the client and is not believed. Resolver.Middleware installs the
// answer as the request's remote address, so that Fiber's c.IP() — in the signup API,
// the forms, the confirmation, unsubscribe and preference pages, the ledger's ip and
// every rate limit — is always the resolved client and never header text.
//
// Limits count per Key: an IPv4 address, or the /64 of an IPv6 address (what one
// subscriber line is given). A Limiter keeps at most a fixed number of keys.
package clientip

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// Resolver finds the client of requests that may come through trusted proxies.
type Resolver struct{ trusted []netip.Prefix }

// ParseTrusted parses proxies given as IP addresses or CIDR prefixes.
func ParseTrusted(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address or CIDR", s)
		}
		a = a.Unmap().WithZone("")
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// New returns a Resolver that believes X-Forwarded-For only from the trusted proxies
// (none: the peer is always the client).
func New(trusted []netip.Prefix) *Resolver { return &Resolver{trusted: trusted} }

func (r *Resolver) isTrusted(a netip.Addr) bool {
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Resolve returns the client of a request that came from peer with the
// X-Forwarded-For values xff (every header of that name, in order). When the peer
// is a trusted proxy, the hops are read from the right: the first that is not a
// trusted proxy is the client. A hop that is not an IP address (or a header that
// runs out) ends the walk at the last address believed, the nearest trusted proxy.
func (r *Resolver) Resolve(peer netip.Addr, xff []string) netip.Addr {
	client := peer.Unmap().WithZone("")
	if len(r.trusted) == 0 || !r.isTrusted(client) {
		return client
	}
	for i := len(xff) - 1; i >= 0; i-- {
		hops := strings.Split(xff[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			hop, ok := parseHop(hops[j])
			if !ok {
				return client
			}
			client = hop
			if !r.isTrusted(hop) {
				return client
			}
		}
	}
	return client
}

// parseHop reads one X-Forwarded-For element: an address, with or without a port
// ("192.0.2.1:4711", "[2001:db8::1]:4711").
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

// Middleware resolves the client of each request and makes it the request's remote
// address, so that c.IP() returns it. Install it before every route; the app must not
// set Fiber's ProxyHeader (that would read the raw header again).
func (r *Resolver) Middleware() fiber.Handler {
	return func(c *fiber.Ctx) error {
		fc := c.Context()
		peer, _ := netip.AddrFromSlice(fc.RemoteIP())
		var xff []string
		if len(r.trusted) > 0 {
			for _, v := range fc.Request.Header.PeekAll(fiber.HeaderXForwardedFor) {
				xff = append(xff, string(v))
			}
		}
		client := r.Resolve(peer, xff)
		if client != peer.Unmap() {
			fc.SetRemoteAddr(&net.TCPAddr{IP: net.IP(client.AsSlice())})
		}
		return c.Next()
	}
}

// Key is what limits count by: the address of an IPv4 client, the /64 of an IPv6 one
// (a subscriber line gets a whole /64, so counting single addresses would let one
// client take 2⁶⁴ turns). Text that is not an address is its own key.
func Key(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}
