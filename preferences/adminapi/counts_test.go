package adminapi_test

import (
	"context"
	"testing"

	"consentmail/preferences"
	"consentmail/preferences/internal/preftest"
)

// TestListSubscriberCounts: every list response carries its subscriptions counted by
// status, and they follow signups, confirmations and unsubscribes.
func TestListSubscriberCounts(t *testing.T) {
	a := newAdminAPI(t)
	preftest.CreateList(t, a.s, "news")
	counts := func(r response) map[string]any {
		t.Helper()
		m := r.json(t)
		c, ok := m["subscribers"].(map[string]any)
		if !ok {
			t.Fatalf("no subscribers object in %s", r.body)
		}
		return c
	}
	check := func(got map[string]any, pending, confirmed, unsubscribed float64) {
		t.Helper()
		if got["pending"] != pending || got["confirmed"] != confirmed || got["unsubscribed"] != unsubscribed {
			t.Errorf("subscribers = %v, want pending %v, confirmed %v, unsubscribed %v", got, pending, confirmed, unsubscribed)
		}
	}
	check(counts(a.as(t, preferences.RoleViewer, "GET", "/api/v1/lists/news", nil)), 0, 0, 0)

	ana := preftest.Subscribed(t, a.s, "ana@example.org", "news")
	preftest.Subscribed(t, a.s, "ben@example.org", "news")
	preftest.Signup(t, a.s, preftest.SignupInput("cy@example.org", "news"))
	if _, err := a.s.Unsubscribe(context.Background(), preferences.UnsubscribeInput{Subscriber: ana, Method: "link"}); err != nil {
		t.Fatal(err)
	}
	check(counts(a.as(t, preferences.RoleViewer, "GET", "/api/v1/lists/news", nil)), 1, 1, 1)

	page := a.as(t, preferences.RoleMarketer, "GET", "/api/v1/lists", nil).json(t)
	items, _ := page["items"].([]any)
	if len(items) != 1 {
		t.Fatalf("items = %v, want one list", page["items"])
	}
	item, _ := items[0].(map[string]any)
	if item["id"] != "news" || item["name"] == "" {
		t.Errorf("list item %v lost the list's own fields", item)
	}
	c, _ := item["subscribers"].(map[string]any)
	check(c, 1, 1, 1)

	created := a.as(t, preferences.RoleMarketer, "POST", "/api/v1/lists", map[string]any{"id": "fresh", "name": "Fresh",
		"purpose": "p", "consent_text": "yes"})
	if created.status != 201 {
		t.Fatalf("create: %d %s", created.status, created.body)
	}
	check(counts(created), 0, 0, 0)
	updated := a.as(t, preferences.RoleMarketer, "PATCH", "/api/v1/lists/news", map[string]any{"name": "News"})
	check(counts(updated), 1, 1, 1)
}
