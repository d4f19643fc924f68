package apiauth_test

import (
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/preferences/apiauth"
	"consentmail/preferences/internal/preftest"
)

// Require admits the roles named and admin, and the handler behind it sees the caller
// and its ledger name.
func TestRequireAndActor(t *testing.T) {
	s := preftest.NewStore(t)
	app := preftest.NewApp(t)
	app.Get("/dpo", apiauth.New(preferences.NewAuthenticator(s.Store), s.Clock.Now).Require(preferences.RoleDPO),
		func(c *fiber.Ctx) error { return c.SendString(apiauth.Actor(c) + " " + apiauth.Caller(c).Role) })
	key := func(role, name string) (string, string) {
		k, key, err := s.CreateAPIKey(t.Context(), role, name)
		if err != nil {
			t.Fatal(err)
		}
		return k.ID, "Bearer " + key
	}
	dpoID, dpo := key(preferences.RoleDPO, "Dana")
	adminID, admin := key(preferences.RoleAdmin, "")
	_, viewer := key(preferences.RoleViewer, "Vic")
	tests := []struct {
		name, auth string
		status     int
		body       string
	}{
		{"no key", "", 401, ""},
		{"not bearer", "Basic " + dpo[len("Bearer "):], 401, ""},
		{"unknown key", "Bearer cmk_nothing", 401, ""},
		{"role too low", viewer, 403, ""},
		{"the role named", dpo, 200, "apikey:" + dpoID + " (Dana) dpo"},
		{"admin, no name", admin, 200, "apikey:" + adminID + " admin"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/dpo", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			res, body := preftest.Do(t, app, req)
			if res.StatusCode != tc.status || tc.body != "" && string(body) != tc.body {
				t.Errorf("got %d %s, want %d %s", res.StatusCode, body, tc.status, tc.body)
			}
		})
	}
}

// A client that sent MaxFailures bad keys gets 429 with Retry-After, even with a good
// key, until the window gives a try back; other clients are not affected; a missing
// key is no guess and is not counted.
func TestBadKeysAreThrottledPerClient(t *testing.T) {
	s := preftest.NewStore(t)
	app := preftest.NewApp(t)
	app.Get("/x", apiauth.New(preferences.NewAuthenticator(s.Store), s.Clock.Now).Require(),
		func(c *fiber.Ctx) error { return c.SendString("ok") })
	_, key, err := s.CreateAPIKey(t.Context(), preferences.RoleAdmin, "")
	if err != nil {
		t.Fatal(err)
	}
	get := func(ip, auth string) (int, string) {
		req := httptest.NewRequest("GET", "/x", nil)
		req.Header.Set("X-Forwarded-For", ip)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		res, _ := preftest.Do(t, app, req)
		return res.StatusCode, res.Header.Get("Retry-After")
	}
	for i := 0; i < 20; i++ {
		if st, _ := get("2001:db8::1", ""); st != 401 {
			t.Fatalf("missing key %d: %d, want 401", i, st)
		}
	}
	for i := 0; i < apiauth.MaxFailures; i++ {
		if st, _ := get(fmt.Sprintf("2001:db8::%x", i+1), "cmk_guess_0123456789abcdef"); st != 401 {
			t.Fatalf("bad key %d: %d, want 401", i, st)
		}
	}
	if st, retry := get("2001:db8::ffff", key); st != 429 || retry != "6" {
		t.Fatalf("good key from the same /64 after %d bad ones: %d Retry-After %q, want 429 and 6", apiauth.MaxFailures, st, retry)
	}
	if st, _ := get("198.51.100.1", key); st != 200 {
		t.Fatalf("good key from another client: %d, want 200", st)
	}
	s.Clock.Advance(apiauth.FailureWindow / apiauth.MaxFailures)
	if st, _ := get("2001:db8::1", key); st != 200 {
		t.Fatalf("good key once the window gave a try back: %d, want 200", st)
	}
}
