package mailer_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/mailer"
	"consentmail/mailer/smtptest"
)

// get requests path from app and returns status, headers and body.
func get(tb testing.TB, app *fiber.App, path string) (int, map[string]string, string) {
	tb.Helper()
	resp, err := app.Test(httptest.NewRequest("GET", path, nil), -1)
	if err != nil {
		tb.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	h := map[string]string{}
	for k := range resp.Header {
		h[k] = resp.Header.Get(k)
	}
	return resp.StatusCode, h, string(b)
}

func TestInboxRoutes(t *testing.T) {
	sink := smtptest.New(t)
	s := newSender(t, relaysOf(t, sink.URL()), mailer.Options{})
	const (
		subject = `Hi <script>alert("s")</script> & "you"`
		text    = "Confirm here: http://127.0.0.1:8080/confirm/xyz.\nOr <b>not</b>: javascript:alert(1)\n"
		html    = `<p onclick="x()">Hi <a href="http://127.0.0.1:8080/confirm/xyz">confirm</a></p><script>alert("h")</script>"'`
	)
	err := s.Send(context.Background(), &mailer.Message{
		From: "news@example.org", To: "ana@example.org", Subject: subject, Text: text, HTML: html,
		Headers: map[string]string{"List-Id": "<x.example.org> <img src=x onerror=alert(1)>"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), &mailer.Message{From: "news@example.org", To: "bob@example.org", Subject: "Second", Text: "t"}); err != nil {
		t.Fatal(err)
	}
	sink.WaitFor(t, 2, wait)
	app := fiber.New(fiber.Config{Immutable: true}) // as in cmd
	sink.Routes(app)

	checkSecure := func(t *testing.T, h map[string]string) {
		t.Helper()
		for k, want := range map[string]string{
			// SAMEORIGIN, not DENY: Chromium applies it to the srcdoc frame of the HTML
			// part too, which then shows blank (seen in headless Chromium).
			"X-Frame-Options":        "SAMEORIGIN",
			"Referrer-Policy":        "no-referrer",
			"X-Content-Type-Options": "nosniff",
		} {
			if h[k] != want {
				t.Errorf("%s = %q, want %q", k, h[k], want)
			}
		}
		if csp := h["Content-Security-Policy"]; !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") ||
			strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("Content-Security-Policy = %q, want default-src 'none', no script source, framing by this origin allowed", csp)
		}
	}
	mustContain := func(t *testing.T, body string, subs ...string) {
		t.Helper()
		for _, sub := range subs {
			if !strings.Contains(body, sub) {
				t.Errorf("body lacks %q:\n%s", sub, body)
			}
		}
	}
	mustNotContain := func(t *testing.T, body string, subs ...string) {
		t.Helper()
		for _, sub := range subs {
			if strings.Contains(body, sub) {
				t.Errorf("body contains %q:\n%s", sub, body)
			}
		}
	}

	t.Run("list", func(t *testing.T) {
		code, h, body := get(t, app, "/dev/inbox")
		if code != 200 || !strings.HasPrefix(h["Content-Type"], "text/html") {
			t.Fatalf("status %d, type %q", code, h["Content-Type"])
		}
		checkSecure(t, h)
		mustContain(t, body, `Hi &lt;script&gt;alert(&#34;s&#34;)&lt;/script&gt; &amp; &#34;you&#34;`, `href="inbox/1"`, `href="inbox/2"`, "ana@example.org")
		mustNotContain(t, body, "<script")
		if strings.Index(body, "Second") > strings.Index(body, "Hi &lt;") {
			t.Error("list is not newest first")
		}
	})

	t.Run("message", func(t *testing.T) {
		code, h, body := get(t, app, "/dev/inbox/1")
		if code != 200 {
			t.Fatalf("status %d", code)
		}
		checkSecure(t, h)
		mustContain(t, body,
			// The subject, escaped.
			`<h1>Hi &lt;script&gt;alert(&#34;s&#34;)&lt;/script&gt; &amp; &#34;you&#34;</h1>`,
			// The text, with its URL a working link and the full stop left out of it.
			`<a href="http://127.0.0.1:8080/confirm/xyz" target="_blank" rel="noopener noreferrer">http://127.0.0.1:8080/confirm/xyz</a>.`,
			`Or &lt;b&gt;not&lt;/b&gt;: javascript:alert(1)`,
			// The HTML part, escaped into srcdoc of a sandbox without scripts; links open
			// in a new tab that escapes the sandbox.
			`sandbox="allow-popups allow-popups-to-escape-sandbox"`,
			`srcdoc="&lt;!doctype html&gt;&lt;meta charset=&#34;utf-8&#34;&gt;&lt;base target=&#34;_blank&#34;&gt;&lt;p onclick=&#34;x()&#34;&gt;Hi &lt;a href=&#34;http://127.0.0.1:8080/confirm/xyz&#34;&gt;confirm&lt;/a&gt;&lt;/p&gt;&lt;script&gt;alert(&#34;h&#34;)&lt;/script&gt;&#34;&#39;`,
			// Headers, escaped.
			`&lt;img src=x onerror=alert(1)&gt;`,
			`href="1/raw"`, `href="../inbox"`,
		)
		mustNotContain(t, body, "<script", "<img", "allow-scripts", "allow-same-origin", `onclick="x()"`)
	})

	t.Run("raw", func(t *testing.T) {
		code, h, body := get(t, app, "/dev/inbox/1/raw")
		if code != 200 || h["Content-Type"] != "text/plain; charset=utf-8" {
			t.Fatalf("status %d, type %q", code, h["Content-Type"])
		}
		checkSecure(t, h)
		m, _ := sink.Get("1")
		if body != string(m.Raw) {
			t.Errorf("raw body differs from the message received")
		}
		mustContain(t, body, "Subject: ", "List-Id: ")
	})

	t.Run("json", func(t *testing.T) {
		code, h, body := get(t, app, "/dev/inbox.json")
		if code != 200 || !strings.HasPrefix(h["Content-Type"], "application/json") {
			t.Fatalf("status %d, type %q", code, h["Content-Type"])
		}
		var got struct {
			Items []struct {
				ID       string              `json:"id"`
				From     string              `json:"from"`
				To       []string            `json:"to"`
				Subject  string              `json:"subject"`
				Received time.Time           `json:"received"`
				Text     string              `json:"text"`
				HTML     string              `json:"html"`
				Headers  map[string][]string `json:"headers"`
			} `json:"items"`
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		if len(got.Items) != 2 {
			t.Fatalf("got %d items, want 2", len(got.Items))
		}
		it := got.Items[1]
		if it.ID != "1" || it.From != "news@example.org" || len(it.To) != 1 || it.To[0] != "ana@example.org" ||
			it.Subject != subject || it.Text != text || strings.TrimSuffix(it.HTML, "\n") != html ||
			it.Received.IsZero() || len(it.Headers["List-Id"]) != 1 {
			t.Errorf("item = %+v", it)
		}
		_, _, body = get(t, app, "/dev/inbox.json?to=BOB@example.org")
		if err := json.Unmarshal([]byte(body), &got); err != nil || len(got.Items) != 1 || got.Items[0].Subject != "Second" {
			t.Errorf("?to=bob: %s", body)
		}
	})

	t.Run("not found", func(t *testing.T) {
		for _, p := range []string{"/dev/inbox/99", "/dev/inbox/x", "/dev/inbox/0/raw"} {
			if code, _, _ := get(t, app, p); code != 404 {
				t.Errorf("GET %s = %d, want 404", p, code)
			}
		}
	})
}

func TestCatcherKeepsTheLastMax(t *testing.T) {
	c := mailer.NewCatcher(3)
	addr, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	s := newSender(t, relaysOf(t, "smtp://"+addr.String()), mailer.Options{})
	for _, subj := range []string{"1", "2", "3", "4", "5"} {
		if err := s.Send(ctx, &mailer.Message{From: "a@example.org", To: "b@example.org", Subject: subj, Text: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	wctx, wcancel := context.WithTimeout(ctx, wait)
	defer wcancel()
	if err := c.Wait(wctx, func(m []mailer.CaughtMessage) bool { return len(m) == 3 && m[0].Subject == "5" }); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range c.Messages() {
		got = append(got, m.ID+":"+m.Subject)
	}
	if strings.Join(got, " ") != "5:5 4:4 3:3" {
		t.Errorf("kept %v, want [5:5 4:4 3:3]", got)
	}
	if _, ok := c.Get("2"); ok {
		t.Error("Get(2) found a message pushed out")
	}
	if c.Received() != 5 {
		t.Errorf("Received() = %d, want 5", c.Received())
	}
	// Wait gives up with ctx.
	short, scancel := context.WithCancel(ctx)
	scancel()
	if err := c.Wait(short, func([]mailer.CaughtMessage) bool { return false }); err != context.Canceled {
		t.Errorf("Wait = %v, want context.Canceled", err)
	}
}

// A look at a campaign message in the dev inbox is no open: its open pixel is left
// out of the HTML part shown; other images and the click links stay.
func TestInboxLeavesOutOpenPixels(t *testing.T) {
	sink := smtptest.New(t)
	s := newSender(t, relaysOf(t, sink.URL()), mailer.Options{})
	const html = `<p>Hi <a href="http://127.0.0.1:8080/t/c/CLICK">shop</a><img src="http://127.0.0.1:8080/logo.png" alt="logo"></p>` +
		`<IMG SRC='http://127.0.0.1:8080/t/o/OPEN' width=1 height=1><img srcset="http://127.0.0.1:8080/t/o/OPEN2 1x"/>` +
		`<style>p{}</style><!-- <img src="/t/o/in-a-comment"> -->`
	if err := s.Send(context.Background(), &mailer.Message{From: "news@example.org", To: "ana@example.org", Subject: "Pixel", Text: "t", HTML: html}); err != nil {
		t.Fatal(err)
	}
	sink.WaitFor(t, 1, wait)
	app := fiber.New(fiber.Config{Immutable: true})
	sink.Routes(app)
	_, _, body := get(t, app, "/dev/inbox/1")
	for _, want := range []string{"pixel is left out", `/t/c/CLICK`, `logo.png`, `&lt;style&gt;p{}&lt;/style&gt;`, `in-a-comment`} {
		if !strings.Contains(body, want) {
			t.Errorf("message page lacks %q:\n%s", want, body)
		}
	}
	for _, gone := range []string{`/t/o/OPEN`, `width=1`} {
		if strings.Contains(body, gone) {
			t.Errorf("message page still has %q (an open pixel):\n%s", gone, body)
		}
	}
	if _, _, raw := get(t, app, "/dev/inbox/1/raw"); !strings.Contains(raw, "/t/o/OPEN") {
		t.Error("the raw message lost its pixel: only the rendered view leaves it out")
	}
}
