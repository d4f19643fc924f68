package overview_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/net/html"

	"consentmail/preferences"
	"consentmail/preferences/internal/preftest"
	"consentmail/preferences/overview"
	"consentmail/preferences/webauth"
	"consentmail/preferences/webauth/webauthtest"
	"consentmail/templates"
)

// env is the overview over a real store, with the other features' parts faked.
type env struct {
	store     *preftest.Store
	app       *fiber.App
	campaigns []overview.Campaign
	checks    overview.Deliverability
	queueErr  error
}

// signedIn stands in for the session middleware: the role is the X-Test-Role header's.
func signedIn(c *fiber.Ctx) error {
	lang := c.Query("lang", "en")
	webauth.With(c, webauth.Session{UserID: "u1", Email: "m@acme.test", Role: c.Get("X-Test-Role"), CSRF: "t", Lang: lang})
	return c.Next()
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	e := &env{store: preftest.NewStore(tb)}
	r, err := templates.New(templates.Site{Company: "Acme"})
	if err != nil {
		tb.Fatal(err)
	}
	page, err := overview.New(e.store.Store, r, templates.Site{Company: "Acme"},
		func(_ context.Context, limit int) ([]overview.Campaign, error) {
			return e.campaigns[:min(limit, len(e.campaigns))], nil
		},
		func(context.Context) (overview.Queue, error) {
			return overview.Queue{Ready: 1234, Inflight: 5, Dead: 2}, e.queueErr
		},
		func(context.Context) (overview.Deliverability, error) { return e.checks, nil })
	if err != nil {
		tb.Fatal(err)
	}
	e.app = preftest.NewApp(tb)
	page.Routes(e.app.Group("/admin", signedIn), webauthtest.Require)
	return e
}

func (e *env) get(tb testing.TB, path, role string) (int, *html.Node, string) {
	tb.Helper()
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("X-Test-Role", role)
	res, body := preftest.Do(tb, e.app, req)
	doc, err := html.Parse(strings.NewReader(string(body)))
	if err != nil {
		tb.Fatal(err)
	}
	return res.StatusCode, doc, string(body)
}

func find(n *html.Node, match func(*html.Node) bool) *html.Node {
	if match(n) {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := find(c, match); f != nil {
			return f
		}
	}
	return nil
}

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}

func byID(tb testing.TB, doc *html.Node, id string) *html.Node {
	tb.Helper()
	n := find(doc, func(n *html.Node) bool { return n.Type == html.ElementNode && attr(n, "id") == id })
	if n == nil {
		tb.Fatalf("no element #%s", id)
	}
	return n
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		} else {
			b.WriteString(" ") // elements separate words; Fields folds the spaces, no-break ones too
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// rows returns the text of each body row's cells (th and td).
func rows(table *html.Node) [][]string {
	var out [][]string
	var walk func(*html.Node, bool)
	walk = func(n *html.Node, inBody bool) {
		if n.Type == html.ElementNode && n.Data == "tbody" {
			inBody = true
		}
		if inBody && n.Type == html.ElementNode && n.Data == "tr" {
			var cells []string
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				if c.Type == html.ElementNode && (c.Data == "td" || c.Data == "th") {
					cells = append(cells, text(c))
				}
			}
			out = append(out, cells)
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, inBody)
		}
	}
	walk(table, false)
	return out
}

// seed fills the store through the domain functions: sign-ups from three sources,
// some confirmed, one withdrawn.
func seed(tb testing.TB, s *preftest.Store) {
	tb.Helper()
	preftest.CreateList(tb, s, "news")
	signup := func(addr, source string) preferences.OptinRequest {
		in := preftest.SignupInput(addr, "news")
		in.Source = source
		return preftest.Signup(tb, s, in)
	}
	for i := range 5 {
		req := signup("home"+string(rune('a'+i))+"@example.org", "homepage")
		if i < 3 {
			preftest.Confirm(tb, s, req)
		}
	}
	s.Clock.Advance(24 * time.Hour)
	blog := signup("blog@example.org", "blog")
	preftest.Confirm(tb, s, blog)
	signup("none@example.org", "")
	if _, err := s.Unsubscribe(context.Background(), preferences.UnsubscribeInput{Subscriber: blog.Subscriber,
		Method: "link"}); err != nil {
		tb.Fatal(err)
	}
}

func TestOverviewNumbersMatchTheStore(t *testing.T) {
	e := newEnv(t)
	seed(t, e.store)
	e.campaigns = []overview.Campaign{{ID: "cmp_1", Name: "Spring news", Status: "finished", Started: preftest.Epoch,
		Sent: 1000, Opens: 412, Clicks: 55, Bounced: 12, Complained: 1, Unsubscribed: 7}}
	e.checks = overview.Deliverability{CheckedAt: preftest.Epoch, Warnings: []overview.Warning{
		{Status: "fail", Check: "dmarc", Subject: "acme.test", Message: "no DMARC record", Fix: "publish one"}}}

	status, doc, body := e.get(t, "/admin", preferences.RoleViewer)
	if status != 200 {
		t.Fatalf("GET /admin as a viewer: %d\n%s", status, body)
	}
	for id, want := range map[string]string{"total-confirmed": "3", "total-pending": "3", "total-unsubscribed": "1",
		"queue-ready": "1,234"} {
		if got := text(byID(t, doc, id)); got != want {
			t.Errorf("#%s = %q, want %q", id, got, want)
		}
	}
	funnel := rows(byID(t, doc, "funnel"))
	want := [][]string{{"homepage", "5", "3", "60.0 %"}, {"(no source given)", "1", "0", "0.0 %"}, {"blog", "1", "1", "100.0 %"}}
	if len(funnel) != len(want) {
		t.Fatalf("funnel rows %q, want %q", funnel, want)
	}
	for i := range want {
		if strings.Join(funnel[i], "|") != strings.Join(want[i], "|") {
			t.Errorf("funnel row %d = %q, want %q", i, funnel[i], want[i])
		}
	}
	camp := rows(byID(t, doc, "campaigns"))
	if len(camp) != 1 || !strings.HasPrefix(camp[0][0], "Spring news") || camp[0][2] != "1,000" ||
		camp[0][3] != "41.2 % 412" || camp[0][5] != "1.2 % 12" {
		t.Errorf("campaign row %q", camp)
	}
	// The activity chart: an SVG named by its title, with a table of 30 days whose sums
	// are the seeded events.
	svg := find(doc, func(n *html.Node) bool { return n.Data == "svg" && attr(n, "role") == "img" })
	if svg == nil || !strings.Contains(attr(svg, "aria-label"), "last 30 days") {
		t.Fatalf("no activity chart with an accessible name")
	}
	table := find(doc, func(n *html.Node) bool {
		return n.Data == "table" && strings.Contains(text(n), "Sign-ups, confirmations and withdrawals")
	})
	days := rows(table)
	if len(days) != overview.Days {
		t.Fatalf("%d days in the chart's table, want %d", len(days), overview.Days)
	}
	var sums [3]int
	for _, d := range days {
		for i := range 3 {
			n := 0
			for _, ch := range d[i+1] {
				n = n*10 + int(ch-'0')
			}
			sums[i] += n
		}
	}
	if sums != [3]int{7, 4, 1} {
		t.Errorf("chart sums (sign-ups, confirmations, withdrawals) = %v, want [7 4 1]", sums)
	}
	// A viewer is told of the failure but not sent to the settings they cannot open.
	if !strings.Contains(body, "no DMARC record") || !strings.Contains(body, "badge bad") {
		t.Error("the deliverability failure is not shown")
	}
	if strings.Contains(body, `href="/admin/settings/sending"`) {
		t.Error("a viewer is linked to the sending settings")
	}
	_, _, body = e.get(t, "/admin", preferences.RoleAdmin)
	if !strings.Contains(body, `href="/admin/settings/sending"`) {
		t.Error("an admin is not linked to the sending settings")
	}
}

func TestOverviewInFrenchAndWithPartsDown(t *testing.T) {
	e := newEnv(t)
	e.queueErr = errors.New("redis: connection refused")
	status, doc, body := e.get(t, "/admin?lang=fr", preferences.RoleMarketer)
	if status != 200 {
		t.Fatalf("status %d\n%s", status, body)
	}
	if h := text(find(doc, func(n *html.Node) bool { return n.Data == "h1" })); h != "Vue d’ensemble" {
		t.Errorf("h1 %q", h)
	}
	for _, want := range []string{"la file d’envoi ne répond pas", "Aucune inscription ces 30 derniers jours.",
		"Aucune campagne pour l’instant.", "Aucune vérification de délivrabilité"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestOverviewNeedsASession(t *testing.T) {
	e := newEnv(t)
	for _, role := range []string{preferences.RoleAdmin, preferences.RoleMarketer, preferences.RoleDPO, preferences.RoleViewer} {
		if status, _, _ := e.get(t, "/admin/", role); status != 200 {
			t.Errorf("%s: %d, want 200", role, status)
		}
	}
	if status, _, _ := e.get(t, "/admin", "stranger"); status != 403 {
		t.Errorf("an unknown role: %d, want 403", status)
	}
}
