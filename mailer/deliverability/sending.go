package deliverability

import (
	"context"
	"embed"
	"io/fs"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/mailer"
	"consentmail/preferences/webauth"
	"consentmail/templates"
)

// The admin app's Settings → Sending page (/admin/settings/sending), for admins: the
// sending configuration, read-only (relays, DKIM, inbound SMTP, webhooks, retention;
// never a password or a key), and a button that runs the checks of this package and
// shows their findings. The configuration is changed where it is set, in the
// environment; the page only shows it.

//go:embed admin/*.html admin/*.json
var adminFiles embed.FS

// SendingSettings is what the page shows; cmd fills it from its configuration.
type SendingSettings struct {
	// From is the default From address (CONSENTMAIL_FROM).
	From string
	// Relays are the outbound relays; their passwords are never shown.
	Relays []mailer.Relay
	// SendRate is the global limit in messages per second; 0 is unlimited.
	SendRate float64
	// DKIM are the signing keys; the page shows each public key's DNS record.
	DKIM []*mailer.DKIMSigner
	// Inbound is the inbound SMTP server (bounces, complaints, mailto unsubscribes).
	Inbound Inbound
	// Webhooks name the relay webhooks that are on: ses, postmark, sendgrid, mailgun.
	Webhooks []string
	// OptinTTL is the lifetime of a confirmation link; a subscription still pending
	// OptinTTL+OptinGrace after its signup expires.
	OptinTTL, OptinGrace time.Duration
	// Lists returns every list's retention (a confirmed subscription with no activity
	// for its days expires).
	Lists func(ctx context.Context) ([]ListRetention, error)
	// DNSServer is the server the checks ask ("" for the system's).
	DNSServer string
}

// Inbound is the inbound SMTP server's configuration.
type Inbound struct {
	Addr     string // listen address; empty when the server is off
	Domain   string // the domain of the VERP return paths it receives for
	STARTTLS bool
}

// ListRetention is one list's retention.
type ListRetention struct {
	ID, Name string
	Days     int
}

// SendingPage serves Settings → Sending and remembers the latest check's report.
type SendingPage struct {
	settings SendingSettings
	check    Config
	views    *templates.AdminViews
	site     templates.Site
	now      func() time.Time

	run    sync.Mutex // one run of the checks at a time
	mu     sync.Mutex // guards last and lastAt
	last   Report
	lastAt time.Time
}

// NewSendingPage returns the page of settings, whose button runs the checks of check.
func NewSendingPage(settings SendingSettings, check Config, r *templates.Renderer, site templates.Site,
	now func() time.Time) (*SendingPage, error) {
	sub, err := fs.Sub(adminFiles, "admin")
	if err != nil {
		return nil, err
	}
	views, err := r.AdminViews(sub)
	if err != nil {
		return nil, err
	}
	return &SendingPage{settings: settings, check: check, views: views, site: site, now: now}, nil
}

// Routes mounts the page on r, the /admin group: admins only.
func (h *SendingPage) Routes(r fiber.Router, require func(roles ...string) fiber.Handler) {
	admin := require("admin") // admins only: Require admits admins and the roles it names
	r.Get("/settings/sending", admin, h.get)
	r.Post("/settings/sending/check", admin, h.runCheck)
}

// LastReport returns the latest check's report and when it ran (zero when no check
// has run since the start): what the overview's deliverability warnings show.
func (h *SendingPage) LastReport() (Report, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last, h.lastAt
}

type relayView struct {
	Host      string
	Port      int
	TLS       string
	MaxConns  int
	Rate      string // messages per second; "" when unlimited
	Username  string
	Protected bool // TLS or STARTTLS
}

type dkimView struct{ Domain, Selector, Name, Record string }

type sendingView struct {
	S         SendingSettings
	Relays    []relayView
	SendRate  string
	DKIM      []dkimView
	OptinTTL  string
	Expiry    string // OptinTTL + OptinGrace
	Lists     []ListRetention
	ListsErr  bool
	Report    Report
	CheckedAt time.Time
	Counts    map[string]int
}

func (h *SendingPage) get(c *fiber.Ctx) error {
	p := webauth.Page(c, h.site, "settings", "", nil)
	t := func(key string, args ...any) string { return h.views.T(p.Lang, key, args...) }
	p.Title = t("sending.title")
	s := h.settings
	v := sendingView{S: s, OptinTTL: duration(t, s.OptinTTL), Expiry: duration(t, s.OptinTTL+s.OptinGrace),
		SendRate: rate(s.SendRate)}
	for _, r := range s.Relays {
		v.Relays = append(v.Relays, relayView{Host: r.Host, Port: r.Port, TLS: r.TLS.String(), MaxConns: r.MaxConns,
			Rate: rate(r.Rate), Username: r.Username, Protected: r.TLS != mailer.TLSNone})
	}
	for _, k := range s.DKIM {
		v.DKIM = append(v.DKIM, dkimView{Domain: k.Domain(), Selector: k.Selector(), Name: k.DNSName(), Record: k.DNSRecord()})
	}
	if s.Lists != nil {
		var err error
		v.Lists, err = s.Lists(c.UserContext())
		v.ListsErr = err != nil
	}
	v.Report, v.CheckedAt = h.LastReport()
	v.Counts = map[string]int{}
	for _, f := range v.Report.Findings {
		v.Counts[string(f.Status)]++
	}
	p.Data = v
	return webauth.Render(c, fiber.StatusOK, h.views, "sending", p)
}

// runCheck runs the checks, keeps the report and shows it (redirect after POST).
func (h *SendingPage) runCheck(c *fiber.Ctx) error {
	h.run.Lock()
	defer h.run.Unlock()
	var rep Report
	res, err := NewResolver(h.settings.DNSServer)
	if err != nil {
		rep = Report{DNSServer: h.settings.DNSServer, Findings: []Finding{{Check: "dns", Subject: h.settings.DNSServer,
			Status: Fail, Message: "the DNS server cannot be used: " + err.Error(), Fix: "check CONSENTMAIL_DNS_SERVER"}}}
	} else {
		ctx, cancel := context.WithTimeout(c.UserContext(), runTimeout)
		rep = New(res, h.check).Run(ctx)
		cancel()
	}
	h.mu.Lock()
	h.last, h.lastAt = rep, h.now()
	h.mu.Unlock()
	return c.Redirect("/admin/settings/sending#check", fiber.StatusSeeOther)
}

func rate(r float64) string {
	if r <= 0 {
		return ""
	}
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// duration says d in days when it is whole days, else as Go writes it (1h30m0s).
func duration(t func(string, ...any) string, d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return t("sending.days", int(d/(24*time.Hour)))
	}
	return d.String()
}
