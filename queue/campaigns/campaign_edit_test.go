package campaigns_test

import (
	"encoding/json"
	"strings"
	"testing"

	"consentmail/preferences"
	"consentmail/queue/campaigns"
)

func TestCampaignAPIEditDraft(t *testing.T) {
	e := newEnv(t)
	e.list(t, "offers")
	e.list(t, "news")
	tpl := wantStatus(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/templates", map[string]any{
		"name": "T", "subject": "From the template", "html": "<p>template {{.Subscriber.Name}}</p>"}), 201)["id"].(string)
	id := wantStatus(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/campaigns", map[string]any{
		"name": "Spring", "subject": "Hello", "lists": []string{"offers"}, "html": "<p>Hi</p>", "send_at": "2030-01-01T10:00:00Z"}), 201)["id"].(string)
	path := "/api/v1/campaigns/" + id

	got := wantStatus(t, e.do(t, preferences.RoleMarketer, "PATCH", path, map[string]any{"name": "Summer", "lists": []string{"offers", "news"},
		"track": true, "send_at": nil}), 200)
	if got["name"] != "Summer" || got["subject"] != "Hello" || got["html"] != "<p>Hi</p>" || got["track"] != true || got["send_at"] != nil {
		t.Errorf("after PATCH name, lists, track, send_at null: %v", got)
	}
	if lists := got["lists"].([]any); len(lists) != 2 {
		t.Errorf("lists %v, want offers and news", lists)
	}
	// The content from a template, its subject with it.
	got = wantStatus(t, e.do(t, preferences.RoleMarketer, "PATCH", path, map[string]any{"template": tpl}), 200)
	if got["template"] != tpl || got["subject"] != "From the template" || !strings.Contains(got["html"].(string), "template") {
		t.Errorf("after PATCH template: %v", got)
	}
	// Another field: the campaign still names its template.
	got = wantStatus(t, e.do(t, preferences.RoleMarketer, "PATCH", path, map[string]any{"subject": "Mine"}), 200)
	if got["template"] != tpl || got["subject"] != "Mine" {
		t.Errorf("after PATCH subject: %v", got)
	}
	// The same validation as a creation.
	for _, tc := range []struct {
		body  any
		field string
	}{
		{map[string]any{"name": ""}, "name"},
		{map[string]any{"lists": []string{"nope"}}, "lists"},
		{map[string]any{"html": "<p>\n{{.Subscriber.Nmae}}</p>"}, "html"},
		{map[string]any{"from": "not an address"}, "from"},
		{map[string]any{"template": tpl, "html": "<p>x</p>"}, "template"},
		{map[string]any{"colour": "red"}, "colour"},
		{map[string]any{"track": "yes"}, "track"},
	} {
		raw, _ := json.Marshal(tc.body)
		fields := errorFields(t, e.do(t, preferences.RoleMarketer, "PATCH", path, tc.body), 422, "validation_failed")
		if _, ok := fields[tc.field]; !ok {
			t.Errorf("PATCH %s: fields %v, want one for %q", raw, fields, tc.field)
		}
	}
	if got := wantStatus(t, e.do(t, preferences.RoleViewer, "GET", path, nil), 200); got["subject"] != "Mine" {
		t.Errorf("a refused PATCH changed the campaign: %v", got)
	}
	errorFields(t, e.do(t, preferences.RoleViewer, "PATCH", path, map[string]any{"name": "X"}), 403, "forbidden")
	errorFields(t, e.do(t, preferences.RoleViewer, "DELETE", path, nil), 403, "forbidden")
	errorFields(t, e.do(t, preferences.RoleMarketer, "PATCH", "/api/v1/campaigns/cmp_nope", map[string]any{"name": "X"}), 404, "not_found")

	// Started, it is no longer a draft: neither edited nor deleted.
	wantStatus(t, e.do(t, preferences.RoleMarketer, "POST", path+"/start", nil), 200)
	errorFields(t, e.do(t, preferences.RoleMarketer, "PATCH", path, map[string]any{"name": "X"}), 409, "not_draft")
	errorFields(t, e.do(t, preferences.RoleMarketer, "DELETE", path, nil), 409, "not_draft")

	draft := wantStatus(t, e.do(t, preferences.RoleMarketer, "POST", "/api/v1/campaigns", map[string]any{
		"name": "Gone", "subject": "S", "lists": []string{"offers"}, "html": "<p>x</p>"}), 201)["id"].(string)
	if r := e.do(t, preferences.RoleMarketer, "DELETE", "/api/v1/campaigns/"+draft, nil); r.status != 204 {
		t.Fatalf("DELETE draft: %d %s", r.status, r.body)
	}
	errorFields(t, e.do(t, preferences.RoleMarketer, "GET", "/api/v1/campaigns/"+draft, nil), 404, "not_found")
	errorFields(t, e.do(t, preferences.RoleMarketer, "DELETE", "/api/v1/campaigns/"+draft, nil), 404, "not_found")
}

// Everyone of the lists who gets nothing is counted once, under one reason.
func TestCampaignExcludedBreakdown(t *testing.T) {
	e := newSendEnv(t, modeBolt, envOptions{})
	e.list("a")
	e.list("b")
	e.subscribe("sent@example.org", true, "a")
	e.subscribe("pending@example.org", false, "a")
	restricted := e.subscribe("restricted@example.org", true, "a", "b") // on two lists, counted once
	blocked := e.subscribe("blocked@example.org", true, "b")
	unsub := e.subscribe("unsub@example.org", true, "a", "b")
	moved := e.subscribe("moved@example.org", true, "a", "b") // left a, still on b: sent
	erased := e.subscribe("erased@example.org", true, "a")
	if _, err := e.prefs.Unsubscribe(e.ctx, preferences.UnsubscribeInput{Subscriber: unsub, Method: "api"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.prefs.Unsubscribe(e.ctx, preferences.UnsubscribeInput{Subscriber: moved, Lists: []string{"a"}, Method: "api"}); err != nil {
		t.Fatal(err)
	}
	if err := e.prefs.Restrict(e.ctx, preferences.StatusChange{Subscriber: restricted, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := e.prefs.Block(e.ctx, preferences.StatusChange{Subscriber: blocked, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := preferences.NewEraser(e.prefs, nil, nil).Erase(e.ctx, erased, "dpo"); err != nil {
		t.Fatal(err)
	}
	c := e.create(campaigns.Input{Lists: []string{"a", "b"}})
	e.act(c.ID, campaigns.ActionStart)
	done := e.waitCampaign(c.ID, "finished and counted", func(c campaigns.Campaign) bool {
		return c.Status == campaigns.StatusFinished && c.Stats.Audience > 0
	})
	want := campaigns.Excluded{Restricted: 1, Erased: 1, Blocked: 1, Unsubscribed: 1}
	if s := done.Stats; s.Excluded != want || s.Sent != 2 || s.Queued != 2 || s.Audience != 4 {
		t.Errorf("stats %+v, want excluded %+v, sent 2, queued 2, audience 4", s, want)
	}

	// A campaign to one restricted person says why nobody was queued.
	e.list("solo")
	alone := e.subscribe("alone@example.org", true, "solo")
	if err := e.prefs.Restrict(e.ctx, preferences.StatusChange{Subscriber: alone, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	solo := e.create(campaigns.Input{Lists: []string{"solo"}})
	e.act(solo.ID, campaigns.ActionStart)
	got := e.waitCampaign(solo.ID, "finished and counted", func(c campaigns.Campaign) bool {
		return c.Status == campaigns.StatusFinished && c.Stats.Audience > 0
	})
	raw, err := json.Marshal(got.Stats)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"excluded":{"restricted":1,"erased":0,"blocked":0,"unsubscribed":0}`) ||
		got.Stats.Queued != 0 || got.Stats.Audience != 1 {
		t.Errorf("stats JSON %s, want audience 1, queued 0 and excluded.restricted 1", raw)
	}
}
