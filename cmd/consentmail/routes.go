package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"consentmail/mailer"
	"consentmail/mailer/deliverability"
	"consentmail/mailer/webhooks"
	"consentmail/optin"
	"consentmail/preferences/adminapi"
	"consentmail/preferences/clientip"
	"consentmail/preferences/httperr"
	"consentmail/preferences/inboundmail"
	"consentmail/preferences/pages"
	"consentmail/preferences/webauth"
	"consentmail/queue"
	"consentmail/queue/campaigns"
	"consentmail/templates"
)

// handlers are the route owners of the process.
type handlers struct {
	optin          *optin.Handler
	admin          *adminapi.API
	unsubscribe    *pages.Unsubscribe
	tracking       *campaigns.TrackingRoutes
	centre         *pages.Centre
	dataAdmin      *optin.AdminAPI
	templates      *campaigns.API
	campaigns      *campaigns.CampaignAPI
	deliverability *deliverability.Handler
	inbound        *inboundmail.Handler
	webhooks       *webhooks.Handler                     // nil in tests that mount no webhook
	inbox          *mailer.Catcher                       // dev only
	ready          func(context.Context) (down []string) // parts not reachable
	brandCSS       []byte                                // /static/brand.css: the accent colour
	adminFeatures  []adminFeature                        // the features' pages of the admin app
	auth           *webauth.Auth                         // the admin app's sign-in, sessions and CSRF check
}

// newApp returns the Fiber app with the contract's error shape and strict headers.
// Errors on people's pages are HTML pages rendered by pages (nil: JSON everywhere).
func newApp(log *slog.Logger, trustedProxies []netip.Prefix, pages *templates.Renderer) *fiber.App {
	errs := httperr.Handler(log)
	if pages != nil {
		errs = httperr.PageHandler(log, pages)
	}
	cfg := fiber.Config{
		AppName:               "consentmail",
		DisableStartupMessage: true,
		ErrorHandler:          errs,
		BodyLimit:             1 << 20,
		ReadTimeout:           15 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           90 * time.Second,
		ReadBufferSize:        8192,
		// Without Immutable, c.Params, c.Query, c.Get, c.FormValue and c.Body return views
		// into buffers Fiber reuses for the next request: a list id kept from a PATCH in
		// the store's list cache was overwritten by later requests, and the list vanished
		// until a restart. Copying every value at this one boundary rules that bug out in
		// the handlers we have and those written later, for a few small copies per
		// request. fasthttp's own accessors (c.Request(), c.Context()) still return
		// views: copy what you keep from them. The packages' test apps set it too.
		Immutable: true,
	}
	// No ProxyHeader: Fiber's c.IP() would then return the raw X-Forwarded-For text.
	// The resolver decides the client once (the rightmost hop not a trusted proxy,
	// parsed) and makes it the remote address, so every c.IP() is that client.
	app := fiber.New(cfg)
	app.Use(clientip.New(trustedProxies).Middleware(), recover.New(), securityHeaders)
	return app
}

// silentListener wraps the HTTP listener to know which connections have not sent a
// byte yet. fasthttp's graceful shutdown waits for them until its timeout (browsers
// open such connections ahead of time); closing them at shutdown loses nothing.
type silentListener struct {
	net.Listener
	mu      sync.Mutex
	silent  map[*silentConn]struct{}
	closing bool
}

func newSilentListener(ln net.Listener) *silentListener {
	return &silentListener{Listener: ln, silent: map[*silentConn]struct{}{}}
}

func (l *silentListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	sc := &silentConn{Conn: c, l: l}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		c.Close()
	} else {
		l.silent[sc] = struct{}{}
	}
	return sc, nil
}

// closeSilent closes the connections that never sent a byte, and any accepted later.
func (l *silentListener) closeSilent() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closing = true
	for c := range l.silent {
		c.Conn.Close()
		delete(l.silent, c)
	}
}

func (l *silentListener) forget(c *silentConn) {
	l.mu.Lock()
	delete(l.silent, c)
	l.mu.Unlock()
}

type silentConn struct {
	net.Conn
	l    *silentListener
	used atomic.Bool
}

func (c *silentConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.used.Load() {
		c.used.Store(true)
		c.l.forget(c)
	}
	return n, err
}

func (c *silentConn) Close() error {
	c.l.forget(c)
	return c.Conn.Close()
}

// securityHeaders are set on every response; pages that need more (the dev inbox)
// override them.
func securityHeaders(c *fiber.Ctx) error {
	c.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set("Cross-Origin-Opener-Policy", "same-origin")
	c.Set("Permissions-Policy", "interest-cohort=()")
	return c.Next()
}

// mount puts every package's routes on the app: the whole surface on one screen.
func (h handlers) mount(app *fiber.App, reg *prometheus.Registry) {
	app.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	app.Get("/readyz", func(c *fiber.Ctx) error {
		if down := h.ready(c.UserContext()); len(down) > 0 {
			return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "not_ready", "down": down,
				"error": httperr.New(fiber.StatusServiceUnavailable, "not_ready", "not reachable: "+strings.Join(down, ", "))})
		}
		return c.JSON(fiber.Map{"status": "ready"})
	})
	app.Get("/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	app.Get("/static/brand.css", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, "text/css; charset=utf-8")
		c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
		return c.Send(h.brandCSS)
	})
	app.Use("/static", filesystem.New(filesystem.Config{Root: http.FS(templates.Static()), MaxAge: 3600}))

	h.optin.Routes(app)          // /api/v1/signups, /subscribe, /confirm
	h.admin.Routes(app)          // /api/v1/lists, /api/v1/apikeys, /api/v1/ledger, /api/v1/subscribers
	h.dataAdmin.Routes(app)      // /api/v1/lists/{id}/imports, PATCH /api/v1/subscribers/{id}
	h.unsubscribe.Routes(app)    // /u/{token}
	h.tracking.Routes(app)       // /t/o/{token}, /t/c/{token}
	h.centre.Routes(app)         // /p/{token}
	h.templates.Routes(app)      // /api/v1/templates
	h.campaigns.Routes(app)      // /api/v1/campaigns
	h.deliverability.Routes(app) // /api/v1/deliverability
	h.inbound.Routes(app)        // /api/v1/inbound/quarantine
	if h.webhooks != nil {
		h.webhooks.Routes(app) // /webhooks/{ses,postmark,sendgrid,mailgun}, each when configured
	}
	if h.inbox != nil {
		h.inbox.Routes(app) // /dev/inbox (dev only)
	}

	// The admin app: every /admin page behind its headers, session and CSRF check;
	// feature pages each behind h.auth.Require(roles...).
	admin := app.Group("/admin", h.auth.Middleware()...)
	h.auth.Routes(admin) // /admin/signin, /signout, /oidc, /account, /settings/{users,apikeys}
	for _, f := range h.adminFeatures {
		f.Routes(admin, h.auth.Require) // /admin (overview), lists, subscribers, dpo, imports, templates, campaigns, settings/sending
	}
	app.Use(unrouted(app))
}

// unrouted answers what no route took: 405 with Allow when other methods serve the
// path, else 404. Fiber v2 knows no 405 of its own; the routes are read from the app
// at the first such request, once every route (mounted sub-apps too) is in place.
func unrouted(app *fiber.App) fiber.Handler {
	routes := sync.OnceValue(func() []*fiber.Route {
		var rs []*fiber.Route
		for _, stack := range app.Stack() {
			for _, r := range stack {
				if r.Method != "USE" {
					rs = append(rs, r)
				}
			}
		}
		return rs
	})
	return func(c *fiber.Ctx) error {
		var allow []string
		for _, r := range routes() {
			if !routeMatches(r.Path, c.Path()) {
				continue
			}
			if r.Method == c.Method() { // a route of this method passed it on: nothing here
				return httperr.NotFound("route")
			}
			if !slices.Contains(allow, r.Method) {
				allow = append(allow, r.Method)
			}
		}
		if len(allow) == 0 {
			return httperr.NotFound("route")
		}
		slices.Sort(allow)
		c.Set(fiber.HeaderAllow, strings.Join(allow, ", "))
		return httperr.New(fiber.StatusMethodNotAllowed, "method_not_allowed",
			c.Method()+" is not allowed here; allowed: "+strings.Join(allow, ", "))
	}
}

// routeMatches reports whether path matches the route pattern as Fiber's default
// router does: segments compared without case, a trailing slash ignored, ":name" one
// non-empty segment (":name?" also none), "*" and "+" the rest of the path.
func routeMatches(pattern, path string) bool {
	ps := strings.Split(strings.Trim(pattern, "/"), "/")
	xs := strings.Split(strings.Trim(path, "/"), "/")
	if len(xs) == 1 && xs[0] == "" {
		xs = nil
	}
	if len(ps) == 1 && ps[0] == "" {
		ps = nil
	}
	for i, p := range ps {
		switch {
		case p == "*" || strings.HasPrefix(p, "*"):
			return true
		case p == "+" || strings.HasPrefix(p, "+"):
			return i < len(xs)
		case strings.HasPrefix(p, ":") && strings.HasSuffix(p, "?"):
			if i >= len(xs) {
				return i == len(ps)-1
			}
		case i >= len(xs):
			return false
		case strings.HasPrefix(p, ":"):
			if xs[i] == "" {
				return false
			}
		case !strings.EqualFold(p, xs[i]):
			return false
		}
	}
	return len(xs) == len(ps)
}

// queueGauge exposes the queue's depth to Prometheus.
func queueGauge(q queue.Queue) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "consentmail_queue_ready",
		Help: "Messages waiting in the queue."}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := q.Stats(ctx)
		if err != nil {
			return -1
		}
		return float64(st.Ready)
	})
}

// instrumentedSender counts sends by result and times them.
type instrumentedSender struct {
	next    optin.Sender
	results *prometheus.CounterVec
	domains *prometheus.CounterVec
	latency prometheus.Histogram
}

func newInstrumentedSender(next optin.Sender, reg prometheus.Registerer) *instrumentedSender {
	s := &instrumentedSender{next: next,
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "consentmail_sends_total",
			Help: "Messages handed to SMTP, by result."}, []string{"result"}),
		domains: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "consentmail_send_results_total",
			Help: "Messages handed to SMTP by result (sent, hard_bounce, permanent_failure, temporary_failure) and recipient domain (a large mailbox provider, or other)."},
			[]string{"result", "domain"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "consentmail_send_seconds",
			Help: "Time to hand one message to the relay.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
	}
	reg.MustRegister(s.results, s.domains, s.latency)
	return s
}

func (s *instrumentedSender) Send(ctx context.Context, m *mailer.Message) error {
	start := time.Now()
	err := s.next.Send(ctx, m)
	s.latency.Observe(time.Since(start).Seconds())
	s.count(campaigns.DomainBucket(m.To), err)
	return err
}

// SendBatchFunc sends through the next sender's batches when it has them; the
// latency observed is the batch's share per message.
func (s *instrumentedSender) SendBatchFunc(ctx context.Context, n int, next func(i int) (*mailer.Message, error)) []error {
	bs, ok := s.next.(campaigns.BatchSender)
	if !ok {
		errs := make([]error, n)
		for i := range n {
			m, err := next(i)
			if err == nil {
				err = s.Send(ctx, m)
			}
			errs[i] = err
		}
		return errs
	}
	domains := make([]string, n) // of the messages made; the messages themselves are not kept
	start := time.Now()
	errs := bs.SendBatchFunc(ctx, n, func(i int) (*mailer.Message, error) {
		m, err := next(i)
		if m != nil {
			domains[i] = campaigns.DomainBucket(m.To)
		}
		return m, err
	})
	per := time.Since(start).Seconds() / float64(max(n, 1))
	for i, err := range errs {
		if domains[i] == "" {
			continue // never made: not handed to SMTP
		}
		s.latency.Observe(per)
		s.count(domains[i], err)
	}
	return errs
}

// count counts one message handed to SMTP, to a recipient of the domain bucket.
func (s *instrumentedSender) count(domain string, err error) {
	result := "permanent_failure"
	switch {
	case err == nil:
		result = "sent"
	case mailer.IsTemporary(err):
		result = "temporary_failure"
	}
	s.results.WithLabelValues(result).Inc()
	if _, hard := mailer.HardBounce(err); hard {
		result = "hard_bounce"
	}
	s.domains.WithLabelValues(result, domain).Inc()
}
