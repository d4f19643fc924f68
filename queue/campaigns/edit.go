package campaigns

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/preferences/address"
	"consentmail/queue"
)

// ErrNotDraft is returned when a campaign that has been started is edited or
// deleted: only drafts change.
var ErrNotDraft = errors.New("campaigns: only a draft can be changed")

// Update replaces the content of draft id with in, validated as Create validates
// (a *FieldError or a *templates.TemplateError), and returns it; ErrNotDraft once
// it has been started, ErrCampaignNotFound when there is none. A campaign keeps
// naming its template while its content is still the template's copy: in without a
// template but with the campaign's own HTML and text.
func (e *Engine) Update(ctx context.Context, id string, in Input) (Campaign, error) {
	old, err := e.store.campaignRecord(id)
	if err != nil {
		return Campaign{}, err
	}
	if old.Status != StatusDraft {
		return Campaign{}, ErrNotDraft
	}
	c, err := e.check(ctx, in)
	if err != nil {
		return Campaign{}, err
	}
	if in.Template == "" && in.HTML == old.HTML && in.Text == old.Text {
		c.Template = old.Template
	}
	r, err := e.store.updateCampaign(ctx, id, func(r *record, _ time.Time) error {
		if r.Status != StatusDraft {
			return ErrNotDraft
		}
		r.Name, r.Subject, r.Lists, r.Template, r.HTML, r.Text = c.Name, c.Subject, c.Lists, c.Template, c.HTML, c.Text
		r.From, r.SendAt, r.Track = c.From, c.SendAt, c.Track
		return nil
	})
	if err != nil {
		return Campaign{}, err
	}
	return e.view(ctx, r)
}

// Input returns what Update takes to leave campaign c as it is.
func (c Campaign) Input() Input {
	return Input{Name: c.Name, Subject: c.Subject, Lists: c.Lists, HTML: c.HTML, Text: c.Text, From: c.From,
		SendAt: c.SendAt, Track: c.Track}
}

// Delete removes draft id; ErrNotDraft once it has been started,
// ErrCampaignNotFound when there is none.
func (e *Engine) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := e.store.db.Update(func(tx *bbolt.Tx) error {
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		if r.Status != StatusDraft {
			return ErrNotDraft
		}
		return tx.Bucket(bucketCampaigns).Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("delete campaign %s: %w", id, err)
	}
	return nil
}

// TestEmails normalises the addresses of a test send (between 1 and MaxTestEmails),
// or returns a *FieldError on "emails": the one rule of the API's and the pages'
// test sends.
func TestEmails(in []string) ([]string, error) {
	if len(in) == 0 || len(in) > MaxTestEmails {
		return nil, &FieldError{Field: "emails", Reason: fmt.Sprintf("give between 1 and %d addresses", MaxTestEmails)}
	}
	out := make([]string, 0, len(in))
	for _, e := range in {
		addr, _, err := address.Normalise(e)
		if err != nil {
			return nil, &FieldError{Field: "emails", Reason: "not an email address: " + e}
		}
		out = append(out, addr)
	}
	return out, nil
}

// TestTemplate sends template id to the given addresses (normalised by TestEmails)
// with sample data, from the engine's DefaultFrom, as Test sends a campaign: the
// template is published to workers as a draft of its own id.
func (e *Engine) TestTemplate(ctx context.Context, id string, emails []string) error {
	t, err := e.store.Get(ctx, id)
	if err != nil {
		return err
	}
	def := &Definition{ID: t.ID, Name: t.Name, Subject: t.Subject, HTML: t.HTML, Text: t.Text, From: e.cfg.DefaultFrom,
		Lists: []string{"test"}, Status: StatusDraft}
	if err := e.tracker.Publish(ctx, def); err != nil {
		return err
	}
	body, err := e.codec.encode(&job{Campaign: t.ID, Test: emails})
	if err != nil {
		return err
	}
	return e.q.Enqueue(ctx, queue.Message{Kind: KindCampaign, Priority: queue.High, Body: body})
}
