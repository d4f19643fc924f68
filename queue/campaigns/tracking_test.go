package campaigns_test

import (
	"bytes"
	"encoding/base64"
	"image/gif"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/net/html"

	"consentmail/mailer"
	"consentmail/preferences"
	"consentmail/preferences/linktoken"
	"consentmail/queue/campaigns"
)

// trackedHTML links out twice, to a mail address, to a relative path and to the
// subscriber's own preference and unsubscribe pages.
const trackedHTML = `<p>Hi {{.Subscriber.Name}}, <a href="https://shop.example.com/spring?x=1&amp;y=2">spring</a>,
<a class=b href='https://blog.example.com/post'>blog</a>, <a href="mailto:hello@example.org">write</a>,
<a href="/relative">here</a>, <a href="{{.PreferencesURL}}">preferences</a>, <a href="{{.UnsubscribeURL}}">leave</a></p>`

var (
	spring = "https://shop.example.com/spring?x=1&y=2"
	blog   = "https://blog.example.com/post"
)

// setTracking grants or withdraws a subscriber's tracking consent, as the preference
// centre does.
func (e *sendEnv) setTracking(subscriber string, on bool) {
	e.t.Helper()
	_, err := e.prefs.ChangePreferences(e.ctx, preferences.PreferenceChange{Subscriber: subscriber, Tracking: &on,
		Method: "preference_centre"}, nil)
	if err != nil {
		e.t.Fatalf("ChangePreferences tracking %v: %v", on, err)
	}
}

// send runs a campaign to list to its end and returns its messages by recipient.
func (e *sendEnv) send(in campaigns.Input) (campaigns.Campaign, map[string]mailer.CaughtMessage) {
	e.t.Helper()
	before := e.sink.Received()
	c := e.create(in)
	e.act(c.ID, campaigns.ActionStart)
	done := e.waitStatus(c.ID, campaigns.StatusFinished)
	out := map[string]mailer.CaughtMessage{}
	for _, m := range e.sink.WaitFor(e.t, before+int(done.Stats.Sent), 10*time.Second) {
		if strings.Contains(m.Header.Get("Message-Id"), "."+c.ID+"@") {
			out[m.To[0]] = m
		}
	}
	return done, out
}

// trackingApp serves the tracking routes of e, verifying with now.
// reader is a clock for tracking routes that reads as a person does: a minute after
// start at first, then two seconds later at each reading (no click within
// campaigns.ClickOnDelivery of sending, nor within campaigns.ClickBurst of another).
func reader(start time.Time) func() time.Time {
	var mu sync.Mutex
	t := start.Add(time.Minute)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(2 * time.Second)
		return t
	}
}

func (e *sendEnv) trackingApp(now func() time.Time) *fiber.App {
	app := fiber.New(fiber.Config{Immutable: true}) // as in cmd
	campaigns.NewTrackingRoutes(e.engine, e.prefs, e.track, now).Routes(app)
	return app
}

// hit requests u (an absolute link of a mail) from app.
func hit(tb testing.TB, app *fiber.App, method, u string) *http.Response {
	tb.Helper()
	req := httptest.NewRequest(method, strings.TrimPrefix(u, "https://mail.example.org"), nil)
	res, err := app.Test(req, -1)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, u, err)
	}
	return res
}

// links returns the href of every <a> of doc, and the src of every <img>.
func links(tb testing.TB, doc string) (hrefs, imgs []string) {
	tb.Helper()
	z := html.NewTokenizer(strings.NewReader(doc))
	for z.Next() != html.ErrorToken {
		t := z.Token()
		for _, a := range t.Attr {
			switch {
			case t.Data == "a" && a.Key == "href":
				hrefs = append(hrefs, a.Val)
			case t.Data == "img" && a.Key == "src":
				imgs = append(imgs, a.Val)
			}
		}
	}
	return hrefs, imgs
}

// tracked checks a message's HTML and text parts: with tracking, the pixel and the
// two outgoing links rewritten; without, none of it. It returns the pixel's URL and
// the click links ("" when untracked).
func tracked(tb testing.TB, m mailer.CaughtMessage, want bool) (pixel string, clicks []string) {
	tb.Helper()
	hrefs, imgs := links(tb, m.HTML)
	if len(hrefs) != 8 {
		tb.Fatalf("%d links in the HTML part, want 6 of the template and 2 of the footer: %q", len(hrefs), hrefs)
	}
	for i, h := range hrefs {
		var ok bool
		switch i {
		case 0, 1:
			if want {
				ok = strings.HasPrefix(h, "https://mail.example.org/t/c/")
				clicks = append(clicks, h)
			} else {
				ok = h == []string{spring, blog}[i]
			}
		case 2:
			ok = h == "mailto:hello@example.org"
		case 3:
			ok = h == "/relative"
		case 4, 7: // the template's, then the footer's
			ok = strings.HasPrefix(h, "https://mail.example.org/p/")
		case 5, 6:
			ok = strings.HasPrefix(h, "https://mail.example.org/u/")
		}
		if !ok {
			tb.Errorf("link %d of the mail to %s (tracking %v) is %q", i, m.To[0], want, h)
		}
	}
	switch {
	case want && (len(imgs) != 1 || !strings.HasPrefix(imgs[0], "https://mail.example.org/t/o/")):
		tb.Errorf("images of the tracked mail to %s: %q, want the pixel", m.To[0], imgs)
	case !want && (len(imgs) != 0 || strings.Contains(m.HTML, "/t/")):
		tb.Errorf("untracked mail to %s has tracking: images %q\n%s", m.To[0], imgs, m.HTML)
	}
	if strings.Contains(m.Text, "/t/") || !strings.Contains(m.Text, "/u/") {
		tb.Errorf("the text part of the mail to %s must keep its links direct:\n%s", m.To[0], m.Text)
	}
	if want && len(imgs) == 1 {
		pixel = imgs[0]
	}
	return pixel, clicks
}

func (e *sendEnv) stats(id string) campaigns.Stats {
	e.t.Helper()
	if err := e.engine.FlushHits(e.ctx); err != nil {
		e.t.Fatalf("FlushHits: %v", err)
	}
	return e.get(id).Stats
}

func wantGIF(tb testing.TB, res *http.Response) {
	tb.Helper()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "image/gif" || res.Header.Get("Cache-Control") != "no-store" {
		tb.Fatalf("pixel: %d, Content-Type %q, Cache-Control %q; want 200 image/gif no-store",
			res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("Cache-Control"))
	}
	img, err := gif.Decode(bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("pixel is no GIF: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1 || b.Dy() != 1 {
		tb.Errorf("pixel is %dx%d", b.Dx(), b.Dy())
	}
	if _, _, _, a := img.At(0, 0).RGBA(); a != 0 {
		tb.Errorf("pixel is not transparent (alpha %d)", a)
	}
}

func wantRedirect(tb testing.TB, res *http.Response, to string) {
	tb.Helper()
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != to || res.Header.Get("Referrer-Policy") != "no-referrer" {
		tb.Fatalf("click: %d, Location %q, Referrer-Policy %q; want 302 to %q, no-referrer",
			res.StatusCode, res.Header.Get("Location"), res.Header.Get("Referrer-Policy"), to)
	}
}

// Tracking is in the mail only of those who consented, and only when the campaign
// asks for it; hits count in the campaign's stats while consent lasts; withdrawing it
// takes tracking out of the next campaign.
func TestTrackingFollowsConsent(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode sendMode) {
		e := newSendEnv(t, mode, envOptions{})
		e.list("news")
		yes := e.subscribe("yes@example.org", true, "news")
		e.subscribe("no@example.org", true, "news")
		e.setTracking(yes, true)
		app := e.trackingApp(reader(time.Now()))

		c, mail := e.send(campaigns.Input{Lists: []string{"news"}, HTML: trackedHTML, Track: true})
		pixel, clicks := tracked(t, mail["yes@example.org"], true)
		tracked(t, mail["no@example.org"], false)

		wantGIF(t, hit(t, app, "GET", pixel))
		wantGIF(t, hit(t, app, "GET", pixel))
		if res := hit(t, app, "HEAD", pixel); res.StatusCode != http.StatusOK { // a link checker: a machine
			t.Errorf("HEAD pixel: %d", res.StatusCode)
		}
		wantRedirect(t, hit(t, app, "GET", clicks[0]), spring)
		wantRedirect(t, hit(t, app, "GET", clicks[1]), blog)
		wantRedirect(t, hit(t, app, "HEAD", clicks[1]), blog) // a machine
		if s := e.stats(c.ID); s.Opens != 2 || s.Clicks != 2 || s.MachineOpens != 1 || s.MachineClicks != 1 {
			t.Errorf("stats %+v, want 2 opens and 2 clicks, 1 machine open and 1 machine click", s)
		}
		// Expired links still lead where they did, uncounted.
		later := e.trackingApp(func() time.Time { return time.Now().Add(campaigns.TrackingLinkTTL + time.Hour) })
		wantRedirect(t, hit(t, later, "GET", clicks[0]), spring)
		wantGIF(t, hit(t, later, "GET", pixel))
		if s := e.stats(c.ID); s.Opens != 2 || s.Clicks != 2 || s.MachineOpens != 1 || s.MachineClicks != 1 {
			t.Errorf("after expired hits: stats %+v, want 2 opens and 2 clicks", s)
		}

		_, mail = e.send(campaigns.Input{Lists: []string{"news"}, HTML: trackedHTML, Track: false})
		tracked(t, mail["yes@example.org"], false)
		tracked(t, mail["no@example.org"], false)

		e.setTracking(yes, false)
		wantGIF(t, hit(t, app, "GET", pixel))
		wantRedirect(t, hit(t, app, "GET", clicks[0]), spring) // the person clicked: they still get there
		if s := e.stats(c.ID); s.Opens != 2 || s.Clicks != 2 {
			t.Errorf("after withdrawal: stats %+v, want still 2 opens and 2 clicks", s)
		}
		_, mail = e.send(campaigns.Input{Lists: []string{"news"}, HTML: trackedHTML, Track: true})
		tracked(t, mail["yes@example.org"], false)
		tracked(t, mail["no@example.org"], false)
	})
}

// The click redirect goes only to the URL signed into its token: anything else is a
// 400 that leads nowhere, and the open pixel never fails.
func TestTrackingClickRefusesUnsignedURLs(t *testing.T) {
	e := newSendEnv(t, modeBolt, envOptions{})
	e.list("news")
	yes := e.subscribe("yes@example.org", true, "news")
	e.setTracking(yes, true)
	app := e.trackingApp(time.Now)
	c, mail := e.send(campaigns.Input{Lists: []string{"news"}, HTML: trackedHTML, Track: true})
	pixel, clicks := tracked(t, mail["yes@example.org"], true)
	token := strings.TrimPrefix(clicks[0], "https://mail.example.org/t/c/")

	// The same token with the URL changed, its signature kept.
	p64, sig, _ := strings.Cut(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(p64)
	if err != nil {
		t.Fatal(err)
	}
	swapped := base64.RawURLEncoding.EncodeToString(bytes.Replace(payload, []byte(spring), []byte("https://evil.example/"), 1)) + "." + sig
	other := linktoken.NewSigner(preferences.DeriveKey([]byte("another-secret-0123456789abcdef0123456"), "tracking-links"))
	now := time.Now()
	for _, tc := range []struct{ name, path string }{
		{"garbage", "/t/c/garbage"},
		{"a URL", "/t/c/https:%2F%2Fevil.example%2F"},
		{"URL changed", "/t/c/" + swapped},
		{"signature cut", "/t/c/" + token[:len(token)-2]},
		{"another key", "/t/c/" + campaigns.ClickToken(other, c.ID, yes, "https://evil.example/", now)},
		{"unsubscribe key", "/t/c/" + campaigns.ClickToken(e.signer, c.ID, yes, "https://evil.example/", now)},
		{"open token", "/t/c/" + strings.TrimPrefix(pixel, "https://mail.example.org/t/o/")},
		{"unsubscribe token", "/t/c/" + linktoken.Unsubscribe(e.signer, yes, []string{"news"}, c.ID, now)},
		{"no token", "/t/c/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := hit(t, app, "GET", tc.path)
			body, _ := io.ReadAll(res.Body)
			want := http.StatusBadRequest
			if tc.path == "/t/c/" {
				want = http.StatusNotFound // no route
			}
			if res.StatusCode != want || res.Header.Get("Location") != "" || strings.Contains(string(body), "evil") {
				t.Errorf("GET %s: %d, Location %q, body %q; want %d and no redirect", tc.path, res.StatusCode,
					res.Header.Get("Location"), body, want)
			}
		})
	}
	wantGIF(t, hit(t, app, "GET", "/t/o/garbage"))
	wantGIF(t, hit(t, app, "GET", "/t/o/"+campaigns.OpenToken(other, c.ID, yes, now)))
	if s := e.stats(c.ID); s.Opens != 0 || s.Clicks != 0 {
		t.Errorf("stats %+v after refused hits, want no opens or clicks", s)
	}
}
