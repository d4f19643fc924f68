// Package smtptest runs a real SMTP sink on loopback for tests: a mailer.Catcher on
// 127.0.0.1:0, stopped by the test's cleanup. Tests wait on conditions (WaitFor), never
// sleep, and can make the sink answer 4xx or 5xx for chosen recipients.
package smtptest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"consentmail/mailer"
)

// Keep is how many messages a Sink keeps (older ones are dropped, still counted).
const Keep = 10000

// Sink is a running Catcher. All Catcher methods are available: Messages, Get, Wait,
// Changed, Received, Connections, DropConnections, FailRcpt, FailData, Routes.
type Sink struct {
	*mailer.Catcher
	addr *net.TCPAddr
}

// New starts a Sink on 127.0.0.1:0 and registers its shutdown with tb.Cleanup.
func New(tb testing.TB) *Sink {
	tb.Helper()
	c := mailer.NewCatcher(Keep)
	addr, err := c.Listen("127.0.0.1:0")
	if err != nil {
		tb.Fatalf("smtptest: listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("smtptest: serve: %v", err)
		}
	})
	return &Sink{Catcher: c, addr: addr.(*net.TCPAddr)}
}

// Addr returns "127.0.0.1:PORT".
func (s *Sink) Addr() string { return s.addr.String() }

// Host returns "127.0.0.1".
func (s *Sink) Host() string { return s.addr.IP.String() }

// Port returns the port the sink listens on.
func (s *Sink) Port() int { return s.addr.Port }

// URL returns the sink as a CONSENTMAIL_SMTP_URL element, smtp://127.0.0.1:PORT?tls=none.
func (s *Sink) URL() string { return "smtp://" + s.Addr() + "?tls=none" }

// Relay returns the sink as a mailer.Relay with maxConns connections (0: the default).
func (s *Sink) Relay(maxConns int) mailer.Relay {
	return mailer.Relay{Host: s.Host(), Port: s.Port(), TLS: mailer.TLSNone, MaxConns: maxConns}
}

// WaitFor waits until the sink has received at least n messages in all and returns the
// kept ones, newest first; after timeout it fails the test, saying how many arrived.
func (s *Sink) WaitFor(tb testing.TB, n int, timeout time.Duration) []mailer.CaughtMessage {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		ch := s.Changed()
		if s.Received() >= n {
			return s.Messages()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			tb.Fatalf("smtptest: after %v got %d message(s), want %d", timeout, s.Received(), n)
			return nil
		}
	}
}

// Reject returns a FaultFunc answering code (e.g. 451 or 550) for the given recipients
// (envelope addresses as sent, without angle brackets) and accepting the others. Use it
// with FailRcpt or FailData.
func Reject(code int, rcpts ...string) mailer.FaultFunc {
	if code < 400 || code > 599 {
		panic(fmt.Sprintf("smtptest: reply code %d is not 4xx or 5xx", code))
	}
	set := make(map[string]bool, len(rcpts))
	for _, r := range rcpts {
		set[r] = true
	}
	return func(rcpt string) *smtp.SMTPError {
		if !set[rcpt] {
			return nil
		}
		return &smtp.SMTPError{Code: code, Message: "smtptest: rejected " + strconv.Quote(rcpt)}
	}
}

// Deliver sends raw from the null sender (as reports come) to rcpt at the SMTP server
// at addr, and returns the server's error, if any (see Code).
func Deliver(addr, rcpt string, raw []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Mail("", nil); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(raw); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// Code is the SMTP reply code of err (0 when err is no SMTP reply).
func Code(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}
