package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"go.etcd.io/bbolt"

	"consentmail/mailer"
	"consentmail/mailer/deliverability"
	"consentmail/mailer/inbound"
	"consentmail/mailer/webhooks"
	"consentmail/optin"
	"consentmail/preferences"
	"consentmail/preferences/adminapi"
	"consentmail/preferences/apiauth"
	"consentmail/preferences/inboundmail"
	"consentmail/preferences/linkmail"
	"consentmail/preferences/linktoken"
	"consentmail/preferences/pages"
	"consentmail/preferences/webauth"
	"consentmail/queue"
	"consentmail/queue/campaigns"
	"consentmail/templates"
)

// dbFile is the bbolt file in the data directory.
const dbFile = "consentmail.db"

// openDB opens the data directory's database. bbolt allows one process: when a server
// holds the file, this fails within its one-second timeout and says what to use instead.
func openDB(dir, instead string) (*bbolt.DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	db, err := bbolt.Open(filepath.Join(dir, dbFile), 0o600, preferences.BoltOptions())
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("%s is in use: a consentmail server is running on this data directory; %s", dir, instead)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", filepath.Join(dir, dbFile), err)
	}
	// Concurrent producers of the queue and API-key touches group-commit via Batch;
	// keep the wait short, the committer of the store carries the heavy load.
	db.MaxBatchDelay = 2 * time.Millisecond
	return db, nil
}

func newLogger(w io.Writer, level string, dev bool) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if dev {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// runServer runs dev or serve until ctx ends.
func runServer(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer, dev bool) error {
	name := "serve"
	if dev {
		name = "dev"
	}
	fs := newFlagSet(name, stderr)
	resolve := configFlags(fs, env)
	role := "all"
	if !dev {
		fs.StringVar(&role, "role", "all", "all, api (HTTP only) or worker (queue consumer only)")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := resolve(dev)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	switch role {
	case "all":
	case "api", "worker":
		if cfg.Redis == nil {
			return fmt.Errorf("--role %s needs the Redis queue: set CONSENTMAIL_REDIS_URL (the embedded queue lives in the data directory, which one process holds)", role)
		}
	default:
		return fmt.Errorf("--role %q: want all, api or worker", role)
	}
	if role == "worker" && cfg.BaseURL == "" {
		// Every link a worker signs must lead to the API; it cannot guess where.
		return errors.New("a worker needs CONSENTMAIL_BASE_URL: the public URL of the API, put in every link of every mail")
	}
	log := newLogger(stderr, cfg.LogLevel, dev)
	if dev {
		// A first look at dev is of a shop, not of placeholders.
		if cfg.CompanyName == "" {
			cfg.CompanyName = devCompany
		}
		if cfg.AccentColor == "" {
			cfg.AccentColor = devAccent
		}
	}
	if dev && cfg.Secret == nil {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return err
		}
		if cfg.Secret, err = devSecret(cfg.DataDir); err != nil {
			return err
		}
	}
	if cfg.DebugAddr != "" {
		stop, err := serveDebug(cfg.DebugAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	svc, err := newService(ctx, cfg, dev, role, log)
	if err != nil {
		return err
	}
	defer svc.close()
	return svc.run(ctx, stdout)
}

// service is the assembled process: store, queues, mail, HTTP. A worker has only the
// campaign queue, the tracker and mail: it never opens the data directory.
type service struct {
	cfg     *Config
	dev     bool
	role    string
	log     *slog.Logger
	now     func() time.Time
	db      *bbolt.DB
	store   *preferences.Store
	queue   *queue.Bolt // system mail, and campaign jobs without Redis; nil in a worker
	rq      *queue.Redis
	tracker campaigns.Tracker
	sender  *mailer.Sender
	dkim    []*mailer.DKIMSigner
	relays  []mailer.Relay
	catcher *mailer.Catcher
	// inboundAddr is where the inbound SMTP server listens (nil: not configured).
	inboundAddr net.Addr
	pages       *templates.Renderer
	site        templates.Site // the company's name, privacy notice and branding
	reg         *prometheus.Registry
	ln          net.Listener
	closers     []func()
}

func newService(ctx context.Context, cfg *Config, dev bool, role string, log *slog.Logger) (svc *service, err error) {
	s := &service{cfg: cfg, dev: dev, role: role, log: log, now: time.Now, reg: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cfg.Redis != nil {
		client := redis.NewClient(cfg.Redis)
		s.closers = append(s.closers, func() { client.Close() })
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := client.Ping(pctx).Err()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("CONSENTMAIL_REDIS_URL: cannot reach Redis: %w", err)
		}
		if s.rq, err = queue.NewRedis(client, queue.RedisOptions{Prefix: redisPrefix, Now: s.now, Visibility: cfg.Visibility}); err != nil {
			return nil, err
		}
		s.closers = append(s.closers, func() { s.rq.Close() })
		s.tracker = campaigns.NewRedisTracker(client, campaigns.RedisTrackerOptions{Prefix: redisPrefix, Now: s.now})
	}
	if role == "worker" {
		return s, s.openSender(dev)
	}
	if s.db, err = openDB(cfg.DataDir, "stop it first"); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { s.db.Close() })
	// Withdrawals are mirrored before they answer: to Redis, which every worker reads
	// and which waits for sends under way there; with the embedded queue, to the
	// register of sends under way in this process, which the tracker made below holds
	// its claims in.
	var sending *campaigns.Sending
	mirror, ok := s.tracker.(preferences.WithdrawalMirror)
	if !ok {
		sending = campaigns.NewSending(campaigns.WithdrawalWait, s.now)
		mirror = sending
	}
	journal, err := preferences.OpenErasureJournal(cfg.ErasureJournal)
	if err != nil {
		return nil, err
	}
	if s.store, err = openStore(s.db, cfg.Secret, s.now, preferences.WithMirror(mirror), preferences.WithErasureJournal(journal)); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { s.store.Close() })
	if s.queue, err = queue.NewBolt(s.db, queue.BoltOptions{Now: s.now, Commit: s.store.GroupCommit, Visibility: cfg.Visibility}); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { s.queue.Close() })
	s.site = templates.Site{Company: cfg.CompanyName, PrivacyURL: cfg.PrivacyURL, LogoURL: cfg.LogoURL, Accent: cfg.AccentColor}
	if s.pages, err = templates.New(s.site); err != nil {
		return nil, err
	}
	if s.ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	s.closers = append(s.closers, func() { s.ln.Close() })
	if cfg.BaseURL == "" {
		cfg.BaseURL = "http://" + s.ln.Addr().String()
	}
	if s.tracker == nil {
		if s.tracker, err = campaigns.NewBoltTracker(s.db, s.store.GroupCommit, s.store, sending, s.now); err != nil {
			return nil, err
		}
	}
	if err := s.openSender(dev); err != nil {
		return nil, err
	}
	// The configured key is the one bootstrap key: a previous value, or every one when
	// the variable is unset, is revoked.
	if _, err := s.store.EnsureAPIKey(ctx, preferences.RoleAdmin, preferences.BootstrapKeyName, cfg.AdminAPIKey); err != nil {
		return nil, fmt.Errorf("CONSENTMAIL_ADMIN_API_KEY: %w", err)
	}
	return s, nil
}

// redisPrefix starts every key consentmail keeps in Redis.
const redisPrefix = "consentmail:"

// openSender opens the SMTP side: in dev the mail catcher and, unless relays are
// configured, the catcher as relay.
func (s *service) openSender(dev bool) error {
	cfg, log := s.cfg, s.log
	relays := cfg.Relays
	if dev {
		s.catcher = mailer.NewCatcher(500)
		addr, err := s.catcher.Listen(cfg.DevSMTPAddr)
		if err != nil {
			return fmt.Errorf("dev mail catcher on %s: %w", cfg.DevSMTPAddr, err)
		}
		s.closers = append(s.closers, func() { s.catcher.Close() })
		if len(relays) == 0 {
			host, port, _ := net.SplitHostPort(addr.String())
			p, _ := strconv.Atoi(port)
			relays = []mailer.Relay{{Host: host, Port: p, TLS: mailer.TLSNone, MaxConns: 8}}
		}
	}
	opts := mailer.Options{GlobalRate: cfg.SendRate, Logger: log}
	var err error
	if opts.DKIM, err = loadDKIMKeys(cfg.DKIMKeys); err != nil {
		return err
	}
	s.dkim = opts.DKIM
	s.relays = relays
	if s.sender, err = mailer.NewSender(relays, opts); err != nil {
		return err
	}
	s.closers = append(s.closers, func() { s.sender.Close() })
	return nil
}

// loadDKIMKeys reads the configured keys: one signer per sending domain.
func loadDKIMKeys(keys []dkimKeyConfig) ([]*mailer.DKIMSigner, error) {
	var out []*mailer.DKIMSigner
	for _, k := range keys {
		pem, err := os.ReadFile(k.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("DKIM key of %s: %w", k.Domain, err)
		}
		signer, err := mailer.NewDKIMSigner(k.Domain, k.Selector, pem)
		if err != nil {
			return nil, fmt.Errorf("DKIM key of %s (%s): %w", k.Domain, k.KeyFile, err)
		}
		out = append(out, signer)
	}
	return out, nil
}

func (s *service) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

func (s *service) run(ctx context.Context, stdout io.Writer) error {
	collectLessOften(ctx)
	if s.role == "worker" {
		return s.runWorker(ctx, stdout)
	}
	cfg := s.cfg
	optinSigner := linktoken.NewSigner(preferences.DeriveKey(cfg.Secret, "optin-links"))
	optinCfg := optin.Config{BaseURL: cfg.BaseURL, OptinTTL: cfg.OptinTTL, SignupRate: cfg.SignupRate, CORSOrigins: cfg.CORSOrigins,
		MaxInFlight: cfg.SignupConcurrency}
	sender := newInstrumentedSender(s.sender, s.reg)
	// System mail (confirmations, links) leaves in pipelined batches of what arrives
	// while the relay's connections are busy: one round trip for many under load.
	systemMail := mailer.NewCoalescer(sender, s.relayConns(), 10)
	s.closers = append(s.closers, systemMail.Close) // closers run last first: before the sender closes
	optinMail := optin.NewMailer(s.store, s.pages, optinSigner, systemMail, cfg.From, optinCfg, s.now, s.log)
	tplStore, err := campaigns.NewStore(s.db, s.now)
	if err != nil {
		return err
	}
	codec, err := campaigns.NewJobCodec(cfg.Secret)
	if err != nil {
		return err
	}
	campQueue := queue.Queue(s.queue)
	if s.rq != nil {
		campQueue = s.rq
	}
	engine := campaigns.NewEngine(tplStore, s.store, s.tracker, campQueue, s.store.GroupCommit, codec, s.store,
		campaigns.EngineConfig{DefaultFrom: cfg.From, BatchSize: s.batchSize(), PauseComplaintRate: cfg.PauseComplaintRate,
			PauseBounceRate: cfg.PauseBounceRate, PauseMinSent: cfg.PauseMinSent,
			CheckFrom: fromCheck(s.sender), IDsOnly: s.rq == nil}, s.now, s.log, s.reg)
	guard := apiauth.New(preferences.NewAuthenticator(s.store), s.now)
	unsubSigner := linktoken.NewSigner(preferences.DeriveKey(cfg.Secret, "unsubscribe-links"))
	queues := []queue.Queue{s.queue}
	if s.rq != nil {
		queues = append(queues, s.rq)
	}
	forget := queue.NewForgetter(map[string]queue.Forgetting{
		campaigns.KindCampaign: {Forget: codec.Forget},
		optin.KindOptin:        {Forget: queue.DropFor(optin.ForSubscriber)},
		linkmail.KindDataLink:  {Forget: queue.DropFor(linkmail.ForSubscriber)},
		linkmail.KindPrefsLink: {Forget: queue.DropFor(linkmail.ForSubscriber)},
	}, queues...)
	eraser := preferences.NewEraser(s.store, forget, s.log)
	linkQueue := linkmail.NewLinks(s.queue)
	optinHandler := optin.NewHandler(s.store, s.pages, optinSigner, s.queue, linkQueue, optinCfg, s.now, s.log, s.reg)
	h := handlers{
		optin: optinHandler,
		admin: adminapi.New(s.store, guard, eraser, engine.History,
			preferences.RegisterSite{Company: cfg.CompanyName, PrivacyURL: cfg.PrivacyURL, Contact: cfg.Contact,
				RelayHosts: relayHosts(cfg.Relays)}, fromCheck(s.sender)),
		dataAdmin: optin.NewAdminAPI(s.store, guard, s.queue),
		templates: campaigns.NewAPI(tplStore, s.store, guard, campaigns.FooterConfig{BaseURL: cfg.BaseURL,
			PostalAddress: cfg.PostalAddress, Company: cfg.CompanyName}),
		campaigns:   campaigns.NewCampaignAPI(engine, guard),
		unsubscribe: pages.NewUnsubscribe(s.store, s.pages, unsubSigner, engine, cfg.Contact, s.now, s.reg),
		centre: pages.NewCentre(s.store, s.pages, unsubSigner, linkQueue, optinHandler.EnqueueOptin, eraser,
			engine.History, cfg.Contact, s.now),
		tracking: campaigns.NewTrackingRoutes(engine, s.store, trackingSigner(cfg.Secret), s.now),
		ready:    s.ready,
		brandCSS: templates.BrandCSS(s.site),
	}
	if h.auth, err = webauth.New(s.store, s.pages, s.site, webauth.Config{BaseURL: cfg.BaseURL, Sessions: cfg.Sessions,
		Issuer: s.issuer(), OIDC: cfg.OIDC}, s.now, s.log); err != nil {
		return err
	}
	dcfg, err := deliverabilityConfig(cfg, s.dkim)
	if err != nil {
		return err
	}
	dcfg.Relays = relayHosts(s.relays)
	h.deliverability = deliverability.NewHandler(dcfg, cfg.DNSServer, guard.Require())
	if h.adminFeatures, err = s.adminFeatures(adminDeps{engine: engine, tplStore: tplStore, templates: h.templates,
		eraser: eraser, campQueue: campQueue, dcfg: dcfg}); err != nil {
		return err
	}
	h.inbound = inboundmail.New(s.store, inboundSigner(cfg.Secret), engine, guard, s.log, s.reg)
	// Relay webhooks feed the same pipeline as inbound SMTP: the same tokens, records
	// and quarantine.
	h.webhooks = webhooks.New(cfg.Webhooks, h.inbound, nil, nil, s.now, s.log, s.reg)
	inboundSrv, err := s.listenInbound(h.inbound)
	if err != nil {
		return err
	}
	links := linkmail.NewMailer(s.store, s.pages, unsubSigner, systemMail, cfg.From, cfg.BaseURL, s.now, s.log)
	if s.dev {
		h.inbox = s.catcher
	}
	s.reg.MustRegister(queueGauge(campQueue))
	app := newApp(s.log, cfg.TrustedProxies, s.pages)
	h.mount(app, s.reg)
	ln := newSilentListener(s.ln)

	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); wg.Wait() }()
	// Room for every goroutine below and the listener: each sends once when it ends,
	// and one that could not would keep wg.Wait from returning at shutdown.
	errc := make(chan error, 16)
	goRun := func(f func(context.Context) error) {
		wg.Add(1)
		go func() { defer wg.Done(); errc <- f(ctx) }()
	}
	// System mail needs the store, so the process holding it sends it; campaign jobs
	// go to the workers, here too unless this process is only the API.
	worker := s.newWorker(campQueue, sender)
	local := map[string]queue.Handler{optin.KindOptin: optinMail.Handle,
		linkmail.KindDataLink: links.Handle, linkmail.KindPrefsLink: links.Handle}
	if s.rq == nil {
		local[campaigns.KindCampaign] = worker.Handle
	} else if s.role == "all" {
		defer s.beat(ctx)()
		goRun(queue.NewConsumer(s.rq, map[string]queue.Handler{campaigns.KindCampaign: worker.Handle}, s.concurrency(), s.log).Run)
	}
	goRun(queue.NewConsumer(s.queue, local, s.concurrency(), s.log).Run)
	goRun(engine.Run)
	goRun(eraser.Run)
	goRun(func(ctx context.Context) error {
		return eraser.RunRetention(ctx, preferences.RetentionPolicy{OptinTTL: s.cfg.OptinTTL, Grace: optinGrace})
	})
	if s.catcher != nil {
		goRun(s.catcher.Serve)
	}
	goRun(h.inbound.Run)
	goRun(h.auth.Run)
	if inboundSrv != nil {
		goRun(inboundSrv.Serve)
	}
	go func() { errc <- app.Listener(ln) }()

	if s.dev {
		if err := s.devBootstrap(ctx, stdout); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "consentmail listening on %s (public base URL %s), role %s\n", s.ln.Addr(), cfg.BaseURL, s.role)
	}
	if inboundSrv != nil {
		fmt.Fprintf(stdout, "inbound SMTP on %s for bounce+…, unsubscribe+… and fbl@%s\n", inboundSrv.Addr(), s.mailDomain())
	}
	s.log.Info("started", "http", s.ln.Addr().String(), "base_url", cfg.BaseURL, "dev", s.dev, "role", s.role, "redis", s.rq != nil)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		if runErr != nil {
			runErr = fmt.Errorf("server stopped: %w", runErr)
		}
	}
	shutdownCtx, done := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer done()
	ln.closeSilent()
	if err := app.ShutdownWithContext(shutdownCtx); err != nil {
		s.log.Warn("HTTP shutdown", "err", err)
	}
	cancel()
	s.queue.Close()
	if s.rq != nil {
		s.rq.Close()
	}
	wg.Wait()
	// Opens and clicks counted while the HTTP server drained.
	if err := engine.FlushHits(context.WithoutCancel(ctx)); err != nil {
		s.log.Error("campaign opens and clicks lost", "err", err)
	}
	s.log.Info("stopped")
	return runErr
}

// optinGrace is how long past its link's lifetime a pending signup is kept.
const optinGrace = 7 * 24 * time.Hour

// runWorker consumes campaign jobs from Redis until ctx ends.
func (s *service) runWorker(ctx context.Context, stdout io.Writer) error {
	worker := s.newWorker(s.rq, newInstrumentedSender(s.sender, s.reg))
	stopBeat := s.beat(ctx)
	fmt.Fprintf(stdout, "consentmail worker consuming the Redis queue (public base URL %s)\n", s.cfg.BaseURL)
	s.log.Info("worker started", "base_url", s.cfg.BaseURL)
	err := queue.NewConsumer(s.rq, map[string]queue.Handler{campaigns.KindCampaign: worker.Handle}, s.concurrency(), s.log).Run(ctx)
	stopBeat()
	s.log.Info("worker stopped")
	return err
}

// beat keeps this process's heartbeats in Redis (its queue consumer's and its
// tracker's) until the returned function is called, after the consumer has stopped:
// another process takes over what a dead one held within seconds of its death.
func (s *service) beat(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	beats := []func(context.Context) error{s.rq.Beat}
	if rt, ok := s.tracker.(*campaigns.RedisTracker); ok {
		beats = append(beats, rt.Beat)
	}
	for _, b := range beats {
		wg.Add(1)
		go func() { defer wg.Done(); b(ctx) }()
	}
	return func() { cancel(); wg.Wait() }
}

func (s *service) newWorker(q queue.Queue, sender campaigns.Sender) *campaigns.Worker {
	cfg := s.cfg
	codec, err := campaigns.NewJobCodec(cfg.Secret)
	if err != nil {
		panic(err) // the secret's length was checked with the configuration
	}
	return campaigns.NewWorker(s.tracker, q, sender, codec,
		linktoken.NewSigner(preferences.DeriveKey(cfg.Secret, "unsubscribe-links")), trackingSigner(cfg.Secret),
		campaigns.WorkerConfig{BaseURL: cfg.BaseURL, PostalAddress: cfg.PostalAddress, Company: cfg.CompanyName,
			Domain: s.mailDomain(), Visibility: cfg.Visibility, MaxAttempts: 8, MaxGroups: s.concurrency(),
			Refs: inboundSigner(cfg.Secret), Inbound: cfg.InboundSMTPAddr != "",
			RelayRefs: cfg.Webhooks.SendGridKey != nil || cfg.Webhooks.PostmarkAuth != ""}, s.now, s.log)
}

// inboundSigner signs the tokens of bounce+TOKEN@ and unsubscribe+TOKEN@: the workers
// sign (VERP return path, List-Unsubscribe mailto), the inbound SMTP server verifies.
func inboundSigner(secret []byte) *linktoken.Signer {
	return linktoken.NewSigner(preferences.DeriveKey(secret, "inbound-addresses"))
}

// listenInbound opens the inbound SMTP server when an address is configured (in dev,
// always), so that a port in use stops the start.
func (s *service) listenInbound(h *inboundmail.Handler) (*inbound.Server, error) {
	cfg := s.cfg
	if cfg.InboundSMTPAddr == "" {
		return nil, nil
	}
	icfg := inbound.Config{Domain: s.mailDomain(), Logger: s.log}
	if cfg.InboundTLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.InboundTLSCert, cfg.InboundTLSKey)
		if err != nil {
			return nil, fmt.Errorf("CONSENTMAIL_INBOUND_TLS_CERT_FILE: %w", err)
		}
		icfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	srv := inbound.NewServer(icfg, h)
	if _, err := srv.Listen(cfg.InboundSMTPAddr); err != nil {
		return nil, fmt.Errorf("inbound SMTP on %s: %w", cfg.InboundSMTPAddr, err)
	}
	s.closers = append(s.closers, func() { srv.Close() })
	s.inboundAddr = srv.Addr()
	return srv, nil
}

// trackingSigner signs the open pixel and click links: the workers sign, the API's
// tracking routes verify.
func trackingSigner(secret []byte) *linktoken.Signer {
	return linktoken.NewSigner(preferences.DeriveKey(secret, "tracking-links"))
}

// mailDomain names List-Id and Message-ID: CONSENTMAIL_BOUNCE_DOMAIN, else the host
// of the base URL.
func (s *service) mailDomain() string {
	if s.cfg.BounceDomain != "" {
		return s.cfg.BounceDomain
	}
	if u, err := url.Parse(s.cfg.BaseURL); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return "localhost"
}

// batchSize is the number of recipients per campaign job: 100, or fewer when a global
// send rate would make a job outlast a fraction of the queue's visibility timeout.
func (s *service) batchSize() int {
	if s.cfg.SendRate <= 0 {
		return 100
	}
	n := int(s.cfg.SendRate * 10 / float64(s.concurrency()))
	return min(max(n, 1), 100)
}

// concurrency is how many queue messages are handled at once: two per SMTP
// connection, so that store reads and ledger writes overlap the SMTP round trips. It
// is also how many campaign send groups may be between their claim and their durable
// record: one per connection would leave each connection idle while its group's
// results are written (a third of the embedded queue's send rate, which waits for
// fsync, in the campaign benchmark).
// Mail is asynchronous: under a burst of signups, keeping this small leaves the CPU
// to the HTTP requests people wait for, and the queue absorbs the burst.
func (s *service) concurrency() int {
	return min(max(2*s.connections(), 2), maxHandlers)
}

// maxHandlers bounds concurrency whatever the relays' connections: each handler holds
// a job and a goroutine's stack (tens of KB deep in a template), so that a process's
// memory does not grow with max_conns. 128 send groups on the wire at once are ten
// times more than two cores render from a relay 20 ms away, and 12,800 messages/s from
// one 100 ms away; connections beyond them are not used.
const maxHandlers = 128

// connections is the number of SMTP connections of every relay together.
func (s *service) connections() int {
	n := 0
	for _, r := range s.relays {
		n += r.MaxConns
	}
	return n
}

// ready names the parts that do not answer: "store", "queue" (the embedded queue)
// and "redis". The reasons (addresses, error text) go to the log, not to the caller.
func (s *service) ready(ctx context.Context) (down []string) {
	check := func(part string, ping func(context.Context) error) {
		if err := ping(ctx); err != nil {
			s.log.Warn("not ready", "part", part, "err", err)
			down = append(down, part)
		}
	}
	check("store", s.store.Ping)
	check("queue", s.queue.Ping)
	if s.rq != nil {
		check("redis", s.rq.Ping)
	}
	return down
}

// issuer names this service in authenticator apps: the company, else consentmail.
func (s *service) issuer() string {
	if s.cfg.CompanyName != "" {
		return s.cfg.CompanyName
	}
	return "consentmail"
}

// Dev's sample branding, when none is configured.
const (
	devCompany = "Maison Exemple"
	devAccent  = "#0f766e"
	devAdmin   = "admin@example.test"
)

// devBootstrap prints dev mode's tour; the store makes its public list and fresh
// admin key, and a first admin user when there is no user.
func (s *service) devBootstrap(ctx context.Context, stdout io.Writer) error {
	key, err := s.store.DevBootstrap(ctx, devKeyName, s.cfg.AdminAPIKey)
	if err != nil {
		return err
	}
	base := s.cfg.BaseURL
	users, err := s.store.Users(ctx)
	if err != nil {
		return err
	}
	signin := fmt.Sprintf("%s/admin/signin   (with your user)", base)
	if len(users) == 0 {
		_, password, err := s.store.CreateUser(ctx, devAdmin, preferences.RoleAdmin)
		if err != nil {
			return err
		}
		signin = fmt.Sprintf("%s/admin/signin\n                  as %s with the one-time password %s\n                  (shown once; you choose your own at the first sign-in)", base, devAdmin, password)
	}
	fmt.Fprintf(stdout, `consentmail dev is running
  API and pages:  %s
  signup form:    %s/subscribe/newsletter
  mail inbox:     %s/dev/inbox   (SMTP catcher on %s)
  inbound SMTP:   %s   (bounces, complaints, mailto unsubscribes for @%s)
  data directory: %s
  admin API key:  %s   (new at every start; set CONSENTMAIL_ADMIN_API_KEY to keep one)
  admin app:      %s

Try:
  curl -X POST %s/api/v1/signups -H 'Content-Type: application/json' \
    -d '{"email":"ana@example.org","lists":["newsletter"],"consent":true}'
  then open %s/dev/inbox and follow the confirmation link.
`, base, base, base, s.catcher.Addr(), s.inboundAddr, s.mailDomain(), s.cfg.DataDir, key, signin, base, base)
	return nil
}

const devKeyName = "dev bootstrap"

// relayConns is how many connections the first relay may hold: the system mail's
// batches in flight at once.
func (s *service) relayConns() int {
	if len(s.relays) == 0 || s.relays[0].MaxConns <= 0 {
		return mailer.DefaultMaxConns
	}
	return s.relays[0].MaxConns
}

func domainOf(from string) string {
	for i := len(from) - 1; i >= 0; i-- {
		if from[i] == '@' {
			d := from[i+1:]
			for j, c := range d {
				if c == '>' {
					return d[:j]
				}
			}
			return d
		}
	}
	return "localhost"
}

// runAPIKeyCreate prints a new key once. It opens the data directory, so it refuses
// (within 2 s) while a server runs, and names the API to use instead.
func runAPIKeyCreate(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) error {
	var role, name string
	cfg, err := commandConfig("apikey create", args, env, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&role, "role", "", "admin, marketer, dpo or viewer")
		fs.StringVar(&name, "name", "", "a name to recognise the key by")
	})
	if err != nil {
		return err
	}
	if !preferences.ValidRole(role) {
		return fmt.Errorf("--role must be admin, marketer, dpo or viewer")
	}
	store, closeDB, err := openStoreForCLI(cfg, "create keys with POST /api/v1/apikeys")
	if err != nil {
		return err
	}
	defer closeDB()
	k, key, err := store.CreateAPIKey(ctx, role, name)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "created API key %s (role %s); it is shown once:\n", k.ID, k.Role)
	fmt.Fprintln(stdout, key)
	return nil
}

// runLedgerVerify walks the chain: exit 0 and a summary, or exit 1 naming the first
// bad sequence number.
func runLedgerVerify(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) error {
	var headFile string
	cfg, err := commandConfig("ledger verify", args, env, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&headFile, "head", "", "a head saved earlier (GET /api/v1/ledger/head or consentmail ledger head): the ledger must still hold it")
	})
	if err != nil {
		return err
	}
	var saved *preferences.SignedHead
	if headFile != "" {
		raw, err := os.ReadFile(headFile)
		if err != nil {
			return err
		}
		saved = new(preferences.SignedHead)
		if err := json.Unmarshal(raw, saved); err != nil {
			return fmt.Errorf("%s: not a saved ledger head: %w", headFile, err)
		}
	}
	store, closeDB, err := openStoreForCLI(cfg, "use GET /api/v1/ledger/verify")
	if err != nil {
		return err
	}
	defer closeDB()
	if saved != nil {
		// The key is checked to be this installation's only when its secret is known.
		if err := store.CheckHeadSignature(*saved, cfg.Secret != nil); err != nil {
			fmt.Fprintf(stdout, "saved head REFUSED: %v\n", err)
			return exitError{1}
		}
	}
	start := time.Now()
	var res preferences.VerifyResult
	if saved != nil {
		res, err = store.VerifyLedgerHead(ctx, *saved)
	} else {
		res, err = store.VerifyLedger(ctx)
	}
	if err != nil {
		return err
	}
	took := time.Since(start)
	if !res.OK {
		fmt.Fprintf(stdout, "ledger BROKEN at seq %d: %s (%d events verified before it)\n", res.FirstBadSeq, res.Reason, res.Events)
		return exitError{1}
	}
	rate := float64(res.Events) / took.Seconds()
	fmt.Fprintf(stdout, "ledger OK: %d events, head %s (%.0f events/s)\n", res.Events, res.Head, rate)
	if saved != nil {
		fmt.Fprintf(stdout, "saved head of %s (%d events) found in the ledger\n", saved.At.Format(time.RFC3339), saved.Seq)
		if cfg.Secret == nil {
			fmt.Fprintln(stdout, "note: no secret configured, so the head's key was not checked to be this installation's")
		}
	}
	return nil
}

// runLedgerHead prints the ledger's head signed with the installation's key (JSON),
// to be kept somewhere the store's host cannot rewrite.
func runLedgerHead(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) error {
	cfg, err := commandConfig("ledger head", args, env, stderr, nil)
	if err != nil {
		return err
	}
	if cfg.Secret == nil {
		return errors.New("ledger head: the secret (CONSENTMAIL_SECRET) is needed to sign the head")
	}
	store, closeDB, err := openStoreForCLI(cfg, "use GET /api/v1/ledger/head")
	if err != nil {
		return err
	}
	defer closeDB()
	h, err := store.LedgerHead(ctx)
	if err != nil {
		return err
	}
	out, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", out)
	return err
}

// openStoreForCLI opens the store for a maintenance command. These commands touch no
// personal data, so without a configured secret a throwaway one is used, and the
// subscribers' keys are left alone (preferences.LedgerOnly).
func openStoreForCLI(cfg *Config, instead string) (*preferences.Store, func(), error) {
	db, err := openDB(cfg.DataDir, instead)
	if err != nil {
		return nil, nil, err
	}
	secret, opts := cfg.Secret, []preferences.Option(nil)
	if secret == nil {
		secret, opts = []byte(randomToken(32)), append(opts, preferences.LedgerOnly())
	}
	store, err := openStore(db, secret, time.Now, opts...)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return store, func() { store.Close(); db.Close() }, nil
}

// openStore opens the consent book in db. Every command goes through here, so that
// the first open of a data file by this version, whichever command makes it, brings
// the whole file to this version, the campaigns' buckets included (campaigns.Upgrade,
// run through preferences.WithUpgrade).
func openStore(db *bbolt.DB, secret []byte, now func() time.Time, opts ...preferences.Option) (*preferences.Store, error) {
	return preferences.New(db, secret, now, append(opts, preferences.WithUpgrade(campaigns.Upgrade))...)
}

// relayHosts are the hosts of the relays, each once: the processors the register
// names (never their credentials).
func relayHosts(relays []mailer.Relay) []string {
	var out []string
	for _, r := range relays {
		if !slices.Contains(out, r.Host) {
			out = append(out, r.Host)
		}
	}
	return out
}
