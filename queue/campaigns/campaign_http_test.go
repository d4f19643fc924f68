package campaigns_test

import (
	"context"
	"strings"
	"testing"

	"consentmail/preferences"
)

func (e *env) list(tb testing.TB, id string) {
	tb.Helper()
	_, err := e.prefs.CreateList(context.Background(), preferences.List{ID: id, Name: "List " + id, Purpose: "tests",
		ConsentText: "yes", Public: true, From: "Offers <offers@example.org>"})
	if err != nil {
		tb.Fatal(err)
	}
}

func TestCampaignAPILifecycle(t *testing.T) {
	e := newEnv(t)
	e.list(t, "offers")
	created := wantStatus(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/campaigns", map[string]any{
		"name": "Spring", "subject": "Hello {{.Subscriber.Name}}", "lists": []string{"offers", "offers"},
		"html": "<p>Hi</p>", "track": false}), 201)
	id, _ := created["id"].(string)
	if !strings.HasPrefix(id, "cmp_") || created["status"] != "draft" || created["from"] != "Offers <offers@example.org>" {
		t.Fatalf("created %v: want a cmp_ id, status draft, the list's From", created)
	}
	if lists := created["lists"].([]any); len(lists) != 1 {
		t.Errorf("lists %v: a list named twice is kept once", lists)
	}
	stats, _ := created["stats"].(map[string]any)
	for _, k := range []string{"audience", "queued", "sent", "failed", "skipped", "bounced", "complained", "unsubscribed", "opens", "clicks"} {
		if _, ok := stats[k]; !ok {
			t.Errorf("stats lack %q: %v", k, stats)
		}
	}
	got := wantStatus(t, e.do(t, preferences.RoleViewer, "GET", "/api/v1/campaigns/"+id, nil), 200)
	if got["name"] != "Spring" {
		t.Errorf("GET: %v", got)
	}
	page := wantStatus(t, e.do(t, preferences.RoleDPO, "GET", "/api/v1/campaigns?limit=10", nil), 200)
	if items := page["items"].([]any); len(items) != 1 {
		t.Errorf("list: %v", page)
	}

	errorFields(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/campaigns/"+id+"/pause", nil), 409, "conflict")
	if st := wantStatus(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/campaigns/"+id+"/start", nil), 200); st["status"] != "running" {
		t.Errorf("start: %v", st)
	}
	errorFields(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/campaigns/"+id+"/start", nil), 409, "conflict")
	if st := wantStatus(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/campaigns/"+id+"/pause", nil), 200); st["status"] != "paused" {
		t.Errorf("pause: %v", st)
	}
	if st := wantStatus(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/campaigns/"+id+"/resume", nil), 200); st["status"] != "running" {
		t.Errorf("resume: %v", st)
	}
	if st := wantStatus(t, e.do(t, preferences.RoleAdmin, "POST", "/api/v1/campaigns/"+id+"/cancel", nil), 200); st["status"] != "cancelled" {
		t.Errorf("cancel: %v", st)
	}
	errorFields(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/campaigns/"+id+"/resume", nil), 409, "conflict")
	errorFields(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/campaigns/cmp_nope/start", nil), 404, "not_found")
	errorFields(t, e.do(t, preferences.RoleMarketer, "GET", "/api/v1/campaigns/cmp_nope", nil), 404, "not_found")
}

func TestCampaignAPIRoles(t *testing.T) {
	e := newEnv(t)
	e.list(t, "offers")
	body := map[string]any{"name": "X", "subject": "S", "lists": []string{"offers"}, "html": "<p>x</p>"}
	errorFields(t, e.do(t, "", "POST", "/api/v1/campaigns", body), 401, "unauthorized")
	errorFields(t, e.do(t, preferences.RoleViewer, "POST", "/api/v1/campaigns", body), 403, "forbidden")
	errorFields(t, e.do(t, preferences.RoleDPO, "POST", "/api/v1/campaigns", body), 403, "forbidden")
	id := wantStatus(t, e.do(t, preferences.RoleAdmin, "POST", "/api/v1/campaigns", body), 201)["id"].(string)
	for _, action := range []string{"start", "pause", "resume", "cancel", "test"} {
		errorFields(t, e.do(t, preferences.RoleViewer, "POST", "/api/v1/campaigns/"+id+"/"+action, map[string]any{}), 403, "forbidden")
	}
}

func TestCampaignAPIValidation(t *testing.T) {
	e := newEnv(t)
	e.list(t, "offers")
	tpl := wantStatus(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/templates", map[string]any{
		"name": "T", "subject": "From the template", "html": "<p>{{.Subscriber.Name}}</p>"}), 201)["id"].(string)
	for _, tc := range []struct {
		name  string
		body  any
		field string
	}{
		{"no name", map[string]any{"subject": "S", "lists": []string{"offers"}, "html": "<p>x</p>"}, "name"},
		{"two-line name", map[string]any{"name": "a\nb", "subject": "S", "lists": []string{"offers"}, "html": "x"}, "name"},
		{"no list", map[string]any{"name": "N", "subject": "S", "html": "<p>x</p>"}, "lists"},
		{"unknown list", map[string]any{"name": "N", "subject": "S", "lists": []string{"nope"}, "html": "x"}, "lists"},
		{"bad list id", map[string]any{"name": "N", "subject": "S", "lists": []string{"../x"}, "html": "x"}, "lists"},
		{"no content", map[string]any{"name": "N", "subject": "S", "lists": []string{"offers"}}, "html"},
		{"both contents", map[string]any{"name": "N", "subject": "S", "lists": []string{"offers"}, "html": "x", "template": tpl}, "template"},
		{"unknown template", map[string]any{"name": "N", "subject": "S", "lists": []string{"offers"}, "template": "tpl_nope"}, "template"},
		{"no subject", map[string]any{"name": "N", "lists": []string{"offers"}, "html": "x"}, "subject"},
		{"bad from", map[string]any{"name": "N", "subject": "S", "lists": []string{"offers"}, "html": "x", "from": "not an address"}, "from"},
		{"injected from", map[string]any{"name": "N", "subject": "S", "lists": []string{"offers"}, "html": "x",
			"from": "a@example.org\r\nBcc: victim@example.org"}, "from"},
		{"template error", map[string]any{"name": "N", "subject": "S", "lists": []string{"offers"},
			"html": "<p>\n{{.Subscriber.Nmae}}</p>"}, "html"},
		{"subject error", map[string]any{"name": "N", "subject": "{{if}}", "lists": []string{"offers"}, "html": "x"}, "subject"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fields := errorFields(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/campaigns", tc.body), 422, "validation_failed")
			if _, ok := fields[tc.field]; !ok {
				t.Errorf("fields %v, want one for %q", fields, tc.field)
			}
		})
	}
	if f := errorFields(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/campaigns", map[string]any{"name": "N", "subject": "S",
		"lists": []string{"offers"}, "html": "<p>\n{{.Subscriber.Nmae}}</p>"}), 422, "validation_failed"); !strings.Contains(f["html"].(string), "line 2") {
		t.Errorf("template error %v does not name line 2", f)
	}
	errorFields(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/campaigns", `{"name": `), 400, "bad_json")

	// A campaign from a template takes its subject and content.
	c := wantStatus(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/campaigns", map[string]any{
		"name": "From template", "lists": []string{"offers"}, "template": tpl}), 201)
	if c["subject"] != "From the template" || c["html"] != "<p>{{.Subscriber.Name}}</p>" || c["template"] != tpl {
		t.Errorf("campaign from a template: %v", c)
	}
	id := c["id"].(string)
	for _, body := range []any{map[string]any{"emails": []string{}}, map[string]any{"emails": []string{"not-an-address"}},
		map[string]any{"emails": make([]string, 11)}} {
		errorFields(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/campaigns/"+id+"/test", body), 422, "validation_failed")
	}
	if r := wantStatus(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/campaigns/"+id+"/test",
		map[string]any{"emails": []string{"Proof@Example.org"}}), 202); r["emails"] != float64(1) {
		t.Errorf("test send: %v", r)
	}
}
