package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"consentmail/mailer/smtptest"
	"consentmail/templates/browsertest"
)

// The people of the journeys: made with `consentmail user create` before the server
// starts, each with the one-time password it prints.
var journeyUsers = []struct{ email, role string }{
	{"marketer@shop.test", "marketer"},
	{"dpo@shop.test", "dpo"},
	{"admin@shop.test", "admin"},
}

// The subscribers the marketer imports, all with a proof of consent (confirmed),
// and a row that cannot be imported, on line 5 of the file.
var journeySubscribers = []string{"alice.journey@example.org", "bob.journey@example.org", "carol.journey@example.org"}

const journeyCSV = "email,name,consented_at,consent_source\n" +
	"alice.journey@example.org,Alice Martin,2024-05-01T10:00:00Z,shop checkout\n" +
	"bob.journey@example.org,Bob Durand,2024-05-02,shop checkout\n" +
	"carol.journey@example.org,Carol Petit,2024-05-03T09:30:00Z,paper form at the fair\n" +
	"not-an-address,Dan,2024-05-03,paper form at the fair\n"

// TestAdminJourneys drives the admin app of a production-like server in headless
// Chromium as its people use it: a marketer from a new list to a finished campaign,
// a DPO answering a data-subject request and verifying the ledger, and an admin
// reading the overview and the settings on a desk and on a phone. Every page is
// checked with axe and saved as test-output/browser/journey-*.png.
func TestAdminJourneys(t *testing.T) {
	dir := t.TempDir()
	passwords := map[string]string{}
	for _, u := range journeyUsers {
		var out, errOut bytes.Buffer
		err := run(context.Background(), []string{"consentmail", "user", "create", "--email", u.email, "--role", u.role},
			[]string{"CONSENTMAIL_DATA_DIR=" + dir}, &out, &errOut)
		if err != nil {
			t.Fatalf("user create %s: %v\n%s", u.email, err, errOut.String())
		}
		passwords[u.email] = strings.TrimSpace(out.String())
	}
	sink := smtptest.New(t)
	env := serveEnv(dir, sink.URL())
	env["CONSENTMAIL_COMPANY_NAME"] = "Acme Shop"
	env["CONSENTMAIL_POSTAL_ADDRESS"] = "1 rue de la Paix, 75002 Paris"
	env["CONSENTMAIL_FROM"] = "Acme Shop <news@shop.test>"
	srv := startServer(t, env, "serve")
	b := browsertest.New(t, 1280, 800) // after the server: closed before it

	t.Run("marketer", func(t *testing.T) {
		j := &journey{t: t, ctx: b.Tab(t), base: srv.BaseURL, who: "marketer", hidden: journeySubscribers}
		j.signIn("marketer@shop.test", passwords["marketer@shop.test"])
		j.marketer(sink)
		j.signOut()
	})
	if t.Failed() {
		return // the others read what the marketer made
	}
	t.Run("dpo", func(t *testing.T) {
		j := &journey{t: t, ctx: b.Tab(t), base: srv.BaseURL, who: "dpo"}
		j.signIn("dpo@shop.test", passwords["dpo@shop.test"])
		j.dpo(newClient(t, srv.BaseURL))
		j.signOut()
	})
	t.Run("admin", func(t *testing.T) {
		j := &journey{t: t, ctx: b.Tab(t), base: srv.BaseURL, who: "admin"}
		j.signIn("admin@shop.test", passwords["admin@shop.test"])
		j.admin()
		phone := &journey{t: t, ctx: b.Tab(t), base: srv.BaseURL, who: "admin-phone", n: j.n}
		browsertest.Do(t, phone.ctx, "phone viewport", chromedp.EmulateViewport(390, 844))
		phone.admin()
		j.signOut()
	})
}

// journey is one person's walk through the admin app in one tab.
type journey struct {
	t      *testing.T
	ctx    context.Context
	base   string
	who    string
	n      int      // pages seen, numbering the screenshots
	hidden []string // addresses no page may show this person
}

// seen checks the page the tab shows: its heading, no address this person may not
// see, no sideways scrolling, a screenshot journey-WHO-NN-NAME, and axe.
func (j *journey) seen(name, heading string) {
	j.t.Helper()
	if heading != "" {
		if h := browsertest.Heading(j.t, j.ctx); !strings.Contains(h, heading) {
			j.t.Errorf("%s: heading %q, want it to contain %q", name, h, heading)
		}
	}
	if len(j.hidden) > 0 {
		html := strings.ToLower(browsertest.Value(j.t, j.ctx, "read the page",
			chromedp.Evaluate[string](`document.documentElement.outerHTML`)))
		for _, a := range j.hidden {
			if strings.Contains(html, strings.ToLower(a)) {
				j.t.Errorf("%s: the page shows %s's full address to a %s", name, a, j.who)
			}
		}
	}
	j.n++
	size := browsertest.Value(j.t, j.ctx, "page size", chromedp.Evaluate[[]int64](
		`[window.innerWidth, window.innerHeight, document.documentElement.scrollWidth, document.documentElement.scrollHeight]`))
	if size[2] > size[0] {
		j.t.Errorf("%s: the page is %d pixels wide in a %d-pixel window", name, size[2], size[0])
	}
	// Headless Chromium paints no frame below the window: the window grows to the
	// page for the screenshot, so the previews show.
	tall := size[3] > size[1]
	if tall {
		browsertest.Do(j.t, j.ctx, "window as tall as the page", chromedp.EmulateViewport(size[0], size[3]))
	}
	browsertest.Shot(j.t, j.ctx, fmt.Sprintf("journey-%s-%02d-%s", j.who, j.n, name))
	if tall {
		browsertest.Do(j.t, j.ctx, "window back", chromedp.EmulateViewport(size[0], size[1]))
	}
	browsertest.Axe(j.t, j.ctx, j.who+" "+name)
}

// open navigates to path and wants a 200.
func (j *journey) open(path string) {
	j.t.Helper()
	if st := browsertest.Open(j.t, j.ctx, j.base+path); st != http.StatusOK {
		j.t.Fatalf("GET %s: status %d, want 200", path, st)
	}
}

// click follows a link or submits a form with sel, and wants the page it leads to
// (after the redirect of a POST) to answer want.
func (j *journey) click(sel string, want int64) {
	j.t.Helper()
	if st := browsertest.Submit(j.t, j.ctx, sel); st != want {
		j.t.Fatalf("click %s: status %d, want %d (at %s)", sel, st, want, j.location())
	}
}

func (j *journey) location() string {
	return browsertest.Value(j.t, j.ctx, "location", chromedp.Location())
}

// fill types into the fields of the page, by id.
func (j *journey) fill(what string, fields ...string) {
	j.t.Helper()
	var actions []chromedp.Action[chromedp.Void]
	for i := 0; i+1 < len(fields); i += 2 {
		actions = append(actions, chromedp.SendKeys(chromedp.ID(fields[i]), fields[i+1]))
	}
	browsertest.Do(j.t, j.ctx, what, actions...)
}

// text is what the element sel says.
func (j *journey) text(sel string) string {
	j.t.Helper()
	return strings.TrimSpace(browsertest.Value(j.t, j.ctx, "read "+sel, chromedp.Text(chromedp.CSS(sel))))
}

// waitFor waits until the JavaScript condition holds on the tab's page, through the
// navigations the page makes itself (htmx polling, then a redirect).
func (j *journey) waitFor(what, cond string) {
	j.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, err := chromedp.Run(j.ctx, chromedp.Evaluate[bool](cond))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			j.t.Fatalf("%s: not within 20s (at %s, last error %v)", what, j.location(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// signIn signs in through the form with the one-time password, which must be
// changed first, on the account page the app leads to.
func (j *journey) signIn(email, oneTime string) {
	j.t.Helper()
	j.open("/admin/signin")
	j.seen("signin", "Sign in")
	j.fill("type the one-time password", "email", email, "password", oneTime)
	j.click(`form[action^="/admin/signin"] button[type=submit]`, http.StatusOK)
	if loc := j.location(); !strings.HasSuffix(loc, "/admin/account") {
		j.t.Fatalf("after signing in with a one-time password: at %s, want the account page", loc)
	}
	if w := j.text("p.warn"); !strings.Contains(w, "one-time password") {
		j.t.Errorf("account page says %q, want the one-time password to be changed", w)
	}
	j.seen("change-password", "")
	j.fill("choose a password", "current", oneTime, "new", "correct horse battery staple", "confirm", "correct horse battery staple")
	j.click(`form[action="/admin/account/password"] button[type=submit]`, http.StatusOK)
	if n := j.text(`p.notice[role=status]`); n == "" {
		j.t.Errorf("no word that the password changed (at %s)", j.location())
	}
}

// signOut uses the header's button and lands on the sign-in page.
func (j *journey) signOut() {
	j.t.Helper()
	j.click(`form[action="/admin/signout"] button`, http.StatusOK)
	if loc := j.location(); !strings.Contains(loc, "/admin/signin") {
		j.t.Errorf("after signing out: at %s, want the sign-in page", loc)
	}
}

// marketer: a list, an import, a template, and a campaign from test to finish.
func (j *journey) marketer(sink *smtptest.Sink) {
	t := j.t
	j.open("/admin")
	j.seen("overview", "")

	// Lists: a new list with its purpose and consent text.
	j.open("/admin/lists")
	j.seen("lists", "Lists")
	j.click(`a[href="/admin/lists/_new"]`, http.StatusOK)
	j.fill("describe the list", "id", "journey", "name", "Shop news",
		"purpose", "News about the shop and its new products, twice a month.",
		"consent_text", "Yes, send me the shop's news by email, twice a month.")
	j.seen("list-new", "")
	j.click(`form.book-form button[type=submit]`, http.StatusOK)
	j.seen("list", "Shop news")
	if got := browsertest.Value(t, j.ctx, "read the snippet", chromedp.Value(chromedp.ID("snippet-en"))); !strings.Contains(got, "/subscribe/journey") {
		t.Errorf("the list's snippet does not post to its form:\n%s", got)
	}

	// Imports: a real file through the file input, one bad row.
	csvFile := filepath.Join(t.TempDir(), "fair-signups.csv")
	if err := os.WriteFile(csvFile, []byte(journeyCSV), 0o600); err != nil {
		t.Fatal(err)
	}
	j.open("/admin/imports")
	j.seen("imports", "Import")
	browsertest.Do(t, j.ctx, "choose the list and the file",
		chromedp.SetValue(chromedp.ID("list"), "journey"),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{csvFile}))
	j.click(`form.import-form button[type=submit]`, http.StatusOK)
	// The import runs in the background: the page polls, then links to the result.
	j.waitFor("the import's result", `!!document.querySelector('#count-rejected, #import-progress a[href^="/admin/imports/"]')`)
	if browsertest.Value(t, j.ctx, "result shown", chromedp.Evaluate[bool](`!document.querySelector('#count-rejected')`)) {
		j.click(`#import-progress a[href^="/admin/imports/"]`, http.StatusOK)
	}
	if got := j.text("#count-imported") + "/" + j.text("#count-rejected"); got != "3/1" {
		t.Errorf("imported/rejected %s, want 3/1", got)
	}
	if row := j.text("#rejected tbody tr"); !strings.HasPrefix(row, "5") {
		t.Errorf("rejected row %q, want line 5", row)
	}
	j.seen("import-result", "")

	// The people, masked.
	j.open("/admin/subscribers?list=journey")
	j.seen("subscribers", "Subscribers")
	if n := browsertest.Value(t, j.ctx, "count rows", chromedp.Evaluate[int](`document.querySelectorAll('tbody a[href^="/admin/subscribers/"]').length`)); n != 3 {
		t.Errorf("%d people on the list's subscribers page, want 3", n)
	}
	if cell := j.text(`tbody a[href^="/admin/subscribers/"]`); !strings.Contains(cell, "***@example.org") {
		t.Errorf("subscriber shown as %q, want a masked address", cell)
	}
	j.click(`tbody a[href^="/admin/subscribers/"]`, http.StatusOK)
	if got := j.text(".book-address"); !strings.Contains(got, "***@example.org") {
		t.Errorf("the person's page shows the address as %q, want it masked", got)
	}
	j.seen("subscriber", "Subscriber")

	// Templates: a new one, and its preview.
	j.open("/admin/templates")
	j.seen("templates", "Templates")
	j.click(`a[href="/admin/templates/new"]`, http.StatusOK)
	j.fill("write the template", "tpl-name", "Spring news", "tpl-subject", "Spring at the shop, {{default \"friend\" .Subscriber.Name}}",
		"tpl-html", "<h1>Hello {{default \"friend\" .Subscriber.Name}}</h1>\n<p>The spring collection is in the shop.</p>")
	j.seen("template-new", "")
	j.click(`form[action="/admin/templates"] button[type=submit]:not([formaction])`, http.StatusOK)
	j.waitFor("the preview frame", `!!document.querySelector('#preview iframe.preview')`)
	frame := browsertest.Attr(t, j.ctx, "#preview iframe.preview", "src")
	if st, body := j.fetchText(frame.Value); st != 200 || !strings.Contains(body, "The spring collection") || !strings.Contains(body, "75002 Paris") {
		t.Errorf("preview frame %s: %d, want 200 with the template and the footer:\n%.500s", frame.Value, st, body)
	}
	j.seen("template", "template")

	// Campaigns: to the list, with the template; what is shown before a send.
	j.open("/admin/campaigns")
	j.seen("campaigns", "Campaigns")
	j.click(`a[href="/admin/campaigns/new"]`, http.StatusOK)
	list := j.text(`.cp-list`)
	for _, want := range []string{"Shop news", "News about the shop and its new products", "consent", "3 "} {
		if !strings.Contains(list, want) {
			t.Errorf("the list in the campaign form says %q, want %q", list, want)
		}
	}
	j.fill("name the campaign", "c-name", "Spring 2025")
	browsertest.Do(t, j.ctx, "choose the list and the template",
		chromedp.Click(chromedp.CSS(`input[name=lists][value=journey]`)),
		chromedp.Click(chromedp.CSS(`input[name=source][value=template]`)),
		chromedp.SetValue(chromedp.ID("c-template"), browsertest.Value(t, j.ctx, "the template's id",
			chromedp.Evaluate[string](`[...document.querySelectorAll('#c-template option')].find(o => o.text === 'Spring news').value`))))
	j.seen("campaign-new", "")
	j.click(`main form[action="/admin/campaigns"] button[type=submit]`, http.StatusOK)
	j.seen("campaign", "Spring 2025")
	table := j.text(".table-wrap table")
	for _, want := range []string{"Shop news", "News about the shop", "consent", "3"} {
		if !strings.Contains(table, want) {
			t.Errorf("the campaign's lists say %q, want %q", table, want)
		}
	}

	// A test to the marketer's own address.
	j.fill("test address", "c-emails", "marketer@shop.test")
	j.click(`form[action$="/test"] button`, http.StatusOK)
	if m := mailTo(t, sink, "marketer@shop.test"); !strings.Contains(m.Subject, "Spring at the shop") {
		t.Errorf("test mail subject %q", m.Subject)
	}
	j.seen("campaign-tested", "")

	// Start, and watch it to the end.
	j.click(`form[action$="/start"] button`, http.StatusOK)
	j.waitFor("the campaign to finish", `(() => { const s = document.querySelector('#campaign-progress');
		return !!s && !s.hasAttribute('hx-get') && !!s.querySelector('#progress-h .badge.ok') })()`)
	if got := j.text("#progress-n"); !strings.Contains(got, "3") {
		t.Errorf("progress says %q, want 3 of 3", got)
	}
	j.seen("campaign-finished", "")
	for _, a := range journeySubscribers {
		n := 0
		for _, m := range sink.Messages() {
			if len(m.To) == 1 && strings.EqualFold(m.To[0], a) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d campaign mails to %s, want 1", n, a)
		}
	}
	if n := sink.Received(); n != 4 {
		t.Errorf("the relay received %d messages, want 4 (a test and three sends)", n)
	}
	j.open("/admin")
	j.seen("overview-after", "")
}

// fetchText fetches u from the page, with its session cookie, and returns the status
// and the content type and body, on a line each.
func (j *journey) fetchText(u string) (int, string) {
	j.t.Helper()
	type answer struct {
		Status int    `json:"status"`
		Type   string `json:"type"`
		Body   string `json:"body"`
	}
	a := browsertest.Value(j.t, j.ctx, "fetch "+u, chromedp.Evaluate[answer](
		fmt.Sprintf(`fetch(%q).then(async r => ({status: r.status, type: r.headers.get('content-type'), body: await r.text()}))`, u),
		chromedp.EvalAwaitPromise))
	return a.Status, a.Type + "\n" + a.Body
}

var verifyHead = regexp.MustCompile(`[0-9a-f]{64}`)

// dpo: a data-subject request from the address to the erasure's receipt, and the
// ledger verified.
func (j *journey) dpo(api *client) {
	t := j.t
	j.open("/admin/dpo")
	j.seen("dpo", "Data protection")
	j.fill("the person's address", "lookup-email", "Alice.Journey@example.org")
	j.click(`form[action="/admin/subscribers/lookup"] button`, http.StatusOK)
	j.seen("person", "")
	if got := j.text(".book-facts"); !strings.Contains(got, "Alice Martin") {
		t.Errorf("the person page says %q, want Alice's name", got)
	}

	// Export: the JSON file the link downloads.
	href := browsertest.Attr(t, j.ctx, `a[href$="/export"]`, "href").Value
	st, body := j.fetchText(href)
	if st != 200 || !strings.HasPrefix(body, "application/json") || !strings.Contains(body, "alice.journey@example.org") ||
		!strings.Contains(body, "shop checkout") {
		t.Errorf("export %s: %d, want 200 JSON with the address and the proof:\n%.600s", href, st, body)
	}

	// Erase, confirmed by typing.
	j.fill("confirm the erasure", "confirm", "ERASE")
	j.click(`form[action$="/erase"] button`, http.StatusOK)
	if got := j.text(".book-receipt"); !strings.Contains(got, "#") {
		t.Errorf("receipt %q, want the ledger event's number", got)
	}
	j.seen("erased", "")
	if strings.Contains(strings.ToLower(browsertest.Value(t, j.ctx, "page", chromedp.Evaluate[string](`document.body.innerHTML`))), "alice") {
		t.Error("the receipt page still shows Alice's address or name")
	}

	j.open("/admin/dpo/ledger")
	j.seen("ledger", "ledger")
	if got := j.text("table.book-ledger tbody"); !strings.Contains(got, "Erased") {
		t.Errorf("the ledger does not list the erasure:\n%s", got)
	}
	j.click(`a[href="/admin/dpo/verify"]`, http.StatusOK)
	if got := j.text(".book-verdict"); !strings.Contains(got, "intact") && !strings.Contains(got, "OK") {
		t.Errorf("verification says %q", got)
	}
	head := verifyHead.FindString(j.text(".book-facts"))
	var verify struct {
		OK   bool   `json:"ok"`
		Head string `json:"head"`
	}
	if st := api.admin("GET", "/api/v1/ledger/verify", "", &verify); st != 200 || !verify.OK || head != verify.Head {
		t.Errorf("page shows head %q; the API says %d %+v", head, st, verify)
	}
	j.seen("verify", "")
}

// admin: the overview and the settings.
func (j *journey) admin() {
	for _, p := range []struct{ path, name, heading string }{
		{"/admin", "overview", ""},
		{"/admin/settings/users", "users", "Users"},
		{"/admin/settings/apikeys", "apikeys", "API keys"},
		{"/admin/settings/sending", "sending", "Sending"},
	} {
		j.open(p.path)
		if p.name == "users" {
			for _, u := range journeyUsers {
				if got := j.text("main"); !strings.Contains(got, u.email) {
					j.t.Errorf("Settings → Users does not list %s", u.email)
				}
			}
		}
		j.seen(p.name, p.heading)
	}
}
