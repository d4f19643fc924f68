package optin_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"consentmail/optin"
	"consentmail/preferences"
)

// TestSignupsShedUnderOverload holds the data file's write lock, so that admitted
// signups wait for their commit, and sends more than MaxInFlight at once: the extra
// ones are refused at once with 503 and Retry-After while the others still wait; once
// the lock goes, every admitted one is answered 202 and recorded, and only those.
func TestSignupsShedUnderOverload(t *testing.T) {
	e := newEnv(t, func(c *optin.Config) { c.MaxInFlight = 2 })
	tx, err := e.db.Begin(true) // the committer now waits for this lock
	if err != nil {
		t.Fatal(err)
	}
	var senders sync.WaitGroup
	t.Cleanup(func() {
		_ = tx.Rollback() // a failed test lets the store close (again: no harm)
		senders.Wait()    // and no sender reports after the test has ended
	})
	const sent = 5
	results := make(chan response, sent)
	for i := range sent {
		senders.Go(func() {
			results <- e.signupFrom(t, map[string]any{"email": fmt.Sprintf("load-%d@example.org", i),
				"lists": []string{newsletter.ID}, "consent": true}, withIP(fmt.Sprintf("198.51.100.%d", i+1)))
		})
	}
	// Nothing can be answered 202 while the lock is held: the first three answers are
	// the refusals, and they come without waiting for it.
	for range sent - 2 {
		var r response
		select {
		case r = <-results:
		case <-time.After(10 * time.Second):
			t.Fatal("no signup refused while two waited for the disk: extra ones wait too (no shedding)")
		}
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "1" ||
			r.header.Get("Content-Type") != "application/json" ||
			string(r.body) != `{"error":{"code":"overloaded","message":"too many signups at once; nothing was recorded; retry in a second"}}` {
			t.Fatalf("refused signup: %d Retry-After %q Content-Type %q: %s", r.status, r.header.Get("Retry-After"),
				r.header.Get("Content-Type"), r.body)
		}
	}
	// While both places are taken, a signup is refused before its body is looked at:
	// a malformed one gets 503 too, not 400, and so does the hosted form's post.
	if r := e.do(t, http.MethodPost, "/api/v1/signups", "application/json", []byte(`{"email":`), withIP("198.51.100.50")); r.status != http.StatusServiceUnavailable {
		t.Errorf("malformed signup under overload: %d %s, want 503 before it is decoded", r.status, r.body)
	}
	// A request for a preferences link is not a signup: it is answered while both
	// places are taken.
	if r := e.do(t, http.MethodPost, "/api/v1/preferences/link", "application/json", []byte(`{"email":"someone@example.org"}`),
		withIP("198.51.100.53")); r.status != http.StatusAccepted {
		t.Errorf("preferences link while signups are refused: %d %s, want 202", r.status, r.body)
	}
	// The form's post gets the form back: what the person typed, the reason, and the
	// consent box left for them to tick again.
	form := url.Values{"email": {"form@example.org"}, "name": {"Form <Person>"}, "consent": {"true"}}
	r := e.postForm(t, "/subscribe/newsletter/embedded", form, withIP("198.51.100.51"))
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "1" {
		t.Errorf("form signup under overload: %d Retry-After %q, want 503 and 1", r.status, r.header.Get("Retry-After"))
	}
	page := string(r.body)
	for _, want := range []string{"Too many people are signing up at this moment", `value="form@example.org"`,
		`value="Form &lt;Person&gt;"`, `action="/subscribe/newsletter"`, `name="form_token"`} {
		if !strings.Contains(page, want) {
			t.Errorf("form signup under overload: the page lacks %s:\n%s", want, page)
		}
	}
	if strings.Contains(page, "checked") {
		t.Error("form signup under overload: the consent box comes back ticked; the person must tick it again")
	}
	if r := e.postForm(t, "/subscribe/newsletter", form, withIP("198.51.100.52"), withLang("fr-FR,fr;q=0.9")); r.status != http.StatusServiceUnavailable ||
		!strings.Contains(string(r.body), "Trop de personnes s’inscrivent en ce moment") {
		t.Errorf("French form signup under overload: %d, want 503 and the reason in French:\n%s", r.status, r.body)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if r := <-results; r.status != http.StatusAccepted {
			t.Fatalf("admitted signup: %d %s", r.status, r.body)
		}
	}
	if got := len(e.events(t, preferences.EventSignup)); got != 2 {
		t.Fatalf("%d signups recorded, want the 2 admitted", got)
	}
	// Once they are done, signups are admitted again.
	if r := e.signupJSON(t, map[string]any{"email": "after@example.org", "lists": []string{newsletter.ID}, "consent": true},
		withIP("198.51.100.99")); r.status != http.StatusAccepted {
		t.Fatalf("signup after the overload: %d %s", r.status, r.body)
	}
}

// TestShedRefusalReadableAcrossOrigins: with CORS origins configured, a signup refused
// under overload carries the CORS headers, so that a form on the shop's own site can
// read the 503 and retry instead of seeing a network error.
func TestShedRefusalReadableAcrossOrigins(t *testing.T) {
	const origin = "https://www.shop.example"
	e := newEnv(t, func(c *optin.Config) {
		c.MaxInFlight, c.CORSOrigins = 1, []string{origin}
		c.SignupRate = optin.Rate{} // the probes come from one address
	})
	held, release := e.holdPlace(t, "held@example.org")
	// A malformed probe is answered 400 at once while it is admitted, 503 once the
	// held signup has the place.
	withOrigin := func(r *http.Request) { r.Header.Set("Origin", origin) }
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.do(t, http.MethodPost, "/api/v1/signups", "application/json", []byte(`{"email":`), withOrigin)
		if r.status == http.StatusServiceUnavailable {
			if got := r.header.Get("Access-Control-Allow-Origin"); got != origin {
				t.Errorf("refusal to %s: Access-Control-Allow-Origin %q", origin, got)
			}
			if r.header.Get("Retry-After") != "1" {
				t.Errorf("refusal: Retry-After %q, want 1", r.header.Get("Retry-After"))
			}
			break
		}
		if r.status != http.StatusBadRequest || time.Now().After(deadline) {
			t.Fatalf("probe: %d %s", r.status, r.body)
		}
	}
	release()
	if r := <-held; r.status != http.StatusAccepted {
		t.Fatalf("held signup: %d %s", r.status, r.body)
	}
}
