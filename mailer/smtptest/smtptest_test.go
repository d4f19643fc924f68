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
	relays, err := mailer.ParseRelays(sink.URL())
	if err != nil {
		t.Fatal(err)
	}
	s, err := mailer.NewSender(relays, mailer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
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
