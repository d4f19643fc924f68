package optin_test

import (
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/gofiber/fiber/v2/middleware/filesystem"

	"consentmail/optin"
	"consentmail/preferences"
	"consentmail/templates"
	"consentmail/templates/browsertest"
)

// TestBrowserHostedFormUnderOverload fills the hosted form in Chromium while every
// place for a signup is taken (one signup waits for the data file, held locked): the
// person gets the form back with a 503, what they typed, why nothing was recorded and
// the consent box to tick again; nothing of theirs is recorded. Once the load is gone,
// ticking the box and sending again subscribes them.
func TestBrowserHostedFormUnderOverload(t *testing.T) {
	e := newEnv(t, func(c *optin.Config) { c.MaxInFlight = 1 })
	e.app.Use("/static", filesystem.New(filesystem.Config{Root: http.FS(templates.Static())}))
	base := browsertest.Serve(t, e.app)
	b := browsertest.New(t, 1024, 900) // after the server: closed before it

	ctx := b.Tab(t)
	if st := browsertest.Open(t, ctx, base+"/subscribe/newsletter"); st != http.StatusOK {
		t.Fatalf("GET form: %d", st)
	}

	// Take the only place: a signup that waits for the write lock this test holds.
	held, release := e.holdPlace(t, "first@example.org", withIP("198.51.100.20"))
	waitFor(t, "the first signup to take the only place", func() bool {
		return e.signupJSON(t, `{}`, withIP("198.51.100.21")).status == http.StatusServiceUnavailable
	})

	browsertest.Do(t, ctx, "fill the form",
		chromedp.SendKeys(chromedp.ID("email"), "busy.person@example.org"),
		chromedp.SendKeys(chromedp.ID("name"), "Busy Person"),
		chromedp.Click(chromedp.CSS(`input[name=consent]`)))
	if st := browsertest.Submit(t, ctx, `form button[type=submit]`); st != http.StatusServiceUnavailable {
		t.Fatalf("POST form under overload: %d, want 503", st)
	}
	if h := browsertest.Heading(t, ctx); h != "Subscribe to Monthly newsletter" {
		t.Errorf("heading %q, want the form's", h)
	}
	alert := browsertest.Value(t, ctx, "read the alert", chromedp.Text(chromedp.CSS(`[role=alert]`)))
	if want := "Too many people are signing up at this moment, and your signup was not recorded. Please tick the box and send the form again in a few seconds."; alert != want {
		t.Errorf("alert %q, want %q", alert, want)
	}
	for id, want := range map[string]string{"email": "busy.person@example.org", "name": "Busy Person"} {
		if got := browsertest.Value(t, ctx, "read "+id, chromedp.Value(chromedp.ID(id))); got != want {
			t.Errorf("%s after the refusal: %q, want %q (what the person typed)", id, got, want)
		}
	}
	if browsertest.Value(t, ctx, "read consent", chromedp.Evaluate[bool](`document.querySelector('input[name=consent]').checked`)) {
		t.Error("the consent box comes back ticked: the person must tick it again")
	}
	browsertest.Shot(t, ctx, "optin-form-busy")
	browsertest.Axe(t, ctx, "form refused under overload")
	if got := len(e.events(t, preferences.EventSignup)); got != 0 {
		t.Fatalf("%d signups recorded while the first waited, want 0", got)
	}

	// The load goes: the waiting signup is recorded, and the person's second try too.
	release()
	if r := <-held; r.status != http.StatusAccepted {
		t.Fatalf("the held signup: %d %s", r.status, r.body)
	}
	browsertest.Do(t, ctx, "tick the box again", chromedp.Click(chromedp.CSS(`input[name=consent]`)))
	if st := browsertest.Submit(t, ctx, `form button[type=submit]`); st != http.StatusAccepted {
		t.Fatalf("POST form again: %d, want 202", st)
	}
	if h := browsertest.Heading(t, ctx); h != "Check your inbox" {
		t.Errorf("after sending again: heading %q", h)
	}
	if got := len(e.events(t, preferences.EventSignup)); got != 2 {
		t.Fatalf("%d signups recorded, want 2 (the held one and the person's second try)", got)
	}
}
