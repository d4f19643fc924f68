package pages_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"consentmail/preferences"
	"consentmail/preferences/internal/preftest"
	"consentmail/preferences/linktoken"
	"consentmail/preferences/pages"
)

// campaignStats records the campaigns told of an unsubscribe.
type campaignStats struct{ preftest.Log[string] }

func (c *campaignStats) Unsubscribed(_ context.Context, campaign string) { c.Add(campaign) }

type unsubEnv struct {
	s      *preftest.Store
	app    *fiber.App
	signer *linktoken.Signer
	stats  *campaignStats
	sub    string
}

// newUnsubEnv serves /u/{token} over a store holding one subscriber confirmed to two
// lists.
func newUnsubEnv(t *testing.T) *unsubEnv {
	t.Helper()
	s := preftest.NewStore(t)
	preftest.CreateList(t, s, "news")
	preftest.CreateList(t, s, "offers")
	e := &unsubEnv{s: s, app: preftest.NewApp(t), signer: preftest.UnsubscribeSigner(), stats: &campaignStats{},
		sub: preftest.Subscribed(t, s, "one-click@example.org", "news", "offers")}
	pages.NewUnsubscribe(s.Store, preftest.Templates(t), e.signer, e.stats, "dpo@example.org", s.Clock.Now,
		prometheus.NewRegistry()).Routes(e.app)
	return e
}

func (e *unsubEnv) token(lists ...string) string {
	return linktoken.Unsubscribe(e.signer, e.sub, lists, "cmp_1", e.s.Clock.Now())
}

func (e *unsubEnv) do(t *testing.T, method, token, body string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, "/u/"+url.PathEscape(token), strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("User-Agent", "mail-client/7")
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	res, b := preftest.Do(t, e.app, req)
	return res, string(b)
}

func (e *unsubEnv) states(t *testing.T) map[string]string {
	t.Helper()
	sub, err := e.s.Subscriber(t.Context(), e.sub)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, x := range sub.Subscriptions {
		out[x.List] = x.Status
	}
	return out
}

func TestOneClickUnsubscribe(t *testing.T) {
	e := newUnsubEnv(t)
	tok := e.token("news")

	// Scanners fetch links: a GET shows a button and changes nothing.
	for range 3 {
		res, page := e.do(t, "GET", tok, "")
		if res.StatusCode != 200 || !strings.Contains(page, `<form method="post" action="/u/`) || !strings.Contains(page, `href="/p/`) {
			t.Fatalf("GET: %d, want 200 with a POST form and a link to the preference centre:\n%s", res.StatusCode, page)
		}
	}
	if got := e.states(t)["news"]; got != preferences.SubConfirmed {
		t.Fatalf("after GET news is %s, want confirmed", got)
	}

	// RFC 8058: the mail client's POST, no cookie, no redirect.
	res, page := e.do(t, "POST", tok, "List-Unsubscribe=One-Click")
	if res.StatusCode != 200 || res.Header.Get("Set-Cookie") != "" || res.Header.Get("Location") != "" {
		t.Fatalf("one-click POST: %d, Set-Cookie %q, Location %q; want 200, neither", res.StatusCode,
			res.Header.Get("Set-Cookie"), res.Header.Get("Location"))
	}
	if !strings.Contains(page, "You are unsubscribed") {
		t.Fatalf("one-click answer:\n%s", page)
	}
	if st := e.states(t); st["news"] != preferences.SubUnsubscribed || st["offers"] != preferences.SubConfirmed {
		t.Fatalf("states %v, want news unsubscribed, offers untouched", st)
	}
	events := preftest.AllEvents(t, e.s, preferences.LedgerQuery{Type: preferences.EventUnsubscribed})
	if len(events) != 1 || events[0].Details["method"] != "one_click" || events[0].Details["campaign"] != "cmp_1" ||
		events[0].IP != "203.0.113.7" || events[0].UserAgent != "mail-client/7" {
		t.Fatalf("events %+v, want one unsubscribed event: one_click, campaign cmp_1, the client's IP and agent", events)
	}

	// Repeating is harmless and answers the same.
	if res, _ := e.do(t, "POST", tok, "List-Unsubscribe=One-Click"); res.StatusCode != 200 {
		t.Fatalf("repeated POST: %d", res.StatusCode)
	}
	if n := len(preftest.AllEvents(t, e.s, preferences.LedgerQuery{Type: preferences.EventUnsubscribed})); n != 1 {
		t.Fatalf("%d unsubscribed events after a repeat, want 1", n)
	}

	// The page's button is the "link" method.
	if res, _ := e.do(t, "POST", e.token("offers"), ""); res.StatusCode != 200 {
		t.Fatalf("button POST: %d", res.StatusCode)
	}
	events = preftest.AllEvents(t, e.s, preferences.LedgerQuery{Type: preferences.EventUnsubscribed})
	if len(events) != 2 || events[1].Details["method"] != "link" || e.states(t)["offers"] != preferences.SubUnsubscribed {
		t.Fatalf("after the button: events %+v states %v", events, e.states(t))
	}
	// The campaign hears of each unsubscribe that changed something, not of the repeat.
	if got := e.stats.All(); !slices.Equal(got, []string{"cmp_1", "cmp_1"}) {
		t.Errorf("campaign told of %v, want [cmp_1 cmp_1]", got)
	}
	preftest.Verify(t, e.s)
}

func TestUnsubscribeRefusesBadLinks(t *testing.T) {
	e := newUnsubEnv(t)
	good := e.token("news")
	other := linktoken.Unsubscribe(linktoken.NewSigner([]byte("another key of thirty-two bytes!")), e.sub, []string{"news"}, "", e.s.Clock.Now())
	foreign := linktoken.NewSigner(preferences.DeriveKey(preftest.Secret, "optin-links")).Sign("unsubscribe", e.s.Clock.Now().Add(time.Hour), e.sub, "news", "")
	flip := []byte(good)
	flip[5] ^= 1
	for name, tok := range map[string]string{
		"garbage":               "not-a-token",
		"flipped payload":       string(flip),
		"other secret":          other,
		"key of another use":    foreign,
		"truncated":             good[:len(good)-4],
		"confirm token purpose": e.signer.Sign("confirm", e.s.Clock.Now().Add(time.Hour), e.sub, "x", "news"),
	} {
		t.Run(name, func(t *testing.T) {
			for _, method := range []string{"GET", "POST"} {
				res, _ := e.do(t, method, tok, "List-Unsubscribe=One-Click")
				if res.StatusCode != 400 {
					t.Errorf("%s: %d, want 400", method, res.StatusCode)
				}
			}
		})
	}
	if st := e.states(t); st["news"] != preferences.SubConfirmed {
		t.Fatalf("a bad link changed news to %s", st["news"])
	}
	// The link of a person expires only after years.
	e.s.Clock.Advance(4 * 365 * 24 * time.Hour)
	if res, _ := e.do(t, "POST", good, "List-Unsubscribe=One-Click"); res.StatusCode != 200 || e.states(t)["news"] != preferences.SubUnsubscribed {
		t.Fatalf("a four-year-old link: %d, state %s", res.StatusCode, e.states(t)["news"])
	}
}
