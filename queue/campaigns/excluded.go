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

// excluded counts the people of lists who get nothing, by reason, with the consent
// book's count (one walk of the lists' membership index).
func (e *Engine) excluded(ctx context.Context, lists []string) (Excluded, error) {
	n, err := e.book.CountExclusions(ctx, lists)
	if err != nil {
		return Excluded{}, fmt.Errorf("count excluded: %w", err)
	}
	return Excluded{Restricted: n[preferences.ExcludedRestricted], Erased: n[preferences.ExcludedErased],
		Blocked: n[preferences.ExcludedBlocked], Unsubscribed: n[preferences.ExcludedUnsubscribed]}, nil
}
