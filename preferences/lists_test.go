package preferences_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"consentmail/preferences"
)

func TestCreateAndGetList(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	created := mustCreateList(t, s, "news", func(l *preferences.List) { l.From = "News <news@example.org>" })
	if created.RetentionDays != preferences.DefaultRetentionDays {
		t.Errorf("retention = %d, want default %d", created.RetentionDays, preferences.DefaultRetentionDays)
	}
	if !created.CreatedAt.Equal(epoch) || !created.UpdatedAt.Equal(epoch) {
		t.Errorf("created/updated = %v/%v, want %v", created.CreatedAt, created.UpdatedAt, epoch)
	}
	if want := preferences.ConsentVersion("news", created.ConsentText); created.ConsentVersion != want {
		t.Errorf("consent version = %q, want %q", created.ConsentVersion, want)
	}
	got, err := s.List(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != created.ID || got.Name != created.Name || got.Purpose != created.Purpose || got.ConsentText != created.ConsentText ||
		got.ConsentVersion != created.ConsentVersion || got.PrivacyURL != created.PrivacyURL || got.Public != created.Public ||
		got.RetentionDays != created.RetentionDays || got.From != created.From || !got.CreatedAt.Equal(created.CreatedAt) {
		t.Errorf("List = %+v, want %+v", got, created)
	}
	_, err = s.CreateList(ctx, preferences.List{ID: "news", Name: "Other", Purpose: "p", ConsentText: "c", RetentionDays: 30})
	if !errors.Is(err, preferences.ErrConflict) {
		t.Errorf("CreateList duplicate: error = %v, want ErrConflict", err)
	}
	if again, _ := s.List(ctx, "news"); again.Name != created.Name {
		t.Errorf("duplicate create changed the list name to %q", again.Name)
	}
	if _, err := s.List(ctx, "ghost"); !errors.Is(err, preferences.ErrNotFound) {
		t.Errorf("List(ghost): error = %v, want ErrNotFound", err)
	}
	kept := mustCreateList(t, s, "kept", func(l *preferences.List) { l.RetentionDays = 30 })
	if kept.RetentionDays != 30 {
		t.Errorf("retention = %d, want 30 as given", kept.RetentionDays)
	}
}

func TestListsPagination(t *testing.T) {
	s := newStore(t)
	var all []string
	for i := range 25 {
		id := fmt.Sprintf("list-%02d", i)
		mustCreateList(t, s, id)
		all = append(all, id)
	}
	for _, limit := range []int{1, 7, 10, 25, 100} {
		t.Run(fmt.Sprintf("limit=%d", limit), func(t *testing.T) {
			var got []string
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > len(all) {
					t.Fatalf("pagination does not end; got %v", got)
				}
				page, next, err := s.Lists(context.Background(), cursor, limit)
				if err != nil {
					t.Fatal(err)
				}
				if len(page) > limit {
					t.Errorf("page of %d, want at most %d", len(page), limit)
				}
				for _, l := range page {
					got = append(got, l.ID)
				}
				if next == "" {
					break
				}
				if last := page[len(page)-1].ID; next != last {
					t.Errorf("next = %q, want the page's last id %q", next, last)
				}
				cursor = next
			}
			if !slices.Equal(got, all) {
				t.Errorf("paginated ids = %v, want %v", got, all)
			}
		})
	}
	t.Run("cursor that is not an id", func(t *testing.T) {
		page, _, err := s.Lists(context.Background(), "list-10a", 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 || page[0].ID != "list-11" {
			t.Errorf("first id after list-10a = %v, want list-11", page)
		}
	})
}

func TestUpdateAndDeleteList(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	mustCreateList(t, s, "news")
	s.Clock.Advance(time.Hour)
	updated, err := s.UpdateList(ctx, "news", func(l *preferences.List) error {
		l.Name, l.ID = "Renamed", "hijack"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if updated.ID != "news" || updated.Name != "Renamed" || !updated.UpdatedAt.Equal(epoch.Add(time.Hour)) || !updated.CreatedAt.Equal(epoch) {
		t.Errorf("UpdateList = %+v, want id news, name Renamed, updated an hour after creation", updated)
	}
	if _, err := s.List(ctx, "hijack"); !errors.Is(err, preferences.ErrNotFound) {
		t.Errorf("UpdateList changing the id created list hijack (err %v)", err)
	}
	if got, _ := s.List(ctx, "news"); got.Name != "Renamed" {
		t.Errorf("stored name = %q, want Renamed", got.Name)
	}
	errVeto := errors.New("veto")
	if _, err := s.UpdateList(ctx, "news", func(l *preferences.List) error { l.Name = "Vetoed"; return errVeto }); !errors.Is(err, errVeto) {
		t.Errorf("UpdateList with a failing change: error = %v, want %v", err, errVeto)
	}
	if got, _ := s.List(ctx, "news"); got.Name != "Renamed" {
		t.Errorf("stored name after a vetoed change = %q, want Renamed", got.Name)
	}
	if _, err := s.UpdateList(ctx, "ghost", func(*preferences.List) error { return nil }); !errors.Is(err, preferences.ErrNotFound) {
		t.Errorf("UpdateList(ghost): error = %v, want ErrNotFound", err)
	}
	if err := s.DeleteList(ctx, "news", "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.List(ctx, "news"); !errors.Is(err, preferences.ErrNotFound) {
		t.Errorf("List after delete: error = %v, want ErrNotFound", err)
	}
	if err := s.DeleteList(ctx, "news", "test"); !errors.Is(err, preferences.ErrNotFound) {
		t.Errorf("second DeleteList: error = %v, want ErrNotFound", err)
	}
}

// DeleteList promises that subscriptions to the list are dropped. A list created later
// with the same id (perhaps for another purpose) must not inherit them.
func TestDeleteListDropsSubscriptions(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	mustCreateList(t, s, "news")
	req := mustSignup(t, s, signupInput("gone@example.org", "news"))
	mustConfirm(t, s, req)
	left := mustSignup(t, s, signupInput("left@example.org", "news"))
	if _, err := s.Unsubscribe(ctx, preferences.UnsubscribeInput{Subscriber: left.Subscriber, Method: "link"}); err != nil {
		t.Fatal(err)
	}
	erased := mustSignup(t, s, signupInput("erased@example.org", "news"))
	if _, err := s.Erase(ctx, erased.Subscriber, "dpo"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteList(ctx, "news", "test"); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{req.Subscriber, left.Subscriber} {
		if got := subscriptionStatus(t, s, sub, "news"); got != "" {
			t.Errorf("subscription of %s to the deleted list = %q, want none", sub, got)
		}
	}
	// Only the person who still consented gets an unsubscribed event for it.
	n := 0
	for _, e := range allEvents(t, s, preferences.LedgerQuery{Type: preferences.EventUnsubscribed}) {
		if e.Details["reason"] == "list_deleted" {
			n++
			if e.Subscriber != req.Subscriber {
				t.Errorf("list_deleted event for %s", e.Subscriber)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d list_deleted events, want 1", n)
	}
	if n := s.BucketLen(t, "prefs.members"); n != 0 {
		t.Errorf("prefs.members has %d entries after the list was deleted, want 0", n)
	}
	mustCreateList(t, s, "news", func(l *preferences.List) { l.Purpose, l.ConsentText = "something else", "Different consent" })
	s.Clock.Advance(preferences.OptinResendInterval)
	again := mustSignup(t, s, signupInput("gone@example.org", "news"))
	if !slices.Equal(again.Lists, []string{"news"}) {
		t.Errorf("signup to the re-created list queued %+v, want a confirmation for [news]", again)
	}
	if got := subscriptionStatus(t, s, req.Subscriber, "news"); got != preferences.SubPending {
		t.Errorf("re-created list = %q, want %q (consent to the old list does not carry over)", got, preferences.SubPending)
	}
}

func TestConsentVersions(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	v1 := mustCreateList(t, s, "news", func(l *preferences.List) { l.ConsentText = "Version one text" })
	first := mustSignup(t, s, signupInput("v1@example.org", "news"))

	s.Clock.Advance(time.Hour)
	renamed, err := s.UpdateList(ctx, "news", func(l *preferences.List) error { l.Name = "No text change"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if renamed.ConsentVersion != v1.ConsentVersion {
		t.Errorf("version after a name change = %q, want unchanged %q", renamed.ConsentVersion, v1.ConsentVersion)
	}
	v2, err := s.UpdateList(ctx, "news", func(l *preferences.List) error { l.ConsentText = "Version two text"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if v2.ConsentVersion == v1.ConsentVersion || v2.ConsentVersion == "" {
		t.Fatalf("version after a text change = %q, want new (old %q)", v2.ConsentVersion, v1.ConsentVersion)
	}
	second := mustSignup(t, s, signupInput("v2@example.org", "news"))

	for _, tc := range []struct {
		version, text string
		at            time.Time
	}{{v1.ConsentVersion, "Version one text", epoch}, {v2.ConsentVersion, "Version two text", epoch.Add(time.Hour)}} {
		ct, err := s.ConsentTextVersion(ctx, tc.version)
		if err != nil {
			t.Errorf("ConsentTextVersion(%s): %v", tc.version, err)
			continue
		}
		if ct.Text != tc.text || ct.List != "news" || ct.Version != tc.version || !ct.CreatedAt.Equal(tc.at) {
			t.Errorf("ConsentTextVersion(%s) = %+v, want text %q list news created %v", tc.version, ct, tc.text, tc.at)
		}
	}
	if _, err := s.ConsentTextVersion(ctx, "0000"); !errors.Is(err, preferences.ErrNotFound) {
		t.Errorf("ConsentTextVersion(unknown): error = %v, want ErrNotFound", err)
	}
	for _, tc := range []struct {
		sub, want string
	}{{first.Subscriber, v1.ConsentVersion}, {second.Subscriber, v2.ConsentVersion}} {
		ev := allEvents(t, s, preferences.LedgerQuery{Subscriber: tc.sub, Type: preferences.EventSignup})
		if len(ev) != 1 {
			t.Fatalf("signup events of %s = %d, want 1", tc.sub, len(ev))
		}
		if got := ev[0].Details["consent_version.news"]; got != tc.want {
			t.Errorf("signup of %s: consent_version.news = %q, want %q", tc.sub, got, tc.want)
		}
	}
	// Going back to the first text is the first version again, and it is still readable.
	back, err := s.UpdateList(ctx, "news", func(l *preferences.List) error { l.ConsentText = "Version one text"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if back.ConsentVersion != v1.ConsentVersion {
		t.Errorf("version of the restored text = %q, want %q", back.ConsentVersion, v1.ConsentVersion)
	}
	if preferences.ConsentVersion("a", "b") == preferences.ConsentVersion("b", "b") {
		t.Errorf("ConsentVersion does not depend on the list")
	}
}

func TestValidListID(t *testing.T) {
	long := string(slices.Repeat([]byte("a"), 64))
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"news", true}, {"a", true}, {"news-2026", true}, {long, true},
		{"", false}, {long + "a", false}, {"News", false}, {"a_b", false}, {"a b", false},
		{"news\n", false}, {"../x", false}, {"é", false},
	} {
		if got := preferences.ValidListID(tc.id); got != tc.want {
			t.Errorf("ValidListID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}
