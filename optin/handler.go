package optin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/text/language"

	"consentmail/preferences"
	"consentmail/preferences/address"
	"consentmail/preferences/clientip"
	"consentmail/preferences/httperr"
	"consentmail/preferences/linktoken"
	"consentmail/queue"
	"consentmail/templates"

	"go.etcd.io/bbolt"
)

// Limits of contract §3.
const (
	MaxBody       = 16 << 10
	MaxName       = 200
	MaxAttributes = 4 << 10
	MaxLists      = 20
	maxSource     = 200
	maxUserAgent  = 512
	formTokenTTL  = 2 * time.Hour
)

// Token purposes.
const (
	purposeConfirm = "confirm"
	purposeForm    = "signup-form"
)

// TxEnqueuer queues messages inside a bbolt write transaction (the embedded queue).
type TxEnqueuer interface {
	EnqueueTx(tx *bbolt.Tx, msgs ...queue.Message) error
}

// Config is what the handler needs from the service configuration.
type Config struct {
	BaseURL     string        // public base URL for links in mail
	OptinTTL    time.Duration // lifetime of a confirmation link
	SignupRate  Rate          // per client: an IPv4 address or an IPv6 /64
	CORSOrigins []string      // origins allowed to POST /api/v1/signups from a browser
	// MaxInFlight bounds the signups under way at once, from before their body is
	// decoded to their commit (0: no bound).
	// One more is refused at once with 503 and Retry-After (load shedding), so that
	// under overload those admitted are answered within the latency target and the
	// memory of waiting requests stays bounded.
	MaxInFlight int
}

// Handler serves the signup API, the hosted form and the confirmation pages.
type Handler struct {
	store   *preferences.Store
	pages   *templates.Renderer
	signer  *linktoken.Signer
	queue   TxEnqueuer
	cfg     Config
	now     func() time.Time
	log     *slog.Logger
	limit   *clientip.Limiter
	links   PreferenceLinks
	metrics *metrics
	// inflight holds a token per signup waiting for its commit (nil: no bound).
	inflight chan struct{}
}

type metrics struct {
	signups       *prometheus.CounterVec
	shed          prometheus.Counter // signups{outcome="shed"}, looked up once
	confirmations prometheus.Counter
}

// NewHandler returns the handler. Its signer must be keyed for opt-in links only.
// Preference-link mail goes to links.
func NewHandler(store *preferences.Store, pages *templates.Renderer, signer *linktoken.Signer, q TxEnqueuer,
	links PreferenceLinks, cfg Config, now func() time.Time, log *slog.Logger, reg prometheus.Registerer) *Handler {
	m := &metrics{
		signups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "consentmail_signups_total",
			Help: "Signup requests by outcome."}, []string{"outcome"}),
		confirmations: prometheus.NewCounter(prometheus.CounterOpts{Name: "consentmail_confirmations_total",
			Help: "Subscriptions confirmed by a deliberate click."}),
	}
	reg.MustRegister(m.signups, m.confirmations)
	for _, outcome := range []string{"accepted", "invalid", "honeypot", "rate_limited", "shed"} {
		m.signups.WithLabelValues(outcome)
	}
	m.shed = m.signups.WithLabelValues("shed")
	h := &Handler{store: store, pages: pages, signer: signer, queue: q, links: links, cfg: cfg, now: now, log: log,
		limit: clientip.NewLimiter(cfg.SignupRate.N, cfg.SignupRate.Per, 0, now), metrics: m}
	if cfg.MaxInFlight > 0 {
		h.inflight = make(chan struct{}, cfg.MaxInFlight)
	}
	return h
}

// Routes mounts the public routes on r.
func (h *Handler) Routes(r fiber.Router) {
	var front []fiber.Handler // CORS, when origins are configured: on every answer, refusals too
	if len(h.cfg.CORSOrigins) > 0 {
		front = []fiber.Handler{cors.New(cors.Config{AllowOrigins: strings.Join(h.cfg.CORSOrigins, ","),
			AllowMethods: "POST", AllowHeaders: "Content-Type", MaxAge: 600})}
		r.Options("/api/v1/signups", front[0])
		r.Options("/api/v1/preferences/link", front[0])
	}
	// A signup is admitted (or refused at once) before its client's rate is checked
	// and its body decoded: under overload most requests are refusals, and what each
	// costs is CPU taken from the signups admitted.
	signups := append(slices.Clone(front), h.admitAPI, h.checkRate(true), h.apiSignup)
	r.Post("/api/v1/signups", signups...)
	links := append(slices.Clone(front), h.checkRate(true))
	r.Post("/api/v1/preferences/link", append(links, h.prefsLink)...)
	r.Get("/subscribe/:list", h.formPage)
	r.Post("/subscribe/:list", h.checkRate(false), h.formSignup)
	r.Post("/subscribe/:list/embedded", h.checkRate(false), h.embeddedSignup)
	r.Get("/confirm/:token", h.confirmPage)
	r.Post("/confirm/:token", h.confirm)
	r.Post("/confirm/:token/renew", h.checkRate(false), h.renew)
}

// checkRate applies the signup rate per client (an IPv4 address or an IPv6 /64, as
// clientip resolves it): 429 with Retry-After, as JSON for the API and as a page for
// forms.
func (h *Handler) checkRate(api bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ok, wait := h.limit.Allow(c.IP())
		if ok {
			return c.Next()
		}
		h.metrics.signups.WithLabelValues("rate_limited").Inc()
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		if api {
			return httperr.New(fiber.StatusTooManyRequests, "rate_limited", "too many signups from this address; retry later")
		}
		return h.message(c, fiber.StatusTooManyRequests, "", "ratelimited.title", "ratelimited.body")
	}
}

// signupRequest is a signup as received, before validation.
type signupRequest struct {
	Email      string
	Name       string
	Lists      []string
	Consent    bool
	Locale     string
	Attributes json.RawMessage
	Source     string
	Honeypot   string
	FormToken  string
}

// apiSignup records a signup of the API, admitted by admitAPI.
func (h *Handler) apiSignup(c *fiber.Ctx) error {
	if len(c.Body()) > MaxBody {
		return httperr.New(fiber.StatusRequestEntityTooLarge, "too_large", "the body is larger than 16 KiB")
	}
	var req signupRequest
	var bad map[string]string
	ct := strings.ToLower(c.Get(fiber.HeaderContentType))
	switch {
	case strings.HasPrefix(ct, fiber.MIMEApplicationJSON):
		var err error
		if req, bad, err = decodeJSONSignup(c.Body()); err != nil {
			return httperr.New(fiber.StatusBadRequest, "bad_json", "the body is not a JSON object")
		}
	case strings.HasPrefix(ct, fiber.MIMEApplicationForm):
		var err error
		if req, bad, err = decodeFormSignup(c.Body()); err != nil {
			return httperr.New(fiber.StatusBadRequest, "bad_form", "the body is not a valid form")
		}
	default:
		return httperr.New(fiber.StatusUnsupportedMediaType, "unsupported_media_type",
			"send application/json or application/x-www-form-urlencoded")
	}
	if req.Honeypot != "" {
		h.metrics.signups.WithLabelValues("honeypot").Inc()
		return accepted(c)
	}
	in, fields := h.validate(c, req, bad)
	if fields != nil {
		h.metrics.signups.WithLabelValues("invalid").Inc()
		return httperr.Invalid(fields)
	}
	if err := h.signup(c, in); err != nil {
		var ul *preferences.UnknownListError
		if errors.As(err, &ul) {
			h.metrics.signups.WithLabelValues("invalid").Inc()
			return httperr.Invalid(map[string]string{"lists": "unknown or private list: " + ul.List})
		}
		return err
	}
	return accepted(c)
}

func accepted(c *fiber.Ctx) error {
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"status": "pending"})
}

// overloadedBody is answered (503, Retry-After) to a signup refused by load shedding:
// the contract's error, as httperr writes it, made once.
var overloadedBody = func() []byte {
	b, err := json.Marshal(fiber.Map{"error": httperr.New(fiber.StatusServiceUnavailable, "overloaded",
		"too many signups at once; nothing was recorded; retry in a second")})
	if err != nil {
		panic(err)
	}
	return b
}()

// admitAPI runs the rest of an API signup's handlers in one of the MaxInFlight places,
// or refuses it at once (503 overloaded, Retry-After), before its body is looked at.
func (h *Handler) admitAPI(c *fiber.Ctx) error {
	if !h.admit(c) {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Status(fiber.StatusServiceUnavailable).Send(overloadedBody)
	}
	defer h.release()
	return c.Next()
}

// admit takes one of the MaxInFlight places of signups under way, or reports that none
// is free (the refusal counted, its Retry-After set); release gives the place back.
func (h *Handler) admit(c *fiber.Ctx) bool {
	if h.inflight == nil {
		return true
	}
	select {
	case h.inflight <- struct{}{}:
		return true
	default:
		h.metrics.shed.Inc()
		c.Set(fiber.HeaderRetryAfter, "1")
		return false
	}
}

func (h *Handler) release() {
	if h.inflight != nil {
		<-h.inflight
	}
}

// signup records a signup admitted by admitAPI or admit.
func (h *Handler) signup(c *fiber.Ctx, in preferences.SignupInput) error {
	err := h.store.Signup(c.UserContext(), in, h.EnqueueOptin)
	if err == nil {
		h.metrics.signups.WithLabelValues("accepted").Inc()
	}
	return err
}

// EnqueueOptin queues a confirmation mail in the caller's transaction (a signup, a
// re-subscription in the preference centre).
func (h *Handler) EnqueueOptin(tx *bbolt.Tx, req preferences.OptinRequest) error {
	return OptinEnqueuer(h.queue)(tx, req)
}

// OptinEnqueuer returns the preferences.EnqueueTx that queues confirmation mails in q.
func OptinEnqueuer(q TxEnqueuer) preferences.EnqueueTx {
	return func(tx *bbolt.Tx, req preferences.OptinRequest) error {
		body, err := gojson.Marshal(req)
		if err != nil {
			return err
		}
		return q.EnqueueTx(tx, queue.Message{Kind: KindOptin, Priority: queue.High, Body: body})
	}
}

// decodeJSONSignup decodes field by field so that a wrong type names its field and
// consent must be the JSON literal true.
func decodeJSONSignup(body []byte) (signupRequest, map[string]string, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return signupRequest{}, nil, errors.New("not an object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return signupRequest{}, nil, errors.New("data after the object")
	}
	var req signupRequest
	bad := map[string]string{}
	str := func(field string, dst *string) {
		if v, ok := raw[field]; ok && string(v) != "null" {
			if json.Unmarshal(v, dst) != nil {
				bad[field] = "must be a string"
			}
		}
	}
	str("email", &req.Email)
	str("name", &req.Name)
	str("locale", &req.Locale)
	str("source", &req.Source)
	str("website", &req.Honeypot)
	if v, ok := raw["lists"]; ok {
		if json.Unmarshal(v, &req.Lists) != nil {
			bad["lists"] = "must be an array of list ids"
		}
	}
	req.Consent = string(bytes.TrimSpace(raw["consent"])) == "true"
	if v, ok := raw["attributes"]; ok && string(v) != "null" {
		var obj map[string]json.RawMessage
		if json.Unmarshal(v, &obj) != nil {
			bad["attributes"] = "must be an object"
		} else {
			req.Attributes = v
		}
	}
	return req, bad, nil
}

// decodeFormSignup reads a urlencoded body: lists may repeat or be comma-separated,
// attributes come as attributes.KEY=value, consent must be "true".
func decodeFormSignup(body []byte) (signupRequest, map[string]string, error) {
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return signupRequest{}, nil, err
	}
	req := signupRequest{Email: vals.Get("email"), Name: vals.Get("name"), Locale: vals.Get("locale"),
		Source: vals.Get("source"), Honeypot: vals.Get("website"), Consent: vals.Get("consent") == "true",
		FormToken: vals.Get("form_token")}
	for _, l := range vals["lists"] {
		for _, id := range strings.Split(l, ",") {
			if id = strings.TrimSpace(id); id != "" {
				req.Lists = append(req.Lists, id)
			}
		}
	}
	attrs := map[string]string{}
	for k, v := range vals {
		if name, ok := strings.CutPrefix(k, "attributes."); ok && len(v) > 0 {
			attrs[name] = v[0]
		}
	}
	if len(attrs) > 0 {
		req.Attributes, _ = json.Marshal(attrs)
	}
	return req, map[string]string{}, nil
}

// validate applies contract §3 and returns the store's input, or the bad fields.
func (h *Handler) validate(c *fiber.Ctx, req signupRequest, bad map[string]string) (preferences.SignupInput, map[string]string) {
	if bad == nil {
		bad = map[string]string{}
	}
	var in preferences.SignupInput
	if _, done := bad["email"]; !done {
		addr, key, err := address.Normalise(strings.TrimSpace(req.Email))
		switch {
		case req.Email == "":
			bad["email"] = "is required"
		case err != nil:
			bad["email"] = "is not a valid email address (at most 254 characters)"
		default:
			in.Email, in.IndexKey = addr, key
		}
	}
	in.Name = strings.TrimSpace(req.Name)
	if msg := checkLine(in.Name, MaxName); msg != "" {
		bad["name"] = msg
	}
	in.Source = strings.TrimSpace(req.Source)
	if msg := checkLine(in.Source, maxSource); msg != "" {
		bad["source"] = msg
	}
	if _, done := bad["lists"]; !done {
		seen := map[string]bool{}
		for _, id := range req.Lists {
			if !preferences.ValidListID(id) {
				bad["lists"] = "unknown or private list: " + truncate(id, 64)
				break
			}
			if !seen[id] {
				seen[id] = true
				in.Lists = append(in.Lists, id)
			}
		}
		if len(req.Lists) == 0 {
			bad["lists"] = "name at least one list"
		} else if len(in.Lists) > MaxLists {
			bad["lists"] = "at most 20 lists"
		}
	}
	if !req.Consent {
		bad["consent"] = "must be true: consent is given explicitly"
	}
	if req.Locale != "" {
		tag, err := language.Parse(req.Locale)
		if err != nil || len(req.Locale) > 35 {
			bad["locale"] = "is not a language tag such as en or fr"
		} else {
			in.Locale = tag.String()
		}
	}
	if _, done := bad["attributes"]; !done && len(req.Attributes) > 0 {
		if msg := checkAttributes(req.Attributes); msg != "" {
			bad["attributes"] = msg
		} else {
			in.Attributes = req.Attributes
		}
	}
	if len(bad) > 0 {
		return in, bad
	}
	in.IP = c.IP()
	in.UserAgent = truncate(strings.ToValidUTF8(c.Get(fiber.HeaderUserAgent), ""), maxUserAgent)
	return in, nil
}

// checkLine refuses control characters (no header can be smuggled through a name)
// and over-long values; it returns the problem or "".
func checkLine(s string, max int) string {
	if utf8.RuneCountInString(s) > max {
		return "is longer than " + strconv.Itoa(max) + " characters"
	}
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return "must not contain control characters or line breaks"
		}
	}
	return ""
}

// checkAttributes allows an object of at most 4 KiB whose keys are identifiers (so
// templates can say .Subscriber.Attributes.city) and whose values are scalars.
func checkAttributes(raw json.RawMessage) string {
	if len(raw) > MaxAttributes {
		return "are larger than 4 KiB"
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "must be an object"
	}
	for k, v := range obj {
		if !validAttrKey(k) {
			return "key " + strconv.Quote(truncate(k, 64)) + " must be letters, digits and _ (at most 64)"
		}
		switch x := v.(type) {
		case string:
			if checkLine(x, 1000) != "" {
				return "value of " + k + " must be one line"
			}
		case float64, bool, nil:
		default:
			return "value of " + k + " must be a string, number, boolean or null"
		}
	}
	return ""
}

func validAttrKey(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for i, r := range k {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
