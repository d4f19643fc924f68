package preferences

import (
	"context"
	"encoding/binary"
	"time"

	"go.etcd.io/bbolt"
)

// The subscriptions by state are counted as they change, so that the totals are read
// at once and their history needs no replay of the ledger: every write of the
// membership index goes through setMembership, which also adds the change to the
// running totals and to the day's changes, in the same transaction.
//
// bucketStateCounts holds "total" → the totals now, and "d" + YYYYMMDD → that day's
// changes (UTC), each as three big-endian int64: pending, confirmed, unsubscribed.
var bucketStateCounts = []byte("prefs.state_counts")

var totalKey = []byte("total")

// countedStates are the subscription states counted, in their encoding's order.
var countedStates = [3]string{SubPending, SubConfirmed, SubUnsubscribed}

type stateCounts [3]int64

func (c *stateCounts) add(state string, n int64) {
	for i, s := range countedStates {
		if s == state {
			c[i] += n
		}
	}
}

func (c stateCounts) bytes() []byte {
	b := make([]byte, 24)
	for i, n := range c {
		binary.BigEndian.PutUint64(b[8*i:], uint64(n))
	}
	return b
}

func readCounts(b *bbolt.Bucket, key []byte) stateCounts {
	var c stateCounts
	if v := b.Get(key); len(v) == 24 {
		for i := range c {
			c[i] = int64(binary.BigEndian.Uint64(v[8*i:]))
		}
	}
	return c
}

func dayKey(t time.Time) []byte { return []byte("d" + t.UTC().Format("20060102")) }

// setMembership writes subscriber sub's state on list in the membership index (SubNone
// deletes it), from the state it had, and counts the change.
func setMembership(tx *bbolt.Tx, now time.Time, list, sub, from, to string) error {
	members := bucket(tx, bucketMembers)
	key := memberKey(list, sub)
	var err error
	if to == SubNone {
		err = members.Delete(key)
	} else {
		err = members.Put(key, []byte(to))
	}
	if err != nil || from == to {
		return err
	}
	counts := bucket(tx, bucketStateCounts)
	total, day := readCounts(counts, totalKey), readCounts(counts, dayKey(now))
	total.add(from, -1)
	total.add(to, 1)
	day.add(from, -1)
	day.add(to, 1)
	if err := counts.Put(totalKey, total.bytes()); err != nil {
		return err
	}
	return counts.Put(dayKey(now), day.bytes())
}

// buildStateCounts counts the membership index once for a store made before the
// counts were kept: the totals from then on are exact; the history starts there.
func buildStateCounts(tx *bbolt.Tx) error {
	counts, err := tx.CreateBucketIfNotExists(bucketStateCounts)
	if err != nil || counts.Get(totalKey) != nil {
		return err
	}
	var total stateCounts
	err = bucket(tx, bucketMembers).ForEach(func(_, v []byte) error {
		total.add(string(v), 1)
		return nil
	})
	if err != nil {
		return err
	}
	return counts.Put(totalKey, total.bytes())
}

// SubscriptionTotals counts the subscriptions by state (pending, confirmed,
// unsubscribed) over every list: a person on two lists counts twice.
func (s *Store) SubscriptionTotals(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		total := readCounts(bucket(tx, bucketStateCounts), totalKey)
		for i, st := range countedStates {
			out[st] = total[i]
		}
		return nil
	})
	return out, err
}

// DayTotals are the subscriptions by state at the end of a day (UTC; today: now).
type DayTotals struct {
	Day                              time.Time
	Pending, Confirmed, Unsubscribed int64
}

// SubscriptionHistory returns the subscriptions by state at the end of each of the
// last days days, oldest first: the totals now, less each later day's changes. Days
// before the counts were kept (an older store) show the totals of their start.
func (s *Store) SubscriptionHistory(ctx context.Context, days int) ([]DayTotals, error) {
	if days < 1 {
		days = 1
	}
	out := make([]DayTotals, days)
	err := s.db.View(func(tx *bbolt.Tx) error {
		counts := bucket(tx, bucketStateCounts)
		now := s.now().UTC()
		today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
		at := readCounts(counts, totalKey)
		for i := days - 1; i >= 0; i-- {
			day := today.AddDate(0, 0, i-(days-1))
			out[i] = DayTotals{Day: day, Pending: at[0], Confirmed: at[1], Unsubscribed: at[2]}
			changes := readCounts(counts, dayKey(day))
			for k := range at {
				at[k] -= changes[k] // the end of the day before
			}
		}
		return nil
	})
	return out, err
}
