// Package dnstest runs a real DNS server (github.com/miekg/dns) on loopback for tests:
// UDP and TCP on one 127.0.0.1 port, answering from records the test adds, stopped by
// the test's cleanup. Names without records get NXDOMAIN; names listed in ServFail get
// SERVFAIL.
package dnstest

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Server is a running DNS server.
type Server struct {
	addr string
	mu   sync.Mutex
	rrs  []dns.RR
	fail map[string]bool
}

// New starts a Server and registers its shutdown with tb.Cleanup.
func New(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{fail: map[string]bool{}}
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ; try++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			tb.Fatalf("dnstest: %v", err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if try == 10 {
			tb.Fatalf("dnstest: no port free for both UDP and TCP: %v", err)
		}
	}
	s.addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: s}, {Listener: ln, Handler: s}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan error, 1)
		go func() { done <- srv.ActivateAndServe() }()
		<-started
		tb.Cleanup(func() {
			srv.Shutdown()
			<-done
		})
	}
	return s
}

// Addr returns "127.0.0.1:PORT".
func (s *Server) Addr() string { return s.addr }

// Add adds records written as in a zone file, e.g.
// `example.org. 300 IN TXT "v=spf1 -all"`.
func (s *Server) Add(tb testing.TB, records ...string) {
	tb.Helper()
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			tb.Fatalf("dnstest: record %q: %v", r, err)
		}
		s.mu.Lock()
		s.rrs = append(s.rrs, rr)
		s.mu.Unlock()
	}
}

// AddTXT adds a TXT record at name holding value, cut into strings of at most 255
// bytes as DNS requires (long DKIM keys need it).
func (s *Server) AddTXT(name, value string) {
	txt := &dns.TXT{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}}
	for len(value) > 255 {
		txt.Txt = append(txt.Txt, value[:255])
		value = value[255:]
	}
	txt.Txt = append(txt.Txt, value)
	s.mu.Lock()
	s.rrs = append(s.rrs, txt)
	s.mu.Unlock()
}

// Remove deletes the records of type qtype (dns.TypeTXT…) at name.
func (s *Server) Remove(name string, qtype uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.rrs[:0]
	for _, rr := range s.rrs {
		if !(strings.EqualFold(rr.Header().Name, dns.Fqdn(name)) && rr.Header().Rrtype == qtype) {
			kept = append(kept, rr)
		}
	}
	s.rrs = kept
}

// ServFail makes every query for name answer SERVFAIL.
func (s *Server) ServFail(name string) {
	s.mu.Lock()
	s.fail[strings.ToLower(dns.Fqdn(name))] = true
	s.mu.Unlock()
}

// ServeDNS answers from the records.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative, m.RecursionAvailable = true, true
	s.mu.Lock()
	for _, q := range req.Question {
		if s.fail[strings.ToLower(q.Name)] {
			m.Rcode = dns.RcodeServerFailure
			continue
		}
		exists := false
		for _, rr := range s.rrs {
			if !strings.EqualFold(rr.Header().Name, q.Name) {
				continue
			}
			exists = true
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, dns.Copy(rr))
			}
		}
		if !exists {
			m.Rcode = dns.RcodeNameError
		}
	}
	s.mu.Unlock()
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		m.Truncate(dns.MinMsgSize) // large answers make the client retry over TCP
	}
	w.WriteMsg(m)
}
