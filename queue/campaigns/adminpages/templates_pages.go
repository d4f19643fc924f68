package adminpages

import (
	"errors"
	"html"
	"strings"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/preferences/webauth"
	"consentmail/queue/campaigns"
	"consentmail/templates"
)

// templateEditor is the data of the template editor.
type templateEditor struct {
	ID      string // "" for a new template
	Tpl     campaigns.Template
	Errors  map[string]*fieldError
	Draft   string // the preview's draft token, when the content shown is unsaved
	CanEdit bool
	Unmask  bool   // the person may preview with a real subscriber
	Emails  string // the test send's addresses, as typed
}

// fieldError is a problem shown under its field; for a template part, Line is where
// it is (0: the whole part) and Excerpt the lines around it.
type fieldError struct {
	Line    int
	Reason  string
	Excerpt []srcLine
}

type srcLine struct {
	N    int
	Text string
	Bad  bool
}

// Action is where the editor's form posts.
func (e templateEditor) Action() string {
	if e.ID == "" {
		return "/admin/templates"
	}
	return "/admin/templates/" + e.ID
}

// PreviewID is the template's id in preview URLs ("new" before it is saved).
func (e templateEditor) PreviewID() string {
	if e.ID == "" {
		return "new"
	}
	return e.ID
}

// FrameSrc is the preview frame's URL.
func (e templateEditor) FrameSrc() string {
	u := "/admin/templates/" + e.PreviewID() + "/preview"
	if e.Draft != "" {
		u += "?draft=" + e.Draft
	}
	return u
}

// HasPreview reports whether there is something to preview.
func (e templateEditor) HasPreview() bool { return e.ID != "" || e.Draft != "" }

func (p *Pages) templateList(c *fiber.Ctx) error {
	items, next, err := p.store.List(c.UserContext(), c.Query("after"), 50)
	if err != nil {
		return err
	}
	return p.page(c, fiber.StatusOK, "campaignpages_templates", "templates", "campaignpages.templates.title",
		struct {
			Items   []campaigns.Template
			Next    string
			CanEdit bool
		}{items, next, canEdit(c)})
}

func (p *Pages) editor(c *fiber.Ctx, status int, ed templateEditor) error {
	ed.CanEdit = canEdit(c)
	ed.Unmask = preferences.SeesPersonalData(role(c))
	title := "campaignpages.template.edit"
	if ed.ID == "" {
		title = "campaignpages.template.new"
	}
	return p.page(c, status, "campaignpages_template", "templates", title, ed)
}

func (p *Pages) templateNew(c *fiber.Ctx) error {
	ed := templateEditor{}
	if tok := c.Query("draft"); tok != "" {
		if t, ok := p.drafts.get(user(c), tok); ok {
			ed.Tpl, ed.Draft = t, tok
		}
	}
	return p.editor(c, fiber.StatusOK, ed)
}

func (p *Pages) templateEdit(c *fiber.Ctx) error {
	t, err := p.store.Get(c.UserContext(), c.Params("id"))
	if errors.Is(err, campaigns.ErrNotFound) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return err
	}
	ed := templateEditor{ID: t.ID, Tpl: t}
	if tok := c.Query("draft"); tok != "" {
		if d, ok := p.drafts.get(user(c), tok); ok {
			ed.Tpl.Name, ed.Tpl.Subject, ed.Tpl.HTML, ed.Tpl.Text, ed.Draft = d.Name, d.Subject, d.HTML, d.Text, tok
		}
	}
	return p.editor(c, fiber.StatusOK, ed)
}

// formTemplate reads the editor's fields.
func formTemplate(c *fiber.Ctx, id string) campaigns.Template {
	return campaigns.Template{ID: id, Name: c.FormValue("name"), Subject: c.FormValue("subject"),
		HTML: normaliseNewlines(c.FormValue("html")), Text: normaliseNewlines(c.FormValue("text"))}
}

// normaliseNewlines turns the CRLF browsers post into LF, so that lines are counted
// as the person sees them.
func normaliseNewlines(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

func (p *Pages) templateCreate(c *fiber.Ctx) error {
	in := formTemplate(c, "")
	t, err := p.store.Create(c.UserContext(), in)
	if err != nil {
		return p.templateInvalid(c, templateEditor{Tpl: in}, err)
	}
	return c.Redirect("/admin/templates/"+t.ID+"?done=created", fiber.StatusSeeOther)
}

func (p *Pages) templateSave(c *fiber.Ctx) error {
	in := formTemplate(c, c.Params("id"))
	_, err := p.store.Update(c.UserContext(), in)
	if errors.Is(err, campaigns.ErrNotFound) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return p.templateInvalid(c, templateEditor{ID: in.ID, Tpl: in}, err)
	}
	return c.Redirect("/admin/templates/"+in.ID+"?done=saved", fiber.StatusSeeOther)
}

// templateInvalid shows the editor again with what was typed and each problem at its
// field, or returns err when it is not the person's.
func (p *Pages) templateInvalid(c *fiber.Ctx, ed templateEditor, err error) error {
	errs := templateErrors(ed.Tpl, err)
	if errs == nil {
		return err
	}
	ed.Errors = errs
	return p.editor(c, fiber.StatusUnprocessableEntity, ed)
}

// templateErrors returns the problems of t by field, each part checked on its own so
// that a problem in the subject does not hide one in the body; nil when err is none
// of the person's.
func templateErrors(t campaigns.Template, err error) map[string]*fieldError {
	var fe *campaigns.FieldError
	var te *templates.TemplateError
	switch {
	case errors.As(err, &fe):
		return map[string]*fieldError{fe.Field: {Reason: fe.Reason}}
	case !errors.As(err, &te):
		return nil
	}
	out := map[string]*fieldError{}
	const stub = "<p>x</p>"
	for _, part := range []struct {
		name, src, subject, html, text string
	}{{"subject", t.Subject, t.Subject, stub, ""}, {"html", t.HTML, "x", t.HTML, ""}, {"text", t.Text, "x", stub, t.Text}} {
		if part.name == "text" && part.src == "" {
			continue
		}
		_, err := templates.ParseCampaign(part.subject, part.html, part.text)
		var pe *templates.TemplateError
		if errors.As(err, &pe) && pe.Part == part.name {
			out[part.name] = partError(pe, part.src)
		}
	}
	if len(out) == 0 {
		out[te.Part] = partError(te, map[string]string{"subject": t.Subject, "html": t.HTML, "text": t.Text}[te.Part])
	}
	return out
}

// partError places a template error in its source: the bad line with two lines
// either side.
func partError(te *templates.TemplateError, src string) *fieldError {
	fe := &fieldError{Line: te.Line, Reason: te.Reason}
	if te.Line <= 0 {
		return fe
	}
	lines := strings.Split(src, "\n")
	for n := max(1, te.Line-2); n <= min(len(lines), te.Line+2); n++ {
		fe.Excerpt = append(fe.Excerpt, srcLine{N: n, Text: lines[n-1], Bad: n == te.Line})
	}
	return fe
}

func (p *Pages) templateDelete(c *fiber.Ctx) error {
	err := p.store.Delete(c.UserContext(), c.Params("id"))
	if errors.Is(err, campaigns.ErrNotFound) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return err
	}
	return c.Redirect("/admin/templates?done=deleted", fiber.StatusSeeOther)
}

// user is the signed-in person's id: drafts belong to them.
func user(c *fiber.Ctx) string {
	s, _ := webauth.Current(c)
	return s.UserID
}

// templatePreviewDraft keeps the editor's unsaved content for the preview frame: with
// htmx, it answers the frame that shows it; without, it goes back to the editor,
// which shows the content typed and the frame.
func (p *Pages) templatePreviewDraft(c *fiber.Ctx) error {
	id := c.Params("id")
	ed := templateEditor{Tpl: formTemplate(c, "")}
	if id != "new" {
		if _, err := p.store.Get(c.UserContext(), id); err != nil {
			return fiber.ErrNotFound
		}
		ed.ID = id
	}
	ed.Draft = p.drafts.put(user(c), ed.Tpl)
	if c.Get("HX-Request") == "true" {
		return p.page(c, fiber.StatusOK, "campaignpages_frame", "templates", "campaignpages.template.preview", ed)
	}
	return c.Redirect("/admin/templates/"+ed.PreviewID()+"?draft="+ed.Draft+"#preview", fiber.StatusSeeOther)
}

// templatePreviewFrame answers the preview frame: the saved template, or the
// person's draft, rendered for sample data (or, for admins and data-protection
// officers, a real subscriber).
func (p *Pages) templatePreviewFrame(c *fiber.Ctx) error {
	id := c.Params("id")
	var t campaigns.Template
	if tok := c.Query("draft"); tok != "" {
		d, ok := p.drafts.get(user(c), tok)
		if !ok {
			return p.frameMessage(c, fiber.StatusNotFound, "campaignpages.preview.expired")
		}
		t = d
	} else {
		var err error
		if t, err = p.store.Get(c.UserContext(), id); err != nil {
			return p.frameMessage(c, fiber.StatusNotFound, "campaignpages.preview.none")
		}
	}
	return p.renderFrame(c, t)
}

func (p *Pages) templateTest(c *fiber.Ctx) error {
	id := c.Params("id")
	t, err := p.store.Get(c.UserContext(), id)
	if errors.Is(err, campaigns.ErrNotFound) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return err
	}
	typed := c.FormValue("emails")
	emails, err := campaigns.TestEmails(splitEmails(typed))
	if err == nil {
		err = p.engine.TestTemplate(c.UserContext(), id, emails)
	}
	var fe *campaigns.FieldError
	if errors.As(err, &fe) {
		return p.editor(c, fiber.StatusUnprocessableEntity, templateEditor{ID: id, Tpl: t, Emails: typed,
			Errors: map[string]*fieldError{"emails": {Reason: fe.Reason}}})
	}
	if err != nil {
		return err
	}
	return c.Redirect("/admin/templates/"+id+"?done=tested", fiber.StatusSeeOther)
}

// splitEmails splits the addresses typed, separated by commas, semicolons or spaces.
func splitEmails(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

// frameCSP is the preview frame's policy: the message's own styles, its embedded
// images, nothing else (no script, no request elsewhere), framed only by the app.
const frameCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; " +
	"form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox"

func frameHeaders(c *fiber.Ctx) {
	c.Set(fiber.HeaderContentSecurityPolicy, frameCSP)
	c.Set(fiber.HeaderXFrameOptions, "SAMEORIGIN")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
}

// renderFrame renders t for the frame; ?subscriber= previews with a real person,
// for the roles that see personal data only.
func (p *Pages) renderFrame(c *fiber.Ctx, t campaigns.Template) error {
	sub := c.Query("subscriber")
	if sub != "" && !preferences.SeesPersonalData(role(c)) {
		frameHeaders(c)
		return fiber.NewError(fiber.StatusForbidden, "only admins and data-protection officers preview with a real subscriber")
	}
	r, err := p.previews.Preview(c.UserContext(), t, sub, role(c), actor(c))
	var te *templates.TemplateError
	var fe *campaigns.FieldError
	switch {
	case errors.Is(err, preferences.ErrNotFound):
		return p.frameMessage(c, fiber.StatusNotFound, "campaignpages.preview.nosubscriber")
	case errors.As(err, &te):
		return p.frameText(c, fiber.StatusUnprocessableEntity, te.Error())
	case errors.As(err, &fe):
		return p.frameText(c, fiber.StatusUnprocessableEntity, fe.Reason)
	case err != nil:
		return err
	}
	frameHeaders(c)
	return c.SendString(r.HTML)
}

func (p *Pages) frameMessage(c *fiber.Ctx, status int, key string) error {
	s, _ := webauth.Current(c)
	lang := s.Lang
	if lang == "" {
		lang = "en"
	}
	return p.frameText(c, status, p.views.T(lang, key))
}

func (p *Pages) frameText(c *fiber.Ctx, status int, msg string) error {
	frameHeaders(c)
	var b strings.Builder
	b.WriteString(`<!doctype html><html><head><meta charset="utf-8"><title>Preview</title></head><body><p>`)
	b.WriteString(html.EscapeString(msg))
	b.WriteString(`</p></body></html>`)
	return c.Status(status).SendString(b.String())
}
