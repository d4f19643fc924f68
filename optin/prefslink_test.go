package optin_test

import (
	"bytes"
	"testing"

	"github.com/gofiber/fiber/v2"
)

// POST /api/v1/preferences/link answers 202 whether the address is known or not, and
// does the same work for both, so that neither the answer nor its timing tells: one
// request for a link, by blind index, which only the queue handler resolves.
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
	got := e.links.asked()
	if len(got) != 2 {
		t.Fatalf("%d preference links asked for, want 2: one per request, known address or not", len(got))
	}
	for i, want := range []string{ana, ""} {
		id, _ := e.store.LookupEmailIndex(t.Context(), got[i])
		if id != want || len(got[i]) != 32 || bytes.Contains(got[i], []byte("example.org")) {
			t.Errorf("request %d asked for %q (subscriber %q), want a 32-byte blind index (subscriber %q)", i, got[i], id, want)
		}
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
