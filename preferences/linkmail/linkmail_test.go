package linkmail_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"sync"
	"testing"
	"time"

	"consentmail/mailer"
	"consentmail/mailer/smtptest"
	"consentmail/preferences"
	"consentmail/preferences/internal/preftest"
	"consentmail/preferences/linkmail"
	"consentmail/preferences/linktoken"
	"consentmail/queue"
)

// memQueue records the messages queued.
type memQueue struct {
	mu   sync.Mutex
	msgs []queue.Message
}

func (q *memQueue) Enqueue(_ context.Context, msgs ...queue.Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs = append(q.msgs, msgs...)
	return nil
}

// Each request is one high-priority message of its kind, and ForSubscriber knows it
// for its subscriber only.
func TestLinksQueueForTheSubscriber(t *testing.T) {
	var q memQueue
	links := linkmail.NewLinks(&q)
	if err := links.QueueDataLink(t.Context(), "sub_a"); err != nil {
		t.Fatal(err)
	}
	if err := links.QueuePreferencesLink(t.Context(), []byte("0123456789abcdef0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	if len(q.msgs) != 2 {
		t.Fatalf("queued %d messages, want 2", len(q.msgs))
	}
	tests := []struct {
		name string
		m    queue.Message
		sub  string
		want bool
	}{
		{"data link, its subscriber", q.msgs[0], "sub_a", true},
		{"data link, someone else", q.msgs[0], "sub_b", false},
		{"preference link by address: nobody's until looked up", q.msgs[1], "sub_b", false},
		{"another package's kind", queue.Message{Kind: "optin", Body: q.msgs[0].Body}, "sub_a", false},
		{"garbled body", queue.Message{Kind: linkmail.KindDataLink, Body: []byte("{")}, "sub_a", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := linkmail.ForSubscriber(tc.m, tc.sub); got != tc.want {
				t.Errorf("ForSubscriber(%s %s, %s) = %v, want %v", tc.m.Kind, tc.m.Body, tc.sub, got, tc.want)
			}
		})
	}
	for i, kind := range []string{linkmail.KindDataLink, linkmail.KindPrefsLink} {
		if q.msgs[i].Kind != kind || q.msgs[i].Priority != queue.High {
			t.Errorf("message %d: kind %s priority %v, want %s, high", i, q.msgs[i].Kind, q.msgs[i].Priority, kind)
		}
	}
}

// newMailer returns the link mailer over s, sending through a real relay into the
// returned sink.
func newMailer(t *testing.T, s *preftest.Store) (*linkmail.Mailer, *smtptest.Sink) {
	t.Helper()
	sink := smtptest.New(t)
	sender, err := mailer.NewSender([]mailer.Relay{sink.Relay(1)}, mailer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sender.Close() })
	return linkmail.NewMailer(s.Store, preftest.Templates(t), preftest.UnsubscribeSigner(), sender, "News <news@example.org>",
		"https://mail.example.org", s.Clock.Now, slog.New(slog.NewTextHandler(io.Discard, nil))), sink
}

// The mailer writes to the subscriber with a working data link.
func TestMailerSendsADataLink(t *testing.T) {
	s := preftest.NewStore(t)
	preftest.CreateList(t, s, "news")
	ana := preftest.Subscribed(t, s, "ana@example.org", "news")
	signer := preftest.UnsubscribeSigner()
	m, sink := newMailer(t, s)
	var q memQueue
	if err := linkmail.NewLinks(&q).QueueDataLink(t.Context(), ana); err != nil {
		t.Fatal(err)
	}
	if err := m.Handle(t.Context(), queue.Delivery{Message: q.msgs[0]}); err != nil {
		t.Fatal(err)
	}
	got := sink.WaitFor(t, 1, 10*time.Second)[0]
	link := regexp.MustCompile(`https://mail\.example\.org/p/(\S+)`).FindStringSubmatch(got.Text)
	if got.To[0] != "ana@example.org" || link == nil {
		t.Fatalf("mail to %v:\n%s", got.To, got.Text)
	}
	if sub, err := linktoken.VerifyData(signer, link[1], s.Clock.Now()); err != nil || sub != ana {
		t.Errorf("the mailed link is for %q (%v), want a data link for %s", sub, err, ana)
	}
}

// A preference link asked for by address goes to its subscriber and to nobody for an
// unknown address; each subscriber gets at most one mail of each kind per
// LinkMailInterval however often it is asked for (a retry of the same request
// excepted), and one again after it.
func TestMailerOneLinkPerInterval(t *testing.T) {
	s := preftest.NewStore(t)
	preftest.CreateList(t, s, "news")
	ana := preftest.Subscribed(t, s, "ana@example.org", "news")
	m, sink := newMailer(t, s)
	var q memQueue
	links := linkmail.NewLinks(&q)
	n := 0
	ask := func(what string, retry bool) {
		t.Helper()
		n++
		q.msgs = nil
		var err error
		switch what {
		case "ana":
			err = links.QueuePreferencesLink(t.Context(), s.EmailIndex("ana@example.org"))
		case "nobody":
			err = links.QueuePreferencesLink(t.Context(), s.EmailIndex("nobody@example.org"))
		case "data":
			err = links.QueueDataLink(t.Context(), ana)
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(q.msgs) != 1 {
			t.Fatalf("%s: %d messages queued, want 1", what, len(q.msgs))
		}
		q.msgs[0].ID = fmt.Sprint("msg-", n)
		if err := m.Handle(t.Context(), queue.Delivery{Message: q.msgs[0]}); err != nil {
			t.Fatalf("%s: Handle: %v", what, err)
		}
		if retry { // the same request handled again (after a failed send) is not refused
			if err := m.Handle(t.Context(), queue.Delivery{Message: q.msgs[0]}); err != nil {
				t.Fatalf("retry: Handle: %v", err)
			}
		}
	}
	ask("nobody", false)
	ask("ana", true) // two mails: the request and its retry
	for range 5 {
		s.Clock.Advance(time.Minute)
		ask("ana", true)
		ask("nobody", false)
	}
	ask("data", false)
	ask("data", false)
	sink.WaitFor(t, 3, 10*time.Second)
	s.Clock.Advance(preferences.LinkMailInterval)
	ask("ana", false)
	ask("data", false)
	msgs := sink.WaitFor(t, 5, 10*time.Second)
	if n := sink.Received(); n != 5 {
		t.Errorf("%d mails, want 5", n)
	}
	for _, got := range msgs {
		if got.To[0] != "ana@example.org" {
			t.Errorf("a mail went to %v", got.To)
		}
	}
}
