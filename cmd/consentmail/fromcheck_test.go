package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"consentmail/mailer/smtptest"
	"consentmail/preferences"
)

// With DKIM keys configured, a list or campaign from on a domain no key covers is
// refused (its mail would fail DMARC alignment), whether given, taken from a list or
// the default; without keys every from is taken.
func TestFromWithoutDKIMKeyIsRefused(t *testing.T) {
	keyFile, _ := dkimKeyFile(t, "good.test", "s1")
	sink := smtptest.New(t)
	dir := t.TempDir()
	seedAudience(t, dir, "weekly", "from", 1)
	func() { // a list saved before the keys were configured
		store, done := openTestStore(t, dir)
		defer done()
		if _, err := store.CreateList(context.Background(), preferences.List{ID: "legacy", Name: "Legacy", Purpose: "Old news.",
			ConsentText: "Yes.", From: "Old <old@other.test>", RetentionDays: preferences.DefaultRetentionDays}); err != nil {
			t.Fatal(err)
		}
	}()
	env := serveEnv(dir, sink.URL())
	env["CONSENTMAIL_FROM"] = "News <news@good.test>"
	env["CONSENTMAIL_DKIM_SELECTOR"] = "s1"
	env["CONSENTMAIL_DKIM_KEY_FILE"] = keyFile
	srv := startServer(t, env, "serve")
	c := newClient(t, srv.BaseURL)

	type apiError struct {
		Error struct {
			Code   string            `json:"code"`
			Fields map[string]string `json:"fields"`
		} `json:"error"`
	}
	const list = `"name":"N","purpose":"P","consent_text":"C"`
	campaign := func(lists, from string) string {
		b, _ := json.Marshal(map[string]any{"name": "C", "subject": "S", "html": "<p>Hi</p>", "lists": strings.Split(lists, ","), "from": from})
		return string(b)
	}
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		why                      string // in fields.from when refused
	}{
		{"list from another domain", "POST", "/api/v1/lists", `{"id":"a",` + list + `,"from":"A <a@other.test>"}`, 422, "no DKIM key for other.test: DMARC alignment would fail; add one to CONSENTMAIL_DKIM_KEYS"},
		{"list from the keyed domain", "POST", "/api/v1/lists", `{"id":"b",` + list + `,"from":"B <b@good.test>"}`, 201, ""},
		{"list from a subdomain of it", "POST", "/api/v1/lists", `{"id":"c",` + list + `,"from":"c@mail.good.test"}`, 201, ""},
		{"list without a from", "POST", "/api/v1/lists", `{"id":"d",` + list + `}`, 201, ""},
		{"list from changed to another domain", "PATCH", "/api/v1/lists/b", `{"from":"b@other.test"}`, 422, "no DKIM key for other.test"},
		{"list changed, its from kept", "PATCH", "/api/v1/lists/legacy", `{"name":"Legacy news"}`, 200, ""},
		{"campaign from another domain", "POST", "/api/v1/campaigns", campaign("weekly", "x@other.test"), 422, "no DKIM key for other.test"},
		{"campaign from its list's unkeyed from", "POST", "/api/v1/campaigns", campaign("legacy,weekly", ""), 422, "the from of its list, Old <old@other.test>, is refused: no DKIM key for other.test"},
		{"campaign from the default", "POST", "/api/v1/campaigns", campaign("weekly", ""), 201, ""},
		{"campaign from its list's keyed from", "POST", "/api/v1/campaigns", campaign("b", ""), 201, ""},
		{"campaign from a keyed from of its own", "POST", "/api/v1/campaigns", campaign("legacy", "x@good.test"), 201, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e apiError
			st := c.admin(tc.method, tc.path, tc.body, &e)
			if st != tc.status {
				t.Fatalf("%s %s: %d %+v, want %d", tc.method, tc.path, st, e, tc.status)
			}
			if tc.why != "" && (e.Error.Code != "validation_failed" || !strings.Contains(e.Error.Fields["from"], tc.why)) {
				t.Errorf("%s %s: error %+v, want fields.from with %q", tc.method, tc.path, e.Error, tc.why)
			}
		})
	}

	// The default from on a domain without a key; and no keys at all.
	srv.Stop(t)
	env["CONSENTMAIL_FROM"] = "News <news@other.test>"
	delete(env, "CONSENTMAIL_DKIM_SELECTOR")
	delete(env, "CONSENTMAIL_DKIM_KEY_FILE")
	env["CONSENTMAIL_DKIM_KEYS"] = "good.test:s1:" + keyFile
	srv = startServer(t, env, "serve")
	c = newClient(t, srv.BaseURL)
	var e apiError
	if st := c.admin("POST", "/api/v1/campaigns", campaign("weekly", ""), &e); st != http.StatusUnprocessableEntity ||
		!strings.Contains(e.Error.Fields["from"], "the default from, News <news@other.test>, is refused: no DKIM key for other.test") {
		t.Errorf("campaign from an unkeyed default: %d %+v, want 422 with fields.from", st, e.Error)
	}
	srv.Stop(t)
	delete(env, "CONSENTMAIL_DKIM_KEYS")
	srv = startServer(t, env, "serve")
	c = newClient(t, srv.BaseURL)
	if st := c.admin("POST", "/api/v1/campaigns", campaign("legacy", ""), nil); st != http.StatusCreated {
		t.Errorf("without DKIM keys, a campaign from any domain: %d, want 201", st)
	}
	if st := c.admin("POST", "/api/v1/lists", `{"id":"e",`+list+`,"from":"e@other.test"}`, nil); st != http.StatusCreated {
		t.Errorf("without DKIM keys, a list from any domain: %d, want 201", st)
	}
}
