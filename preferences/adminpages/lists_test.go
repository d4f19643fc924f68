package adminpages_test

import (
	"context"
	"html"
	"net/url"
	"strings"
	"testing"

	"consentmail/preferences"
	"consentmail/preferences/internal/preftest"
)

func listForm(id, consent string) url.Values {
	return url.Values{"id": {id}, "name": {"Special offers"}, "purpose": {"Our discounts."}, "consent_text": {consent},
		"privacy_url": {"https://acme.test/privacy"}, "retention_days": {"365"}, "public": {"true"},
		"fr.name": {"Offres"}, "fr.purpose": {"Nos remises."}, "fr.consent_text": {"Oui, les offres."}}
}

func TestCreateAndEditAList(t *testing.T) {
	st := newSite(t)
	ctx := context.Background()

	st.post(t, "marketer", "/admin/lists", listForm("offers", "Yes, offers.")).redirected(t, "/admin/lists/offers?done=list_created")
	l, err := st.s.List(ctx, "offers")
	if err != nil {
		t.Fatal(err)
	}
	if l.Name != "Special offers" || !l.Public || l.RetentionDays != 365 || l.Translations["fr"].ConsentText != "Oui, les offres." {
		t.Errorf("created %+v", l)
	}
	p := st.get(t, "viewer", "/admin/lists/offers?done=list_created")
	p.want(t, 200, "The list is created.", "Special offers", "Yes, offers.", l.ConsentVersion,
		`href="`+baseURL+`/subscribe/offers"`)
	// The snippet: a plain form to the hosted form, with the consent text and the
	// hosted form's honeypot, in each language of the list.
	snippet := html.UnescapeString(p.body)
	for _, want := range []string{`<form method="post" action="` + baseURL + `/subscribe/offers/embedded">`, `name="email" type="email"`,
		`name="website"`, `<input type="checkbox" name="consent" value="true" required> Yes, offers.`,
		`name="locale" value="fr"`, `> Oui, les offres.</label>`, `Adresse e-mail`} {
		if !strings.Contains(snippet, want) {
			t.Errorf("list page's snippet lacks %q", want)
		}
	}

	// Refused: the form again, what was typed kept, the field's error beside it.
	bad := listForm("Bad Id!", "")
	bad.Set("retention_days", "0")
	bad.Set("fr.name", "")
	p = st.post(t, "marketer", "/admin/lists", bad)
	p.want(t, 422, `value="Bad Id!"`, "Use 1 to 64 lowercase letters", "This field is required.",
		"Enter a number of days from 1 to 36,500.", `id="consent-error"`, `id="fr-name-error"`, "Nos remises.")
	st.post(t, "admin", "/admin/lists", listForm("offers", "again")).want(t, 409, "A list with this identifier exists.")

	// Editing the consent text makes a new version; the old one stays in the history.
	edit := listForm("ignored", "Yes, all the offers.")
	edit.Del("public")
	st.post(t, "marketer", "/admin/lists/offers", edit).redirected(t, "/admin/lists/offers?done=list_saved")
	l2, _ := st.s.List(ctx, "offers")
	if l2.Public || l2.ConsentText != "Yes, all the offers." || l2.ConsentVersion == l.ConsentVersion || l2.ID != "offers" {
		t.Errorf("after the edit: %+v", l2)
	}
	p = st.get(t, "marketer", "/admin/lists/offers/edit")
	p.want(t, 200, "Yes, all the offers.", "Yes, offers.", l.ConsentVersion, l2.ConsentVersion, "Oui, les offres.")
	if strings.Index(p.body, l2.ConsentVersion) > strings.LastIndex(p.body, l.ConsentVersion) {
		t.Error("the history does not show the newest version first")
	}
	st.get(t, "viewer", "/admin/lists/offers").want(t, 200, "This list is private")

	// Emptying the French fields removes the translation.
	none := listForm("", "Yes, all the offers.")
	none.Set("fr.name", "")
	none.Set("fr.purpose", "")
	none.Set("fr.consent_text", "")
	st.post(t, "admin", "/admin/lists/offers", none).redirected(t, "/admin/lists/offers?done=list_saved")
	if l3, _ := st.s.List(ctx, "offers"); len(l3.Translations) != 0 {
		t.Errorf("translations %v, want none", l3.Translations)
	}
	// A refused edit saves nothing.
	bad = listForm("", "")
	st.post(t, "admin", "/admin/lists/offers", bad).want(t, 422, "This field is required.")
	if l4, _ := st.s.List(ctx, "offers"); l4.ConsentText != "Yes, all the offers." {
		t.Errorf("a refused edit saved %q", l4.ConsentText)
	}
	st.get(t, "admin", "/admin/lists/nothing").want(t, 404, "There is no such list.")
	st.post(t, "admin", "/admin/lists/nothing", listForm("", "x")).want(t, 404, "There is no such list.")
}

func TestDeleteAListNeedsItsID(t *testing.T) {
	st := newSite(t)
	people := st.seed(t)
	st.post(t, "marketer", "/admin/lists/weekly/delete", url.Values{"confirm": {"WEEKLY"}}).
		want(t, 422, "Type the list’s identifier exactly", `value="WEEKLY"`)
	if _, err := st.s.List(context.Background(), "weekly"); err != nil {
		t.Fatalf("a wrong confirmation deleted the list: %v", err)
	}
	st.post(t, "marketer", "/admin/lists/weekly/delete", url.Values{"confirm": {"weekly"}}).redirected(t, "/admin/lists?done=list_deleted")
	if _, err := st.s.List(context.Background(), "weekly"); err == nil {
		t.Fatal("the list is still there")
	}
	ended := st.events(t, people[0].id, preferences.EventUnsubscribed)
	if len(ended) != 1 || ended[0].Actor != actor || ended[0].Details["reason"] != "list_deleted" {
		t.Errorf("Ana's unsubscribed events %+v, want one by %s for list_deleted", ended, actor)
	}
	st.get(t, "viewer", "/admin/lists?done=list_deleted").want(t, 200, "The list is deleted")
}

// TestListCountsFollowTheSubscriptions: the lists' page and a list's page count
// subscriptions by status.
func TestListCountsFollowTheSubscriptions(t *testing.T) {
	st := newSite(t)
	people := st.seed(t) // weekly: Ana confirmed, Ben pending, Cy unsubscribed
	row := func() string {
		t.Helper()
		p := st.get(t, "viewer", "/admin/lists")
		i := strings.Index(p.body, `href="/admin/lists/weekly"`)
		if i < 0 {
			t.Fatalf("no weekly row:\n%s", p.body)
		}
		return p.body[i : i+strings.Index(p.body[i:], "</tr>")]
	}
	wantCounts := func(confirmed, pending, unsubscribed string) {
		t.Helper()
		r := row()
		want := `<td class="num">` + confirmed + `</td>
<td class="num">` + pending + `</td>
<td class="num">` + unsubscribed + `</td>`
		if !strings.Contains(r, want) {
			t.Errorf("row %s\nwant counts %s/%s/%s", r, confirmed, pending, unsubscribed)
		}
	}
	wantCounts("1", "1", "1")
	st.s.Clock.Advance(preferences.OptinResendInterval) // a new confirmation mail for Ben
	preftest.Confirm(t, st.s, preftest.Signup(t, st.s, preftest.SignupInput(people[1].email, "weekly")))
	for i := range 3 {
		preftest.Signup(t, st.s, preftest.SignupInput("new"+string(rune('a'+i))+"@example.org", "weekly"))
	}
	wantCounts("2", "3", "1")
	if _, err := st.s.Unsubscribe(context.Background(), preferences.UnsubscribeInput{Subscriber: people[0].id, Method: "link"}); err != nil {
		t.Fatal(err)
	}
	wantCounts("1", "3", "2")
	st.get(t, "viewer", "/admin/lists/weekly").want(t, 200, `<span class="stat">1</span>`, `<span class="stat">3</span>`,
		`<span class="stat">2</span>`)
}
