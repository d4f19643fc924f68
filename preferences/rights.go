package preferences

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// Export is the document of GDPR articles 15 and 20 about one subscriber: what the
// company holds, where it came from, what was done with it and why. The admin export
// and the subscriber's own download are the same document.
type Export struct {
	GeneratedAt time.Time   `json:"generated_at"`
	Subscriber  *Subscriber `json:"subscriber"`
	// ConsentHistory is every ledger event about the subscriber, in order.
	ConsentHistory []Event `json:"consent_history"`
	// Campaigns is every campaign sent (or attempted) to the subscriber.
	Campaigns []CampaignSend `json:"campaigns"`
	// Bounces are the bounced events among the history.
	Bounces    []Event      `json:"bounces"`
	Processing []Processing `json:"processing"`
}

// CampaignSend is one campaign as the export shows it.
type CampaignSend struct {
	Campaign string    `json:"campaign"`
	Name     string    `json:"name"`
	Result   string    `json:"result"` // sent, failed, skipped
	At       time.Time `json:"at,omitempty"`
}

// Processing describes one purpose the subscriber's data is processed for (GDPR art.
// 13/30), from a list they are or were on.
type Processing struct {
	List           string `json:"list"`
	Name           string `json:"name"`
	Purpose        string `json:"purpose"`
	LegalBasis     string `json:"legal_basis"`
	ConsentText    string `json:"consent_text"`
	ConsentVersion string `json:"consent_version"`
	RetentionDays  int    `json:"retention_days"`
	// Recipients are who receives the data for this purpose.
	Recipients []string `json:"recipients"`
	PrivacyURL string   `json:"privacy_url,omitempty"`
}

// LegalBasisConsent is the legal basis of every list: the subscriber's consent.
const LegalBasisConsent = "consent (GDPR art. 6(1)(a))"

// ProcessingRecipients are who receives subscribers' data.
var ProcessingRecipients = []string{"the company sending the newsletter (controller)",
	"its email relay (processor), to deliver each message"}

// CampaignHistory returns the campaigns sent to a subscriber; the campaign engine
// provides it.
type CampaignHistory func(ctx context.Context, subscriber string) ([]CampaignSend, error)

// ExportSubscriber builds the export of one subscriber, with the campaigns history
// finds (nil: none), and records an exported event (actor: who asked, "subscriber"
// for the person's own download).
func (s *Store) ExportSubscriber(ctx context.Context, subscriber, actor string, history CampaignHistory) (*Export, error) {
	sub, err := s.Subscriber(ctx, subscriber)
	if err != nil {
		return nil, err
	}
	if sub.Status == StatusErased {
		return nil, fmt.Errorf("subscriber %s: %w", subscriber, ErrNotFound)
	}
	doc := &Export{GeneratedAt: s.now().UTC(), Subscriber: sub, ConsentHistory: []Event{}, Campaigns: []CampaignSend{},
		Bounces: []Event{}, Processing: []Processing{}}
	q := LedgerQuery{Subscriber: subscriber, Limit: 1000}
	for {
		page, next, err := s.Ledger(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			doc.ConsentHistory = append(doc.ConsentHistory, e)
			if e.Type == EventBounced {
				doc.Bounces = append(doc.Bounces, e)
			}
		}
		if next == 0 {
			break
		}
		q.After = next
	}
	for _, x := range sub.Subscriptions {
		l, ok := s.cache.get(x.List)
		if !ok {
			continue
		}
		// In the person's language; the consent text is the one they agreed to.
		l, _ = l.In(sub.Locale)
		p := Processing{List: l.ID, Name: l.Name, Purpose: l.Purpose,
			LegalBasis: LegalBasisConsent, ConsentText: l.ConsentText, ConsentVersion: l.ConsentVersion,
			RetentionDays: l.RetentionDays, Recipients: ProcessingRecipients, PrivacyURL: l.PrivacyURL}
		if x.ConsentVersion != "" && x.ConsentVersion != p.ConsentVersion {
			if ct, err := s.ConsentTextVersion(ctx, x.ConsentVersion); err == nil {
				p.ConsentText, p.ConsentVersion = ct.Text, ct.Version
			}
		}
		doc.Processing = append(doc.Processing, p)
	}
	if history != nil {
		if doc.Campaigns, err = history(ctx, subscriber); err != nil {
			return nil, fmt.Errorf("campaign history: %w", err)
		}
		if doc.Campaigns == nil {
			doc.Campaigns = []CampaignSend{}
		}
	}
	err = s.commit.update(ctx, func(tx *bbolt.Tx) error {
		_, err := s.appendEvent(tx, s.now().UTC(), nil, eventInput{Type: EventExported, Subscriber: subscriber, Actor: actor})
		return err
	})
	if err != nil {
		return nil, err
	}
	return doc, nil
}

// LookupEmail returns the subscriber whose address has the lookup key (see
// address.Normalise), if any.
func (s *Store) LookupEmail(ctx context.Context, indexKey string) (string, bool) {
	index := s.keys.blindIndex(indexKey)
	var id string
	_ = s.db.View(func(tx *bbolt.Tx) error {
		id = string(tx.Bucket(bucketEmailIndex).Get(index))
		return nil
	})
	return id, id != ""
}
