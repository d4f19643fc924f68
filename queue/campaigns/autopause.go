package campaigns

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"consentmail/preferences"
)

// engineMetrics are the engine's Prometheus counters. Their labels never name a
// campaign, so that their number stays bounded.
type engineMetrics struct {
	feedback *prometheus.CounterVec // bounces and complaints reported, by kind
	pauses   *prometheus.CounterVec // campaigns that paused themselves, by rate
}

func newEngineMetrics(reg prometheus.Registerer) *engineMetrics {
	m := &engineMetrics{
		feedback: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "consentmail_campaign_feedback_total",
			Help: "Bounce reports and complaints about campaign messages, by kind (bounce, complaint) and recipient domain (DomainBucket)."},
			[]string{"kind", "domain"}),
		pauses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "consentmail_campaign_autopauses_total",
			Help: "Campaigns that paused themselves, by the rate that passed its threshold: bounce_rate or complaint_rate."},
			[]string{"rate"}),
	}
	for _, k := range []string{"bounce", "complaint"} {
		m.feedback.WithLabelValues(k, OtherDomain)
	}
	for _, k := range []string{"bounce_rate", "complaint_rate"} {
		m.pauses.WithLabelValues(k)
	}
	if reg != nil {
		reg.MustRegister(m.feedback, m.pauses)
	}
	return m
}

// rates returns a campaign's bounce rate (synchronous and reported bounces over the
// messages the relay answered for) and complaint rate (complaints over sent).
func rates(sent, syncBounces, bounces, complaints int64) (bounceRate, complaintRate float64) {
	if n := sent + syncBounces; n > 0 {
		bounceRate = float64(syncBounces+bounces) / float64(n)
	}
	if sent > 0 {
		complaintRate = float64(complaints) / float64(sent)
	}
	return bounceRate, complaintRate
}

// tripped tells whether a running campaign must pause itself: once at least
// PauseMinSent messages went to the relay in the current window (since the start, or
// since the campaign was resumed after pausing itself), its complaint rate or bounce
// rate over that window is above its threshold. It returns the reason shown in the
// campaign and the rate's name, or "" to go on. Complaints and bounce reports
// arrive after their message, so a window's first counts may be of messages sent
// before it; a resumed campaign pauses again only when the new window alone passes.
func (e *Engine) tripped(r *record, c Counts) (reason, rate string) {
	w := r.Plan.Watch
	sent, sync := c.Sent-w.Sent, c.Bounced-w.SyncBounces
	if sent+sync < e.cfg.PauseMinSent {
		return "", ""
	}
	br, cr := rates(sent, sync, r.Plan.Bounces-w.Bounces, r.Plan.Complaints-w.Complaints)
	switch {
	case cr > e.cfg.PauseComplaintRate:
		return fmt.Sprintf("complaint_rate %.2f%% > %.2f%% after %d messages", 100*cr, 100*e.cfg.PauseComplaintRate, sent+sync), "complaint_rate"
	case br > e.cfg.PauseBounceRate:
		return fmt.Sprintf("bounce_rate %.2f%% > %.2f%% after %d messages", 100*br, 100*e.cfg.PauseBounceRate, sent+sync), "bounce_rate"
	}
	return "", ""
}

// autoPause pauses campaign id, if still running, with reason.
func (e *Engine) autoPause(ctx context.Context, id, reason, rate string) error {
	paused := false
	_, err := e.act(ctx, id, func(r *record, now time.Time) error {
		if r.Status != StatusRunning {
			return nil
		}
		if err := transition(r, ActionPause, now); err != nil {
			return err
		}
		r.PausedReason, paused = reason, true
		return nil
	}, true)
	if err != nil {
		return fmt.Errorf("pause campaign: %w", err)
	}
	if paused {
		e.metrics.pauses.WithLabelValues(rate).Inc()
		e.log.Warn("campaign paused itself", "campaign", id, "reason", reason)
	}
	return nil
}

// domainBucket returns the domain under which subscriber's feedback is counted, in
// the campaign's stats and in Prometheus (DomainBucket).
func (e *Engine) domainBucket(ctx context.Context, subscriber string) string {
	s, err := e.book.Subscriber(ctx, subscriber)
	if err != nil {
		return OtherDomain
	}
	return DomainBucket(s.Email)
}

// mailboxProviders are the domains DomainBucket names: the large mailbox providers
// whose filtering decides most of a list's deliverability.
var mailboxProviders = map[string]bool{
	"gmail.com": true, "googlemail.com": true, "outlook.com": true, "hotmail.com": true, "live.com": true, "msn.com": true,
	"hotmail.fr": true, "live.fr": true, "yahoo.com": true, "yahoo.fr": true, "ymail.com": true, "aol.com": true,
	"icloud.com": true, "me.com": true, "mac.com": true, "gmx.de": true, "gmx.net": true, "web.de": true, "t-online.de": true,
	"orange.fr": true, "wanadoo.fr": true, "free.fr": true, "sfr.fr": true, "laposte.net": true, "proton.me": true,
	"protonmail.com": true, "yandex.ru": true, "mail.ru": true, "qq.com": true,
}

// DomainBucket is the name under which an address's domain is counted, in a
// campaign's stats, in the data file and in Prometheus: the domain itself for a large
// mailbox provider (a fixed list), else "other". A person's own domain names them
// as well as their address does: it is never kept nor shown, and the number of
// counters and series stays bounded whatever the lists hold.
func DomainBucket(addr string) string {
	if d := addressDomain(addr); mailboxProviders[d] {
		return d
	}
	return OtherDomain
}

// addressDomain is the domain of an address, lower-cased ("" for none).
func addressDomain(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(addr[i+1:], ">"))
}

// domainStats joins the tracker's per-domain send counters and the plan's feedback.
// Campaigns counted by versions that named every domain show theirs under "other"
// (foldDomains).
func domainStats(sends map[string]DomainSends, fb map[string]domainFeedback) map[string]DomainStats {
	if len(sends) == 0 && len(fb) == 0 {
		return nil
	}
	sends, _ = foldDomains(sends, DomainSends.add)
	fb, _ = foldDomains(fb, domainFeedback.add)
	out := make(map[string]DomainStats, len(sends)+1)
	for d, s := range sends {
		out[d] = DomainStats{Sent: s.Sent, Bounced: s.Bounced}
	}
	for d, f := range fb {
		st := out[d]
		st.Bounced += f.Bounces
		st.Complained += f.Complaints
		out[d] = st
	}
	for d, st := range out {
		sync := sends[d].Bounced
		st.BounceRate, st.ComplaintRate = rates(st.Sent, sync, st.Bounced-sync, st.Complained)
		out[d] = st
	}
	return out
}

// foldDomains returns counters by domain with those of every domain DomainBucket does
// not name added into OtherDomain's, and whether there were any (if not, m itself).
func foldDomains[C any](m map[string]C, add func(C, C) C) (map[string]C, bool) {
	named := func(d string) bool { return d == OtherDomain || mailboxProviders[d] }
	var out map[string]C
	for d := range m {
		if !named(d) {
			out = make(map[string]C, len(m))
			break
		}
	}
	if out == nil {
		return m, false
	}
	for d, c := range m {
		if !named(d) {
			d = OtherDomain
		}
		out[d] = add(out[d], c)
	}
	return out, true
}

func (a DomainSends) add(b DomainSends) DomainSends {
	return DomainSends{Sent: a.Sent + b.Sent, Bounced: a.Bounced + b.Bounced}
}

func (a domainFeedback) add(b domainFeedback) domainFeedback {
	return domainFeedback{Bounces: a.Bounces + b.Bounces, Complaints: a.Complaints + b.Complaints}
}

// hardBounceBatch is how many hard bounces RecordHardBounces reads at once.
const hardBounceBatch = 100

// RecordHardBounces records the hard bounces workers met at send time (Tracker.HardBounces)
// in the consent book: each subscriber is blocked with a bounced event (source "smtp",
// the relay's reply sealed as a personal detail), then the bounce is acknowledged. The
// tracker queues a subscriber's bounce once however often its job is redelivered; a
// crash between the record and the acknowledgement records the bounce event twice,
// never blocks twice. Run calls it every second.
func (e *Engine) RecordHardBounces(ctx context.Context) error {
	for {
		hs, err := e.tracker.HardBounces(ctx, hardBounceBatch)
		if err != nil || len(hs) == 0 {
			return err
		}
		for i, h := range hs {
			_, err := e.bounces.RecordBounce(ctx, preferences.BounceInput{Subscriber: h.Subscriber, Campaign: h.Campaign,
				Permanent: true, Status: h.Status, Action: "failed", Source: "smtp", Personal: map[string]string{"diagnostic": h.Reply}})
			if err != nil && !errors.Is(err, preferences.ErrNotFound) { // an erased subscriber has nothing to block
				return errors.Join(fmt.Errorf("record hard bounce of %s: %w", h.Subscriber, err), e.tracker.AckHardBounces(ctx, i))
			}
		}
		if err := e.tracker.AckHardBounces(ctx, len(hs)); err != nil {
			return err
		}
		if len(hs) < hardBounceBatch {
			return nil
		}
	}
}
