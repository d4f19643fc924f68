package deliverability

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Resolver asks one DNS server (a recursive resolver) directly, over UDP and over TCP
// when an answer is truncated. It bypasses /etc/hosts and search domains: the checks
// must see what the rest of the world sees.
type Resolver struct {
	server string
	udp    *dns.Client
	tcp    *dns.Client
}

// NewResolver returns a Resolver asking server ("host:port"); an empty server means
// the first nameserver of /etc/resolv.conf.
func NewResolver(server string) (*Resolver, error) {
	if server == "" {
		conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("no DNS server configured and none in /etc/resolv.conf: %w", err)
		}
		if len(conf.Servers) == 0 {
			return nil, errors.New("no DNS server configured and none in /etc/resolv.conf")
		}
		server = net.JoinHostPort(conf.Servers[0], conf.Port)
	}
	if _, _, err := net.SplitHostPort(server); err != nil {
		return nil, fmt.Errorf("DNS server %q is not host:port", server)
	}
	const timeout = 5 * time.Second
	return &Resolver{server: server,
		udp: &dns.Client{Net: "udp", Timeout: timeout},
		tcp: &dns.Client{Net: "tcp", Timeout: timeout}}, nil
}

// Server returns the address of the DNS server asked.
func (r *Resolver) Server() string { return r.server }

// query returns the answers of type qtype for name; none (nil, nil) when the name or
// the type does not exist, an error when the server could not say.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	in, _, err := r.udp.ExchangeContext(ctx, m, r.server)
	if err == nil && in.Truncated {
		in, _, err = r.tcp.ExchangeContext(ctx, m, r.server)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", dns.TypeToString[qtype], name, err)
	}
	switch in.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return nil, nil
	default:
		return nil, fmt.Errorf("%s %s: the DNS server answered %s", dns.TypeToString[qtype], name, dns.RcodeToString[in.Rcode])
	}
	var out []dns.RR
	for _, rr := range in.Answer {
		if rr.Header().Rrtype == qtype {
			out = append(out, rr)
		}
	}
	return out, nil
}

// TXT returns the TXT records at name, each record's strings joined (RFC 7208 §3.3).
func (r *Resolver) TXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.query(ctx, name, dns.TypeTXT)
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out, err
}

// IPs returns the IPv4 and IPv6 addresses of host; an address literal is returned as is.
func (r *Resolver) IPs(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}, nil
	}
	var out []netip.Addr
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, err := r.query(ctx, host, t)
		if err != nil {
			return nil, err
		}
		for _, rr := range rrs {
			var ip net.IP
			switch a := rr.(type) {
			case *dns.A:
				ip = a.A
			case *dns.AAAA:
				ip = a.AAAA
			}
			if addr, ok := netip.AddrFromSlice(ip); ok {
				out = append(out, addr.Unmap())
			}
		}
	}
	return out, nil
}

// MX returns the mail exchangers of name.
func (r *Resolver) MX(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.query(ctx, name, dns.TypeMX)
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.TrimSuffix(rr.(*dns.MX).Mx, "."))
	}
	return out, err
}

// PTR returns the names of ip's reverse DNS record.
func (r *Resolver) PTR(ctx context.Context, ip netip.Addr) ([]string, error) {
	rev, err := dns.ReverseAddr(ip.String())
	if err != nil {
		return nil, err
	}
	rrs, err := r.query(ctx, rev, dns.TypePTR)
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.TrimSuffix(rr.(*dns.PTR).Ptr, "."))
	}
	return out, err
}
