package adminpages_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/preferences/adminpages"
	"consentmail/preferences/internal/preftest"
	"consentmail/preferences/webauth"
	"consentmail/preferences/webauth/webauthtest"
	"consentmail/templates"
)

// baseURL is where the test site says its hosted forms are.
const baseURL = "https://news.acme.test"

// actor is how the ledger names the signed-in person of every test request.
const actor = "user:u1 (m@acme.test)"

// site is the pages over a test store, behind a stand-in for the session: each
// request says its role in X-Test-Role (and its language in X-Test-Lang).
type site struct {
	s      *preftest.Store
	app    *fiber.App
	optins *preftest.Recorder
}

func newSite(tb testing.TB) *site {
	tb.Helper()
	return newSiteWith(tb, nil)
}

// newSiteWith is newSite with another erasure (nil: the real one).
func newSiteWith(tb testing.TB, eraser adminpages.Eraser) *site {
	tb.Helper()
	s := preftest.NewStore(tb)
	st := &site{s: s, app: preftest.NewApp(tb), optins: &preftest.Recorder{}}
	if eraser == nil {
		eraser = preferences.NewEraser(s.Store, nil, nil)
	}
	pages, err := adminpages.New(s.Store, preftest.Templates(tb), templates.Site{Company: "Acme"},
		eraser, nil, st.optins.Enqueue,
		preferences.RegisterSite{Company: "Acme SAS", Contact: "dpo@acme.test", RelayHosts: []string{"smtp.relay.test"}},
		baseURL+"/")
	if err != nil {
		tb.Fatal(err)
	}
	st.app.Use(func(c *fiber.Ctx) error {
		lang := c.Get("X-Test-Lang")
		if lang == "" {
			lang = "en"
		}
		role := c.Get("X-Test-Role")
		if role == "" {
			role = preferences.RoleAdmin // the browser's requests
		}
		webauth.With(c, webauth.Session{UserID: "u1", Email: "m@acme.test", Role: role, CSRF: "t", Lang: lang})
		return c.Next()
	})
	require := webauthtest.Require
	pages.Routes(st.app.Group("/admin"), require)
	return st
}

// page is a response, its body read.
type page struct {
	status int
	header http.Header
	body   string
}

func (st *site) do(tb testing.TB, role, lang, method, path string, form url.Values) page {
	tb.Helper()
	var req *http.Request
	if form != nil {
		form.Set("_csrf", "t")
		req = httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	req.Header.Set("X-Test-Role", role)
	req.Header.Set("X-Test-Lang", lang)
	res, b := preftest.Do(tb, st.app, req)
	return page{status: res.StatusCode, header: res.Header, body: string(b)}
}

// get reads a page as role, in English.
func (st *site) get(tb testing.TB, role, path string) page {
	tb.Helper()
	return st.do(tb, role, "en", "GET", path, nil)
}

// post sends a form as role.
func (st *site) post(tb testing.TB, role, path string, form url.Values) page {
	tb.Helper()
	if form == nil {
		form = url.Values{}
	}
	return st.do(tb, role, "en", "POST", path, form)
}

// want fails unless the page has status and every one of texts.
func (p page) want(tb testing.TB, status int, texts ...string) {
	tb.Helper()
	if p.status != status {
		tb.Fatalf("status %d, want %d; body:\n%s", p.status, status, p.body)
	}
	for _, s := range texts {
		if !strings.Contains(p.body, s) {
			tb.Errorf("page lacks %q; body:\n%s", s, p.body)
		}
	}
}

// lacks fails if the page has one of texts.
func (p page) lacks(tb testing.TB, texts ...string) {
	tb.Helper()
	for _, s := range texts {
		if strings.Contains(p.body, s) {
			tb.Errorf("page has %q", s)
		}
	}
}

// redirected fails unless the answer is a 303 to location.
func (p page) redirected(tb testing.TB, location string) {
	tb.Helper()
	if p.status != fiber.StatusSeeOther || p.header.Get("Location") != location {
		tb.Fatalf("got %d to %q, want 303 to %q; body:\n%s", p.status, p.header.Get("Location"), location, p.body)
	}
}

// untranslated finds a catalog key rendered as itself: a key missing from a catalog.
var untranslated = regexp.MustCompile(`[\s>"](?:book|lists|subs|dpo)\.[a-z_]+(?:\.[a-z_]+)*[\s<"]`)

// events reads the ledger's events of type about subscriber ("" for any).
func (st *site) events(tb testing.TB, subscriber, typ string) []preferences.Event {
	tb.Helper()
	return preftest.AllEvents(tb, st.s, preferences.LedgerQuery{Subscriber: subscriber, Type: typ})
}

// person is a seeded subscriber and what must never reach a marketer or a viewer.
type person struct {
	id, email, name, attr string
}

// seed makes the list weekly (with a French translation) and three people: Ana
// confirmed, with an attribute; Ben pending; Cy confirmed then unsubscribed.
func (st *site) seed(tb testing.TB) []person {
	tb.Helper()
	preftest.CreateList(tb, st.s, "weekly", func(l *preferences.List) {
		l.Name, l.ConsentText = "Weekly news", "Yes, send me the weekly news."
		l.Translations = map[string]preferences.ListText{"fr": {Name: "Nouvelles de la semaine",
			Purpose: "les nouvelles", ConsentText: "Oui, envoyez-moi les nouvelles."}}
	})
	var out []person
	for i, who := range []struct{ email, name, attr string }{
		{"ana.secret@example.org", "Ana Lovelace", "Lyon-Part-Dieu"},
		{"ben.hidden@example.org", "Ben Turing", "Nantes-Sud"},
		{"cy.private@example.org", "Cy Hopper", "Brest-Ouest"},
	} {
		in := preftest.SignupInput(who.email, "weekly")
		in.Name = who.name
		in.Attributes = []byte(`{"district":"` + who.attr + `"}`)
		req := preftest.Signup(tb, st.s, in)
		if i != 1 {
			preftest.Confirm(tb, st.s, req)
		}
		if i == 2 {
			if _, err := st.s.Unsubscribe(context.Background(), preferences.UnsubscribeInput{Subscriber: req.Subscriber,
				Method: "link"}); err != nil {
				tb.Fatal(err)
			}
		}
		out = append(out, person{id: req.Subscriber, email: who.email, name: who.name, attr: who.attr})
	}
	return out
}
