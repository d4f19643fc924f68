package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"consentmail/mailer/smtptest"
)

// apiKey creates a key of role through the API and returns it.
func (c *client) apiKey(role string) string {
	c.tb.Helper()
	var k struct{ Key string }
	if st := c.admin("POST", "/api/v1/apikeys", `{"role":"`+role+`","name":"`+role+` test"}`, &k); st != http.StatusCreated || k.Key == "" {
		c.tb.Fatalf("create %s key: %d", role, st)
	}
	return k.Key
}

// The DPO's endpoints that live outside the consent book's package, through the
// server: import with line errors, rectification with a new address, roles.
func TestImportAndRectifyThroughTheAPI(t *testing.T) {
	srv := startServer(t, serveEnv(t.TempDir(), smtptest.New(t).URL()), "serve")
	c := newClient(t, srv.BaseURL)
	c.createList("weekly")
	marketer := c.apiKey("marketer")
	dpo := c.apiKey("dpo")

	csv := "email,name,consented_at,consent_source,city\n" +
		"ana@example.org,Ana,2024-05-01T10:00:00Z,paper form,Lyon\n" +
		"bad address,X,,,\n" +
		"bob@example.org,Bob,,,\n"
	st, body := c.do("POST", "/api/v1/lists/weekly/imports", "text/csv", csv, "Authorization", "Bearer "+marketer)
	var res struct {
		Imported, Pending int
		Rejected          []struct {
			Line  int
			Error string
		}
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil || st != http.StatusOK {
		t.Fatalf("import: %d %s", st, body)
	}
	if res.Imported != 1 || res.Pending != 1 || len(res.Rejected) != 1 || res.Rejected[0].Line != 3 {
		t.Fatalf("import result %+v, want 1 imported, 1 pending, line 3 rejected", res)
	}
	if st, _ := c.do("POST", "/api/v1/lists/weekly/imports", "application/json", "{}", "Authorization", "Bearer "+marketer); st != http.StatusUnsupportedMediaType {
		t.Errorf("import without text/csv: %d, want 415", st)
	}
	if st, body := c.do("POST", "/api/v1/lists/weekly/imports", "text/csv", "name\nAna\n", "Authorization", "Bearer "+marketer); st != http.StatusUnprocessableEntity ||
		!strings.Contains(body, "line 1: no email column") {
		t.Errorf("a CSV without an email column: %d %s, want 422 naming line 1", st, body)
	}
	if st, _ := c.do("POST", "/api/v1/lists/nope/imports", "text/csv", csv, "Authorization", "Bearer "+marketer); st != http.StatusNotFound {
		t.Errorf("import into an unknown list: %d, want 404", st)
	}

	var found struct{ ID string }
	if st := c.admin("GET", "/api/v1/subscribers/lookup?email=ana@example.org", "", &found); st != http.StatusOK || found.ID == "" {
		t.Fatalf("lookup: %d", st)
	}
	patch := `{"name":"Ana B.","email":"ana.b@example.org","attributes":{"city":"Paris"}}`
	if st, _ := c.do("PATCH", "/api/v1/subscribers/"+found.ID, "application/json", patch, "Authorization", "Bearer "+marketer); st != http.StatusForbidden {
		t.Errorf("rectification by a marketer: %d, want 403", st)
	}
	st, body = c.do("PATCH", "/api/v1/subscribers/"+found.ID, "application/json", patch, "Authorization", "Bearer "+dpo)
	if st != http.StatusOK || !strings.Contains(body, `"rectified":["name","attributes","email"]`) || !strings.Contains(body, `"status":"pending"`) {
		t.Fatalf("rectification: %d %s", st, body)
	}
	if st, _ := c.do("PATCH", "/api/v1/subscribers/"+found.ID, "application/json", `{"email":"not an address"}`, "Authorization", "Bearer "+dpo); st != http.StatusUnprocessableEntity {
		t.Errorf("a bad address: %d, want 422", st)
	}
	if st, _ := c.do("GET", "/api/v1/subscribers/lookup?email=ana@example.org", "", "", "Authorization", "Bearer "+dpo); st != http.StatusNotFound {
		t.Errorf("the old address is still found: %d", st)
	}
}

// An address with an IDN domain is found by the admin lookup however it is typed:
// the lookup normalises the way signups do (issue 9).
func TestLookupIDNAddress(t *testing.T) {
	srv := startServer(t, serveEnv(t.TempDir(), smtptest.New(t).URL()), "serve")
	c := newClient(t, srv.BaseURL)
	c.createList("weekly")
	c.signup("ana@bücher.example", "weekly")

	var first string // the id the address as signed up finds; every other spelling must find it too
	for _, typed := range []string{"ana@bücher.example", "Ana@BÜCHER.example", "ana@xn--bcher-kva.example"} {
		var sub struct{ ID, Email string }
		if st := c.admin("GET", "/api/v1/subscribers/lookup?email="+url.QueryEscape(typed), "", &sub); st != http.StatusOK {
			t.Fatalf("lookup %q: %d, want 200", typed, st)
		}
		if first == "" {
			first = sub.ID
		}
		if sub.ID != first || sub.Email != "ana@xn--bcher-kva.example" {
			t.Errorf("lookup %q: got %s %q, want %s \"ana@xn--bcher-kva.example\"", typed, sub.ID, sub.Email, first)
		}
	}

	st, body := c.do("GET", "/api/v1/subscribers/lookup?email="+url.QueryEscape("ana@bücher"), "", "", "Authorization", "Bearer "+testAdminKey)
	var e struct {
		Error struct {
			Code   string
			Fields map[string]string
		}
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || st != http.StatusUnprocessableEntity ||
		e.Error.Code != "validation_failed" || e.Error.Fields["email"] == "" {
		t.Errorf("lookup of a malformed address: %d %s, want 422 validation_failed naming email", st, body)
	}
}
