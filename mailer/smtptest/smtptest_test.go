package smtptest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"consentmail/mailer"
	"consentmail/mailer/smtptest"
)

func TestSink(t *testing.T) {
	sink := smtptest.New(t)
	if want := "smtp://127.0.0.1:"; !strings.HasPrefix(sink.URL(), want) || !strings.HasSuffix(sink.URL(), "?tls=none") || sink.Port() == 0 || sink.Host() != "127.0.0.1" {
		t.Fatalf("URL %q, host %q, port %d", sink.URL(), sink.Host(), sink.Port())
	}
	s := senderTo(t, sink.URL())
	sink.FailRcpt(smtptest.Reject(550, "gone@example.org"))
	send := func(to string) error {
		return s.Send(context.Background(), &mailer.Message{From: "news@example.org", To: to, Subject: to, Text: "t"})
	}
	var se *mailer.SendError
	if err := send("gone@example.org"); !errors.As(err, &se) || se.Code != 550 {
		t.Errorf("send to a rejected recipient = %v, want a 550", err)
	}
	if err := send("ana@example.org"); err != nil {
		t.Fatal(err)
	}
	msgs := sink.WaitFor(t, 1, 10*time.Second)
	if len(msgs) != 1 || msgs[0].Subject != "ana@example.org" {
		t.Errorf("got %+v, want the one accepted message", msgs)
	}
}

// Through a DelayProxy, mail arrives whole, and no exchange is quicker than the round
// trip; Close ends the connections under way.
func TestDelayProxy(t *testing.T) {
	sink := smtptest.New(t)
	const rtt = 30 * time.Millisecond
	p, err := smtptest.NewDelayProxy(sink.Addr(), rtt)
	if err != nil {
		t.Fatal(err)
	}
	s := senderTo(t, "smtp://"+p.Addr()+"?tls=none")
	send := func() error {
		return s.Send(context.Background(), &mailer.Message{From: "news@example.org", To: "ana@example.org", Subject: "hi", Text: strings.Repeat("line\r\n", 20000)})
	}
	if err := send(); err != nil { // dials: greeting, EHLO, then the transaction
		t.Fatal(err)
	}
	start := time.Now()
	if err := send(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < rtt {
		t.Errorf("a transaction took %v through a proxy of %v round trip", took, rtt)
	}
	msgs := sink.WaitFor(t, 2, 10*time.Second)
	if len(msgs) != 2 || strings.Count(msgs[1].Text, "line") != 20000 {
		t.Fatalf("got %d messages, the second with %d lines", len(msgs), strings.Count(msgs[len(msgs)-1].Text, "line"))
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := send(); err == nil {
		t.Error("sent through a closed proxy")
	}
}

// senderTo returns a sender to the relay at url, closed at the end of the test.
func senderTo(t *testing.T, url string) *mailer.Sender {
	t.Helper()
	relays, err := mailer.ParseRelays(url)
	if err != nil {
		t.Fatal(err)
	}
	s, err := mailer.NewSender(relays, mailer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
