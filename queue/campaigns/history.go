package campaigns

import (
	"context"

	"consentmail/preferences"
)

// History returns the campaigns that have a result for the subscriber, oldest first:
// the campaigns part of a subscriber's export (preferences.CampaignHistory, given to the export adapters).
func (e *Engine) History(ctx context.Context, subscriber string) ([]preferences.CampaignSend, error) {
	recs, _, err := e.store.campaignRecords(ctx, "", 0, func(r *record) bool { return r.Status != StatusDraft })
	if err != nil {
		return nil, err
	}
	var out []preferences.CampaignSend
	for _, r := range recs {
		res, err := e.tracker.Result(ctx, r.ID, subscriber)
		if err != nil {
			return nil, err
		}
		var result string
		switch res {
		case ResultSent:
			result = "sent"
		case ResultFailed:
			result = "failed"
		case ResultSkipped:
			result = "skipped"
		default:
			continue
		}
		send := preferences.CampaignSend{Campaign: r.ID, Name: r.Name, Result: result}
		if r.StartedAt != nil {
			send.At = *r.StartedAt
		}
		out = append(out, send)
	}
	return out, nil
}
