package preferences

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// ListCounts is how many subscriptions a list has in each subscription status.
// They come from the membership index alone: a restricted or blocked subscriber's
// confirmed subscription still counts as confirmed (see CountAudience).
type ListCounts struct {
	Pending      int64 `json:"pending"`
	Confirmed    int64 `json:"confirmed"`
	Unsubscribed int64 `json:"unsubscribed"`
}

// Total is every subscription the list has, whatever its status.
func (c ListCounts) Total() int64 { return c.Pending + c.Confirmed + c.Unsubscribed }

// CountMembers counts the subscriptions of each list by status, reading the
// membership index (one key per subscription, its status as value): nothing is
// decrypted, so it costs one cursor walk over the lists' members. A list with no
// member, or no list of that id, counts zero.
func (s *Store) CountMembers(ctx context.Context, lists ...string) (map[string]ListCounts, error) {
	out := make(map[string]ListCounts, len(lists))
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := bucket(tx, bucketMembers).Cursor()
		for _, l := range lists {
			var n ListCounts
			prefix := []byte(l + "\x00")
			i := 0
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				if i++; i%4096 == 0 && ctx.Err() != nil {
					return ctx.Err()
				}
				switch string(v) {
				case SubPending:
					n.Pending++
				case SubConfirmed:
					n.Confirmed++
				case SubUnsubscribed:
					n.Unsubscribed++
				}
			}
			out[l] = n
		}
		return nil
	})
	return out, err
}

// LedgerSeqBefore returns the sequence number of the last ledger event stamped
// before at (0 when there is none), for a reader starting at a time: pass it as
// LedgerQuery.After. Events are stamped in sequence order, so it is a binary search
// reading a few dozen events however long the ledger is.
func (s *Store) LedgerSeqBefore(ctx context.Context, at time.Time) (uint64, error) {
	var found uint64
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketLedger)
		k, _ := b.Cursor().Last()
		if k == nil {
			return nil
		}
		lo, hi := uint64(1), binary.BigEndian.Uint64(k) // the answer is in [lo-1, hi]
		for lo <= hi {
			mid := lo + (hi-lo)/2
			t, err := eventTime(b, mid)
			if err != nil {
				return err
			}
			if t.Before(at) {
				found, lo = mid, mid+1
			} else {
				hi = mid - 1
			}
		}
		return nil
	})
	return found, err
}

// eventTime reads the time of ledger event seq without opening anything else.
func eventTime(b *bbolt.Bucket, seq uint64) (time.Time, error) {
	v := b.Get(seqKey(seq))
	if len(v) < 2*hashLen {
		return time.Time{}, fmt.Errorf("ledger event %d: missing or too short", seq)
	}
	var body struct {
		At string `json:"at"`
	}
	if err := decodeJSON(v[2*hashLen:], &body); err != nil {
		return time.Time{}, fmt.Errorf("ledger event %d: %w", seq, err)
	}
	return time.Parse(time.RFC3339Nano, body.At)
}
