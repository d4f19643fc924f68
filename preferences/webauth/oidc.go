package webauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gofiber/fiber/v2"
	"golang.org/x/oauth2"

	"consentmail/preferences"
)

// OIDCConfig is single sign-on with an OpenID Connect provider: the authorization
// code flow with state, nonce and PKCE (S256). The person's role comes from a claim
// of the ID token (or of the userinfo answer when the ID token lacks it), a string
// or a list of strings, through Roles.
type OIDCConfig struct {
	Issuer, ClientID, ClientSecret string
	Scopes                         []string // default: openid email profile groups
	RoleClaim                      string   // default: groups
	// Roles maps values of the claim to roles; the first pair whose value the claim
	// has gives the role.
	Roles []RoleMapping
}

// RoleMapping gives Role to people whose role claim has Value.
type RoleMapping struct{ Value, Role string }

// flowTTL is how long a sign-in may stay at the provider.
const (
	flowTTL  = 10 * time.Minute
	maxFlows = 10_000
)

type oidcFlow struct {
	nonce, verifier, next string
	started               time.Time
}

type oidcClient struct {
	cfg      OIDCConfig
	redirect string
	now      func() time.Time

	mu       sync.Mutex
	provider *oidc.Provider // discovered at the first sign-in, so a provider down does not stop the start
	flows    map[string]oidcFlow
}

func newOIDCClient(cfg OIDCConfig, redirect string, now func() time.Time) *oidcClient {
	if cfg.RoleClaim == "" {
		cfg.RoleClaim = "groups"
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{oidc.ScopeOpenID, "email", "profile", "groups"}
	}
	return &oidcClient{cfg: cfg, redirect: redirect, now: now, flows: map[string]oidcFlow{}}
}

func (o *oidcClient) setup(ctx context.Context) (*oidc.Provider, *oauth2.Config, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider == nil {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		p, err := oidc.NewProvider(ctx, o.cfg.Issuer)
		if err != nil {
			return nil, nil, fmt.Errorf("OpenID Connect discovery of %s: %w", o.cfg.Issuer, err)
		}
		o.provider = p
	}
	return o.provider, &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret,
		Endpoint: o.provider.Endpoint(), RedirectURL: o.redirect, Scopes: o.cfg.Scopes}, nil
}

// begin remembers a flow under a new state, forgetting stale ones.
func (o *oidcClient) begin(next string) (state string, f oidcFlow) {
	now := o.now()
	o.mu.Lock()
	defer o.mu.Unlock()
	for k, f := range o.flows {
		if now.Sub(f.started) > flowTTL || len(o.flows) >= maxFlows {
			delete(o.flows, k)
		}
	}
	state = randomString(24)
	f = oidcFlow{nonce: randomString(24), verifier: oauth2.GenerateVerifier(), next: next, started: now}
	o.flows[state] = f
	return state, f
}

// finish takes the flow of state, once.
func (o *oidcClient) finish(state string) (oidcFlow, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f, ok := o.flows[state]
	delete(o.flows, state)
	if !ok || o.now().Sub(f.started) > flowTTL {
		return oidcFlow{}, false
	}
	return f, true
}

// role maps the claim's value(s) to a role ("" when none maps).
func (o *oidcClient) role(claim any) string {
	var values []string
	switch v := claim.(type) {
	case string:
		values = []string{v}
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				values = append(values, s)
			}
		}
	}
	for _, m := range o.cfg.Roles {
		if slices.Contains(values, m.Value) {
			return m.Role
		}
	}
	return ""
}

func (a *Auth) oidcStart(c *fiber.Ctx) error {
	if a.oidc == nil {
		return fiber.ErrNotFound
	}
	_, oc, err := a.oidc.setup(c.UserContext())
	if err != nil {
		a.log.Error("single sign-on", "err", err)
		return a.message(c, fiber.StatusBadGateway, "auth.sso.title", "auth.sso.failed")
	}
	state, f := a.oidc.begin(localNext(c.Query("next")))
	// The cookie binds the flow to this browser; Lax, since the provider sends the
	// browser back from another site.
	a.setCookie(c, cookieOIDC, state, flowTTL, "Lax")
	return c.Redirect(oc.AuthCodeURL(state, oidc.Nonce(f.nonce), oauth2.S256ChallengeOption(f.verifier)), fiber.StatusSeeOther)
}

func (a *Auth) oidcCallback(c *fiber.Ctx) error {
	if a.oidc == nil {
		return fiber.ErrNotFound
	}
	state, cookie := c.Query("state"), c.Cookies(cookieOIDC)
	a.clearCookie(c, cookieOIDC)
	if state == "" || len(state) != len(cookie) || subtle.ConstantTimeCompare([]byte(state), []byte(cookie)) != 1 {
		return a.message(c, fiber.StatusBadRequest, "auth.sso.title", "auth.sso.failed")
	}
	f, ok := a.oidc.finish(state)
	if !ok {
		return a.message(c, fiber.StatusBadRequest, "auth.sso.title", "auth.sso.failed")
	}
	email, role, err := a.oidcIdentity(c, f)
	if err != nil {
		a.log.Warn("single sign-on failed", "err", err)
		a.record(c, preferences.AuthEvent{Outcome: preferences.AuthFailed, Method: preferences.MethodSSO}, email)
		return a.message(c, fiber.StatusBadGateway, "auth.sso.title", "auth.sso.failed")
	}
	if role == "" {
		a.record(c, preferences.AuthEvent{Outcome: preferences.AuthRefused, Method: preferences.MethodSSO}, email)
		return a.message(c, fiber.StatusForbidden, "auth.sso.title", "auth.sso.refused")
	}
	u, err := a.store.EnsureSSOUser(c.UserContext(), email, role)
	if errors.Is(err, preferences.ErrLastAdmin) {
		u, err = a.store.UserByEmail(c.UserContext(), email) // the last admin keeps the role
	}
	if err != nil {
		return err
	}
	if u.Disabled {
		a.record(c, preferences.AuthEvent{UserID: u.ID, Outcome: preferences.AuthRefused, Method: preferences.MethodSSO}, "")
		return a.message(c, fiber.StatusForbidden, "auth.sso.title", "auth.sso.refused")
	}
	if err := a.startSession(c, u.ID, "", preferences.MethodSSO); err != nil {
		return err
	}
	a.record(c, preferences.AuthEvent{UserID: u.ID, Outcome: preferences.AuthOK, Method: preferences.MethodSSO}, "")
	// The session cookie is SameSite=Strict, and this navigation came from the
	// provider's site: a redirect would arrive without it. A page of this site moves
	// on instead (a meta refresh, and a link).
	p := a.page(c, "", "auth.sso.title", struct{ Next string }{f.next})
	return a.render(c, fiber.StatusOK, "sso_done", p)
}

// oidcIdentity exchanges the code and returns the verified address and the mapped
// role ("" when none maps).
func (a *Auth) oidcIdentity(c *fiber.Ctx, f oidcFlow) (email, role string, err error) {
	if e := c.Query("error"); e != "" {
		return "", "", fmt.Errorf("provider answered %s: %s", e, c.Query("error_description"))
	}
	ctx := c.UserContext()
	provider, oc, err := a.oidc.setup(ctx)
	if err != nil {
		return "", "", err
	}
	tok, err := oc.Exchange(ctx, c.Query("code"), oauth2.VerifierOption(f.verifier))
	if err != nil {
		return "", "", fmt.Errorf("code exchange: %w", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		return "", "", errors.New("no id_token in the token answer")
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: a.oidc.cfg.ClientID}).Verify(ctx, raw)
	if err != nil {
		return "", "", fmt.Errorf("ID token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.nonce)) != 1 {
		return "", "", errors.New("ID token nonce does not match")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return "", "", err
	}
	if _, has := claims[a.oidc.cfg.RoleClaim]; !has || claims["email"] == nil {
		if info, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil {
			var more map[string]any
			if info.Claims(&more) == nil {
				for k, v := range more {
					if _, has := claims[k]; !has {
						claims[k] = v
					}
				}
			}
		}
	}
	email, _ = claims["email"].(string)
	if email == "" {
		return "", "", errors.New("the provider gave no email claim")
	}
	if v, has := claims["email_verified"].(bool); has && !v {
		return email, "", errors.New("the provider says the address is not verified")
	}
	return email, a.oidc.role(claims[a.oidc.cfg.RoleClaim]), nil
}
