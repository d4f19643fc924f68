package mailer_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"testing"

	"consentmail/mailer"
	"consentmail/mailer/smtptest"
)

// fakeRelay is a scripted SMTP server for what go-smtp cannot be made to do: offer
// fewer extensions, refuse at greeting, lose the reply to a message.
type fakeRelay struct {
	addr     string
	exts     []string
	greeting string
	// reply answers the end of message n (0-based); "" closes the connection instead.
	reply func(n int) string
	// tls, when set, is offered with STARTTLS, or spoken from the start if implicit.
	tls      *tls.Config
	implicit bool

	mu    sync.Mutex
	msgs  []string
	conns int
}

func startFake(tb testing.TB, f *fakeRelay) *fakeRelay {
	tb.Helper()
	if f.greeting == "" {
		f.greeting = "220 fake ESMTP"
	}
	if f.reply == nil {
		f.reply = func(int) string { return "250 2.0.0 queued" }
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	f.addr = ln.Addr().String()
	if f.tls != nil && f.implicit {
		ln = tls.NewListener(ln, f.tls)
	}
	var wg sync.WaitGroup
	tb.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns++
			f.mu.Unlock()
			wg.Go(func() { f.serve(nc) })
		}
	})
	return f
}

func (f *fakeRelay) serve(nc net.Conn) {
	defer nc.Close()
	t := textproto.NewConn(nc)
	t.PrintfLine("%s", f.greeting)
	if !strings.HasPrefix(f.greeting, "220") {
		return
	}
	for {
		line, err := t.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "STARTTLS":
			t.PrintfLine("220 go ahead")
			tc := tls.Server(nc, f.tls)
			if tc.Handshake() != nil {
				return
			}
			nc, t = tc, textproto.NewConn(tc)
		case "EHLO":
			lines := append([]string{"fake"}, f.exts...)
			if _, ok := nc.(*tls.Conn); !ok && f.tls != nil && !f.implicit {
				lines = append(lines, "STARTTLS")
			}
			for i, l := range lines {
				sep := "-"
				if i == len(lines)-1 {
					sep = " "
				}
				t.PrintfLine("250%s%s", sep, l)
			}
		case "HELO", "MAIL", "RCPT", "RSET", "NOOP":
			t.PrintfLine("250 OK")
		case "DATA":
			t.PrintfLine("354 go on")
			b, err := t.ReadDotBytes()
			if err != nil || !f.finish(t, string(b)) {
				return
			}
		case "BDAT":
			sizeStr, _, _ := strings.Cut(arg, " ")
			size, _ := strconv.Atoi(sizeStr)
			b := make([]byte, size)
			if _, err := io.ReadFull(t.R, b); err != nil || !f.finish(t, string(b)) {
				return
			}
		case "QUIT":
			t.PrintfLine("221 bye")
			return
		default:
			t.PrintfLine("500 what?")
		}
	}
}

// finish stores a message and answers it; false means hang up.
func (f *fakeRelay) finish(t *textproto.Conn, msg string) bool {
	f.mu.Lock()
	n := len(f.msgs)
	f.msgs = append(f.msgs, strings.ReplaceAll(msg, "\r\n", "\n"))
	f.mu.Unlock()
	r := f.reply(n)
	if r == "" {
		return false
	}
	t.PrintfLine("%s", r)
	return true
}

func (f *fakeRelay) stats() (msgs []string, conns int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.msgs...), f.conns
}

func TestTransactionModes(t *testing.T) {
	tests := []struct {
		name string
		exts []string
	}{
		{"plain DATA", nil},
		{"pipelined DATA", []string{"PIPELINING", "8BITMIME"}},
		{"pipelined BDAT", []string{"PIPELINING", "CHUNKING", "8BITMIME"}},
		{"CHUNKING without PIPELINING uses DATA", []string{"CHUNKING"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, &fakeRelay{exts: tc.exts})
			s := newSender(t, relaysOf(t, "smtp://"+f.addr), mailer.Options{})
			for i := range 3 {
				err := s.Send(context.Background(), &mailer.Message{
					From: "news@example.org", To: "ana@example.org", Subject: "n" + strconv.Itoa(i),
					Text: "first\n.second starts with a dot\n..\n.",
				})
				if err != nil {
					t.Fatalf("Send %d: %v", i, err)
				}
			}
			msgs, conns := f.stats()
			if len(msgs) != 3 || conns != 1 {
				t.Fatalf("relay got %d messages over %d connections, want 3 over 1", len(msgs), conns)
			}
			for i, m := range msgs {
				if !strings.Contains(m, "Subject: n"+strconv.Itoa(i)+"\n") || !strings.Contains(m, "\n.second starts with a dot\n..\n.") {
					t.Errorf("message %d arrived altered:\n%s", i, m)
				}
			}
		})
	}
}

func TestLostReplyIsReportedNotResent(t *testing.T) {
	tests := []struct {
		name string
		exts []string
	}{
		{"DATA", nil},
		{"pipelined BDAT", []string{"PIPELINING", "CHUNKING"}},
	}
	for _, tc := range tests {
		exts := tc.exts
		t.Run(tc.name, func(t *testing.T) {
			// The relay hangs up after receiving the whole message: it may have queued
			// it. Sending it again, here or elsewhere, could deliver it twice.
			f := startFake(t, &fakeRelay{exts: exts, reply: func(n int) string {
				if n == 0 {
					return ""
				}
				return "250 OK"
			}})
			sink := smtptest.New(t)
			s := newSender(t, relaysOf(t, "smtp://"+f.addr+","+sink.URL()), mailer.Options{})
			err := s.Send(context.Background(), &mailer.Message{From: "news@example.org", To: "ana@example.org", Subject: "s", Text: "t"})
			var se *mailer.SendError
			if !errors.As(err, &se) || !se.Temporary || se.Code != 0 {
				t.Fatalf("err = %v, want a temporary *SendError without code", err)
			}
			if msgs, _ := f.stats(); len(msgs) != 1 {
				t.Errorf("relay got %d copies, want 1", len(msgs))
			}
			if n := sink.Received(); n != 0 {
				t.Errorf("second relay got %d copies, want 0", n)
			}
			// The relay is healthy again: the next message goes through a new connection.
			if err := s.Send(context.Background(), &mailer.Message{From: "news@example.org", To: "bob@example.org", Subject: "s", Text: "t"}); err != nil {
				t.Fatal(err)
			}
			if msgs, conns := f.stats(); len(msgs) != 2 || conns != 2 {
				t.Errorf("relay got %d messages over %d connections, want 2 over 2", len(msgs), conns)
			}
		})
	}
}

func TestGreeting421FailsOver(t *testing.T) {
	busy := startFake(t, &fakeRelay{greeting: "421 4.3.2 too busy"})
	sink := smtptest.New(t)
	s := newSender(t, relaysOf(t, "smtp://"+busy.addr+","+sink.URL()), mailer.Options{})
	if err := s.Send(context.Background(), &mailer.Message{From: "news@example.org", To: "ana@example.org", Subject: "s", Text: "t"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	sink.WaitFor(t, 1, wait)
}

func TestCancelInterruptsAStalledRelay(t *testing.T) {
	received, release := make(chan struct{}), make(chan struct{})
	f := startFake(t, &fakeRelay{exts: []string{"PIPELINING", "CHUNKING"}, reply: func(int) string {
		close(received)
		<-release // never answers until the test ends
		return ""
	}})
	t.Cleanup(func() { close(release) }) // runs before the fake's cleanup waits for it
	s := newSender(t, relaysOf(t, "smtp://"+f.addr), mailer.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Send(ctx, &mailer.Message{From: "news@example.org", To: "ana@example.org", Subject: "s", Text: "t"})
	}()
	<-received
	cancel()
	err := <-done // without the interruption this would wait for Options.Timeout (30 s)
	if !errors.Is(err, context.Canceled) || !mailer.IsTemporary(err) || !strings.Contains(err.Error(), "delivery unknown") {
		t.Errorf("err = %v, want temporary, context.Canceled, delivery unknown", err)
	}
}

func TestTLS(t *testing.T) {
	serverTLS, clientTLS := smtptest.SelfSigned(t)
	tests := []struct {
		name      string
		relay     *fakeRelay
		query     string
		clientTLS *tls.Config
		ok        bool
	}{
		{"starttls", &fakeRelay{tls: serverTLS}, "?tls=starttls", clientTLS, true},
		{"implicit tls", &fakeRelay{tls: serverTLS, implicit: true}, "?tls=tls", clientTLS, true},
		{"starttls required but not offered", &fakeRelay{}, "?tls=starttls", clientTLS, false},
		{"untrusted certificate", &fakeRelay{tls: serverTLS, implicit: true}, "?tls=tls", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, tc.relay)
			s := newSender(t, relaysOf(t, "smtp://"+f.addr+tc.query), mailer.Options{TLSConfig: tc.clientTLS})
			err := s.Send(context.Background(), &mailer.Message{From: "news@example.org", To: "ana@example.org", Subject: "s", Text: "t"})
			if tc.ok {
				for range 2 { // and the TLS connection is reused
					if err == nil {
						err = s.Send(context.Background(), &mailer.Message{From: "news@example.org", To: "ana@example.org", Subject: "s", Text: "t"})
					}
				}
				if msgs, conns := f.stats(); err != nil || len(msgs) != 3 || conns != 1 {
					t.Fatalf("Send = %v, relay got %d messages over %d connections; want nil, 3, 1", err, len(msgs), conns)
				}
				return
			}
			msgs, _ := f.stats()
			if err == nil || !mailer.IsTemporary(err) || len(msgs) != 0 {
				t.Fatalf("Send = %v, relay got %d messages; want a temporary error and 0", err, len(msgs))
			}
		})
	}
}
