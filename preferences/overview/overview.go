// Package overview is the admin app's home page (GET /admin), open to every role: the
// subscriptions by state now and what the consent ledger recorded over the last 30
// days (signups, confirmations, withdrawals by day; the signup → confirmation funnel
// of each source), the latest campaigns with their rates, the depth of the mail
// queue and the deliverability warnings.
//
// It shows counts only, never a person: nothing on it needs masking. Campaigns, the
// queue and the deliverability checks belong to other features; cmd adapts them to
// the small function types below.
package overview

import (
	"context"
	"embed"
	htmltemplate "html/template"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/preferences/webauth"
	"consentmail/templates"
)

//go:embed overview.html en.json fr.json
var files embed.FS

// Days is the window of the activity chart and of the funnel.
const Days = 30

// CampaignsShown is how many of the latest campaigns the page lists.
const CampaignsShown = 5

// SourcesShown is how many sources the funnel names; the others are summed.
const SourcesShown = 8

// Campaign is a campaign as the overview shows it.
type Campaign struct {
	ID, Name string
	Status   string    // draft, scheduled, running, paused, finished, cancelled…
	Started  time.Time // zero before it starts

	// Counts: the rates are of Sent.
	Sent, Opens, Clicks, Bounced, Complained, Unsubscribed int64
}

// Campaigns returns the latest campaigns, newest first, at most limit.
type Campaigns func(ctx context.Context, limit int) ([]Campaign, error)

// Queue is the depth of the mail queue.
type Queue struct {
	Ready    int64 // waiting, including delayed
	Inflight int64 // being sent
	Dead     int64 // given up on
}

// QueueStats returns the depth of the mail queue.
type QueueStats func(ctx context.Context) (Queue, error)

// Warning is a deliverability finding that is not OK.
type Warning struct {
	Status  string // "warn" or "fail"
	Check   string // spf, dkim, dmarc, alignment, ptr
	Subject string // the domain or relay checked
	Message string
	Fix     string
}

// Deliverability is the outcome of the latest deliverability check.
type Deliverability struct {
	CheckedAt time.Time // zero: no check has run since the start
	Warnings  []Warning
}

// DeliverabilityReport returns the latest deliverability check's outcome. It should
// not run the checks (they take seconds): the Settings → Sending page runs them.
type DeliverabilityReport func(ctx context.Context) (Deliverability, error)

// Page serves the overview.
type Page struct {
	store     *preferences.Store
	views     *templates.AdminViews
	site      templates.Site
	campaigns Campaigns
	queue     QueueStats
	checks    DeliverabilityReport
}

// New returns the overview of store, with the latest campaigns, the queue's depth and
// the deliverability warnings from the functions cmd adapts.
func New(store *preferences.Store, r *templates.Renderer, site templates.Site, campaigns Campaigns,
	queue QueueStats, checks DeliverabilityReport) (*Page, error) {
	views, err := r.AdminViews(files)
	if err != nil {
		return nil, err
	}
	return &Page{store: store, views: views, site: site, campaigns: campaigns, queue: queue, checks: checks}, nil
}

// Routes mounts GET / on r, the /admin group, for every role.
func (h *Page) Routes(r fiber.Router, require func(roles ...string) fiber.Handler) {
	r.Get("/", require(preferences.RoleMarketer, preferences.RoleDPO, preferences.RoleViewer), h.get)
}

// view is the page's data.
type view struct {
	Totals      map[string]int64
	Activity    htmltemplate.HTML // the chart
	States      htmltemplate.HTML // subscriptions by state at the end of each day
	Partial     bool
	Funnel      []funnelRow
	FunnelChart htmltemplate.HTML
	Campaigns   []Campaign
	CampaignErr bool
	Queue       Queue
	QueueErr    bool
	Checks      Deliverability
	ChecksErr   bool
}

type funnelRow struct {
	Source             string
	None, Other        bool // no source given; the sum of the sources not named
	Signups, Confirmed int64
}

func (h *Page) get(c *fiber.Ctx) error {
	ctx := c.UserContext()
	p := webauth.Page(c, h.site, "overview", "", nil)
	t := func(key string, args ...any) string { return h.views.T(p.Lang, key, args...) }
	p.Title = t("overview.title")
	var v view
	var err error
	if v.Totals, err = h.store.SubscriptionTotals(ctx); err != nil {
		return err
	}
	act, err := h.store.RecentActivity(ctx, Days)
	if err != nil {
		return err
	}
	v.Partial = act.Partial
	v.Activity = templates.LineChart(activityChart(act, p.Lang, t))
	hist, err := h.store.SubscriptionHistory(ctx, Days)
	if err != nil {
		return err
	}
	v.States = templates.LineChart(statesChart(hist, p.Lang, t))
	v.Funnel = funnelRows(act.Funnel)
	if len(v.Funnel) > 0 {
		v.FunnelChart = templates.Bars(funnelChart(v.Funnel, p.Lang, t))
	}
	v.Campaigns, err = h.campaigns(ctx, CampaignsShown)
	v.CampaignErr = err != nil
	v.Queue, err = h.queue(ctx)
	v.QueueErr = err != nil
	v.Checks, err = h.checks(ctx)
	v.ChecksErr = err != nil
	p.Data = v
	return webauth.Render(c, fiber.StatusOK, h.views, "overview", p)
}

func activityChart(act preferences.LedgerActivity, lang string, t func(string, ...any) string) templates.Chart {
	ch := templates.Chart{Title: t("overview.activity.title", Days), Lang: lang, Table: t("overview.chart.table"),
		Corner: t("overview.activity.day"), Series: []templates.Series{{Name: t("overview.activity.signups")},
			{Name: t("overview.activity.confirmed")}, {Name: t("overview.activity.withdrawn")}}}
	layout := t("overview.activity.day_format")
	for _, d := range act.Days {
		ch.Labels = append(ch.Labels, d.Day.Format(layout))
		ch.Series[0].Values = append(ch.Series[0].Values, d.Signups)
		ch.Series[1].Values = append(ch.Series[1].Values, d.Confirmed)
		ch.Series[2].Values = append(ch.Series[2].Values, d.Withdrawn)
	}
	return ch
}

// statesChart draws the subscriptions by state at the end of each day.
func statesChart(hist []preferences.DayTotals, lang string, t func(string, ...any) string) templates.Chart {
	ch := templates.Chart{Title: t("overview.states.title", Days), Lang: lang, Table: t("overview.chart.table"),
		Corner: t("overview.activity.day"), Series: []templates.Series{{Name: t("overview.states.confirmed")},
			{Name: t("overview.states.pending")}, {Name: t("overview.states.unsubscribed")}}}
	layout := t("overview.activity.day_format")
	for _, d := range hist {
		ch.Labels = append(ch.Labels, d.Day.Format(layout))
		ch.Series[0].Values = append(ch.Series[0].Values, d.Confirmed)
		ch.Series[1].Values = append(ch.Series[1].Values, d.Pending)
		ch.Series[2].Values = append(ch.Series[2].Values, d.Unsubscribed)
	}
	return ch
}

// funnelRows names the busiest sources and sums the others.
func funnelRows(fs []preferences.SourceFunnel) []funnelRow {
	var rows []funnelRow
	var other funnelRow
	for i, f := range fs {
		if i < SourcesShown {
			rows = append(rows, funnelRow{Source: f.Source, None: f.Source == "", Signups: f.Signups, Confirmed: f.Confirmed})
			continue
		}
		other.Other = true
		other.Signups += f.Signups
		other.Confirmed += f.Confirmed
	}
	if other.Other {
		rows = append(rows, other)
	}
	return rows
}

func funnelChart(rows []funnelRow, lang string, t func(string, ...any) string) templates.Chart {
	ch := templates.Chart{Title: t("overview.funnel.title", Days), Lang: lang, Table: t("overview.chart.table"),
		Corner: t("overview.funnel.source"), Series: []templates.Series{{Name: t("overview.funnel.signups")},
			{Name: t("overview.funnel.confirmed")}}}
	for _, r := range rows {
		label := r.Source
		switch {
		case r.None:
			label = t("overview.funnel.none")
		case r.Other:
			label = t("overview.funnel.other")
		}
		ch.Labels = append(ch.Labels, label)
		ch.Series[0].Values = append(ch.Series[0].Values, r.Signups)
		ch.Series[1].Values = append(ch.Series[1].Values, r.Confirmed)
	}
	return ch
}
