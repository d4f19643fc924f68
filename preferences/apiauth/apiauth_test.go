package apiauth_test

import (
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
	app.Get("/dpo", apiauth.New(preferences.NewAuthenticator(s.Store)).Require(preferences.RoleDPO),
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
