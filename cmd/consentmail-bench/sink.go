package main

import (
	"errors"
	"io"
	"log"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// sink is the SMTP server every mode sends to: go-smtp with the extensions it offers
// by default (PIPELINING, CHUNKING, 8BITMIME) and SMTPUTF8, as the dev catcher has. It
// counts messages and throws their data away without parsing it, so that the sink costs
// the same under every sender. Recipients are recipientAddr(i); the sink notes which
// were delivered, to tell duplicates and missing ones apart.
type sink struct {
	srv   *smtp.Server
	ln    net.Listener
	conns atomic.Int64 // connections accepted, all rounds
	round atomic.Pointer[round]
	errc  chan error
}

// round is one mode's count: what the sink received since reset.
type round struct {
	n          int
	seen       []atomic.Uint32 // deliveries per recipient index
	got        atomic.Int64    // messages, duplicates and unexpected recipients included
	bytes      atomic.Int64    // message data received
	distinct   atomic.Int64
	dups       atomic.Int64
	unexpected atomic.Int64 // recipients that are not recipientAddr(i) for i < n
	first      atomic.Int64 // unix nanoseconds of the first message's end of data
	nth        atomic.Int64 // … of the n-th
	done       chan struct{}
	conns0     int64 // sink.conns at reset
}

func newSink() (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{ln: ln, errc: make(chan error, 1)}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		s.conns.Add(1)
		return &session{sink: s, rcpt: -1}, nil
	}))
	srv.Domain = "consentmail-bench-sink"
	srv.MaxMessageBytes = 10 << 20
	srv.MaxRecipients = 1000
	srv.EnableSMTPUTF8 = true
	srv.ReadTimeout = 5 * time.Minute
	srv.WriteTimeout = time.Minute
	srv.ErrorLog = log.New(io.Discard, "", 0)
	s.srv = srv
	s.reset(0)
	go func() { s.errc <- srv.Serve(ln) }()
	return s, nil
}

// addr returns "127.0.0.1:PORT".
func (s *sink) addr() string { return s.ln.Addr().String() }

// reset starts a new round expecting n messages to recipients 0…n-1.
func (s *sink) reset(n int) *round {
	r := &round{n: n, seen: make([]atomic.Uint32, n), done: make(chan struct{}), conns0: s.conns.Load()}
	if n == 0 {
		close(r.done)
	}
	s.round.Store(r)
	return r
}

// connections returns the connections accepted in round r.
func (s *sink) connections(r *round) int64 { return s.conns.Load() - r.conns0 }

func (s *sink) close() error {
	err := s.srv.Close()
	if serr := <-s.errc; serr != nil && !errors.Is(serr, smtp.ErrServerClosed) && !errors.Is(serr, net.ErrClosed) {
		return serr
	}
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// add counts one message to recipient index i (-1 when unknown).
func (r *round) add(i int) {
	now := time.Now().UnixNano()
	switch {
	case i < 0 || i >= r.n:
		r.unexpected.Add(1)
	case r.seen[i].Add(1) == 1:
		r.distinct.Add(1)
	default:
		r.dups.Add(1)
	}
	switch got := r.got.Add(1); {
	case got == 1:
		r.first.Store(now)
		if r.n == 1 {
			r.nth.Store(now)
			close(r.done)
		}
	case got == int64(r.n):
		r.nth.Store(now)
		close(r.done)
	}
}

// missing returns how many of the n recipients got nothing.
func (r *round) missing() int64 { return int64(r.n) - r.distinct.Load() }

// firstAt and nthAt return the times of the first and the n-th message.
func (r *round) firstAt() time.Time { return time.Unix(0, r.first.Load()) }
func (r *round) nthAt() time.Time   { return time.Unix(0, r.nth.Load()) }

// recipientAddr is the address of audience member i, the same in every mode.
func recipientAddr(i int) string { return "bench" + strconv.Itoa(i) + "@example.org" }

// recipientIndex inverts recipientAddr; it returns -1 for any other address.
func recipientIndex(addr string) int {
	rest, ok := strings.CutPrefix(strings.ToLower(addr), "bench")
	if !ok {
		return -1
	}
	num, ok := strings.CutSuffix(rest, "@example.org")
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(num)
	if err != nil || i < 0 {
		return -1
	}
	return i
}

// session is one SMTP connection to the sink.
type session struct {
	sink *sink
	rcpt int
}

func (s *session) Mail(string, *smtp.MailOptions) error { return nil }

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.rcpt != -1 {
		return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "one recipient per message"}
	}
	s.rcpt = recipientIndex(to)
	if s.rcpt == -1 {
		s.rcpt = -2 // unknown, but given
	}
	return nil
}

func (s *session) Data(r io.Reader) error {
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		return err
	}
	i := s.rcpt
	if i < 0 {
		i = -1
	}
	rd := s.sink.round.Load()
	rd.bytes.Add(n)
	rd.add(i)
	return nil
}

func (s *session) Reset()        { s.rcpt = -1 }
func (s *session) Logout() error { return nil }
