package optin_test

import (
	"encoding/json"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/optin"
	"consentmail/preferences"
	"consentmail/preferences/linktoken"
)

// postFormTo matches a form that POSTs to action (attribute order as rendered).
func postFormTo(action string) *regexp.Regexp {
	return regexp.MustCompile(`<form method="post" action="` + regexp.QuoteMeta(html.EscapeString(action)) + `"`)
}

func TestDoubleOptIn(t *testing.T) {
	e := newEnv(t)
	e.mustAccept(t, signup("ana@example.org"), withUA("signup-agent/1.0"))
	mail := e.deliverOne(t)
	tok := tokenOf(t, mail)
	sub := e.subscriberOf(t, "ana@example.org")

	t.Run("confirmation_sent recorded", func(t *testing.T) {
		evs := e.events(t, preferences.EventConfirmationSent)
		if len(evs) != 1 {
			t.Fatalf("confirmation_sent events: got %d, want 1", len(evs))
		}
		if evs[0].Subscriber != sub {
			t.Errorf("confirmation_sent subscriber: got %q, want %q", evs[0].Subscriber, sub)
		}
		if got, want := evs[0].Details["message_id"], mail.Header.Get("Message-Id"); got != want {
			t.Errorf("confirmation_sent message_id: got %q, want the mail's %q", got, want)
		}
	})

	t.Run("GET shows a Confirm button and confirms nothing", func(t *testing.T) {
		for range 3 { // scanners fetch links more than once
			page := wantHTML(t, e.get(t, confirmPath(tok)), fiber.StatusOK)
			if !postFormTo(confirmPath(tok)).MatchString(page) {
				t.Fatalf("confirm page: no <form method=\"post\" action=%q> in\n%s", confirmPath(tok), page)
			}
			if !strings.Contains(page, ">Confirm</button>") {
				t.Errorf("confirm page: no Confirm button in\n%s", page)
			}
			if !strings.Contains(page, newsletter.Name) {
				t.Errorf("confirm page: list %q not shown", newsletter.Name)
			}
			if strings.Contains(page, "ana@example.org") {
				t.Errorf("confirm page shows the full address; want it masked")
			}
		}
		if got := e.subStatus(t, sub, "newsletter"); got != preferences.SubPending {
			t.Errorf("subscription after GET: got %q, want pending", got)
		}
		if got := len(e.events(t, preferences.EventConfirmed)); got != 0 {
			t.Errorf("confirmed events after GET: got %d, want 0", got)
		}
	})

	t.Run("POST confirms with the IP and user agent of the POST", func(t *testing.T) {
		e.clock.Advance(3 * time.Minute)
		page := wantHTML(t, e.post(t, confirmPath(tok), withIP("203.0.113.9"), withUA("confirm-agent/2.0")), fiber.StatusOK)
		if !strings.Contains(page, "You are subscribed") {
			t.Errorf("confirmed page: got\n%s\nwant it to say \"You are subscribed\"", page)
		}
		if got := e.subStatus(t, sub, "newsletter"); got != preferences.SubConfirmed {
			t.Errorf("subscription: got %q, want confirmed", got)
		}
		evs := e.events(t, preferences.EventConfirmed)
		if len(evs) != 1 {
			t.Fatalf("confirmed events: got %d, want 1", len(evs))
		}
		ev := evs[0]
		checks := []struct{ what, got, want string }{
			{"subscriber", ev.Subscriber, sub},
			{"lists", strings.Join(ev.Lists, ","), "newsletter"},
			{"ip", ev.IP, "203.0.113.9"},
			{"user agent", ev.UserAgent, "confirm-agent/2.0"},
			{"time", ev.At.UTC().Format(time.RFC3339), start.Add(3 * time.Minute).Format(time.RFC3339)},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("confirmed event %s: got %q, want %q", c.what, c.got, c.want)
			}
		}
	})

	t.Run("repeated POST is harmless", func(t *testing.T) {
		for range 2 {
			wantHTML(t, e.post(t, confirmPath(tok), withIP("203.0.113.10")), fiber.StatusOK)
		}
		if got := len(e.events(t, preferences.EventConfirmed)); got != 1 {
			t.Errorf("confirmed events: got %d, want 1", got)
		}
		if got := e.subStatus(t, sub, "newsletter"); got != preferences.SubConfirmed {
			t.Errorf("subscription: got %q, want confirmed", got)
		}
	})

	t.Run("signing up again sends nothing", func(t *testing.T) {
		e.clock.Advance(time.Hour)
		e.mustAccept(t, signup("ana@example.org"))
		if n := e.ready(t); n != 0 {
			t.Errorf("queued mails for a confirmed address: got %d, want 0", n)
		}
	})
}

// flip replaces the byte at i with another base64url character.
func flip(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

// queuedRequest takes the one queued opt-in message off the queue and decodes it.
func (e *env) queuedRequest(tb testing.TB) preferences.OptinRequest {
	tb.Helper()
	ds := e.reserve(tb)
	if len(ds) != 1 {
		tb.Fatalf("queued messages: got %d, want 1", len(ds))
	}
	var req preferences.OptinRequest
	if err := json.Unmarshal(ds[0].Body, &req); err != nil {
		tb.Fatalf("queued body %s: %v", ds[0].Body, err)
	}
	e.ack(tb, ds...)
	return req
}

var formTokenRe = regexp.MustCompile(`name="form_token" value="([^"]+)"`)

// formToken returns the form token of the hosted form of list.
func (e *env) formToken(tb testing.TB, list string) string {
	tb.Helper()
	page := wantHTML(tb, e.get(tb, "/subscribe/"+list), fiber.StatusOK)
	m := formTokenRe.FindStringSubmatch(page)
	if m == nil {
		tb.Fatalf("no form_token in the form of %s:\n%s", list, page)
	}
	return html.UnescapeString(m[1])
}

func TestConfirmRefusesBadTokens(t *testing.T) {
	e := newEnv(t)
	e.mustAccept(t, signup("ana@example.org"))
	req := e.queuedRequest(t)
	exp := e.clock.Now().Add(optinTTL)
	good := optin.ConfirmToken(e.signer, req, exp)
	payload, mac, ok := strings.Cut(good, ".")
	if !ok {
		t.Fatalf("token %q has no '.'", good)
	}
	otherKey := linktoken.NewSigner(preferences.DeriveKey([]byte("another-root-secret-0123456789abcdef"), "optin-links"))
	prefKey := linktoken.NewSigner(preferences.DeriveKey(secret, "preference-links"))
	tests := []struct{ name, token string }{
		{"payload char flipped", flip(payload, len(payload)/2) + "." + mac},
		{"first payload char flipped", flip(payload, 0) + "." + mac},
		{"MAC char flipped", payload + "." + flip(mac, len(mac)/2)},
		{"MAC truncated", payload + "." + mac[:len(mac)-4]},
		{"token truncated to the payload", payload},
		{"MAC empty", payload + "."},
		{"MAC of another token", payload + "." + strings.SplitN(optin.ConfirmToken(e.signer,
			preferences.OptinRequest{Subscriber: req.Subscriber, Lists: req.Lists, Nonce: "0000"}, exp), ".", 2)[1]},
		{"garbage", "hello"},
		{"garbage with a dot", "abc.def"},
		{"not base64", "!!!.???"},
		{"over-long", strings.Repeat("A", 2000) + "." + mac},
		{"hosted-form token (another purpose)", e.formToken(t, "newsletter")},
		{"signed with another secret", optin.ConfirmToken(otherKey, req, exp)},
		{"signed with another derived key", optin.ConfirmToken(prefKey, req, exp)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantHTML(t, e.get(t, confirmPath(tc.token)), fiber.StatusBadRequest)
			wantHTML(t, e.post(t, confirmPath(tc.token)), fiber.StatusBadRequest)
			wantHTML(t, e.post(t, confirmPath(tc.token)+"/renew"), fiber.StatusBadRequest)
			if got := len(e.events(t, preferences.EventConfirmed)); got != 0 {
				t.Errorf("confirmed events: got %d, want 0", got)
			}
			if n := e.ready(t); n != 0 {
				t.Errorf("queued mails: got %d, want 0", n)
			}
		})
	}
	t.Run("the genuine token still confirms", func(t *testing.T) {
		wantHTML(t, e.post(t, confirmPath(good)), fiber.StatusOK)
		if got := e.subStatus(t, req.Subscriber, "newsletter"); got != preferences.SubConfirmed {
			t.Errorf("subscription: got %q, want confirmed", got)
		}
	})
}

func TestConfirmExpiredAndRenew(t *testing.T) {
	e := newEnv(t)
	sub, tok := e.subscribe(t, signup("ana@example.org")) // mailed at start: valid until start+TTL
	renew := confirmPath(tok) + "/renew"

	e.clock.Advance(optinTTL - time.Second)
	wantHTML(t, e.get(t, confirmPath(tok)), fiber.StatusOK)

	e.clock.Advance(time.Second)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		page := wantHTML(t, e.do(t, method, confirmPath(tok), "", nil), fiber.StatusGone)
		if !postFormTo(renew).MatchString(page) {
			t.Errorf("%s expired link: no <form method=\"post\" action=%q> in\n%s", method, renew, page)
		}
	}
	if got := e.subStatus(t, sub, "newsletter"); got != preferences.SubPending {
		t.Fatalf("subscription after an expired POST: got %q, want pending", got)
	}
	if got := len(e.events(t, preferences.EventConfirmed)); got != 0 {
		t.Fatalf("confirmed events after an expired POST: got %d, want 0", got)
	}

	renewOK := func(t *testing.T) {
		t.Helper()
		r := e.post(t, renew)
		if r.status/100 != 2 {
			t.Fatalf("POST renew: got %d, want 2xx; body %s", r.status, r.body)
		}
		wantHTML(t, r, r.status)
	}
	renewOK(t)
	fresh := tokenOf(t, e.deliverOne(t))
	if fresh == tok {
		t.Fatalf("renewed token: got the expired one again")
	}

	t.Run("at most one new mail per ten minutes", func(t *testing.T) {
		e.clock.Advance(9 * time.Minute)
		renewOK(t)
		if got := e.deliver(t); len(got) != 0 {
			t.Errorf("mails after a second renew within ten minutes: got %d, want 0", len(got))
		}
		e.clock.Advance(time.Minute)
		renewOK(t)
		if got := e.deliver(t); len(got) != 1 {
			t.Errorf("mails after a renew ten minutes later: got %d, want 1", len(got))
		}
	})

	t.Run("the renewed link confirms", func(t *testing.T) {
		wantHTML(t, e.post(t, confirmPath(fresh)), fiber.StatusOK)
		if got := e.subStatus(t, sub, "newsletter"); got != preferences.SubConfirmed {
			t.Errorf("subscription: got %q, want confirmed", got)
		}
	})

	t.Run("renew after confirmation sends nothing", func(t *testing.T) {
		e.clock.Advance(time.Hour)
		renewOK(t)
		if got := e.deliver(t); len(got) != 0 {
			t.Errorf("mails: got %d, want 0", len(got))
		}
	})
}

// A link of an older opt-in round is stale once a newer round replaced it.
func TestConfirmStaleRound(t *testing.T) {
	e := newEnv(t)
	e.createList(t, preferences.List{ID: "events", Name: "Event invitations", Purpose: "Invitations to our events",
		ConsentText: "I agree to receive invitations.", Public: true})
	sub, old := e.subscribe(t, signup("ana@example.org"))

	e.clock.Advance(preferences.OptinResendInterval)
	body := signup("ana@example.org")
	body["lists"] = []string{"newsletter", "events"}
	e.mustAccept(t, body)
	fresh := tokenOf(t, e.deliverOne(t))
	if fresh == old {
		t.Fatalf("second round: got the same token")
	}

	t.Run("POST of the old link", func(t *testing.T) {
		page := wantHTML(t, e.post(t, confirmPath(old)), fiber.StatusGone)
		if !strings.Contains(page, "no longer valid") {
			t.Errorf("stale page: got\n%s\nwant it to say the link is no longer valid", page)
		}
		if got := len(e.events(t, preferences.EventConfirmed)); got != 0 {
			t.Errorf("confirmed events: got %d, want 0", got)
		}
		if got := e.subStatus(t, sub, "newsletter"); got != preferences.SubPending {
			t.Errorf("subscription: got %q, want pending", got)
		}
	})
	t.Run("GET of the old link", func(t *testing.T) {
		// Nothing would be confirmed by its button, so the page must not offer one.
		wantHTML(t, e.get(t, confirmPath(old)), fiber.StatusGone)
	})
	t.Run("the new link confirms both lists", func(t *testing.T) {
		wantHTML(t, e.post(t, confirmPath(fresh)), fiber.StatusOK)
		for _, l := range []string{"newsletter", "events"} {
			if got := e.subStatus(t, sub, l); got != preferences.SubConfirmed {
				t.Errorf("subscription to %s: got %q, want confirmed", l, got)
			}
		}
	})
	t.Run("link of an unknown subscriber", func(t *testing.T) {
		tok := optin.ConfirmToken(e.signer, preferences.OptinRequest{Subscriber: "sub_000000000000000000000000",
			Lists: []string{"newsletter"}, Nonce: "00"}, e.clock.Now().Add(time.Hour))
		wantHTML(t, e.get(t, confirmPath(tok)), fiber.StatusGone)
		wantHTML(t, e.post(t, confirmPath(tok)), fiber.StatusGone)
	})
}
