package linktoken_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"consentmail/preferences/linktoken"
)

// Each link verifies as its own kind only, and carries what it was signed with.
func TestLinksRoundTripAndStayApart(t *testing.T) {
	s := linktoken.NewSigner(key)
	unsub := linktoken.Unsubscribe(s, "sub_1", []string{"news", "offers"}, "cmp_1", now)
	prefs := linktoken.Preferences(s, "sub_1", now)
	data := linktoken.Data(s, "sub_1", now)

	l, err := linktoken.VerifyUnsubscribe(s, unsub, now)
	if err != nil || l.Subscriber != "sub_1" || !slices.Equal(l.Lists, []string{"news", "offers"}) || l.Campaign != "cmp_1" {
		t.Fatalf("VerifyUnsubscribe = %+v, %v; want sub_1 [news offers] cmp_1", l, err)
	}
	tests := []struct {
		name   string
		verify func(*linktoken.Signer, string, time.Time) (string, error)
		token  string
		ok     bool
	}{
		{"preference link", linktoken.VerifyPreferences, prefs, true},
		{"data link", linktoken.VerifyData, data, true},
		{"preference link as data link", linktoken.VerifyData, prefs, false},
		{"data link as preference link", linktoken.VerifyPreferences, data, false},
		{"unsubscribe link as preference link", linktoken.VerifyPreferences, unsub, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sub, err := tc.verify(s, tc.token, now)
			if tc.ok && (err != nil || sub != "sub_1") {
				t.Errorf("got %q, %v; want sub_1", sub, err)
			}
			if !tc.ok && !errors.Is(err, linktoken.ErrInvalid) {
				t.Errorf("got %q, %v; want ErrInvalid", sub, err)
			}
		})
	}
	if _, err := linktoken.VerifyData(s, data, now.Add(linktoken.DataLinkTTL)); !errors.Is(err, linktoken.ErrExpired) {
		t.Errorf("data link after DataLinkTTL: %v, want ErrExpired", err)
	}
	if _, err := linktoken.VerifyUnsubscribe(s, unsub, now.Add(linktoken.UnsubscribeLinkTTL-1)); err != nil {
		t.Errorf("unsubscribe link just before UnsubscribeLinkTTL: %v", err)
	}
}
