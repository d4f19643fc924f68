package preferences

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/bbolt"
)

// MaxActivityEvents bounds the ledger events one LedgerActivity reads: a window busier than
// that is reported from its newest events only (LedgerActivity.Partial).
const MaxActivityEvents = 500_000

// LedgerActivity is what the ledger says happened to subscriptions over the last days.
type LedgerActivity struct {
	// Days are the window's days (UTC), oldest first.
	Days []DayActivity
	// Funnel counts, by the source the signups named, the signups of the window and
	// how many of them were confirmed since; the busiest source first.
	Funnel []SourceFunnel
	// Partial is set when the window held more than MaxActivityEvents events: the
	// older days and the funnel then count only the newest events.
	Partial bool
}

// DayActivity counts one day's events.
type DayActivity struct {
	Day time.Time // midnight UTC
	// Signups are signup events: every form or API signup, a repeated one too.
	Signups int64
	// Confirmed are confirmations of a double opt-in and imports with proof of consent.
	Confirmed int64
	// Withdrawn are events that ended subscriptions: unsubscribes, complaints, expiry
	// and erasure.
	Withdrawn int64
}

// SourceFunnel is the signup → confirmation funnel of one source.
type SourceFunnel struct {
	Source    string // as the signup gave it; empty when it gave none
	Signups   int64
	Confirmed int64 // of Signups, those confirmed for at least one of their lists
}

// activityEvent is the part of a ledger event LedgerActivity reads: nothing personal, so
// no data key is opened.
type activityEvent struct {
	At         string            `json:"at"`
	Type       string            `json:"type"`
	Subscriber string            `json:"subscriber"`
	Lists      []string          `json:"lists"`
	Details    map[string]string `json:"details"`
}

// RecentActivity reads the ledger backwards from its newest event until the events are
// older than the window of the last days days (today included), so its cost follows
// the window's events, not the ledger's size. A signup counts as confirmed when a
// later confirmation (within the window) confirmed one of its lists; each
// confirmation is credited to the latest signup before it.
func (s *Store) RecentActivity(ctx context.Context, days int) (LedgerActivity, error) {
	if days < 1 {
		days = 1
	}
	now := s.now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	from := today.AddDate(0, 0, -(days - 1))
	act := LedgerActivity{Days: make([]DayActivity, days)}
	for i := range act.Days {
		act.Days[i].Day = from.AddDate(0, 0, i)
	}
	funnel := map[string]*SourceFunnel{}
	confirmedLater := map[string]bool{} // subscriber \x00 list, confirmed after the events read so far
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketLedger).Cursor()
		read := 0
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if read%4096 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			if read == MaxActivityEvents {
				act.Partial = true
				return nil
			}
			read++
			if len(v) < 2*hashLen {
				return fmt.Errorf("ledger event %d: too short", binary.BigEndian.Uint64(k))
			}
			var e activityEvent
			if err := decodeJSON(v[2*hashLen:], &e); err != nil {
				return fmt.Errorf("ledger event %d: %w", binary.BigEndian.Uint64(k), err)
			}
			at, err := time.Parse(time.RFC3339Nano, e.At)
			if err != nil {
				return fmt.Errorf("ledger event %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if at.Before(from) {
				return nil
			}
			day := min(int(at.Sub(from)/(24*time.Hour)), days-1)
			d := &act.Days[day]
			switch e.Type {
			case EventSignup:
				d.Signups++
				src := e.Details["source"]
				f := funnel[src]
				if f == nil {
					f = &SourceFunnel{Source: src}
					funnel[src] = f
				}
				f.Signups++
				confirmed := false
				for _, l := range e.Lists {
					key := e.Subscriber + "\x00" + l
					if confirmedLater[key] {
						delete(confirmedLater, key)
						confirmed = true
					}
				}
				if confirmed {
					f.Confirmed++
				}
			case EventConfirmed:
				if len(e.Lists) > 0 {
					d.Confirmed++
				}
				for _, l := range e.Lists {
					confirmedLater[e.Subscriber+"\x00"+l] = true
				}
			case EventImported:
				if e.Details["consented_at"] != "" && len(e.Lists) > 0 {
					d.Confirmed++
				}
			case EventUnsubscribed, EventComplained, EventExpired, EventErased:
				if len(e.Lists) > 0 {
					d.Withdrawn++
				}
			}
		}
		return nil
	})
	if err != nil {
		return LedgerActivity{}, err
	}
	for _, f := range funnel {
		act.Funnel = append(act.Funnel, *f)
	}
	slices.SortFunc(act.Funnel, func(a, b SourceFunnel) int {
		return cmp.Or(cmp.Compare(b.Signups, a.Signups), cmp.Compare(a.Source, b.Source))
	})
	return act, nil
}
