package preferences

import (
	"bytes"
	"context"
	"errors"
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
// provides it (SetCampaignHistory).
type CampaignHistory func(ctx context.Context, subscriber string) ([]CampaignSend, error)

// SetCampaignHistory sets where exports find the campaigns sent to a subscriber.
func (s *Store) SetCampaignHistory(h CampaignHistory) { s.history = h }

// ExportSubscriber builds the export of one subscriber and records an exported event
// (actor: who asked, "subscriber" for the person's own download).
func (s *Store) ExportSubscriber(ctx context.Context, subscriber, actor string) (*Export, error) {
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
		doc.Processing = append(doc.Processing, Processing{List: l.ID, Name: l.Name, Purpose: l.Purpose,
			LegalBasis: LegalBasisConsent, ConsentText: l.ConsentText, ConsentVersion: l.ConsentVersion,
			RetentionDays: l.RetentionDays, Recipients: ProcessingRecipients, PrivacyURL: l.PrivacyURL})
	}
	if s.history != nil {
		if doc.Campaigns, err = s.history(ctx, subscriber); err != nil {
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

// ErasureReceipt proves an erasure: when, and the ledger event that records it.
type ErasureReceipt struct {
	Subscriber string    `json:"subscriber"`
	ErasedAt   time.Time `json:"erased_at"`
	LedgerSeq  uint64    `json:"ledger_seq"`
}

// ErrErased is returned when erasing a subscriber erased before.
var ErrErased = errors.New("already erased")

// Erase makes a subscriber's personal data unrecoverable (GDPR art. 17): their data
// key is destroyed (and every old copy of it in the data file overwritten), which
// leaves every sealed field (address, name, attributes, the IP
// addresses and user agents in the ledger) unreadable while the ledger's hashes still
// verify; the lookup entry of their address is removed and its keyed hash kept in a
// suppression list (an import needs proof of consent given after the erasure to bring
// the address back; a signup confirmed by double opt-in always can); every
// subscription ends. An erased event without personal data is the receipt. The withdrawal is mirrored
// before it returns.
func (s *Store) Erase(ctx context.Context, subscriber, actor string) (ErasureReceipt, error) {
	var rc ErasureReceipt
	var wrapped []byte
	err := s.commit.update(ctx, func(tx *bbolt.Tx) error {
		now := s.now().UTC()
		rec, err := loadRecord(tx, subscriber)
		if err != nil {
			return err
		}
		if rec.Status == StatusErased {
			return fmt.Errorf("subscriber %s: %w", subscriber, ErrErased)
		}
		wrapped = bytes.Clone(bucket(tx, bucketDataKeys).Get([]byte(rec.ID)))
		var lists []string
		for i := range rec.Subs {
			x := &rec.Subs[i]
			lists = append(lists, x.List)
			if x.Status != SubUnsubscribed {
				x.Status, x.Since, x.Nonce = SubUnsubscribed, now, ""
			}
			if err := setMember(tx, x.List, rec.ID, SubUnsubscribed); err != nil {
				return err
			}
		}
		if err := bucket(tx, bucketDataKeys).Delete([]byte(rec.ID)); err != nil {
			return err
		}
		if err := bucket(tx, bucketActivity).Delete([]byte(rec.ID)); err != nil {
			return err
		}
		if len(rec.Index) > 0 {
			if err := tx.Bucket(bucketEmailIndex).Delete(rec.Index); err != nil {
				return err
			}
			// Only the keyed hash stays, so that an old CSV cannot bring the person
			// back without fresh proof of consent.
			stamp, _ := now.MarshalBinary()
			if err := bucket(tx, bucketSuppressed).Put(rec.Index, stamp); err != nil {
				return err
			}
		}
		rec.Index, rec.Email, rec.Name, rec.Attrs = nil, nil, nil, nil
		rec.Status, rec.Tracking, rec.Updated = StatusErased, false, now
		seq, err := s.appendEvent(tx, now, nil, eventInput{Type: EventErased, Subscriber: rec.ID, Lists: lists, Actor: actor})
		if err != nil {
			return err
		}
		rc = ErasureReceipt{Subscriber: rec.ID, ErasedAt: now, LedgerSeq: seq}
		return putJSON(bucket(tx, bucketSubscribers), []byte(rec.ID), rec)
	})
	if err != nil {
		return rc, err
	}
	if s.mirror != nil {
		if err := s.mirror.Withdraw(ctx, subscriber, nil); err != nil {
			return rc, fmt.Errorf("mirror erasure: %w", err)
		}
	}
	if s.onErase != nil {
		if err := s.onErase(ctx, subscriber); err != nil {
			return rc, fmt.Errorf("erasure committed, but dropping the queued messages failed: %w", err)
		}
	}
	if len(wrapped) > 0 {
		if _, err := s.shred(wrapped); err != nil {
			return rc, fmt.Errorf("erasure committed, but overwriting the old copies of the data key failed: %w", err)
		}
	}
	return rc, nil
}

// SetErasureHook sets a function called after each erasure has committed, to drop the
// subscriber's queued messages (the queues are not the store's).
func (s *Store) SetErasureHook(f func(ctx context.Context, subscriber string) error) { s.onErase = f }

// Shred overwrites with zeros every copy of the given byte strings (16 bytes or
// more) in the data file, e.g. the start of sealed queue messages just deleted, so
// that no freed page can be opened again.
func (s *Store) Shred(secrets ...[]byte) error {
	if len(secrets) == 0 {
		return nil
	}
	_, err := s.shred(secrets...)
	return err
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
