package preferences

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// ImportRow is one validated row of an import: a person and, when the company holds
// it, the proof of an earlier consent (when and where it was given).
type ImportRow struct {
	Email      string // normalised, as for SignupInput
	IndexKey   string
	Name       string
	Locale     string
	Attributes json.RawMessage
	// ConsentedAt and ConsentSource are the proof; without both the row becomes
	// pending. ConsentIP is kept, sealed, when given.
	ConsentedAt   time.Time
	ConsentSource string
	ConsentIP     string
}

// HasProof reports whether the row carries a proof of consent.
func (r *ImportRow) HasProof() bool { return !r.ConsentedAt.IsZero() && r.ConsentSource != "" }

// ImportResult counts what an import did.
type ImportResult struct {
	Imported int // confirmed with their proof
	Pending  int // without proof: pending, a confirmation queued when asked for
	// Suppressed are the indexes in rows of addresses erased on request, refused
	// unless their proof of consent is more recent than the erasure.
	Suppressed []int
}

// MaxImportBatch is the most rows one Import call writes (one transaction).
const MaxImportBatch = 1000

// Import adds rows to list in one transaction. A row with proof becomes confirmed
// with an imported event carrying the proof; a row without becomes pending and, when
// enqueue is not nil, is sent a confirmation as after a signup (same 10-minute rule).
// A person already confirmed on the list is left as is. An existing subscriber's
// profile is never changed. The list need not be public.
func (s *Store) Import(ctx context.Context, list, actor string, rows []ImportRow, enqueue EnqueueTx) (ImportResult, error) {
	if len(rows) > MaxImportBatch {
		return ImportResult{}, fmt.Errorf("import: %d rows in one batch, at most %d", len(rows), MaxImportBatch)
	}
	l, ok := s.cache.get(list)
	if !ok {
		return ImportResult{}, fmt.Errorf("list %s: %w", list, ErrNotFound)
	}
	indexes := make([][]byte, len(rows))
	for i := range rows {
		indexes[i] = s.keys.blindIndex(rows[i].IndexKey)
	}
	var res ImportResult
	err := s.commit.update(ctx, func(tx *bbolt.Tx) error {
		res = ImportResult{}
		now := s.now().UTC()
		res.Suppressed = res.Suppressed[:0]
		for i := range rows {
			r := &rows[i]
			// A person who came back by double opt-in since is no longer suppressed.
			if stamp := bucket(tx, bucketSuppressed).Get(indexes[i]); stamp != nil && tx.Bucket(bucketEmailIndex).Get(indexes[i]) == nil {
				var erased time.Time
				if err := erased.UnmarshalBinary(stamp); err != nil || !r.HasProof() || !r.ConsentedAt.After(erased) {
					res.Suppressed = append(res.Suppressed, i)
					continue
				}
			}
			rec, dk, err := s.findOrCreate(tx, indexes[i],
				SignupInput{Email: r.Email, Name: r.Name, Locale: r.Locale, Attributes: r.Attributes}, now)
			if err != nil {
				return err
			}
			sub := rec.sub(l.ID)
			if sub == nil {
				rec.Subs = append(rec.Subs, subscription{List: l.ID})
				sub = &rec.Subs[len(rec.Subs)-1]
			}
			if sub.Status == SubConfirmed {
				res.Imported++
				continue
			}
			details := map[string]string{"consent_version." + l.ID: l.ConsentVersion}
			in := eventInput{Subscriber: rec.ID, Lists: []string{l.ID}, Actor: actor, Details: details}
			if r.HasProof() {
				sub.Status, sub.Since, sub.Nonce, sub.Version = SubConfirmed, now, "", l.ConsentVersion
				details["consented_at"] = r.ConsentedAt.UTC().Format(time.RFC3339)
				details["consent_source"] = r.ConsentSource
				in.Type, in.IP = EventImported, r.ConsentIP
				res.Imported++
			} else {
				if sub.Status != SubPending {
					sub.Status, sub.Since, sub.Nonce = SubPending, now, ""
				}
				sub.Version = l.ConsentVersion
				details["proof"] = "none"
				in.Type = EventImported
				res.Pending++
			}
			if err := setMember(tx, l.ID, rec.ID, sub.Status); err != nil {
				return err
			}
			if _, err := s.appendEvent(tx, now, dk, in); err != nil {
				return err
			}
			if sub.Status == SubPending && enqueue != nil && rec.Status == StatusActive && now.Sub(rec.OptinSentAt) >= OptinResendInterval {
				req := OptinRequest{Subscriber: rec.ID, Lists: []string{l.ID}, Nonce: roundNonce(rec, []string{l.ID})}
				sub.Nonce = req.Nonce
				rec.OptinSentAt = now
				if err := enqueue(tx, req); err != nil {
					return err
				}
			}
			rec.Updated = now
			if err := putJSON(bucket(tx, bucketSubscribers), []byte(rec.ID), rec); err != nil {
				return err
			}
		}
		return nil
	})
	return res, err
}
