package preferences

import (
	"bytes"
	"context"
	"errors"
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
// list's retention_days. Each subscriber whose subscriptions expired gets one expired
// event; one left with no pending or confirmed subscription is then erased by the one
// erasure (every step of Erase). A restricted subscriber is left alone: a restriction
// keeps the data as it is. Each batch is its own transaction, and a pass can stop
// anywhere and run again: what is expired stays expired, and nothing is expired twice.
func (e *Eraser) ApplyRetention(ctx context.Context, p RetentionPolicy) (RetentionResult, error) {
	s := e.store
	var res RetentionResult
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var erased []string
		var batch RetentionResult
		done := false
		err := s.commit.update(ctx, func(tx *bbolt.Tx) error {
			erased, batch = erased[:0], RetentionResult{}
			now := s.now().UTC()
			c := bucket(tx, bucketSubscribers).Cursor()
			k, _ := c.Seek([]byte(after))
			if after != "" && bytes.Equal(k, []byte(after)) {
				k, _ = c.Next()
			}
			var ids []string
			for ; k != nil && len(ids) < retentionBatch; k, _ = c.Next() {
				ids = append(ids, string(k))
			}
			done = k == nil
			for _, id := range ids {
				batch.Scanned++
				batch.LastSeen = id
				expired, gone, err := s.expire(tx, id, p, now)
				if err != nil {
					return err
				}
				if expired {
					batch.Expired++
				}
				if gone {
					batch.Erased++
					erased = append(erased, id)
				}
			}
			return nil
		})
		if err != nil {
			return res, err
		}
		res.Scanned, res.Expired, res.Erased = res.Scanned+batch.Scanned, res.Expired+batch.Expired, res.Erased+batch.Erased
		if batch.LastSeen != "" {
			after, res.LastSeen = batch.LastSeen, batch.LastSeen
		}
		var failed error
		for _, id := range erased {
			if err := e.finish(ctx, id); err != nil {
				// Committed: Run finishes it later. The pass goes on.
				failed = errors.Join(failed, fmt.Errorf("%w: %s: %w", ErrErasureIncomplete, id, err))
			}
		}
		if done {
			return res, failed
		}
		if failed != nil {
			e.log.Warn("retention: erasure not finished yet; retrying in the background", "err", failed)
		}
	}
}

// expire applies the policy to one subscriber in tx: whether subscriptions expired,
// and whether the subscriber was then erased.
func (s *Store) expire(tx *bbolt.Tx, id string, p RetentionPolicy, now time.Time) (expired, erased bool, err error) {
	rec, err := loadRecord(tx, id)
	if err != nil {
		return false, false, err
	}
	if rec.Status == StatusErased || rec.Status == StatusRestricted {
		return false, false, nil
	}
	var due []string
	left := 0
	details := map[string]string{}
	for i := range rec.Subs {
		x := &rec.Subs[i]
		switch x.Status {
		case SubPending:
			if now.Sub(x.Since) > p.OptinTTL+p.Grace {
				due = append(due, x.List)
				details["reason."+x.List] = "not confirmed in time"
				continue
			}
		case SubConfirmed:
			days := DefaultRetentionDays
			if l, ok := s.cache.get(x.List); ok && l.RetentionDays > 0 {
				days = l.RetentionDays
			}
			keep := time.Duration(days) * 24 * time.Hour
			// Only consent activity counts: the confirmation (Since), the person's own
			// changes (Active), tracked opens and clicks; not a signup anyone can make.
			last := x.Since
			if rec.Active.After(last) {
				last = rec.Active
			}
			if v := bucket(tx, bucketActivity).Get([]byte(id)); v != nil {
				var seen time.Time
				if seen.UnmarshalBinary(v) == nil && seen.After(last) {
					last = seen
				}
			}
			if now.Sub(last) > keep {
				due = append(due, x.List)
				details["reason."+x.List] = fmt.Sprintf("no activity for %d days", days)
				continue
			}
		default:
			continue
		}
		left++
	}
	if len(due) == 0 {
		return false, false, nil
	}
	if _, err := s.apply(tx, now, rec, change{T: TExpire, Lists: due,
		Event: eventInput{Type: EventExpired, Actor: "retention", Details: details}}); err != nil {
		return false, false, err
	}
	if left > 0 {
		return true, false, nil
	}
	// Nothing left to keep the data for: erase.
	_, err = s.eraseTx(tx, now, rec, eventInput{Type: EventErased, Actor: "retention",
		Details: map[string]string{"reason": "retention"}})
	return true, err == nil, err
}

// Retention passes run a minute after the start, then every hour.
const (
	RetentionFirst = time.Minute
	RetentionEvery = time.Hour
)

// RunRetention applies the policy RetentionFirst after the start and then every
// RetentionEvery until ctx ends. A pass stopped halfway is taken up by the next.
func (e *Eraser) RunRetention(ctx context.Context, p RetentionPolicy) error {
	t := time.NewTimer(RetentionFirst)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		res, err := e.ApplyRetention(ctx, p)
		switch {
		case err != nil && ctx.Err() == nil:
			e.log.Error("retention pass failed", "err", err, "scanned", res.Scanned)
		case err == nil:
			e.log.Info("retention pass", "scanned", res.Scanned, "expired", res.Expired, "erased", res.Erased)
		}
		t.Reset(RetentionEvery)
	}
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
