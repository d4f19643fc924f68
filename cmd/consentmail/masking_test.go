package main

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"consentmail/mailer/deliverability"
	"consentmail/mailer/smtptest"
	"consentmail/optin"
	"consentmail/preferences/adminapi"
	"consentmail/preferences/inboundmail"
	"consentmail/preferences/pages"
	"consentmail/queue/campaigns"
)

// adminRoutes lists every admin route the app mounts, as "METHOD /path/:param".
func adminRoutes(tb testing.TB) []string {
	tb.Helper()
	app := fiber.New()
	handlers{optin: &optin.Handler{}, admin: &adminapi.API{}, dataAdmin: &optin.AdminAPI{},
		unsubscribe: &pages.Unsubscribe{}, tracking: &campaigns.TrackingRoutes{}, centre: &pages.Centre{},
		templates: &campaigns.API{}, campaigns: &campaigns.CampaignAPI{}, inbound: &inboundmail.Handler{},
		deliverability: deliverability.NewHandler(deliverability.Config{}, "", func(c *fiber.Ctx) error { return c.Next() }),
	}.mount(app, prometheus.NewRegistry())
	var out []string
	for _, r := range app.GetRoutes(true) {
		public := r.Path == "/api/v1/signups" || r.Path == "/api/v1/preferences/link"
		if strings.HasPrefix(r.Path, "/api/v1/") && !public && r.Method != fiber.MethodHead && r.Method != fiber.MethodOptions {
			out = append(out, r.Method+" "+r.Path)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// id sends an admin request and returns the "id" of the answer.
func (c *client) id(method, path, body string) string {
	c.tb.Helper()
	var v struct {
		ID string `json:"id"`
	}
	if st := c.admin(method, path, body, &v); st >= 300 || v.ID == "" {
		c.tb.Fatalf("%s %s: %d, id %q", method, path, st, v.ID)
	}
	return v.ID
}

// Personal data of the seeded subscriber: distinctive strings, found nowhere else.
const (
	probeEmail = "zq7-localpart@probe.example"
	probeName  = "Orlandina Pemberton-Voss"
	probeCity  = "Xylotown-Ninetynine"
	// personalTemplate shows everything a template can show of a person.
	personalTemplate = `{"name":"Personal","subject":"Hello {{.Subscriber.Name}}",` +
		`"html":"<p>{{.Subscriber.Email}} {{.Subscriber.Name}} {{.Subscriber.Attributes.city}}</p>",` +
		`"text":"{{.Subscriber.Email}} {{.Subscriber.Name}} {{.Subscriber.Attributes.city}}"}`
)

// Marketers and viewers never see a full address, a name or an attribute value,
// through any admin route: every route is called as both, and no answer may contain
// the seeded subscriber's data. The route list is the app's own, so a new route
// without a row here fails the test.
func TestMarketersAndViewersSeeNoPersonalData(t *testing.T) {
	sink := smtptest.New(t)
	srv := startServer(t, serveEnv(t.TempDir(), sink.URL()), "serve")
	c := newClient(t, srv.BaseURL)
	c.createList("seeded")
	status, _ := c.do("POST", "/api/v1/signups", "application/json", fmt.Sprintf(
		`{"email":%q,"name":%q,"lists":["seeded"],"consent":true,"attributes":{"city":%q}}`, probeEmail, probeName, probeCity))
	if status != http.StatusAccepted {
		t.Fatalf("signup: %d", status)
	}
	sub := c.id("GET", "/api/v1/subscribers/lookup?email="+probeEmail, "")
	tpl := c.id("POST", "/api/v1/templates", personalTemplate)
	probes := []string{"zq7-localpart", "Orlandina", "Pemberton", "Xylotown"}
	var seeded struct {
		ConsentVersion string `json:"consent_version"`
	}
	if st := c.admin("GET", "/api/v1/lists/seeded", "", &seeded); st != http.StatusOK || seeded.ConsentVersion == "" {
		t.Fatalf("list: %d %+v", st, seeded)
	}
	version := seeded.ConsentVersion

	const json, csv = "application/json", "text/csv"
	type route struct {
		route            string // as the app mounts it
		method, path, ct string // path and body may name {sub}, {tpl}, {camp}, {list}, {key}, {droptpl}
		body             string
		marketer, viewer int // status wanted; 0: any below 500
	}
	routes := []route{
		{"GET /api/v1/lists", "GET", "/api/v1/lists", "", "", 200, 200},
		{"POST /api/v1/lists", "POST", "/api/v1/lists", json, `{"id":"new-{role}","name":"N","purpose":"P","consent_text":"C","public":true}`, 201, 403},
		{"GET /api/v1/lists/:id", "GET", "/api/v1/lists/seeded", "", "", 200, 200},
		{"GET /api/v1/lists/:id/consent-texts", "GET", "/api/v1/lists/seeded/consent-texts", "", "", 200, 200},
		{"GET /api/v1/consent-texts/:version", "GET", "/api/v1/consent-texts/{version}", "", "", 200, 200},
		{"PATCH /api/v1/lists/:id", "PATCH", "/api/v1/lists/seeded", json, `{"name":"Seeded"}`, 200, 403},
		{"DELETE /api/v1/lists/:id", "DELETE", "/api/v1/lists/{list}", "", "", 204, 403},
		{"POST /api/v1/lists/:id/imports", "POST", "/api/v1/lists/seeded/imports", csv,
			"email,name,city\n" + probeEmail + "," + probeName + "," + probeCity + "\nnot-an-address,x,y\n", 200, 403},
		{"POST /api/v1/apikeys", "POST", "/api/v1/apikeys", json, `{"role":"admin","name":"x"}`, 403, 403},
		{"GET /api/v1/apikeys", "GET", "/api/v1/apikeys", "", "", 403, 403},
		{"DELETE /api/v1/apikeys/:id", "DELETE", "/api/v1/apikeys/{key}", "", "", 403, 403},
		{"GET /api/v1/ledger", "GET", "/api/v1/ledger?subscriber={sub}", "", "", 403, 403},
		{"GET /api/v1/ledger/verify", "GET", "/api/v1/ledger/verify", "", "", 403, 403},
		{"GET /api/v1/ledger/head", "GET", "/api/v1/ledger/head", "", "", 403, 403},
		{"GET /api/v1/backup", "GET", "/api/v1/backup", "", "", 403, 403},
		{"GET /api/v1/inbound/quarantine", "GET", "/api/v1/inbound/quarantine", "", "", 403, 403},
		{"GET /api/v1/subscribers", "GET", "/api/v1/subscribers", "", "", 200, 200},
		{"GET /api/v1/subscribers", "GET", "/api/v1/subscribers?list=seeded&status=pending", "", "", 200, 200},
		{"GET /api/v1/subscribers", "GET", "/api/v1/subscribers?unmask=true", "", "", 403, 403},
		{"GET /api/v1/subscribers/lookup", "GET", "/api/v1/subscribers/lookup?email=" + probeEmail, "", "", 403, 403},
		{"GET /api/v1/subscribers/:id", "GET", "/api/v1/subscribers/{sub}", "", "", 200, 200},
		{"GET /api/v1/subscribers/:id", "GET", "/api/v1/subscribers/{sub}?unmask=true", "", "", 403, 403},
		{"GET /api/v1/subscribers/:id/export", "GET", "/api/v1/subscribers/{sub}/export", "", "", 403, 403},
		{"GET /api/v1/subscribers/:id/export", "GET", "/api/v1/subscribers/{sub}/export?format=csv", "", "", 403, 403},
		{"POST /api/v1/subscribers/:id/restrict", "POST", "/api/v1/subscribers/{sub}/restrict", "", "", 403, 403},
		{"POST /api/v1/subscribers/:id/unrestrict", "POST", "/api/v1/subscribers/{sub}/unrestrict", "", "", 403, 403},
		{"PATCH /api/v1/subscribers/:id", "PATCH", "/api/v1/subscribers/{sub}", json, `{"locale":"fr"}`, 403, 403},
		{"DELETE /api/v1/subscribers/:id", "DELETE", "/api/v1/subscribers/{sub}", "", "", 403, 403},
		{"GET /api/v1/register", "GET", "/api/v1/register", "", "", 403, 403},
		{"GET /api/v1/deliverability", "GET", "/api/v1/deliverability", "", "", 403, 403},
		{"GET /api/v1/register", "GET", "/api/v1/register?format=md", "", "", 403, 403},
		{"GET /api/v1/templates", "GET", "/api/v1/templates", "", "", 200, 200},
		{"POST /api/v1/templates", "POST", "/api/v1/templates", json, personalTemplate, 201, 403},
		{"GET /api/v1/templates/:id", "GET", "/api/v1/templates/{tpl}", "", "", 200, 200},
		{"PUT /api/v1/templates/:id", "PUT", "/api/v1/templates/{tpl}", json, personalTemplate, 200, 403},
		{"DELETE /api/v1/templates/:id", "DELETE", "/api/v1/templates/{droptpl}", "", "", 204, 403},
		{"POST /api/v1/templates/:id/preview", "POST", "/api/v1/templates/{tpl}/preview", json, `{}`, 200, 403},
		{"POST /api/v1/templates/:id/preview", "POST", "/api/v1/templates/{tpl}/preview", json, `{"subscriber":"{sub}"}`, 200, 403},
		{"POST /api/v1/campaigns", "POST", "/api/v1/campaigns", json, `{"name":"C","subject":"S","lists":["seeded"],"template":"{tpl}"}`, 201, 403},
		{"GET /api/v1/campaigns", "GET", "/api/v1/campaigns", "", "", 200, 200},
		{"GET /api/v1/campaigns/:id", "GET", "/api/v1/campaigns/{camp}", "", "", 200, 200},
		{"POST /api/v1/campaigns/:id/test", "POST", "/api/v1/campaigns/{camp}/test", json, `{"emails":["qa@example.org"]}`, 202, 403},
		{"PATCH /api/v1/campaigns/:id", "PATCH", "/api/v1/campaigns/{camp}", json, `{"name":"C2"}`, 200, 403},
		{"POST /api/v1/campaigns/:id/start", "POST", "/api/v1/campaigns/{camp}/start", "", "", 0, 403},
		{"POST /api/v1/campaigns/:id/pause", "POST", "/api/v1/campaigns/{camp}/pause", "", "", 0, 403},
		{"POST /api/v1/campaigns/:id/resume", "POST", "/api/v1/campaigns/{camp}/resume", "", "", 0, 403},
		{"POST /api/v1/campaigns/:id/cancel", "POST", "/api/v1/campaigns/{camp}/cancel", "", "", 0, 403},
		{"DELETE /api/v1/campaigns/:id", "DELETE", "/api/v1/campaigns/{camp}", "", "", 0, 403}, // no longer a draft: 409
	}

	var covered []string
	for _, r := range routes {
		covered = append(covered, r.route)
	}
	sort.Strings(covered)
	if got := slices.Compact(covered); !slices.Equal(got, adminRoutes(t)) {
		t.Fatalf("routes in the table:\n%s\nroutes the app mounts:\n%s", strings.Join(got, "\n"), strings.Join(adminRoutes(t), "\n"))
	}

	for _, role := range []string{"marketer", "viewer"} {
		key := c.apiKey(role)
		vars := strings.NewReplacer("{role}", role, "{sub}", sub, "{tpl}", tpl, "{version}", version,
			"{camp}", c.id("POST", "/api/v1/campaigns", `{"name":"C","subject":"S","lists":["seeded"],"template":"`+tpl+`"}`),
			"{list}", func() string { c.createList("drop-" + role); return "drop-" + role }(),
			"{key}", c.id("POST", "/api/v1/apikeys", `{"role":"viewer","name":"victim"}`),
			"{droptpl}", c.id("POST", "/api/v1/templates", `{"name":"Drop","subject":"S","html":"<p>x</p>"}`))
		for _, r := range routes {
			path, body := vars.Replace(r.path), vars.Replace(r.body)
			t.Run(role+" "+r.method+" "+path, func(t *testing.T) {
				st, resp := c.do(r.method, path, r.ct, body, "Authorization", "Bearer "+key)
				want := map[string]int{"marketer": r.marketer, "viewer": r.viewer}[role]
				if want != 0 && st != want || st >= 500 {
					t.Errorf("status %d, want %d: %.300s", st, want, resp)
				}
				for _, p := range probes {
					if strings.Contains(strings.ToLower(resp), strings.ToLower(p)) {
						t.Errorf("the answer shows %q: %.600s", p, resp)
					}
				}
			})
		}
	}
}

// An import answers a marketer the same for an address whatever the consent book
// holds of it (nothing, confirmed, erased, restricted), so that importing one row
// does not tell whether an address is known; an admin still gets each refusal by line.
func TestImportIsNoOracleForMarketers(t *testing.T) {
	sink := smtptest.New(t)
	srv := startServer(t, serveEnv(t.TempDir(), sink.URL()), "serve")
	c := newClient(t, srv.BaseURL)
	c.createList("weekly")
	adminImport := func(csv string) string {
		st, body := c.do("POST", "/api/v1/lists/weekly/imports", "text/csv", csv, "Authorization", "Bearer "+testAdminKey)
		if st != http.StatusOK {
			t.Fatalf("admin import: %d %s", st, body)
		}
		return body
	}
	adminImport("email,consented_at,consent_source\nconfirmed@example.org,2024-01-01,paper form\n")
	for _, addr := range []string{"erased@example.org", "restricted@example.org"} {
		c.signup(addr, "weekly")
	}
	if st := c.admin("DELETE", "/api/v1/subscribers/"+c.id("GET", "/api/v1/subscribers/lookup?email=erased@example.org", ""), "", nil); st != http.StatusOK {
		t.Fatalf("erase: %d", st)
	}
	if st := c.admin("POST", "/api/v1/subscribers/"+c.id("GET", "/api/v1/subscribers/lookup?email=restricted@example.org", "")+"/restrict", "", nil); st != http.StatusOK {
		t.Fatalf("restrict: %d", st)
	}

	marketer := c.apiKey("marketer")
	for i, proof := range []string{"", "2020-01-01,old form"} {
		var answers []string
		for _, addr := range []string{fmt.Sprintf("new-%d@example.org", i), "confirmed@example.org", "erased@example.org", "restricted@example.org"} {
			csv := "email,consented_at,consent_source\n" + addr + "," + proof + "\n"
			if proof == "" {
				csv = "email\n" + addr + "\n"
			}
			st, body := c.do("POST", "/api/v1/lists/weekly/imports", "text/csv", csv, "Authorization", "Bearer "+marketer)
			if st != http.StatusOK {
				t.Fatalf("marketer import of %s: %d %s", addr, st, body)
			}
			answers = append(answers, addr+": "+body)
		}
		for _, a := range answers[1:] {
			if _, got, _ := strings.Cut(a, ": "); !strings.HasSuffix(answers[0], ": "+got) {
				t.Errorf("proof %q: the answers differ by address:\n%s", proof, strings.Join(answers, "\n"))
				break
			}
		}
	}
	if body := adminImport("email\nerased@example.org\n"); !strings.Contains(body, `"line":2`) {
		t.Errorf("admin import of an erased address: %s, want the refusal on line 2", body)
	}
}
