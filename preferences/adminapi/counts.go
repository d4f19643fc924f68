package adminapi

import (
	"context"

	"consentmail/preferences"
)

// listOut is a list as the API shows it: the list and how many subscriptions it has
// in each status ("subscribers": {"pending", "confirmed", "unsubscribed"}), counted
// from the membership index.
type listOut struct {
	preferences.List
	Subscribers preferences.ListCounts `json:"subscribers"`
}

// withCounts adds their subscriber counts to lists.
func (h *API) withCounts(ctx context.Context, lists ...preferences.List) ([]listOut, error) {
	ids := make([]string, len(lists))
	for i, l := range lists {
		ids[i] = l.ID
	}
	counts, err := h.store.CountMembers(ctx, ids...)
	if err != nil {
		return nil, err
	}
	out := make([]listOut, len(lists))
	for i, l := range lists {
		out[i] = listOut{List: l, Subscribers: counts[l.ID]}
	}
	return out, nil
}
