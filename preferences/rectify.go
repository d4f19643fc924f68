package preferences

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/bbolt"
)

// Rectification is an admin's correction of a subscriber (GDPR art. 16). Nil fields
// are left as they are. Email and EmailKey come from address.Normalise.
type Rectification struct {
	Subscriber string
	Name       *string
	Locale     *string
	Attributes json.RawMessage // nil: unchanged; validated by the caller
	Email      string
	EmailKey   string
	Actor      string
}

// ErrEmailTaken is returned when a rectified address belongs to another subscriber.
var ErrEmailTaken = fmt.Errorf("address used by another subscriber: %w", ErrConflict)

// Rectify corrects a subscriber in one transaction with one rectified event naming
// the fields. A new address replaces the old one at once (the old one is no longer
// found nor written to) and must be confirmed before campaigns use it: every
// confirmed subscription becomes pending and a confirmation goes to the new address
// through enqueue. A restricted or erased subscriber cannot be rectified (ErrStatus).
func (s *Store) Rectify(ctx context.Context, in Rectification, enqueue EnqueueTx) ([]string, error) {
	var newIndex []byte
	if in.Email != "" {
		newIndex = s.keys.blindIndex(in.EmailKey)
	}
	var fields, pending []string
	err := s.commit.update(ctx, func(tx *bbolt.Tx) error {
		fields, pending = fields[:0], pending[:0]
		now := s.now().UTC()
		rec, dk, err := s.editable(tx, in.Subscriber)
		if err != nil {
			return err
		}
		if in.Name != nil {
			if old, _ := dk.openString(rec.Name, fieldName); old != strings.TrimSpace(*in.Name) {
				rec.Name = dk.sealString(strings.TrimSpace(*in.Name), fieldName)
				fields = append(fields, "name")
			}
		}
		if in.Locale != nil && *in.Locale != rec.Locale {
			rec.Locale = *in.Locale
			fields = append(fields, "locale")
		}
		if in.Attributes != nil {
			rec.Attrs = dk.seal(in.Attributes, fieldAttributes)
			fields = append(fields, "attributes")
		}
		if newIndex != nil && string(newIndex) != string(rec.Index) {
			idx := tx.Bucket(bucketEmailIndex)
			if other := idx.Get(newIndex); other != nil && string(other) != rec.ID {
				return ErrEmailTaken
			}
			if len(rec.Index) > 0 {
				if err := idx.Delete(rec.Index); err != nil {
					return err
				}
			}
			if err := idx.Put(newIndex, []byte(rec.ID)); err != nil {
				return err
			}
			rec.Index, rec.Email = newIndex, dk.sealString(in.Email, fieldEmail)
			fields = append(fields, "email")
		}
		if len(fields) == 0 {
			return nil
		}
		ev := eventInput{Type: EventRectified, Actor: in.Actor, Details: map[string]string{"fields": strings.Join(fields, ",")}}
		if !slices.Contains(fields, "email") {
			ev.Subscriber = rec.ID
			if _, err := s.appendEvent(tx, now, nil, ev); err != nil {
				return err
			}
			rec.Updated = now
			return putJSON(bucket(tx, bucketSubscribers), []byte(rec.ID), rec)
		}
		// The new address must be confirmed before campaigns use it: every list it had
		// becomes pending, with a new opt-in round that old links cannot confirm.
		var optin *optinRound
		if enqueue != nil {
			optin = &optinRound{enqueue: enqueue, fresh: true}
		}
		lists := []string{}
		for _, x := range rec.Subs {
			if x.Status == SubPending || x.Status == SubConfirmed {
				lists = append(lists, x.List)
			}
		}
		done, err := s.apply(tx, now, rec, change{T: TReconfirm, Lists: lists, Event: ev, LogAlways: true, LogScope: true,
			Optin: optin})
		pending = done.Pending
		return err
	})
	if err == nil && s.mirror != nil && len(pending) > 0 {
		// Pending until the new address is confirmed: no campaign queued earlier goes
		// out; the confirmation restores the lists.
		if err := s.mirror.Withdraw(ctx, in.Subscriber, pending); err != nil {
			return fields, fmt.Errorf("mirror: %w", err)
		}
	}
	return fields, err
}
