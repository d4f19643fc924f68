package adminpages_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"consentmail/preferences"
	"consentmail/preferences/internal/preftest"
)

func TestSubscribersTableFiltersAndPages(t *testing.T) {
	st := newSite(t)
	people := st.seed(t)
	p := st.get(t, "marketer", "/admin/subscribers?list=weekly&status=pending")
	p.want(t, 200, "/admin/subscribers/"+people[1].id)
	p.lacks(t, "/admin/subscribers/"+people[0].id, "/admin/subscribers/"+people[2].id)
	st.get(t, "marketer", "/admin/subscribers?status=unsubscribed").want(t, 200, "/admin/subscribers/"+people[2].id)

	// Sixty more: a page of fifty, then the rest through the cursor.
	for i := range 60 {
		preftest.Signup(t, st.s, preftest.SignupInput(fmt.Sprintf("p%02d@example.org", i), "weekly"))
	}
	first := st.get(t, "viewer", "/admin/subscribers")
	if n := strings.Count(first.body, `<tr>`+"\n"+`<td><a href="/admin/subscribers/`); n != 50 {
		t.Fatalf("first page: %d rows, want 50", n)
	}
	i := strings.Index(first.body, `rel="next"`)
	if i < 0 {
		t.Fatal("no next page")
	}
	href := first.body[strings.LastIndex(first.body[:i], `href="`)+6 : i-2]
	second := st.get(t, "viewer", strings.ReplaceAll(href, "&amp;", "&"))
	if n := strings.Count(second.body, `<tr>`+"\n"+`<td><a href="/admin/subscribers/`); n != 13 {
		t.Errorf("second page: %d rows, want 13", n)
	}
	second.lacks(t, `rel="next"`)
	second.want(t, 200, "First page")
}

// TestLookupIsLogged: finding a person by address is for admins and DPOs, and is
// recorded as an unmasked read (via lookup), as the API's lookup is.
func TestLookupIsLogged(t *testing.T) {
	st := newSite(t)
	people := st.seed(t)
	st.post(t, "dpo", "/admin/subscribers/lookup", url.Values{"email": {" Ana.Secret@Example.org "}}).
		redirected(t, "/admin/subscribers/"+people[0].id)
	got := st.events(t, people[0].id, preferences.EventUnmasked)
	if len(got) != 1 || got[0].Actor != actor || got[0].Details["via"] != "lookup" {
		t.Errorf("unmasked events %+v, want one via lookup by %s", got, actor)
	}
	p := st.post(t, "dpo", "/admin/subscribers/lookup", url.Values{"email": {"nobody@example.org"}, "back": {"dpo"}})
	p.want(t, 404, "No subscriber has this address.", `value="nobody@example.org"`, "Data-subject request")
	st.post(t, "admin", "/admin/subscribers/lookup", url.Values{"email": {"not an address"}}).
		want(t, 422, "Enter an email address such as", "Filter subscribers")
	if n := len(st.events(t, "", preferences.EventUnmasked)); n != 1 {
		t.Errorf("%d unmasked events, want 1: misses record nothing", n)
	}
}

func TestUnmaskIsAButtonThatRecords(t *testing.T) {
	st := newSite(t)
	people := st.seed(t)
	path := "/admin/subscribers/" + people[0].id
	st.get(t, "dpo", path).lacks(t, people[0].email)
	p := st.post(t, "dpo", path+"/unmask", nil)
	p.want(t, 200, people[0].email, "shown in full: recorded")
	if p.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", p.header.Get("Cache-Control"))
	}
	got := st.events(t, people[0].id, preferences.EventUnmasked)
	if len(got) != 1 || got[0].Actor != actor || got[0].Details["via"] != "read" {
		t.Errorf("unmasked events %+v, want one via read by %s", got, actor)
	}
	st.get(t, "dpo", path).lacks(t, people[0].email) // once only
}

func TestEraseNeedsItsConfirmationAndShowsTheReceipt(t *testing.T) {
	st := newSite(t)
	people := st.seed(t)
	path := "/admin/subscribers/" + people[0].id
	for _, wrong := range []string{"", "erase it", "ana.secret@example.org", "b***@example.org"} {
		st.post(t, "dpo", path+"/erase", url.Values{"confirm": {wrong}}).
			want(t, 422, "Type ERASE or the masked address exactly", `value="`+wrong+`"`)
	}
	if got := st.events(t, people[0].id, preferences.EventErased); len(got) != 0 {
		t.Fatalf("a wrong confirmation erased: %+v", got)
	}
	st.post(t, "dpo", path+"/erase", url.Values{"confirm": {"a***@example.org"}}).redirected(t, path+"?done=erased")
	erased := st.events(t, people[0].id, preferences.EventErased)
	if len(erased) != 1 || erased[0].Actor != actor {
		t.Fatalf("erased events %+v, want one by %s", erased, actor)
	}
	p := st.get(t, "dpo", path+"?done=erased")
	p.want(t, 200, "The personal data is erased.", "Erasure receipt", fmt.Sprintf("#%d", erased[0].Seq), people[0].id)
	p.lacks(t, people[0].name, people[0].attr, "Erase this person")
	// Erasing again is refused with a message, not a JSON error.
	st.post(t, "admin", path+"/erase", url.Values{"confirm": {"ERASE"}}).want(t, 409, "This person was erased before.")
	// ERASE works as well; a restricted person cannot be erased.
	ben := "/admin/subscribers/" + people[1].id
	st.post(t, "dpo", ben+"/restrict", nil).redirected(t, ben+"?done=restricted")
	p = st.post(t, "dpo", ben+"/erase", url.Values{"confirm": {"ERASE"}})
	p.want(t, 409, "lift the restriction first")
	p.lacks(t, `"error"`)
}

// failingEraser stands for an erasure whose steps after the commit failed.
type failingEraser struct{}

func (failingEraser) Erase(context.Context, string, string) (preferences.ErasureReceipt, error) {
	return preferences.ErasureReceipt{Subscriber: "sub_x", LedgerSeq: 42}, fmt.Errorf("redis: %w", preferences.ErrErasureIncomplete)
}

func TestIncompleteErasureIsExplained(t *testing.T) {
	st := newSiteWith(t, failingEraser{})
	people := st.seed(t)
	p := st.post(t, "dpo", "/admin/subscribers/"+people[0].id+"/erase", url.Values{"confirm": {"ERASE"}})
	p.want(t, 503, "The erasure is recorded and the personal data is unreadable", "Erasure receipt", "#42")
	p.lacks(t, "erasure_incomplete")
}

func TestRestrictRectifyExport(t *testing.T) {
	st := newSite(t)
	people := st.seed(t)
	ctx := context.Background()
	path := "/admin/subscribers/" + people[0].id

	st.post(t, "dpo", path+"/restrict", nil).redirected(t, path+"?done=restricted")
	if s, _ := st.s.Subscriber(ctx, people[0].id); s.Status != preferences.StatusRestricted {
		t.Fatalf("status %s, want restricted", s.Status)
	}
	st.get(t, "dpo", path+"?done=restricted").want(t, 200, "Processing is restricted", "Lift the restriction")
	// Rectifying a restricted person: the domain's 409, as a message on the page.
	p := st.post(t, "dpo", path+"/rectify", url.Values{"name": {"Ana L."}})
	p.want(t, 409, "This person’s processing is restricted")
	st.post(t, "dpo", path+"/unrestrict", nil).redirected(t, path+"?done=unrestricted")
	ev := st.events(t, people[0].id, preferences.EventRestricted)
	if len(ev) != 1 || ev[0].Actor != actor {
		t.Errorf("restricted events %+v, want one by %s", ev, actor)
	}

	// A name too long is refused beside the field, what was typed kept.
	st.post(t, "dpo", path+"/rectify", url.Values{"name": {"A\nB"}, "email": {"nope"}}).
		want(t, 422, "A name is one line", "Enter an email address such as", `value="nope"`)
	st.post(t, "dpo", path+"/rectify", url.Values{"name": {people[0].name}}).redirected(t, path+"?done=unchanged")
	st.post(t, "dpo", path+"/rectify", url.Values{"name": {"Ana Byron"}}).redirected(t, path+"?done=rectified")
	if s, _ := st.s.Subscriber(ctx, people[0].id); s.Name != "Ana Byron" {
		t.Errorf("name %q, want Ana Byron", s.Name)
	}
	st.post(t, "dpo", path+"/rectify", url.Values{"name": {"Ana Byron"}, "email": {people[1].email}}).
		want(t, 409, "Another subscriber has this address.")
	st.post(t, "admin", path+"/rectify", url.Values{"name": {"Ana Byron"}, "email": {"ana.new@example.org"}}).
		redirected(t, path+"?done=rectified_email")
	if s, _ := st.s.Subscriber(ctx, people[0].id); s.Email != "ana.new@example.org" {
		t.Errorf("address %q, want the new one", s.Email)
	}
	if got := st.optins.Last(t); got.Subscriber != people[0].id {
		t.Errorf("confirmation queued for %q, want Ana", got.Subscriber)
	}
	rect := st.events(t, people[0].id, preferences.EventRectified)
	if len(rect) != 2 || rect[1].Actor != actor || rect[1].Details["fields"] != "email" {
		t.Errorf("rectified events %+v", rect)
	}

	p = st.get(t, "dpo", path+"/export")
	if p.status != 200 || !strings.Contains(p.header.Get("Content-Disposition"), people[0].id+".json") {
		t.Fatalf("export: %d %v", p.status, p.header)
	}
	var doc preferences.Export
	if err := json.Unmarshal([]byte(p.body), &doc); err != nil || doc.Subscriber.Email != "ana.new@example.org" {
		t.Errorf("export %v: %+v", err, doc.Subscriber)
	}
	p = st.get(t, "dpo", path+"/export?format=csv")
	if p.status != 200 || p.header.Get("Content-Type") != "application/zip" || !strings.HasPrefix(p.body, "PK") {
		t.Errorf("CSV export: %d %s", p.status, p.header.Get("Content-Type"))
	}
	if got := st.events(t, people[0].id, preferences.EventExported); len(got) != 2 || got[0].Actor != actor {
		t.Errorf("exported events %+v, want two by %s", got, actor)
	}
	st.get(t, "dpo", "/admin/subscribers/sub_nobody").want(t, 404, "There is no such subscriber.")
}
