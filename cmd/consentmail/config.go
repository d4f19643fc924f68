package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"consentmail/mailer"
	"consentmail/mailer/webhooks"
	"consentmail/optin"
	"consentmail/preferences"
	"consentmail/preferences/clientip"
	"consentmail/preferences/webauth"
	"consentmail/templates"
)

// setting is one configuration variable of contract §1 (or a documented extension).
type setting struct {
	env, def, help string
}

// settings lists every variable; each has a kebab-case flag that overrides it.
var settings = []setting{
	{"CONSENTMAIL_DATA_DIR", "./data", "directory of the bbolt database"},
	{"CONSENTMAIL_ERASURE_JOURNAL", "", "file of the erasure journal, kept apart from the store so a restore never brings an erased person back (default: erasures.journal in the data directory; better on another disk)"},
	{"CONSENTMAIL_HTTP_ADDR", "127.0.0.1:8080", "HTTP listen address"},
	{"CONSENTMAIL_BASE_URL", "", "public base URL used in links in email (default: http://HTTP_ADDR)"},
	{"CONSENTMAIL_SECRET", "", "root secret (≥ 32 bytes) for link signing and data-encryption keys"},
	{"CONSENTMAIL_ADMIN_API_KEY", "", "if set, an admin API key with this exact value exists; a previous value (or, unset, any) is revoked at start"},
	{"CONSENTMAIL_REDIS_URL", "", "redis://host:port/db: use the Redis queue"},
	{"CONSENTMAIL_SMTP_URL", "", "comma-separated relays smtp://user:pass@host:port?tls=none|starttls|tls&max_conns=N&rate=N"},
	{"CONSENTMAIL_FROM", "Newsletter <newsletter@localhost>", "default From of campaigns and system mail"},
	{"CONSENTMAIL_POSTAL_ADDRESS", "", "sender's postal address, printed in every campaign footer"},
	{"CONSENTMAIL_INBOUND_SMTP_ADDR", "", "listen address of the inbound SMTP server"},
	{"CONSENTMAIL_BOUNCE_DOMAIN", "", "domain of VERP return paths (default: host of BASE_URL)"},
	{"CONSENTMAIL_OPTIN_TTL", "168h", "lifetime of a confirmation link"},
	{"CONSENTMAIL_SEND_RATE", "0", "global messages per second (0: unlimited)"},
	{"CONSENTMAIL_SIGNUP_RATE", "10/min", "signups accepted per client IP (N/s, N/min, N/h; 0: unlimited)"},
	{"CONSENTMAIL_SIGNUP_CONCURRENCY", "128", "signups under way at once (from arrival to commit); one more is refused at once with 503 and Retry-After (load shedding; 0: no bound)"},
	{"CONSENTMAIL_DKIM_SELECTOR", "", "DKIM selector"},
	{"CONSENTMAIL_DKIM_KEY_FILE", "", "PEM private key for DKIM"},
	// Extensions, documented in the README.
	{"CONSENTMAIL_DKIM_KEYS", "", "more DKIM keys, one per sending domain: domain:selector:/path/key.pem,..."},
	{"CONSENTMAIL_DNS_SERVER", "", "DNS server (host:port) that consentmail doctor asks (default: the system's)"},
	{"CONSENTMAIL_CORS_ORIGINS", "", "comma-separated origins allowed to POST /api/v1/signups from browsers"},
	{"CONSENTMAIL_COMPANY_NAME", "", "company name shown on pages and in system mail"},
	{"CONSENTMAIL_PRIVACY_URL", "", "company privacy notice linked from every page"},
	{"CONSENTMAIL_TRUSTED_PROXIES", "", "comma-separated proxy IPs/CIDRs whose X-Forwarded-For is believed: the client is the rightmost hop not among them"},
	{"CONSENTMAIL_CONTACT", "", "the controller's or DPO's contact address, shown on subscriber pages and in the register"},
	{"CONSENTMAIL_INBOUND_TLS_CERT_FILE", "", "PEM certificate chain: the inbound SMTP server offers STARTTLS"},
	{"CONSENTMAIL_INBOUND_TLS_KEY_FILE", "", "PEM private key of CONSENTMAIL_INBOUND_TLS_CERT_FILE"},
	{"CONSENTMAIL_WEBHOOK_SES_TOPICS", "", "comma-separated SNS topic ARNs whose SES bounce and complaint notifications POST /webhooks/ses accepts"},
	{"CONSENTMAIL_WEBHOOK_POSTMARK_AUTH", "", "user:password of the basic auth in Postmark's webhook URL (POST /webhooks/postmark)"},
	{"CONSENTMAIL_WEBHOOK_SENDGRID_KEY", "", "verification key (base64) of SendGrid's signed event webhook (POST /webhooks/sendgrid)"},
	{"CONSENTMAIL_WEBHOOK_MAILGUN_KEY", "", "Mailgun's HTTP webhook signing key (POST /webhooks/mailgun)"},
	{"CONSENTMAIL_DEV_SMTP_ADDR", "127.0.0.1:1025", "dev: listen address of the mail catcher"},
	{"CONSENTMAIL_LOG_LEVEL", "info", "debug, info, warn or error"},
	{"CONSENTMAIL_DEBUG_ADDR", "", "loopback host:port where Go's profiler (net/http/pprof) answers under /debug/pprof/; none by default"},
	{"CONSENTMAIL_QUEUE_VISIBILITY", "1m", "how long a message being sent stays hidden: the jobs of a worker that died are taken over after this"},
	{"CONSENTMAIL_PAUSE_COMPLAINT_RATE", "0.003", "a running campaign pauses itself when its complaint rate passes this (after PAUSE_MIN_SENT messages)"},
	{"CONSENTMAIL_PAUSE_BOUNCE_RATE", "0.05", "a running campaign pauses itself when its hard-bounce rate passes this (after PAUSE_MIN_SENT messages)"},
	{"CONSENTMAIL_PAUSE_MIN_SENT", "500", "messages a campaign sends (since its start or its resumption) before its rates may pause it"},
	{"CONSENTMAIL_SESSION_IDLE", "30m", "admin app: a session ends after this long without a request"},
	{"CONSENTMAIL_SESSION_MAX", "12h", "admin app: a session ends this long after sign-in, whatever happens"},
	{"CONSENTMAIL_OIDC_ISSUER", "", "admin app single sign-on: the OpenID Connect provider's issuer URL"},
	{"CONSENTMAIL_OIDC_CLIENT_ID", "", "admin app single sign-on: the client id registered at the provider"},
	{"CONSENTMAIL_OIDC_CLIENT_SECRET", "", "admin app single sign-on: the client secret"},
	{"CONSENTMAIL_OIDC_ROLE_CLAIM", "groups", "admin app single sign-on: the ID token claim (string or list) the role comes from"},
	{"CONSENTMAIL_OIDC_ROLES", "", "admin app single sign-on: claim values to roles, first match wins: cm-admins=admin,marketing=marketer"},
	{"CONSENTMAIL_OIDC_SCOPES", "openid email profile groups", "admin app single sign-on: the scopes asked for, space-separated"},
	{"CONSENTMAIL_LOGO_URL", "", "logo in the admin app's header: an https URL or a path on this server"},
	{"CONSENTMAIL_ACCENT_COLOR", "", "accent colour of the admin app and the subscriber pages: #rgb or #rrggbb"},
}

func flagName(env string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(env, "CONSENTMAIL_")), "_", "-")
}

// Config is the validated configuration.
type Config struct {
	DataDir        string
	ErasureJournal string // the erasure journal's file
	// SignupConcurrency bounds the signups under way, from arrival to commit (load shedding).
	SignupConcurrency int
	HTTPAddr          string
	BaseURL           string // empty until the listener is known when not configured
	Secret            []byte
	SecretFromFile    bool
	AdminAPIKey       string
	RedisURL          string
	Visibility        time.Duration
	// PauseComplaintRate, PauseBounceRate and PauseMinSent are the campaigns'
	// auto-pause thresholds (campaigns.EngineConfig).
	PauseComplaintRate float64
	PauseBounceRate    float64
	PauseMinSent       int64
	Redis              *redis.Options // parsed RedisURL; nil for the embedded queue
	Relays             []mailer.Relay
	From               string
	PostalAddress      string
	InboundSMTPAddr    string
	DebugAddr          string // loopback address of the profiler; "" none
	InboundTLSCert     string // PEM files: STARTTLS on the inbound server
	InboundTLSKey      string
	BounceDomain       string
	OptinTTL           time.Duration
	SendRate           float64
	SignupRate         optin.Rate
	DKIMSelector       string
	DKIMKeyFile        string
	DKIMKeys           []dkimKeyConfig // every key, CONSENTMAIL_DKIM_SELECTOR/KEY_FILE's first
	DNSServer          string          // host:port; empty: the system's resolver
	CORSOrigins        []string
	CompanyName        string
	PrivacyURL         string
	Contact            string // the controller's or DPO's address
	TrustedProxies     []netip.Prefix
	DevSMTPAddr        string
	LogLevel           string
	Webhooks           webhooks.Config // relay webhooks; each on when its secret is set
	Sessions           preferences.SessionPolicy
	OIDC               *webauth.OIDCConfig // nil: no single sign-on
	LogoURL            string
	AccentColor        string
}

// dkimKeyConfig is one sending domain's DKIM key.
type dkimKeyConfig struct {
	Domain, Selector, KeyFile string
}

// configFlags registers a flag per setting on fs and returns a function that resolves
// every setting (flag, else environment, else default) into a Config.
func configFlags(fs *flag.FlagSet, env map[string]string) func(dev bool) (*Config, error) {
	vals := map[string]*string{}
	for _, s := range settings {
		vals[s.env] = fs.String(flagName(s.env), "", s.help+" ($"+s.env+")")
	}
	return func(dev bool) (*Config, error) {
		get := func(name string) string {
			if v := *vals[name]; v != "" {
				return v
			}
			if v, ok := env[name]; ok && v != "" {
				return v
			}
			for _, s := range settings {
				if s.env == name {
					return s.def
				}
			}
			return ""
		}
		return buildConfig(get, dev)
	}
}

// checkEnv refuses unknown CONSENTMAIL_* variables: a typo must not silently fall back
// to a default.
func checkEnv(env map[string]string) error {
	var unknown []string
	for k := range env {
		if !strings.HasPrefix(k, "CONSENTMAIL_") {
			continue
		}
		known := false
		for _, s := range settings {
			known = known || s.env == k
		}
		if !known {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("unknown configuration variable %s (see the README for the list)", strings.Join(unknown, ", "))
	}
	return nil
}

func buildConfig(get func(string) string, dev bool) (*Config, error) {
	c := &Config{DataDir: get("CONSENTMAIL_DATA_DIR"), HTTPAddr: get("CONSENTMAIL_HTTP_ADDR"),
		BaseURL: strings.TrimRight(get("CONSENTMAIL_BASE_URL"), "/"), AdminAPIKey: get("CONSENTMAIL_ADMIN_API_KEY"),
		RedisURL: get("CONSENTMAIL_REDIS_URL"), From: get("CONSENTMAIL_FROM"), PostalAddress: get("CONSENTMAIL_POSTAL_ADDRESS"),
		InboundSMTPAddr: get("CONSENTMAIL_INBOUND_SMTP_ADDR"), BounceDomain: get("CONSENTMAIL_BOUNCE_DOMAIN"),
		DKIMSelector: get("CONSENTMAIL_DKIM_SELECTOR"), DKIMKeyFile: get("CONSENTMAIL_DKIM_KEY_FILE"),
		CompanyName: get("CONSENTMAIL_COMPANY_NAME"), PrivacyURL: get("CONSENTMAIL_PRIVACY_URL"),
		DevSMTPAddr: get("CONSENTMAIL_DEV_SMTP_ADDR"), LogLevel: get("CONSENTMAIL_LOG_LEVEL"),
		ErasureJournal: get("CONSENTMAIL_ERASURE_JOURNAL"), DebugAddr: get("CONSENTMAIL_DEBUG_ADDR")}
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s (--%s): %s", name, flagName(name), fmt.Sprintf(format, args...)))
	}
	if c.DataDir == "" {
		bad("CONSENTMAIL_DATA_DIR", "must not be empty")
	}
	if c.ErasureJournal == "" {
		c.ErasureJournal = filepath.Join(c.DataDir, journalFile)
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		bad("CONSENTMAIL_HTTP_ADDR", "%q is not host:port", c.HTTPAddr)
	}
	if c.BaseURL != "" {
		if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			bad("CONSENTMAIL_BASE_URL", "%q is not an http(s) URL", c.BaseURL)
		}
	}
	if s := get("CONSENTMAIL_SECRET"); s != "" {
		c.Secret = []byte(s)
	}
	if c.Secret != nil && len(c.Secret) < preferences.MinSecretLen {
		bad("CONSENTMAIL_SECRET", "must be at least %d bytes, got %d (try: openssl rand -hex 32)", preferences.MinSecretLen, len(c.Secret))
	}
	if s := get("CONSENTMAIL_SMTP_URL"); s != "" {
		relays, err := mailer.ParseRelays(s)
		if err != nil {
			bad("CONSENTMAIL_SMTP_URL", "%v", err)
		}
		c.Relays = relays
	}
	if _, err := mail.ParseAddress(c.From); err != nil || strings.ContainsAny(c.From, "\r\n") {
		bad("CONSENTMAIL_FROM", "%q is not an address such as 'Newsletter <news@example.org>'", c.From)
	}
	var err error
	if c.OptinTTL, err = time.ParseDuration(get("CONSENTMAIL_OPTIN_TTL")); err != nil || c.OptinTTL < time.Minute {
		bad("CONSENTMAIL_OPTIN_TTL", "%q is not a duration of at least 1m such as 168h", get("CONSENTMAIL_OPTIN_TTL"))
	}
	if c.Visibility, err = time.ParseDuration(get("CONSENTMAIL_QUEUE_VISIBILITY")); err != nil || c.Visibility < time.Second || c.Visibility > time.Hour {
		bad("CONSENTMAIL_QUEUE_VISIBILITY", "%q is not a duration between 1s and 1h such as 1m", get("CONSENTMAIL_QUEUE_VISIBILITY"))
	}
	if c.SendRate, err = strconv.ParseFloat(get("CONSENTMAIL_SEND_RATE"), 64); err != nil || c.SendRate < 0 {
		bad("CONSENTMAIL_SEND_RATE", "%q is not a number of messages per second ≥ 0", get("CONSENTMAIL_SEND_RATE"))
	}
	for _, r := range []struct {
		name string
		to   *float64
	}{{"CONSENTMAIL_PAUSE_COMPLAINT_RATE", &c.PauseComplaintRate}, {"CONSENTMAIL_PAUSE_BOUNCE_RATE", &c.PauseBounceRate}} {
		if *r.to, err = strconv.ParseFloat(get(r.name), 64); err != nil || *r.to <= 0 || *r.to > 1 {
			bad(r.name, "%q is not a rate above 0 and at most 1 such as 0.003", get(r.name))
		}
	}
	if c.PauseMinSent, err = strconv.ParseInt(get("CONSENTMAIL_PAUSE_MIN_SENT"), 10, 64); err != nil || c.PauseMinSent < 1 {
		bad("CONSENTMAIL_PAUSE_MIN_SENT", "%q is not a number of messages ≥ 1", get("CONSENTMAIL_PAUSE_MIN_SENT"))
	}
	if c.SignupRate, err = optin.ParseRate(get("CONSENTMAIL_SIGNUP_RATE")); err != nil {
		bad("CONSENTMAIL_SIGNUP_RATE", "%v", err)
	}
	if c.SignupConcurrency, err = strconv.Atoi(get("CONSENTMAIL_SIGNUP_CONCURRENCY")); err != nil || c.SignupConcurrency < 0 {
		bad("CONSENTMAIL_SIGNUP_CONCURRENCY", "%q is not a number ≥ 0", get("CONSENTMAIL_SIGNUP_CONCURRENCY"))
	}
	if (c.DKIMSelector == "") != (c.DKIMKeyFile == "") {
		bad("CONSENTMAIL_DKIM_SELECTOR", "DKIM needs both CONSENTMAIL_DKIM_SELECTOR and CONSENTMAIL_DKIM_KEY_FILE")
	} else if c.DKIMKeyFile != "" {
		c.DKIMKeys = append(c.DKIMKeys, dkimKeyConfig{Domain: strings.ToLower(domainOf(c.From)), Selector: c.DKIMSelector, KeyFile: c.DKIMKeyFile})
	}
	for _, k := range splitList(get("CONSENTMAIL_DKIM_KEYS")) {
		parts := strings.SplitN(k, ":", 3)
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" || strings.ContainsAny(parts[0]+parts[1], " /@;") {
			bad("CONSENTMAIL_DKIM_KEYS", "%q is not domain:selector:/path/to/key.pem", k)
			continue
		}
		kc := dkimKeyConfig{Domain: strings.ToLower(parts[0]), Selector: parts[1], KeyFile: parts[2]}
		if slices.ContainsFunc(c.DKIMKeys, func(o dkimKeyConfig) bool { return o.Domain == kc.Domain }) {
			bad("CONSENTMAIL_DKIM_KEYS", "two keys for %s: one per sending domain (CONSENTMAIL_DKIM_KEY_FILE is the key of CONSENTMAIL_FROM's domain)", kc.Domain)
			continue
		}
		c.DKIMKeys = append(c.DKIMKeys, kc)
	}
	if c.DNSServer = get("CONSENTMAIL_DNS_SERVER"); c.DNSServer != "" {
		if _, port, err := net.SplitHostPort(c.DNSServer); err != nil || port == "" {
			bad("CONSENTMAIL_DNS_SERVER", "%q is not host:port such as 127.0.0.1:53", c.DNSServer)
		}
	}
	for _, o := range splitList(get("CONSENTMAIL_CORS_ORIGINS")) {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
			bad("CONSENTMAIL_CORS_ORIGINS", "%q is not an origin such as https://www.example.org", o)
		}
		c.CORSOrigins = append(c.CORSOrigins, o)
	}
	if proxies, err := clientip.ParseTrusted(splitList(get("CONSENTMAIL_TRUSTED_PROXIES"))); err != nil {
		bad("CONSENTMAIL_TRUSTED_PROXIES", "%v", err)
	} else {
		c.TrustedProxies = proxies
	}
	if c.Contact = get("CONSENTMAIL_CONTACT"); c.Contact != "" {
		if a, err := mail.ParseAddress(c.Contact); err != nil || a.Name != "" || strings.ContainsAny(c.Contact, "\r\n") {
			bad("CONSENTMAIL_CONTACT", "%q is not an email address such as dpo@example.org", c.Contact)
		}
	}
	if c.PrivacyURL != "" {
		if u, err := url.Parse(c.PrivacyURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("CONSENTMAIL_PRIVACY_URL", "%q is not an http(s) URL", c.PrivacyURL)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("CONSENTMAIL_LOG_LEVEL", "%q is not debug, info, warn or error", c.LogLevel)
	}
	if c.AdminAPIKey != "" && len(c.AdminAPIKey) < 16 {
		bad("CONSENTMAIL_ADMIN_API_KEY", "must be at least 16 characters")
	}
	if c.DebugAddr != "" {
		// Profiles and goroutine dumps tell an attacker much about the process: they
		// are for the operator on the host, never on a public address.
		host, _, err := net.SplitHostPort(c.DebugAddr)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			bad("CONSENTMAIL_DEBUG_ADDR", "%q is not a loopback host:port such as 127.0.0.1:6060", c.DebugAddr)
		}
	}
	if c.InboundSMTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.InboundSMTPAddr); err != nil {
			bad("CONSENTMAIL_INBOUND_SMTP_ADDR", "%q is not host:port such as 0.0.0.0:25", c.InboundSMTPAddr)
		}
	}
	c.InboundTLSCert, c.InboundTLSKey = get("CONSENTMAIL_INBOUND_TLS_CERT_FILE"), get("CONSENTMAIL_INBOUND_TLS_KEY_FILE")
	if (c.InboundTLSCert == "") != (c.InboundTLSKey == "") {
		bad("CONSENTMAIL_INBOUND_TLS_CERT_FILE", "STARTTLS needs both CONSENTMAIL_INBOUND_TLS_CERT_FILE and CONSENTMAIL_INBOUND_TLS_KEY_FILE")
	}
	if dev && c.InboundSMTPAddr == "" {
		c.InboundSMTPAddr = nextPort(c.DevSMTPAddr)
	}
	for _, arn := range splitList(get("CONSENTMAIL_WEBHOOK_SES_TOPICS")) {
		if !strings.HasPrefix(arn, "arn:aws") || strings.Count(arn, ":") != 5 {
			bad("CONSENTMAIL_WEBHOOK_SES_TOPICS", "%q is not a topic ARN such as arn:aws:sns:eu-west-1:123456789012:ses-bounces", arn)
		}
		c.Webhooks.SESTopics = append(c.Webhooks.SESTopics, arn)
	}
	if a := get("CONSENTMAIL_WEBHOOK_POSTMARK_AUTH"); a != "" {
		if user, pass, ok := strings.Cut(a, ":"); !ok || user == "" || len(pass) < 16 {
			bad("CONSENTMAIL_WEBHOOK_POSTMARK_AUTH", "must be user:password with a password of at least 16 characters")
		}
		c.Webhooks.PostmarkAuth = a
	}
	if k := get("CONSENTMAIL_WEBHOOK_SENDGRID_KEY"); k != "" {
		if c.Webhooks.SendGridKey, err = webhooks.ParseSendGridKey(k); err != nil {
			bad("CONSENTMAIL_WEBHOOK_SENDGRID_KEY", "%v", err)
		}
	}
	if k := get("CONSENTMAIL_WEBHOOK_MAILGUN_KEY"); k != "" {
		if len(k) < 16 {
			bad("CONSENTMAIL_WEBHOOK_MAILGUN_KEY", "must be at least 16 characters (Mailgun's HTTP webhook signing key)")
		}
		c.Webhooks.MailgunKey = []byte(k)
	}
	if c.RedisURL != "" {
		if c.Redis, err = redis.ParseURL(c.RedisURL); err != nil {
			bad("CONSENTMAIL_REDIS_URL", "%q is not a URL such as redis://127.0.0.1:6379/0: %v", c.RedisURL, err)
		}
	}
	if c.BounceDomain != "" && (strings.ContainsAny(c.BounceDomain, " /@:<>\r\n") || !strings.Contains(c.BounceDomain, ".") && c.BounceDomain != "localhost") {
		bad("CONSENTMAIL_BOUNCE_DOMAIN", "%q is not a domain name", c.BounceDomain)
	}
	for _, d := range []struct {
		name string
		to   *time.Duration
	}{{"CONSENTMAIL_SESSION_IDLE", &c.Sessions.Idle}, {"CONSENTMAIL_SESSION_MAX", &c.Sessions.Max}} {
		if *d.to, err = time.ParseDuration(get(d.name)); err != nil || *d.to < time.Minute {
			bad(d.name, "%q is not a duration of at least 1m such as 30m or 12h", get(d.name))
		}
	}
	if c.Sessions.Idle > c.Sessions.Max {
		bad("CONSENTMAIL_SESSION_IDLE", "is longer than CONSENTMAIL_SESSION_MAX")
	}
	c.OIDC = oidcConfig(get, bad)
	if c.LogoURL = get("CONSENTMAIL_LOGO_URL"); c.LogoURL != "" {
		u, err := url.Parse(c.LogoURL)
		local := err == nil && u.Scheme == "" && u.Host == "" && strings.HasPrefix(c.LogoURL, "/") && !strings.HasPrefix(c.LogoURL, "//")
		if err != nil || !local && (u.Scheme != "https" || u.Host == "") {
			bad("CONSENTMAIL_LOGO_URL", "%q is neither an https URL nor a path such as /static/logo.svg", c.LogoURL)
		}
	}
	if c.AccentColor = get("CONSENTMAIL_ACCENT_COLOR"); c.AccentColor != "" && !templates.ValidAccent(c.AccentColor) {
		bad("CONSENTMAIL_ACCENT_COLOR", "%q is not a colour such as #0b57d0 or #c60", c.AccentColor)
	}
	if !dev {
		if c.Secret == nil {
			bad("CONSENTMAIL_SECRET", "is required for serve: at least %d random bytes (try: openssl rand -hex 32)", preferences.MinSecretLen)
		}
		if len(c.Relays) == 0 {
			bad("CONSENTMAIL_SMTP_URL", "is required for serve: where to send mail")
		}
	}
	return c, errors.Join(errs...)
}

// oidcConfig reads single sign-on's settings: nil when the issuer, client id and
// secret are all unset, an error when only some are.
func oidcConfig(get func(string) string, bad func(name, format string, args ...any)) *webauth.OIDCConfig {
	oc := &webauth.OIDCConfig{Issuer: get("CONSENTMAIL_OIDC_ISSUER"), ClientID: get("CONSENTMAIL_OIDC_CLIENT_ID"),
		ClientSecret: get("CONSENTMAIL_OIDC_CLIENT_SECRET"), RoleClaim: get("CONSENTMAIL_OIDC_ROLE_CLAIM"),
		Scopes: strings.Fields(get("CONSENTMAIL_OIDC_SCOPES"))}
	set := 0
	for _, v := range []string{oc.Issuer, oc.ClientID, oc.ClientSecret} {
		if v != "" {
			set++
		}
	}
	if set == 0 {
		return nil
	}
	if set < 3 {
		bad("CONSENTMAIL_OIDC_ISSUER", "single sign-on needs CONSENTMAIL_OIDC_ISSUER, CONSENTMAIL_OIDC_CLIENT_ID and CONSENTMAIL_OIDC_CLIENT_SECRET")
		return nil
	}
	if u, err := url.Parse(oc.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("CONSENTMAIL_OIDC_ISSUER", "%q is not an http(s) URL", oc.Issuer)
	}
	for _, pair := range splitList(get("CONSENTMAIL_OIDC_ROLES")) {
		value, role, ok := strings.Cut(pair, "=")
		if !ok || strings.TrimSpace(value) == "" || !preferences.ValidRole(strings.TrimSpace(role)) {
			bad("CONSENTMAIL_OIDC_ROLES", "%q is not value=role with a role among admin, marketer, dpo, viewer", pair)
			continue
		}
		oc.Roles = append(oc.Roles, webauth.RoleMapping{Value: strings.TrimSpace(value), Role: strings.TrimSpace(role)})
	}
	if len(oc.Roles) == 0 {
		bad("CONSENTMAIL_OIDC_ROLES", "single sign-on needs at least one value=role pair, such as cm-admins=admin")
	}
	return oc
}

// nextPort is dev's inbound SMTP address: the catcher's host and the port after its
// (1026 next to 1025), or a free port when the catcher's is chosen by the system.
func nextPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "127.0.0.1:0"
	}
	p, err := strconv.Atoi(port)
	if err != nil || p == 0 || p >= 65535 {
		return net.JoinHostPort(host, "0")
	}
	return net.JoinHostPort(host, strconv.Itoa(p+1))
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// devSecret returns the secret kept in the data directory, creating it on first use:
// dev mode needs no set-up, and links stay valid across restarts.
func devSecret(dir string) ([]byte, error) {
	path := filepath.Join(dir, "secret")
	if b, err := os.ReadFile(path); err == nil {
		if s := strings.TrimSpace(string(b)); len(s) >= preferences.MinSecretLen {
			return []byte(s), nil
		}
		return nil, fmt.Errorf("%s is shorter than %d bytes; delete it to get a new one", path, preferences.MinSecretLen)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	s := randomToken(32)
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return nil, err
	}
	return []byte(s), nil
}
