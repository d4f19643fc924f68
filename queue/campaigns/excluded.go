package campaigns

import (
	"context"
	"fmt"
	"slices"

	"consentmail/preferences"
)

// Excluded are the people of a campaign's lists who get nothing from it, by reason.
// They are counted once, when the campaign starts (with Stats.Audience), each person
// once whatever the number of the campaign's lists they are on, under the first
// reason that applies:
//
//   - Erased: erased (GDPR art. 17) while on one of the lists;
//   - Unsubscribed: left every one of the lists they were on (and not erased);
//   - Restricted: confirmed on a list, but restricted (GDPR art. 18);
//   - Blocked: confirmed on a list, but their address hard-bounced.
//
// Restricted and Blocked people are part of Stats.Audience (the confirmed members of
// the lists), so Audience - Restricted - Blocked is who the campaign queues;
// Unsubscribed and Erased people are not in the Audience. Someone whose consent ends
// after the campaign started is counted in Stats.Skipped instead, when their message
// comes up.
type Excluded struct {
	Restricted   int64 `json:"restricted"`
	Erased       int64 `json:"erased"`
	Blocked      int64 `json:"blocked"`
	Unsubscribed int64 `json:"unsubscribed"`
}

// Total is the number of people excluded.
func (x Excluded) Total() int64 { return x.Restricted + x.Erased + x.Blocked + x.Unsubscribed }

// The reasons exclusion gives.
const (
	excludedRestricted   = "restricted"
	excludedErased       = "erased"
	excludedBlocked      = "blocked"
	excludedUnsubscribed = "unsubscribed"
)

// exclusion says why s gets nothing from a campaign to lists ("" when they get it,
// or were never more than pending): the rule of preferences.Store.Audience (an active
// subscriber with a confirmed subscription to one of the lists), with its reasons.
func exclusion(s *preferences.Subscriber, lists []string) string {
	confirmed, left := false, false
	for _, x := range s.Subscriptions {
		if !slices.Contains(lists, x.List) {
			continue
		}
		switch x.Status {
		case preferences.SubConfirmed:
			confirmed = true
		case preferences.SubUnsubscribed:
			left = true
		}
	}
	switch {
	case s.Status == preferences.StatusErased && (confirmed || left):
		return excludedErased
	case confirmed && s.Status == preferences.StatusRestricted:
		return excludedRestricted
	case confirmed && s.Status == preferences.StatusBlocked:
		return excludedBlocked
	case !confirmed && left:
		return excludedUnsubscribed
	}
	return ""
}

// excluded counts the people of lists who get nothing, by reason. It walks, for
// each list, its members who unsubscribed (the erased among them) and those whose
// status forbids mail, a page at a time; nobody is counted twice.
func (e *Engine) excluded(ctx context.Context, lists []string) (Excluded, error) {
	var out Excluded
	seen := map[string]bool{}
	for _, l := range lists {
		for _, status := range []string{preferences.SubUnsubscribed, preferences.StatusRestricted, preferences.StatusBlocked} {
			after := ""
			for {
				page, next, err := e.book.Subscribers(ctx, preferences.SubscriberQuery{List: l, Status: status, After: after, Limit: 1000})
				if err != nil {
					return Excluded{}, fmt.Errorf("count excluded of list %s: %w", l, err)
				}
				for _, s := range page {
					if seen[s.ID] {
						continue
					}
					seen[s.ID] = true
					switch exclusion(s, lists) {
					case excludedErased:
						out.Erased++
					case excludedRestricted:
						out.Restricted++
					case excludedBlocked:
						out.Blocked++
					case excludedUnsubscribed:
						out.Unsubscribed++
					}
				}
				if next == "" {
					break
				}
				after = next
			}
		}
	}
	return out, nil
}
