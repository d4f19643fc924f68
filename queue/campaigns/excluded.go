package campaigns

import (
	"context"
	"fmt"

	"consentmail/preferences"
)

// Excluded are the people of a campaign's lists who get nothing from it, by the
// reason preferences.Exclusion gives (the consent book's rule, next to Audience's).
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
					switch preferences.Exclusion(s.Status, s.SubscriptionStates(), lists) {
					case preferences.ExcludedErased:
						out.Erased++
					case preferences.ExcludedRestricted:
						out.Restricted++
					case preferences.ExcludedBlocked:
						out.Blocked++
					case preferences.ExcludedUnsubscribed:
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
