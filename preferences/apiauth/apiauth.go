// Package apiauth admits admin API requests by their bearer API key (contract §4):
// 401 for a missing or bad key, 403 for a role too low, the contract's error shape
// for both. Guessing is throttled: a client (clientip: an IPv4 address or an IPv6 /64)
// that presented MaxFailures bad keys within FailureWindow gets 429 with Retry-After,
// whatever key it sends, until the window lets it try again. Keys are checked by the consent book's Authenticator; this package is
// only its Fiber edge, shared by every feature that serves admin endpoints.
package apiauth

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/preferences/clientip"
	"consentmail/preferences/httperr"
)

// principalKey is the fiber.Ctx local holding the authenticated Principal.
const principalKey = "consentmail.principal"

// Failed authentications a client may make in FailureWindow; a failure more waits
// for the window to give one back (one every FailureWindow/MaxFailures).
const (
	MaxFailures   = 10
	FailureWindow = time.Minute
)

// Guard builds the middleware that admits requests by API key.
type Guard struct {
	auth     *preferences.Authenticator
	failures *clientip.Limiter // bad keys per client
}

// New returns a Guard checking keys with auth; now is the clock of the throttle.
func New(auth *preferences.Authenticator, now func() time.Time) *Guard {
	return &Guard{auth: auth, failures: clientip.NewLimiter(MaxFailures, FailureWindow, 0, now)}
}

// Require returns middleware that admits requests bearing an API key of one of the
// roles (admin is always admitted): 401 for a missing or bad key, 403 for a role too
// low, 429 for a client throttled after too many bad keys.
func (g *Guard) Require(roles ...string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		scheme, key, _ := strings.Cut(c.Get(fiber.HeaderAuthorization), " ")
		if !strings.EqualFold(scheme, "Bearer") || key == "" {
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="consentmail"`)
			return httperr.New(fiber.StatusUnauthorized, "unauthorized", "missing API key: send Authorization: Bearer <key>")
		}
		if wait := g.failures.Wait(c.IP()); wait > 0 {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int((wait+time.Second-1)/time.Second)))
			return httperr.New(fiber.StatusTooManyRequests, "rate_limited", "too many bad API keys from this address; retry later")
		}
		p, err := g.auth.Authenticate(c.UserContext(), strings.TrimSpace(key))
		if err != nil {
			g.failures.Allow(c.IP())
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="consentmail", error="invalid_token"`)
			return httperr.New(fiber.StatusUnauthorized, "unauthorized", "invalid API key")
		}
		if p.Role != preferences.RoleAdmin && !slices.Contains(roles, p.Role) {
			return httperr.New(fiber.StatusForbidden, "forbidden", "the "+p.Role+" role may not do this")
		}
		c.Locals(principalKey, p)
		return c.Next()
	}
}

// Caller returns the principal that Require admitted (zero outside Require).
func Caller(c *fiber.Ctx) preferences.Principal {
	p, _ := c.Locals(principalKey).(preferences.Principal)
	return p
}

// SetCaller makes p the request's principal: the admin app's session middleware
// admits a signed-in person with it, so that Caller and Actor name them too.
func SetCaller(c *fiber.Ctx, p preferences.Principal) { c.Locals(principalKey, p) }

// Actor names the caller in the ledger: "apikey:" and the key's id, then its name in
// parentheses when it has one; "user:" and the user's id, then their email address,
// for a person signed in to the admin app.
func Actor(c *fiber.Ctx) string {
	p := Caller(c)
	if p.UserID != "" {
		return "user:" + p.UserID + " (" + p.Name + ")"
	}
	if p.Name == "" {
		return "apikey:" + p.KeyID
	}
	return "apikey:" + p.KeyID + " (" + p.Name + ")"
}
