package adminpages_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"consentmail/preferences"
	"consentmail/queue/campaigns"
)

const (
	admin    = preferences.RoleAdmin
	marketer = preferences.RoleMarketer
	dpo      = preferences.RoleDPO
	viewer   = preferences.RoleViewer
)

func TestTemplateEditorShowsErrorsAtTheirLine(t *testing.T) {
	e := newEnv(t)
	r := want(t, e.do(marketer, "POST", "/admin/templates", url.Values{"_csrf": {"t"}, "name": {"Monthly"}, "subject": {"Hi {{if}}"},
		"html": {"<p>one</p>\r\n<p>two</p>\r\n<p>{{.Subscriber.Nmae}}</p>\r\n<p>four</p>"}}), 422)
	// Each part's problem under it, at its line, with what was typed kept.
	contains(t, r.body, `value="Monthly"`, `id="tpl-html-error"`, `<strong>Line 3:</strong>`, "Nmae",
		`<span class="cp-ln cp-bad"><span class="cp-n">3</span>`, `aria-invalid="true" aria-describedby="tpl-html-error"`,
		`id="tpl-subject-error"`, `&lt;p&gt;four&lt;/p&gt;`)
	if n := e.count(t); n != 0 {
		t.Fatalf("an invalid template was stored (%d)", n)
	}
	loc := redirect(t, e.do(marketer, "POST", "/admin/templates", url.Values{"_csrf": {"t"}, "name": {"Monthly"},
		"subject": {"Hi {{.Subscriber.Name}}"}, "html": {"<p>Hello {{.Subscriber.Name}}</p>"}}))
	if !strings.HasPrefix(loc, "/admin/templates/tpl_") {
		t.Fatalf("created: redirect to %q", loc)
	}
	id := strings.TrimPrefix(strings.Split(loc, "?")[0], "/admin/templates/")
	r = want(t, e.do(marketer, "GET", loc, nil), 200)
	contains(t, r.body, "Created.", `sandbox="" src="/admin/templates/`+id+`/preview"`, "{{.Subscriber.Attributes.city}}", "upper")
	// Saving an error keeps the stored template.
	want(t, e.do(marketer, "POST", "/admin/templates/"+id, url.Values{"name": {"Monthly"}, "subject": {"S"}, "html": {"<p>\n{{.Nope}}</p>"}}), 422)
	if got, _ := e.store.Get(e.ctx, id); got.HTML != "<p>Hello {{.Subscriber.Name}}</p>" {
		t.Errorf("stored html %q changed by a refused save", got.HTML)
	}
	loc = redirect(t, e.do(admin, "POST", "/admin/templates/"+id, url.Values{"name": {"Monthly 2"}, "subject": {"S"}, "html": {"<p>B</p>"}}))
	if got, _ := e.store.Get(e.ctx, id); got.Name != "Monthly 2" || !strings.Contains(loc, "done=saved") {
		t.Errorf("saved %+v, redirect %s", got, loc)
	}
}

func (e *env) count(tb testing.TB) int {
	items, _, err := e.store.List(e.ctx, "", 100)
	if err != nil {
		tb.Fatal(err)
	}
	return len(items)
}

func TestPagesRoles(t *testing.T) {
	e := newEnv(t)
	e.list("news", "monthly news")
	tpl, err := e.store.Create(e.ctx, campaigns.Template{Name: "T", Subject: "S", HTML: "<p>x</p>"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.engine.Create(e.ctx, campaigns.Input{Name: "C", Subject: "S", Lists: []string{"news"}, HTML: "<p>x</p>"})
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"_csrf": {"t"}, "name": {"X"}, "subject": {"S"}, "html": {"<p>x</p>"}, "lists": {"news"}, "emails": {"a@example.org"}}
	for _, path := range []string{"/admin/templates", "/admin/templates/" + tpl.ID, "/admin/campaigns", "/admin/campaigns/" + c.ID,
		"/admin/campaigns/" + c.ID + "/progress", "/admin/templates/" + tpl.ID + "/preview"} {
		for _, role := range []string{admin, marketer, dpo, viewer} {
			want(t, e.do(role, "GET", path, nil), 200)
		}
	}
	for _, path := range []string{"/admin/templates/new", "/admin/campaigns/new", "/admin/campaigns/" + c.ID + "/edit"} {
		want(t, e.do(viewer, "GET", path, nil), 403)
		want(t, e.do(dpo, "GET", path, nil), 403)
	}
	for _, path := range []string{"/admin/templates", "/admin/templates/" + tpl.ID, "/admin/templates/" + tpl.ID + "/test",
		"/admin/templates/" + tpl.ID + "/preview", "/admin/templates/" + tpl.ID + "/delete", "/admin/campaigns", "/admin/campaigns/" + c.ID,
		"/admin/campaigns/" + c.ID + "/start", "/admin/campaigns/" + c.ID + "/cancel", "/admin/campaigns/" + c.ID + "/test",
		"/admin/campaigns/" + c.ID + "/delete"} {
		want(t, e.do(viewer, "POST", path, form), 403)
		want(t, e.do(dpo, "POST", path, form), 403)
	}
	if got, _ := e.engine.Get(e.ctx, c.ID); got.Status != campaigns.StatusDraft || got.Name != "C" {
		t.Errorf("refused requests changed the campaign: %+v", got)
	}
	// The viewer is offered nothing to change.
	r := want(t, e.do(viewer, "GET", "/admin/campaigns/"+c.ID, nil), 200)
	for _, not := range []string{"/start", "/edit", "/delete", "/test", "<textarea"} {
		if strings.Contains(r.body, not) {
			t.Errorf("viewer's campaign page offers %s", not)
		}
	}
	r = want(t, e.do(viewer, "GET", "/admin/templates/"+tpl.ID, nil), 200)
	if strings.Contains(r.body, "<textarea") || strings.Contains(r.body, `method="post"`) && strings.Contains(r.body, "/test") {
		t.Error("viewer's template page offers editing or a test send")
	}
	// A real subscriber's data only for admins and DPOs, recorded.
	sub := e.subscribe("ana@example.org", "news")
	for _, role := range []string{marketer, viewer} {
		want(t, e.do(role, "GET", "/admin/templates/"+tpl.ID+"/preview?subscriber="+sub, nil), 403)
	}
	want(t, e.do(dpo, "GET", "/admin/templates/"+tpl.ID+"/preview?subscriber="+sub, nil), 200)
	events, _, err := e.prefs.Ledger(e.ctx, preferences.LedgerQuery{Type: preferences.EventUnmasked, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Subscriber != sub || !strings.Contains(events[0].Actor, "dpo@acme.test") {
		t.Errorf("unmasked events %+v, want one for the DPO's preview", events)
	}
}

func TestPreviewFrame(t *testing.T) {
	e := newEnv(t)
	tpl, err := e.store.Create(e.ctx, campaigns.Template{Name: "T", Subject: "S", HTML: "<p>Hello {{.Subscriber.Name}}</p>"})
	if err != nil {
		t.Fatal(err)
	}
	r := want(t, e.do(viewer, "GET", "/admin/templates/"+tpl.ID+"/preview", nil), 200)
	csp := r.header.Get("Content-Security-Policy")
	for _, w := range []string{"default-src 'none'", "frame-ancestors 'self'", "sandbox"} {
		if !strings.Contains(csp, w) {
			t.Errorf("frame CSP %q lacks %q", csp, w)
		}
	}
	if strings.Contains(csp, "script-src") || r.header.Get("X-Frame-Options") != "SAMEORIGIN" {
		t.Errorf("frame headers: CSP %q, X-Frame-Options %q", csp, r.header.Get("X-Frame-Options"))
	}
	contains(t, r.body, "Hello Ana Example", "/u/preview")

	// The editor's unsaved content, kept for the frame: without htmx, back to the
	// editor with it; with htmx, the frame alone.
	draft := url.Values{"_csrf": {"t"}, "name": {"T"}, "subject": {"S"}, "html": {"<p>Draft {{upper .Subscriber.Name}}</p>"}}
	loc := redirect(t, e.do(marketer, "POST", "/admin/templates/"+tpl.ID+"/preview", draft))
	r = want(t, e.do(marketer, "GET", loc, nil), 200)
	contains(t, r.body, "Draft {{upper .Subscriber.Name}}", `sandbox="" src="/admin/templates/`+tpl.ID+`/preview?draft=`)
	tok := loc[strings.Index(loc, "draft=")+6 : strings.Index(loc, "#")]
	r = want(t, e.do(marketer, "GET", "/admin/templates/"+tpl.ID+"/preview?draft="+tok, nil), 200)
	contains(t, r.body, "Draft ANA EXAMPLE")
	// Another person's draft is not theirs.
	want(t, e.do(admin, "GET", "/admin/templates/"+tpl.ID+"/preview?draft="+tok, nil), 404)
	if got, _ := e.store.Get(e.ctx, tpl.ID); strings.Contains(got.HTML, "Draft") {
		t.Error("a preview saved the template")
	}
	req := e.do(marketer, "POST", "/admin/templates/new/preview", draft)
	want(t, req, 303)
	// A draft that does not parse: the frame says why.
	bad := url.Values{"name": {"T"}, "subject": {"S"}, "html": {"<p>\n{{.Nope}}</p>"}}
	loc = redirect(t, e.do(marketer, "POST", "/admin/templates/new/preview", bad))
	tok = loc[strings.Index(loc, "draft=")+6 : strings.Index(loc, "#")]
	r = want(t, e.do(marketer, "GET", "/admin/templates/new/preview?draft="+tok, nil), 422)
	contains(t, r.body, "line 2")
}

func TestTemplateTestSendReachesTheSink(t *testing.T) {
	e := newEnv(t)
	tpl, err := e.store.Create(e.ctx, campaigns.Template{Name: "T", Subject: "Hi {{.Subscriber.Name}}", HTML: "<p>x</p>"})
	if err != nil {
		t.Fatal(err)
	}
	r := want(t, e.do(marketer, "POST", "/admin/templates/"+tpl.ID+"/test", url.Values{"emails": {"not an address"}}), 422)
	contains(t, r.body, `id="tpl-emails-error"`, "not an email address", `value="not an address"`)
	loc := redirect(t, e.do(marketer, "POST", "/admin/templates/"+tpl.ID+"/test", url.Values{"emails": {"Proof@Example.org"}}))
	if !strings.Contains(loc, "done=tested") {
		t.Errorf("redirect %s", loc)
	}
	m := e.sink.WaitFor(t, 1, 10*time.Second)[0]
	if m.To[0] != "Proof@example.org" || m.Subject != "[Test] Hi Ana Example" {
		t.Errorf("test message to %v, subject %q", m.To, m.Subject)
	}
	// Edited, the next test sends the new content.
	if _, err := e.store.Update(e.ctx, campaigns.Template{ID: tpl.ID, Name: "T", Subject: "Edited", HTML: "<p>x</p>"}); err != nil {
		t.Fatal(err)
	}
	redirect(t, e.do(marketer, "POST", "/admin/templates/"+tpl.ID+"/test", url.Values{"emails": {"proof@example.org"}}))
	if ms := e.sink.WaitFor(t, 2, 10*time.Second); ms[0].Subject != "[Test] Edited" {
		t.Errorf("test subjects %q, %q; want the edited one second", ms[0].Subject, ms[1].Subject)
	}
}

func TestCampaignDraftPages(t *testing.T) {
	e := newEnv(t)
	e.list("news", "monthly news about our shop")
	e.audience("news", 3)
	r := want(t, e.do(marketer, "GET", "/admin/campaigns/new", nil), 200)
	// Each list with its purpose, legal basis and audience before sending.
	contains(t, r.body, "monthly news about our shop", "consent (GDPR art. 6(1)(a))", "3 confirmed")

	r = want(t, e.do(marketer, "POST", "/admin/campaigns", url.Values{"_csrf": {"t"}, "name": {"Spring"}, "source": {"html"},
		"html": {"<p>\n{{.Subscriber.Nmae}}</p>"}, "subject": {"Hello"}}), 422)
	contains(t, r.body, `id="c-lists-error"`, `value="Spring"`)
	r = want(t, e.do(marketer, "POST", "/admin/campaigns", url.Values{"name": {"Spring"}, "source": {"html"}, "lists": {"news"},
		"html": {"<p>\n{{.Subscriber.Nmae}}</p>"}, "subject": {"Hello"}}), 422)
	contains(t, r.body, `id="c-html-error"`, "<strong>Line 2:</strong>")
	loc := redirect(t, e.do(marketer, "POST", "/admin/campaigns", url.Values{"name": {"Spring"}, "source": {"html"}, "lists": {"news"},
		"html": {"<p>Hi</p>"}, "subject": {"Hello"}, "send_at": {"2030-05-01T10:00"}, "track": {"on"}}))
	id := strings.TrimPrefix(strings.Split(loc, "?")[0], "/admin/campaigns/")
	c, err := e.engine.Get(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "Spring" || !c.Track || c.SendAt == nil || !c.SendAt.Equal(time.Date(2030, 5, 1, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("created %+v", c)
	}
	r = want(t, e.do(marketer, "GET", loc, nil), 200)
	contains(t, r.body, "Created.", "/admin/campaigns/"+id+"/edit", `action="/admin/campaigns/`+id+`/start"`,
		`action="/admin/campaigns/`+id+`/delete"`, `sandbox="" src="/admin/campaigns/`+id+`/preview"`)
	if strings.Contains(r.body, "/pause\"") || strings.Contains(r.body, "/resume\"") {
		t.Error("a draft is offered pause or resume")
	}
	r = want(t, e.do(marketer, "GET", "/admin/campaigns/"+id+"/edit", nil), 200)
	contains(t, r.body, `value="2030-05-01T10:00"`, `value="news" checked`)
	redirect(t, e.do(marketer, "POST", "/admin/campaigns/"+id, url.Values{"name": {"Summer"}, "source": {"html"}, "lists": {"news"},
		"html": {"<p>Hi</p>"}, "subject": {"Hello"}}))
	if c, _ := e.engine.Get(e.ctx, id); c.Name != "Summer" || c.SendAt != nil || c.Track {
		t.Errorf("after edit: %+v", c)
	}
	// Test send through the engine's test.
	redirect(t, e.do(marketer, "POST", "/admin/campaigns/"+id+"/test", url.Values{"emails": {"proof@example.org"}}))
	if m := e.sink.WaitFor(t, 1, 10*time.Second)[0]; m.Subject != "[Test] Hello" {
		t.Errorf("test subject %q", m.Subject)
	}
	// Delete the draft.
	if loc := redirect(t, e.do(marketer, "POST", "/admin/campaigns/"+id+"/delete", url.Values{})); !strings.Contains(loc, "done=deleted") {
		t.Errorf("delete redirect %s", loc)
	}
	want(t, e.do(marketer, "GET", "/admin/campaigns/"+id, nil), 404)

	// A started campaign is neither edited nor deleted.
	c2, err := e.engine.Create(e.ctx, campaigns.Input{Name: "Go", Subject: "S", Lists: []string{"news"}, HTML: "<p>x</p>"})
	if err != nil {
		t.Fatal(err)
	}
	redirect(t, e.do(marketer, "POST", "/admin/campaigns/"+c2.ID+"/start", url.Values{}))
	e.waitCampaign(c2.ID, func(c campaigns.Campaign) bool { return c.Status == campaigns.StatusFinished })
	r = want(t, e.do(marketer, "POST", "/admin/campaigns/"+c2.ID+"/delete", url.Values{}), 409)
	contains(t, r.body, "can no longer be changed")
	want(t, e.do(marketer, "POST", "/admin/campaigns/"+c2.ID, url.Values{"name": {"X"}, "source": {"html"}, "lists": {"news"},
		"html": {"<p>x</p>"}, "subject": {"S"}}), 409)
	want(t, e.do(marketer, "POST", "/admin/campaigns/"+c2.ID+"/pause", url.Values{}), 409)
}

func TestCampaignLifecycleAndBreakdown(t *testing.T) {
	e := newEnv(t)
	e.list("news", "news")
	e.audience("news", 4)
	restricted := e.subscribe("restricted@example.org", "news")
	if err := e.prefs.Restrict(e.ctx, preferences.StatusChange{Subscriber: restricted, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	c, err := e.engine.Create(e.ctx, campaigns.Input{Name: "Go", Subject: "S", Lists: []string{"news"}, HTML: "<p>x</p>",
		SendAt: func() *time.Time { t := time.Now().Add(time.Hour); return &t }()})
	if err != nil {
		t.Fatal(err)
	}
	redirect(t, e.do(marketer, "POST", "/admin/campaigns/"+c.ID+"/start", url.Values{}))
	r := want(t, e.do(marketer, "GET", "/admin/campaigns/"+c.ID+"?done=start", nil), 200)
	contains(t, r.body, "Campaign started.", `hx-get="/admin/campaigns/`+c.ID+`/progress" hx-trigger="every 2s"`,
		`/pause"`, `/cancel"`)
	redirect(t, e.do(marketer, "POST", "/admin/campaigns/"+c.ID+"/pause", url.Values{}))
	r = want(t, e.do(marketer, "GET", "/admin/campaigns/"+c.ID, nil), 200)
	contains(t, r.body, `/resume"`)
	if strings.Contains(r.body, `/start"`) || strings.Contains(r.body, "every 2s") {
		t.Error("a paused campaign is offered start, or polls")
	}
	// Resumed with its schedule cleared by no one: cancel it, then a new one runs.
	redirect(t, e.do(marketer, "POST", "/admin/campaigns/"+c.ID+"/cancel", url.Values{}))
	want(t, e.do(marketer, "POST", "/admin/campaigns/"+c.ID+"/resume", url.Values{}), 409)

	run, err := e.engine.Create(e.ctx, campaigns.Input{Name: "Run", Subject: "S", Lists: []string{"news"}, HTML: "<p>x</p>"})
	if err != nil {
		t.Fatal(err)
	}
	redirect(t, e.do(marketer, "POST", "/admin/campaigns/"+run.ID+"/start", url.Values{}))
	e.waitCampaign(run.ID, func(c campaigns.Campaign) bool { return c.Status == campaigns.StatusFinished })
	r = want(t, e.do(viewer, "GET", "/admin/campaigns/"+run.ID+"/progress", nil), 200)
	contains(t, r.body, `value="100"`, "4 of 4 messages settled", "Restricted (GDPR art. 18)</dt><dd>1</dd>")
	if strings.Contains(r.body, "hx-trigger") {
		t.Error("a finished campaign's progress still polls")
	}
	r = want(t, e.do(viewer, "GET", "/admin/campaigns", nil), 200)
	contains(t, r.body, "Run", "finished", "cancelled")
}
