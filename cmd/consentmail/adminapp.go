package main

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/mailer/deliverability"
	"consentmail/optin"
	"consentmail/optin/importpages"
	"consentmail/preferences"
	"consentmail/preferences/adminpages"
	"consentmail/preferences/overview"
	"consentmail/queue"
	"consentmail/queue/campaigns"
	campaignpages "consentmail/queue/campaigns/adminpages"
)

// adminFeature is one feature's pages in the admin app, mounted on the /admin group
// (behind the session and the CSRF check) with the role check of webauth.
type adminFeature interface {
	Routes(r fiber.Router, require func(roles ...string) fiber.Handler)
}

// adminDeps are what the features' pages are built from.
type adminDeps struct {
	engine    *campaigns.Engine
	tplStore  *campaigns.Store
	templates *campaigns.API
	eraser    *preferences.Eraser
	campQueue queue.Queue
	dcfg      deliverability.Config
}

// adminFeatures builds the pages of each feature: the overview (/admin), the consent
// book's (lists, subscribers, data protection), imports, templates and campaigns,
// and Settings → Sending. Users and API keys are webauth's own.
func (s *service) adminFeatures(d adminDeps) ([]adminFeature, error) {
	cfg := s.cfg
	book, err := adminpages.New(s.store, s.pages, s.site, d.eraser, d.engine.History, optin.OptinEnqueuer(s.queue),
		preferences.RegisterSite{Company: cfg.CompanyName, PrivacyURL: cfg.PrivacyURL, Contact: cfg.Contact,
			RelayHosts: relayHosts(cfg.Relays)}, cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	imports, err := importpages.New(s.store, s.queue, s.pages, s.site, s.now)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, imports.Close) // closers run last first: before the store closes
	camp, err := campaignpages.New(d.tplStore, d.engine, d.templates, s.campaignLists, s.pages, s.site, s.now)
	if err != nil {
		return nil, err
	}
	var webhooksOn []string
	for name, on := range map[string]bool{"ses": len(cfg.Webhooks.SESTopics) > 0, "postmark": cfg.Webhooks.PostmarkAuth != "",
		"sendgrid": cfg.Webhooks.SendGridKey != nil, "mailgun": len(cfg.Webhooks.MailgunKey) > 0} {
		if on {
			webhooksOn = append(webhooksOn, name)
		}
	}
	sending, err := deliverability.NewSendingPage(deliverability.SendingSettings{
		From: cfg.From, Relays: s.relays, SendRate: cfg.SendRate, DKIM: s.dkim,
		Inbound:  deliverability.Inbound{Addr: cfg.InboundSMTPAddr, Domain: s.mailDomain(), STARTTLS: cfg.InboundTLSCert != ""},
		Webhooks: webhooksOn, OptinTTL: cfg.OptinTTL, OptinGrace: optinGrace,
		Lists: func(context.Context) ([]deliverability.ListRetention, error) {
			var out []deliverability.ListRetention
			for _, l := range s.store.AllLists() {
				out = append(out, deliverability.ListRetention{ID: l.ID, Name: l.Name, Days: l.RetentionDays})
			}
			return out, nil
		},
		DNSServer: cfg.DNSServer,
	}, d.dcfg, s.pages, s.site, s.now)
	if err != nil {
		return nil, err
	}
	ov, err := overview.New(s.store, s.pages, s.site, recentCampaigns(d.engine),
		func(ctx context.Context) (overview.Queue, error) {
			st, err := d.campQueue.Stats(ctx)
			return overview.Queue{Ready: st.Ready, Inflight: st.Inflight, Dead: st.Dead}, err
		},
		func(context.Context) (overview.Deliverability, error) {
			rep, at := sending.LastReport()
			out := overview.Deliverability{CheckedAt: at}
			for _, f := range rep.Findings {
				if f.Status != deliverability.OK {
					out.Warnings = append(out.Warnings, overview.Warning{Status: string(f.Status), Check: f.Check,
						Subject: f.Subject, Message: f.Message, Fix: f.Fix})
				}
			}
			return out, nil
		})
	if err != nil {
		return nil, err
	}
	return []adminFeature{ov, book, imports, camp, sending}, nil
}

// campaignLists are the lists a campaign may go to, with what is shown before a send:
// purpose, legal basis and who the list reaches.
func (s *service) campaignLists(ctx context.Context) ([]campaignpages.ListInfo, error) {
	var out []campaignpages.ListInfo
	for _, l := range s.store.AllLists() {
		n, err := s.store.CountAudience(ctx, []string{l.ID})
		if err != nil {
			return nil, err
		}
		out = append(out, campaignpages.ListInfo{ID: l.ID, Name: l.Name, Purpose: l.Purpose,
			LegalBasis: preferences.LegalBasisConsent, Confirmed: n})
	}
	return out, nil
}

// recentCampaigns lists the newest campaigns for the overview.
func recentCampaigns(e *campaigns.Engine) overview.Campaigns {
	return func(ctx context.Context, limit int) ([]overview.Campaign, error) {
		latest, err := e.Latest(ctx, limit)
		if err != nil {
			return nil, err
		}
		out := make([]overview.Campaign, 0, len(latest))
		for _, c := range latest {
			var started time.Time
			if c.StartedAt != nil {
				started = *c.StartedAt
			}
			st := c.Stats
			out = append(out, overview.Campaign{ID: c.ID, Name: c.Name, Status: c.Status, Started: started,
				Sent: st.Sent, Opens: st.Opens, Clicks: st.Clicks, Bounced: st.Bounced, Complained: st.Complained,
				Unsubscribed: st.Unsubscribed})
		}
		return out, nil
	}
}
