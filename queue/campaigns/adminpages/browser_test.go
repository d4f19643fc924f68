package adminpages_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/emersion/go-smtp"

	"consentmail/templates/browsertest"
)

// The template editor in a real browser: an error shown at its line, fixed, then the
// preview in its frame.
func TestBrowserTemplateEditor(t *testing.T) {
	e := newEnv(t)
	b := browsertest.New(t, 1280, 2200) // tall: headless screenshots leave out frames below the window
	ctx := b.Tab(t)

	browsertest.Open(t, ctx, e.url+"/admin/templates/new")
	browsertest.Do(t, ctx, "type the template",
		chromedp.SetValue(chromedp.CSS("#tpl-name"), "Monthly news"),
		chromedp.SetValue(chromedp.CSS("#tpl-subject"), "News for {{.Subscriber.Name}}"),
		chromedp.SetValue(chromedp.CSS("#tpl-html"), "<h1>Monthly news</h1>\n<p>Hello {{.Subscriber.Name}},</p>\n<p>Weather in {{.Subscriber.Atributes.city}}</p>"))
	if st := browsertest.Submit(t, ctx, `form.card button[type=submit]:not([formaction])`); st != 422 {
		t.Fatalf("save with an error: status %d, want 422", st)
	}
	msg := browsertest.Value(t, ctx, "read the error", chromedp.Text(chromedp.CSS("#tpl-html-error")))
	if !strings.Contains(msg, "Line 3:") || !strings.Contains(msg, "Atributes") {
		t.Errorf("error shown %q, want it at line 3", msg)
	}
	if bad := browsertest.Value(t, ctx, "read the bad line", chromedp.Text(chromedp.CSS(".cp-bad"))); !strings.Contains(bad, "{{.Subscriber.Atributes.city}}") {
		t.Errorf("line marked bad %q", bad)
	}
	browsertest.Axe(t, ctx, "template editor with an error")
	browsertest.Shot(t, ctx, "admin-template-error")

	browsertest.Do(t, ctx, "fix the line",
		chromedp.SetValue(chromedp.CSS("#tpl-html"), "<h1>Monthly news</h1>\n<p>Hello {{.Subscriber.Name}},</p>\n<p>Weather in {{default \"your town\" .Subscriber.Attributes.city}}</p>"))
	if st := browsertest.Submit(t, ctx, `form.card button[type=submit]:not([formaction])`); st != 200 {
		t.Fatalf("save fixed: status %d", st)
	}
	if h := browsertest.Heading(t, ctx); h != "Edit template" {
		t.Errorf("after saving: heading %q", h)
	}
	// The frame shows the preview (its document is sandboxed: only its size is seen here).
	browsertest.Do(t, ctx, "preview frame", chromedp.WaitVisible(chromedp.CSS("#preview iframe")))
	if sb := browsertest.Attr(t, ctx, "#preview iframe", "sandbox"); !sb.Exists || sb.Value != "" {
		t.Errorf("frame sandbox %+v, want an empty sandbox attribute", sb)
	}
	browsertest.Do(t, ctx, "frame loaded", chromedp.Poll[chromedp.Void](
		`document.querySelector('#preview iframe').getBoundingClientRect().height > 200`, chromedp.WithPollingTimeout(10*time.Second)))
	browsertest.Axe(t, ctx, "template editor")
	browsertest.Shot(t, ctx, "admin-template-edit")

	// With htmx, typing refreshes the frame with a draft of what is typed.
	browsertest.Do(t, ctx, "type", chromedp.SendKeys(chromedp.CSS("#tpl-html"), "\n<p>More</p>"))
	browsertest.Do(t, ctx, "draft preview", chromedp.Poll[chromedp.Void](
		`document.querySelector('#preview iframe').getAttribute('src').includes('draft=')`, chromedp.WithPollingTimeout(10*time.Second)))

	browsertest.Open(t, ctx, e.url+"/admin/templates")
	browsertest.Axe(t, ctx, "templates")
	browsertest.Shot(t, ctx, "admin-templates")
}

// A campaign from creation to done, its progress refreshed by htmx.
func TestBrowserCampaignToDone(t *testing.T) {
	e := newEnv(t)
	e.list("news", "Monthly news about the shop")
	e.list("offers", "Offers from partners")
	e.audience("news", 12)
	e.subscribe("offers-1@example.org", "offers")
	// The relay takes its time, so that the campaign is seen sending.
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) }) // a failing test lets the sink end
	e.sink.FailRcpt(func(string) *smtp.SMTPError { <-release; return nil })
	b := browsertest.New(t, 1280, 2200) // tall: headless screenshots leave out frames below the window
	ctx := b.Tab(t)

	browsertest.Open(t, ctx, e.url+"/admin/campaigns/new")
	browsertest.Axe(t, ctx, "new campaign")
	browsertest.Shot(t, ctx, "admin-campaign-new")
	browsertest.Do(t, ctx, "fill the campaign",
		chromedp.SetValue(chromedp.CSS("#c-name"), "Spring news"),
		chromedp.Click(chromedp.CSS(`input[name=lists][value=news]`)),
		chromedp.SetValue(chromedp.CSS("#c-html"), "<p>Hello {{.Subscriber.Name}}, spring is here.</p>"),
		chromedp.SetValue(chromedp.CSS("#c-subject"), "Spring is here"))
	if st := browsertest.Submit(t, ctx, `main form button[type=submit]`); st != 200 {
		t.Fatalf("create: status %d", st)
	}
	browsertest.Axe(t, ctx, "draft campaign")
	if st := browsertest.Submit(t, ctx, `form[action$="/start"] button`); st != 200 {
		t.Fatalf("start: status %d", st)
	}
	browsertest.Do(t, ctx, "sending", chromedp.Poll[chromedp.Void](
		`document.querySelector('#campaign-progress .badge').textContent.trim() === 'sending'`, chromedp.WithPollingTimeout(10*time.Second)))
	browsertest.Axe(t, ctx, "campaign sending")
	browsertest.Shot(t, ctx, "admin-campaign-sending")
	once.Do(func() { close(release) })
	// No reload by hand: htmx polls the fragment until the campaign is done, then
	// reloads the whole page (its status and actions change too).
	waitPage(t, ctx, "done", `document.querySelector('#progress-n').textContent.includes('12 of 12') &&
		document.querySelector('dl.facts .badge').textContent.trim() === 'finished' && !document.querySelector('form[action$="/pause"]')`)
	if v := browsertest.Attr(t, ctx, "#progress-bar", "value"); v.Value != "100" {
		t.Errorf("progress value %q, want 100", v.Value)
	}
	browsertest.Axe(t, ctx, "campaign done")
	browsertest.Shot(t, ctx, "admin-campaign-done")

	browsertest.Open(t, ctx, e.url+"/admin/campaigns")
	browsertest.Axe(t, ctx, "campaigns")
	browsertest.Shot(t, ctx, "admin-campaigns")

	phone := browsertest.New(t, 390, 844)
	pctx := phone.Tab(t)
	browsertest.Open(t, pctx, e.url+"/admin/campaigns/new")
	browsertest.Axe(t, pctx, "new campaign (phone)")
	browsertest.Shot(t, pctx, "admin-campaign-new-phone")
}

// waitPage waits until expr holds in the tab, across the page's own navigations.
func waitPage(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(5*time.Second)))
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
	}
}
