package linktoken

import (
	"strings"
	"time"
)

// The links every mail carries, signed by the campaign worker and the link mailer,
// verified by the subscriber pages. They are all signed with the key of unsubscribe
// links and told apart by their purpose.
const (
	purposeUnsubscribe = "unsubscribe" // List-Unsubscribe and the footer link
	purposePreferences = "preferences" // the preference centre: manages subscriptions
	purposeData        = "data"        // a data link: exports and erases
)

// UnsubscribeLinkTTL is how long an unsubscribe or preference link in a mail keeps
// working: longer than any list's default retention, so an old mail can always
// withdraw consent.
const UnsubscribeLinkTTL = 5 * 365 * 24 * time.Hour

// DataLinkTTL is how long an emailed data link works.
const DataLinkTTL = time.Hour

// UnsubscribeLink is what an unsubscribe token carries: one subscriber, the lists a
// mail was sent for, and the campaign (empty for other mail).
type UnsubscribeLink struct {
	Subscriber string
	Lists      []string
	Campaign   string
}

// Unsubscribe returns the token of an unsubscribe link for subscriber, the lists a
// mail was sent for and the campaign (may be empty).
func Unsubscribe(s *Signer, subscriber string, lists []string, campaign string, now time.Time) string {
	return s.Sign(purposeUnsubscribe, now.Add(UnsubscribeLinkTTL), subscriber, strings.Join(lists, ","), campaign)
}

// VerifyUnsubscribe returns what an unsubscribe token carries, or ErrInvalid or
// ErrExpired as Verify does.
func VerifyUnsubscribe(s *Signer, token string, now time.Time) (UnsubscribeLink, error) {
	f, _, err := s.Verify(token, purposeUnsubscribe, now)
	if err != nil {
		return UnsubscribeLink{}, err
	}
	if len(f) != 3 || f[0] == "" {
		return UnsubscribeLink{}, ErrInvalid
	}
	l := UnsubscribeLink{Subscriber: f[0], Campaign: f[2]}
	if f[1] != "" {
		l.Lists = strings.Split(f[1], ",")
	}
	return l, nil
}

// Preferences returns the token of a preference-centre link for subscriber, valid as
// long as an unsubscribe link. It may manage subscriptions, never hand out or erase
// data (that takes a short-lived data link).
func Preferences(s *Signer, subscriber string, now time.Time) string {
	return s.Sign(purposePreferences, now.Add(UnsubscribeLinkTTL), subscriber)
}

// VerifyPreferences returns the subscriber of a preference-centre token.
func VerifyPreferences(s *Signer, token string, now time.Time) (string, error) {
	return verifySubscriber(s, token, purposePreferences, now)
}

// Data returns the token of a data link for subscriber, valid for DataLinkTTL.
func Data(s *Signer, subscriber string, now time.Time) string {
	return s.Sign(purposeData, now.Add(DataLinkTTL), subscriber)
}

// VerifyData returns the subscriber of a data-link token.
func VerifyData(s *Signer, token string, now time.Time) (string, error) {
	return verifySubscriber(s, token, purposeData, now)
}

func verifySubscriber(s *Signer, token, purpose string, now time.Time) (string, error) {
	f, _, err := s.Verify(token, purpose, now)
	if err != nil {
		return "", err
	}
	if len(f) != 1 || f[0] == "" {
		return "", ErrInvalid
	}
	return f[0], nil
}
