package preferences

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// RetentionPolicy is how long data is kept without reason (GDPR art. 5(1)(e)).
type RetentionPolicy struct {
	// OptinTTL and Grace: a subscription still pending OptinTTL+Grace after its
	// signup has expired.
	OptinTTL time.Duration
	Grace    time.Duration
}

// RetentionResult counts what one pass did.
type RetentionResult struct {
	Scanned  int `json:"scanned"`
	Expired  int `json:"expired"` // subscribers with at least one subscription expired
	Erased   int `json:"erased"`  // of them, erased because nothing else was left
	LastSeen string
}

// retentionBatch is how many subscribers one write transaction looks at.
const retentionBatch = 500

// ApplyRetention expires what the policy and the lists' retention_days no longer
// allow keeping: pending subscriptions older than OptinTTL+Grace, and confirmed ones
// with no confirmation, preference change, open or click (TouchActivity) for the
// list's retention_days. Each subscriber whose
// subscriptions expired gets one expired event; one left with no pending or confirmed
// subscription is then erased (its data key destroyed and overwritten). Each batch is
// its own transaction, and a pass can stop anywhere and run again: what is expired
// stays expired, and nothing is expired twice.
func (s *Store) ApplyRetention(ctx context.Context, p RetentionPolicy) (RetentionResult, error) {
	var res RetentionResult
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var wrapped [][]byte
		var erased []string
		done := false
		err := s.commit.update(ctx, func(tx *bbolt.Tx) error {
			wrapped, erased = wrapped[:0], erased[:0]
			now := s.now().UTC()
			subs := bucket(tx, bucketSubscribers)
			c := subs.Cursor()
			k, _ := c.Seek([]byte(after))
			if after != "" && bytes.Equal(k, []byte(after)) {
				k, _ = c.Next()
			}
			n := 0
			var ids []string
			for ; k != nil && n < retentionBatch; k, _ = c.Next() {
				ids = append(ids, string(k))
				n++
			}
			done = k == nil
			for _, id := range ids {
				res.Scanned++
				after = id
				key, err := s.expire(tx, id, p, now)
				if err != nil {
					return err
				}
				if key != nil {
					res.Expired++
					if len(key) > 0 {
						res.Erased++
						wrapped = append(wrapped, key)
						erased = append(erased, id)
					}
				}
			}
			return nil
		})
		if err != nil {
			return res, err
		}
		if s.mirror != nil {
			for _, id := range erased {
				if err := s.mirror.Withdraw(ctx, id, nil); err != nil {
					return res, fmt.Errorf("mirror erasure: %w", err)
				}
			}
		}
		if len(wrapped) > 0 {
			if _, err := s.shred(wrapped...); err != nil {
				return res, err
			}
		}
		res.LastSeen = after
		if done {
			return res, nil
		}
	}
}

// expire applies the policy to one subscriber in tx. It returns nil when nothing
// expired, an empty slice when subscriptions expired, and the wrapped data key when
// the subscriber was erased.
func (s *Store) expire(tx *bbolt.Tx, id string, p RetentionPolicy, now time.Time) ([]byte, error) {
	rec, err := loadRecord(tx, id)
	if err != nil {
		return nil, err
	}
	if rec.Status == StatusErased {
		return nil, nil
	}
	var expired []string
	left := 0
	details := map[string]string{}
	for i := range rec.Subs {
		x := &rec.Subs[i]
		switch x.Status {
		case SubPending:
			if now.Sub(x.Since) > p.OptinTTL+p.Grace {
				expired = append(expired, x.List)
				details["reason."+x.List] = "not confirmed in time"
				continue
			}
		case SubConfirmed:
			days := DefaultRetentionDays
			if l, ok := s.cache.get(x.List); ok && l.RetentionDays > 0 {
				days = l.RetentionDays
			}
			keep := time.Duration(days) * 24 * time.Hour
			last := x.Since
			if rec.Updated.After(last) {
				last = rec.Updated
			}
			if v := bucket(tx, bucketActivity).Get([]byte(id)); v != nil {
				var seen time.Time
				if seen.UnmarshalBinary(v) == nil && seen.After(last) {
					last = seen
				}
			}
			if now.Sub(last) > keep {
				expired = append(expired, x.List)
				details["reason."+x.List] = fmt.Sprintf("no activity for %d days", days)
				continue
			}
		default:
			continue
		}
		left++
	}
	if len(expired) == 0 {
		return nil, nil
	}
	for _, l := range expired {
		x := rec.sub(l)
		x.Status, x.Since, x.Nonce = SubUnsubscribed, now, ""
		if err := setMember(tx, l, rec.ID, SubUnsubscribed); err != nil {
			return nil, err
		}
	}
	if _, err := s.appendEvent(tx, now, nil, eventInput{Type: EventExpired, Subscriber: rec.ID, Lists: expired,
		Actor: "retention", Details: details}); err != nil {
		return nil, err
	}
	rec.Updated = now
	if left > 0 {
		return []byte{}, putJSON(bucket(tx, bucketSubscribers), []byte(rec.ID), rec)
	}
	// Nothing left to keep the data for: erase.
	wrapped := bytes.Clone(bucket(tx, bucketDataKeys).Get([]byte(rec.ID)))
	if err := bucket(tx, bucketDataKeys).Delete([]byte(rec.ID)); err != nil {
		return nil, err
	}
	if len(rec.Index) > 0 {
		if err := tx.Bucket(bucketEmailIndex).Delete(rec.Index); err != nil {
			return nil, err
		}
	}
	rec.Index, rec.Email, rec.Name, rec.Attrs = nil, nil, nil, nil
	rec.Status, rec.Tracking = StatusErased, false
	if _, err := s.appendEvent(tx, now, nil, eventInput{Type: EventErased, Subscriber: rec.ID, Actor: "retention",
		Details: map[string]string{"reason": "retention"}}); err != nil {
		return nil, err
	}
	if wrapped == nil {
		wrapped = []byte{}
	}
	return wrapped, putJSON(bucket(tx, bucketSubscribers), []byte(rec.ID), rec)
}

// TouchActivity records that the subscribers opened or clicked a campaign now, for
// the retention policy.
func (s *Store) TouchActivity(ctx context.Context, subscribers []string) error {
	if len(subscribers) == 0 {
		return nil
	}
	return s.commit.update(ctx, func(tx *bbolt.Tx) error {
		stamp, err := s.now().UTC().MarshalBinary()
		if err != nil {
			return err
		}
		b := bucket(tx, bucketActivity)
		for _, id := range subscribers {
			if err := b.Put([]byte(id), stamp); err != nil {
				return err
			}
		}
		return nil
	})
}
