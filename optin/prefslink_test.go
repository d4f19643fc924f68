package optin_test

import (
	"slices"
	"testing"

	"github.com/gofiber/fiber/v2"
)

// POST /api/v1/preferences/link answers 202 whether the address is known or not, and
// asks for a preference-centre link only for a known one.
func TestPreferencesLinkNeverTells(t *testing.T) {
	e := newEnv(t)
	e.subscribe(t, signup("ana@example.org"))

	for _, addr := range []string{"Ana@Example.org", "nobody@example.org"} {
		r := e.do(t, "POST", "/api/v1/preferences/link", fiber.MIMEApplicationJSON, []byte(`{"email":"`+addr+`"}`))
		if r.status != fiber.StatusAccepted {
			t.Fatalf("%s: status %d, want 202 (%s)", addr, r.status, r.body)
		}
	}
	ana, ok := e.store.LookupEmail(t.Context(), "ana@example.org")
	if !ok {
		t.Fatal("ana@example.org is not in the store")
	}
	if got := e.links.asked(); !slices.Equal(got, []string{ana}) {
		t.Fatalf("preference links asked for %v, want [%s] (the known address only)", got, ana)
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
