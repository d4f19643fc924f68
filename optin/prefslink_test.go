package optin_test

import (
	"testing"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
)

// POST /api/v1/preferences/link answers 202 whether the address is known or not, and
// queues a preference-centre link only for a known one.
func TestPreferencesLinkNeverTells(t *testing.T) {
	e := newEnv(t)
	e.subscribe(t, signup("ana@example.org"))
	queued := e.ready(t)

	for _, addr := range []string{"Ana@Example.org", "nobody@example.org"} {
		r := e.do(t, "POST", "/api/v1/preferences/link", fiber.MIMEApplicationJSON, []byte(`{"email":"`+addr+`"}`))
		if r.status != fiber.StatusAccepted {
			t.Fatalf("%s: status %d, want 202 (%s)", addr, r.status, r.body)
		}
	}
	if got := e.ready(t); got != queued+1 {
		t.Fatalf("queued %d messages, want one more (for the known address only)", got-queued)
	}
	ds := e.reserve(t)
	var kinds []string
	for _, d := range ds {
		kinds = append(kinds, d.Kind)
	}
	found := false
	for _, k := range kinds {
		found = found || k == preferences.KindPrefsLink
	}
	if !found {
		t.Errorf("queued kinds %v, want a %s", kinds, preferences.KindPrefsLink)
	}

	wantError(t, e.do(t, "POST", "/api/v1/preferences/link", fiber.MIMEApplicationJSON, []byte(`{"email":"not an address"}`)),
		fiber.StatusUnprocessableEntity, "validation_failed")
	wantError(t, e.do(t, "POST", "/api/v1/preferences/link", fiber.MIMEApplicationJSON, []byte(`[`)),
		fiber.StatusBadRequest, "bad_json")
	r := e.postForm(t, "/api/v1/preferences/link", map[string][]string{"email": {"nobody@example.org"}})
	if r.status != fiber.StatusAccepted {
		t.Errorf("form body: status %d, want 202", r.status)
	}
}
