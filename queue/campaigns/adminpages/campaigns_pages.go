package adminpages

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/queue/campaigns"
	"consentmail/templates"
)

// sendAtLayout is the value of <input type="datetime-local">, read as UTC.
const sendAtLayout = "2006-01-02T15:04"

// campaignForm is the data of the create and edit form.
type campaignForm struct {
	ID        string // "" for a new campaign
	In        formInput
	Lists     []listRow
	Templates []campaigns.Template
	Errors    map[string]*fieldError
}

// formInput is the form's fields as typed.
type formInput struct {
	Name, Subject, Source, Template, HTML, Text, From, SendAt string
	Lists                                                     []string
	Track                                                     bool
}

type listRow struct {
	ListInfo
	Checked bool
}

// Action is where the form posts.
func (f campaignForm) Action() string {
	if f.ID == "" {
		return "/admin/campaigns"
	}
	return "/admin/campaigns/" + f.ID
}

// campaignPage is the data of a campaign's page and of its progress fragment.
type campaignPage struct {
	C        campaigns.Campaign
	Lists    []ListInfo
	Template string // the name of the template its content came from
	CanEdit  bool
	Actions  []string
	Emails   string
	Errors   map[string]*fieldError
	Progress progress
}

// progress is the live progress bar: Done of Total settled.
type progress struct {
	Done, Total int64
	Live        bool // still sending (or waiting to): the fragment polls
	Empty       bool // nobody to send to
}

func progressOf(c campaigns.Campaign) progress {
	s := c.Stats
	p := progress{Done: s.Sent + s.Failed + s.Skipped}
	p.Total = max(s.Audience-s.Excluded.Restricted-s.Excluded.Blocked, s.Queued, p.Done)
	switch c.Status {
	case campaigns.StatusRunning, campaigns.StatusScheduled:
		p.Live = true
	case campaigns.StatusFinished:
		p.Total = max(s.Queued, p.Done)
	}
	p.Empty = p.Total == 0 && c.Status == campaigns.StatusFinished
	return p
}

// Percent is the progress bar's value out of 100.
func (p progress) Percent() int64 {
	if p.Total <= 0 {
		if p.Empty {
			return 100
		}
		return 0
	}
	return p.Done * 100 / p.Total
}

// Rate formats a rate (0 to 1) for pct.
func rate(r float64) int64 { return int64(r*10000 + 0.5) }

// campaignRow is a campaign in the list.
type campaignRow struct {
	C                               campaigns.Campaign
	BouncePerTenK, ComplaintPerTenK int64
}

func (p *Pages) campaignList(c *fiber.Ctx) error {
	items, next, err := p.engine.List(c.UserContext(), c.Query("after"), 50)
	if err != nil {
		return err
	}
	rows := make([]campaignRow, len(items))
	for i, it := range items {
		rows[i] = campaignRow{C: it, BouncePerTenK: rate(it.Stats.BounceRate), ComplaintPerTenK: rate(it.Stats.ComplaintRate)}
	}
	slices.Reverse(rows) // newest first
	return p.page(c, fiber.StatusOK, "campaignpages_campaigns", "campaigns", "campaignpages.campaigns.title",
		struct {
			Items   []campaignRow
			Next    string
			CanEdit bool
		}{rows, next, canEdit(c)})
}

// form renders the create or edit form.
func (p *Pages) form(c *fiber.Ctx, status int, f campaignForm) error {
	lists, err := p.lists(c.UserContext())
	if err != nil {
		return err
	}
	for _, l := range lists {
		f.Lists = append(f.Lists, listRow{ListInfo: l, Checked: slices.Contains(f.In.Lists, l.ID)})
	}
	tpls, _, err := p.store.List(c.UserContext(), "", 200)
	if err != nil {
		return err
	}
	f.Templates = tpls
	title := "campaignpages.campaign.edit"
	if f.ID == "" {
		title = "campaignpages.campaign.new"
	}
	return p.page(c, status, "campaignpages_campaign_form", "campaigns", title, f)
}

func (p *Pages) campaignNew(c *fiber.Ctx) error {
	in := formInput{Source: "html", Track: false}
	if tpl := c.Query("template"); tpl != "" {
		in.Source, in.Template = "template", tpl
	}
	return p.form(c, fiber.StatusOK, campaignForm{In: in})
}

func (p *Pages) campaignEdit(c *fiber.Ctx) error {
	camp, err := p.engine.Get(c.UserContext(), c.Params("id"))
	if errors.Is(err, campaigns.ErrCampaignNotFound) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return err
	}
	if camp.Status != campaigns.StatusDraft {
		return c.Redirect("/admin/campaigns/"+camp.ID, fiber.StatusSeeOther)
	}
	in := formInput{Name: camp.Name, Subject: camp.Subject, Source: "html", HTML: camp.HTML, Text: camp.Text, From: camp.From,
		Lists: camp.Lists, Track: camp.Track}
	if camp.Template != "" {
		in.Source, in.Template = "template", camp.Template
	}
	if camp.SendAt != nil {
		in.SendAt = camp.SendAt.UTC().Format(sendAtLayout)
	}
	return p.form(c, fiber.StatusOK, campaignForm{ID: camp.ID, In: in})
}

// readForm reads the form as typed, and the Input it makes; a schedule that is not a
// time is a problem of its own.
func readForm(c *fiber.Ctx) (formInput, campaigns.Input, *fieldError) {
	f := formInput{Name: c.FormValue("name"), Subject: c.FormValue("subject"), Source: c.FormValue("source"),
		Template: c.FormValue("template"), HTML: normaliseNewlines(c.FormValue("html")), Text: normaliseNewlines(c.FormValue("text")),
		From: c.FormValue("from"), SendAt: strings.TrimSpace(c.FormValue("send_at")), Track: c.FormValue("track") == "on"}
	for _, v := range c.Request().PostArgs().PeekMulti("lists") {
		f.Lists = append(f.Lists, string(v))
	}
	in := campaigns.Input{Name: f.Name, Subject: f.Subject, Lists: f.Lists, From: f.From, Track: f.Track}
	if f.Source == "template" {
		in.Template = f.Template
		if in.Template == "" {
			return f, in, &fieldError{Reason: "template"}
		}
	} else {
		in.HTML, in.Text = f.HTML, f.Text
	}
	if f.SendAt != "" {
		t, err := time.ParseInLocation(sendAtLayout, f.SendAt, time.UTC)
		if err != nil {
			return f, in, &fieldError{Reason: "send_at"}
		}
		in.SendAt = &t
	}
	return f, in, nil
}

func (p *Pages) campaignCreate(c *fiber.Ctx) error {
	f, in, bad := readForm(c)
	if bad != nil {
		return p.formProblem(c, campaignForm{In: f}, bad)
	}
	camp, err := p.engine.Create(c.UserContext(), in)
	if err != nil {
		return p.campaignInvalid(c, campaignForm{In: f}, in, err)
	}
	return c.Redirect("/admin/campaigns/"+camp.ID+"?done=created", fiber.StatusSeeOther)
}

func (p *Pages) campaignSave(c *fiber.Ctx) error {
	id := c.Params("id")
	f, in, bad := readForm(c)
	if bad != nil {
		return p.formProblem(c, campaignForm{ID: id, In: f}, bad)
	}
	_, err := p.engine.Update(c.UserContext(), id, in)
	switch {
	case errors.Is(err, campaigns.ErrCampaignNotFound):
		return fiber.ErrNotFound
	case errors.Is(err, campaigns.ErrNotDraft):
		return p.show(c, fiber.StatusConflict, id, "campaignpages.error.notdraft", nil, "")
	case err != nil:
		return p.campaignInvalid(c, campaignForm{ID: id, In: f}, in, err)
	}
	return c.Redirect("/admin/campaigns/"+id+"?done=saved", fiber.StatusSeeOther)
}

// formProblem shows the form again for a field the engine never saw (a template not
// chosen, a schedule that is no time).
func (p *Pages) formProblem(c *fiber.Ctx, f campaignForm, bad *fieldError) error {
	lang := p.lang(c)
	key := map[string]string{"template": "campaignpages.error.template", "send_at": "campaignpages.error.sendat"}[bad.Reason]
	f.Errors = map[string]*fieldError{bad.Reason: {Reason: p.views.T(lang, key)}}
	return p.form(c, fiber.StatusUnprocessableEntity, f)
}

func (p *Pages) campaignInvalid(c *fiber.Ctx, f campaignForm, in campaigns.Input, err error) error {
	var te *templates.TemplateError
	if errors.As(err, &te) && in.Template != "" {
		// The template's own content is checked when the template is saved.
		f.Errors = map[string]*fieldError{"template": {Reason: te.Error()}}
		return p.form(c, fiber.StatusUnprocessableEntity, f)
	}
	errs := templateErrors(campaigns.Template{Subject: in.Subject, HTML: in.HTML, Text: in.Text}, err)
	if errs == nil {
		return err
	}
	f.Errors = errs
	return p.form(c, fiber.StatusUnprocessableEntity, f)
}

func (p *Pages) lang(c *fiber.Ctx) string {
	return webauthLang(c)
}

func (p *Pages) campaignShow(c *fiber.Ctx) error {
	return p.show(c, fiber.StatusOK, c.Params("id"), "", nil, "")
}

// view gathers a campaign's page.
func (p *Pages) view(c *fiber.Ctx, id string) (campaignPage, error) {
	ctx := c.UserContext()
	camp, err := p.engine.Get(ctx, id)
	if err != nil {
		return campaignPage{}, err
	}
	v := campaignPage{C: camp, CanEdit: canEdit(c), Progress: progressOf(camp)}
	if v.CanEdit {
		v.Actions = camp.Actions()
	}
	lists, err := p.lists(ctx)
	if err != nil {
		return campaignPage{}, err
	}
	for _, l := range lists {
		if slices.Contains(camp.Lists, l.ID) {
			v.Lists = append(v.Lists, l)
		}
	}
	if camp.Template != "" {
		if t, err := p.store.Get(ctx, camp.Template); err == nil {
			v.Template = t.Name
		}
	}
	return v, nil
}

// show renders a campaign's page, with an error at the top (errKey) or under the test
// send's field (errs).
func (p *Pages) show(c *fiber.Ctx, status int, id, errKey string, errs map[string]*fieldError, emails string) error {
	v, err := p.view(c, id)
	if errors.Is(err, campaigns.ErrCampaignNotFound) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return err
	}
	v.Errors, v.Emails = errs, emails
	pg := p.pageOf(c, "campaigns", "campaignpages.campaign.title", v, v.C.Name)
	if errKey != "" {
		pg.Error = p.views.T(pg.Lang, errKey)
	}
	return p.render(c, status, "campaignpages_campaign", pg)
}

func (p *Pages) campaignProgress(c *fiber.Ctx) error {
	v, err := p.view(c, c.Params("id"))
	if errors.Is(err, campaigns.ErrCampaignNotFound) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return err
	}
	if c.Get("HX-Request") == "true" && !v.Progress.Live {
		// Sending ended: the whole page changes (status, actions), not only the bar.
		c.Set("HX-Redirect", "/admin/campaigns/"+v.C.ID)
	}
	pg := p.pageOf(c, "campaigns", "campaignpages.campaign.title", v, v.C.Name)
	return p.render(c, fiber.StatusOK, "campaignpages_progress", pg)
}

func (p *Pages) campaignPreviewFrame(c *fiber.Ctx) error {
	camp, err := p.engine.Get(c.UserContext(), c.Params("id"))
	if err != nil {
		return p.frameMessage(c, fiber.StatusNotFound, "campaignpages.preview.none")
	}
	return p.renderFrame(c, campaigns.Template{Name: camp.Name, Subject: camp.Subject, HTML: camp.HTML, Text: camp.Text})
}

func (p *Pages) campaignDelete(c *fiber.Ctx) error {
	id := c.Params("id")
	err := p.engine.Delete(c.UserContext(), id)
	switch {
	case errors.Is(err, campaigns.ErrCampaignNotFound):
		return fiber.ErrNotFound
	case errors.Is(err, campaigns.ErrNotDraft):
		return p.show(c, fiber.StatusConflict, id, "campaignpages.error.notdraft", nil, "")
	case err != nil:
		return err
	}
	return c.Redirect("/admin/campaigns?done=deleted", fiber.StatusSeeOther)
}

func (p *Pages) campaignTest(c *fiber.Ctx) error {
	id := c.Params("id")
	typed := c.FormValue("emails")
	emails, err := campaigns.TestEmails(splitEmails(typed))
	if err == nil {
		err = p.engine.Test(c.UserContext(), id, emails)
	}
	var fe *campaigns.FieldError
	switch {
	case errors.As(err, &fe):
		return p.show(c, fiber.StatusUnprocessableEntity, id, "", map[string]*fieldError{"emails": {Reason: fe.Reason}}, typed)
	case errors.Is(err, campaigns.ErrCampaignNotFound):
		return fiber.ErrNotFound
	case err != nil:
		return err
	}
	return c.Redirect("/admin/campaigns/"+id+"?done=tested", fiber.StatusSeeOther)
}

func (p *Pages) campaignAct(action string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id := c.Params("id")
		_, err := p.engine.Act(c.UserContext(), id, action)
		var te *campaigns.TransitionError
		switch {
		case errors.As(err, &te):
			return p.show(c, fiber.StatusConflict, id, "campaignpages.error.transition", nil, "")
		case errors.Is(err, campaigns.ErrCampaignNotFound):
			return fiber.ErrNotFound
		case err != nil:
			return err
		}
		return c.Redirect("/admin/campaigns/"+id+"?done="+action, fiber.StatusSeeOther)
	}
}
