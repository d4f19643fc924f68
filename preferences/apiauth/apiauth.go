// Package apiauth admits admin API requests by their bearer API key (contract §4):
// 401 for a missing or bad key, 403 for a role too low, the contract's error shape
// for both. Keys are checked by the consent book's Authenticator; this package is
// only its Fiber edge, shared by every feature that serves admin endpoints.
package apiauth

import (
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/preferences/httperr"
)

// principalKey is the fiber.Ctx local holding the authenticated Principal.
const principalKey = "consentmail.principal"

// Guard builds the middleware that admits requests by API key.
type Guard struct{ auth *preferences.Authenticator }

// New returns a Guard checking keys with auth.
func New(auth *preferences.Authenticator) *Guard { return &Guard{auth: auth} }

// Require returns middleware that admits requests bearing an API key of one of the
// roles (admin is always admitted): 401 for a missing or bad key, 403 for a role too low.
func (g *Guard) Require(roles ...string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		scheme, key, _ := strings.Cut(c.Get(fiber.HeaderAuthorization), " ")
		if !strings.EqualFold(scheme, "Bearer") || key == "" {
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="consentmail"`)
			return httperr.New(fiber.StatusUnauthorized, "unauthorized", "missing API key: send Authorization: Bearer <key>")
		}
		p, err := g.auth.Authenticate(c.UserContext(), strings.TrimSpace(key))
		if err != nil {
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

// Actor names the caller in the ledger: "apikey:" and the key's id, then its name in
// parentheses when it has one.
func Actor(c *fiber.Ctx) string {
	p := Caller(c)
	if p.Name == "" {
		return "apikey:" + p.KeyID
	}
	return "apikey:" + p.KeyID + " (" + p.Name + ")"
}
