package preferences

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"slices"

	"go.etcd.io/bbolt"
)

// Recipient is one person a campaign may be sent to, opened for rendering: the lists
// of the campaign they had confirmed when they were read.
type Recipient struct {
	ID         string          `json:"id"`
	Email      string          `json:"email"`
	Name       string          `json:"name,omitempty"`
	Locale     string          `json:"locale,omitempty"`
	Attributes json.RawMessage `json:"attributes,omitempty"`
	Lists      []string        `json:"lists"`
	Tracking   bool            `json:"tracking,omitempty"`
}

// AudienceCursor is where a walk of an audience stopped: the index of the list being
// walked and the last member key read in it. The zero value starts at the beginning.
type AudienceCursor struct {
	List  int    `json:"list"`
	After string `json:"after,omitempty"`
}

// Audience reads up to max recipients of the lists from cur on, in one read
// transaction, and returns them with the cursor to continue from; done is true when
// the walk has reached the end. The walk goes list by list in stored order, so memory
// stays flat however large the lists are: a person is returned from the first of the
// lists they have confirmed, and skipped in the later ones. Only active subscribers
// with a confirmed subscription are returned. With data, each recipient comes with
// their address, name, locale, attributes and tracking consent, opened with their data
// key; without, with their id and the lists they are confirmed on only, read from the
// indexes (nothing decoded, nothing opened: for jobs whose claim fills the rest in,
// SendableTx).
func (s *Store) Audience(ctx context.Context, lists []string, cur AudienceCursor, max int, data bool) ([]Recipient, AudienceCursor, bool, error) {
	var out []Recipient
	done := false
	err := s.db.View(func(tx *bbolt.Tx) error {
		out = out[:0]
		members := bucket(tx, bucketMembers)
		kc := newKeyCache(s, tx)
		c := members.Cursor()
		// Lookups go through cursors of their own: c walks the list.
		look, subs, notActive := SeekerOf(members), SeekerOf(bucket(tx, bucketSubscribers)), SeekerOf(bucket(tx, bucketNotActive))
		for cur.List < len(lists) {
			if err := ctx.Err(); err != nil {
				return err
			}
			prefix := []byte(lists[cur.List] + "\x00")
			var k, v []byte
			if cur.After == "" {
				k, v = c.Seek(prefix)
			} else {
				k, v = c.Seek([]byte(cur.After))
				if bytes.Equal(k, []byte(cur.After)) {
					k, v = c.Next()
				}
			}
			for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				if len(out) >= max {
					return nil
				}
				cur.After = string(k)
				if string(v) != SubConfirmed {
					continue
				}
				id := string(k[len(prefix):])
				if confirmedEarlier(look, lists[:cur.List], id) {
					continue
				}
				if !data {
					if r, ok := recipientID(look, notActive, id, lists); ok {
						out = append(out, r)
					}
					continue
				}
				r, ok, err := s.recipient(look, notActive, subs, kc, id, lists)
				if err != nil {
					return err
				}
				if ok {
					out = append(out, r)
				}
			}
			cur.List, cur.After = cur.List+1, ""
		}
		done = true
		return nil
	})
	return out, cur, done, err
}

// recipientID is a campaign's recipient without data: their id and the lists they are
// confirmed on, if their status is active.
func recipientID(members, notActive Seeker, id string, lists []string) (Recipient, bool) {
	confirmed, ok := confirmedOn(members, notActive, id, lists, true)
	return Recipient{ID: id, Lists: confirmed}, ok
}

// confirmedOn is the rule of who may receive a campaign to lists, read from the indexes
// apply keeps with the record: subscriber id's status is active and they are
// confirmed on one of the lists. With all, it returns every list of lists they are
// confirmed on; without, it stops at the first.
func confirmedOn(members, notActive Seeker, id string, lists []string, all bool) ([]string, bool) {
	var buf [160]byte
	if statusOf(notActive, append(buf[:0], id...)) != StatusActive {
		return nil, false
	}
	var confirmed []string
	for _, l := range lists {
		key := append(append(append(buf[:0], l...), 0), id...)
		if string(members.Get(key)) != SubConfirmed {
			continue
		}
		if !all {
			return nil, true
		}
		confirmed = append(confirmed, l)
	}
	return confirmed, len(confirmed) > 0
}

// confirmedEarlier reports whether sub is confirmed in one of the lists walked before.
func confirmedEarlier(members Seeker, earlier []string, sub string) bool {
	for _, l := range earlier {
		if string(members.Get([]byte(l+"\x00"+sub))) == SubConfirmed {
			return true
		}
	}
	return false
}

// Why a member of a campaign's lists gets nothing from it: Exclusion's answers.
const (
	ExcludedErased       = "erased"       // erased (GDPR art. 17) while on one of the lists
	ExcludedUnsubscribed = "unsubscribed" // left every one of the lists they were on
	ExcludedRestricted   = "restricted"   // confirmed on a list, but restricted (GDPR art. 18)
	ExcludedBlocked      = "blocked"      // confirmed on a list, but their address hard-bounced
)

// Exclusion says why a subscriber of status, with the subscriptions subs (list and
// state pairs), gets nothing from a campaign to lists: one of the Excluded reasons,
// or "" when they get it (an active subscriber with a confirmed subscription to one
// of the lists: the rule Audience and Consenting apply) or were never more than
// pending. The first reason that applies is given, in the order of the constants.
func Exclusion(status string, subs iter.Seq2[string, string], lists []string) string {
	confirmed, left := false, false
	for list, state := range subs {
		if !slices.Contains(lists, list) {
			continue
		}
		switch state {
		case SubConfirmed:
			confirmed = true
		case SubUnsubscribed:
			left = true
		}
	}
	switch {
	case status == StatusErased && (confirmed || left):
		return ExcludedErased
	case !confirmed && left:
		return ExcludedUnsubscribed
	case !confirmed:
		return ""
	case status == StatusRestricted:
		return ExcludedRestricted
	case status == StatusBlocked:
		return ExcludedBlocked
	}
	return ""
}

// CountExclusions counts the members of lists who get nothing from a campaign to
// them, by Exclusion's reasons, each person once (under the first of the lists they
// were ever confirmed on or left). It walks the lists' membership index and reads of
// each member only index entries (their status from the not-active index), in one
// read transaction: nothing decoded, nothing opened.
func (s *Store) CountExclusions(ctx context.Context, lists []string) (map[string]int64, error) {
	out := map[string]int64{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		members := bucket(tx, bucketMembers)
		look, notActive := SeekerOf(members), SeekerOf(bucket(tx, bucketNotActive))
		n := 0
		for i, l := range lists {
			prefix := []byte(l + "\x00")
			c := members.Cursor()
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				if n++; n%4096 == 0 && ctx.Err() != nil {
					return ctx.Err()
				}
				if st := string(v); st != SubConfirmed && st != SubUnsubscribed {
					continue // never more than pending here: nobody to exclude
				}
				id := k[len(prefix):]
				if countedEarlier(look, lists[:i], id) {
					continue
				}
				// What Exclusion looks at, from the indexes: the status, and the states
				// of the subscriptions to the campaign's lists.
				states := func(yield func(string, string) bool) {
					for _, l := range lists {
						if st := look.Get(append([]byte(l+"\x00"), id...)); st != nil && !yield(l, string(st)) {
							return
						}
					}
				}
				if why := Exclusion(statusOf(notActive, id), states, lists); why != "" {
					out[why]++
				}
			}
		}
		return nil
	})
	return out, err
}

// notActiveKey is a subscriber's key in the not-active index.
func notActiveKey(status string, id []byte) []byte {
	return append([]byte(status+"\x00"), id...)
}

// moveNotActive keeps the not-active index as a subscriber goes from one status to
// another (apply's, in its transaction).
func moveNotActive(tx *bbolt.Tx, id, from, to string) error {
	b := bucket(tx, bucketNotActive)
	if from != StatusActive && from != to {
		if err := b.Delete(notActiveKey(from, []byte(id))); err != nil {
			return err
		}
	}
	if to != StatusActive {
		return b.Put(notActiveKey(to, []byte(id)), nil)
	}
	return nil
}

// buildNotActive creates the not-active index of a store made before it existed,
// from every subscriber's status, once.
func buildNotActive(tx *bbolt.Tx) error {
	if tx.Bucket(bucketNotActive) != nil {
		return nil
	}
	b, err := tx.CreateBucket(bucketNotActive)
	if err != nil {
		return err
	}
	return bucket(tx, bucketSubscribers).ForEach(func(k, v []byte) error {
		var rec consentView
		if err := decodeJSON(v, &rec); err != nil {
			return fmt.Errorf("subscriber %s: %w", k, err)
		}
		if rec.Status == StatusActive {
			return nil
		}
		return b.Put(notActiveKey(rec.Status, k), nil)
	})
}

// statusOf reads a subscriber's status from the not-active index. The keys it looks
// up are built in a buffer of its own: it runs for every recipient of every claim.
func statusOf(notActive Seeker, id []byte) string {
	var buf [96]byte
	for _, st := range []string{StatusRestricted, StatusBlocked, StatusErased} {
		key := append(append(append(buf[:0], st...), 0), id...)
		if notActive.Get(key) != nil {
			return st
		}
	}
	return StatusActive
}

// countedEarlier reports whether sub was confirmed on or left one of the earlier
// lists: CountExclusions looked at them there.
func countedEarlier(members Seeker, earlier []string, sub []byte) bool {
	for _, l := range earlier {
		if st := string(members.Get(append([]byte(l+"\x00"), sub...))); st == SubConfirmed || st == SubUnsubscribed {
			return true
		}
	}
	return false
}

// recipient opens one subscriber for a campaign over lists: recipientID's rule, read
// from the indexes, then the personal data a message needs from the record.
func (s *Store) recipient(members, notActive, subs Seeker, kc *keyCache, id string, lists []string) (Recipient, bool, error) {
	r, ok := recipientID(members, notActive, id, lists)
	if !ok {
		return r, false, nil
	}
	var rec personalView
	if err := getJSON(subs, []byte(id), &rec); err != nil {
		return Recipient{}, false, fmt.Errorf("subscriber %s: %w", id, err)
	}
	r.Locale, r.Tracking = rec.Locale, rec.Tracking
	dk, err := kc.get(id)
	if err != nil {
		return r, false, err
	}
	// The address and the name are opened into one buffer and made one string: a
	// recipient's fields are read for every message of a campaign.
	both, err := dk.appendOpen(kc.scratch[:0], rec.Email, fieldEmail)
	if err != nil {
		return r, false, fmt.Errorf("open subscriber %s: %w", id, err)
	}
	at := len(both)
	if both, err = dk.appendOpen(both, rec.Name, fieldName); err != nil {
		return r, false, fmt.Errorf("open subscriber %s: %w", id, err)
	}
	kc.scratch = both
	opened := string(both)
	r.Email, r.Name = opened[:at], opened[at:]
	if r.Attributes, err = dk.open(rec.Attrs, fieldAttributes); err != nil {
		return r, false, fmt.Errorf("open subscriber %s: %w", id, err)
	}
	return r, true, nil
}

// personalView is what a campaign message needs of a subscriber's record (subRecord's
// fields of the same names): decoding only these skips the record's times and
// subscriptions, which the indexes answer for.
type personalView struct {
	Email    []byte `json:"em"`
	Name     []byte `json:"nm,omitempty"`
	Attrs    []byte `json:"at,omitempty"`
	Locale   string `json:"lc,omitempty"`
	Tracking bool   `json:"tr,omitempty"`
}

// CountAudience counts the people with a confirmed subscription to at least one of
// the lists, each once. It reads membership only, so it is quick but also counts
// people whose subscriber record forbids sending (restricted, blocked).
func (s *Store) CountAudience(ctx context.Context, lists []string) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bbolt.Tx) error {
		members := bucket(tx, bucketMembers)
		c, look := members.Cursor(), SeekerOf(members)
		for i, l := range lists {
			prefix := []byte(l + "\x00")
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				if n%4096 == 0 && ctx.Err() != nil {
					return ctx.Err()
				}
				if string(v) == SubConfirmed && !confirmedEarlier(look, lists[:i], string(k[len(prefix):])) {
					n++
				}
			}
		}
		return nil
	})
	return n, err
}

// consentView is the part of a subRecord that building the not-active index reads:
// decoding only it skips the sealed fields' base64 and the timestamps.
type consentView struct {
	Status string `json:"st"`
	Subs   []struct {
		List   string `json:"l"`
		Status string `json:"s"`
	} `json:"subs"`
}

// Consenting reports for each recipient whether they may receive a campaign to their
// lists now: their status is active and they are confirmed on one of the lists. It
// reads the indexes apply keeps in the same transaction as the record (the membership
// and not-active indexes), nothing decoded, so a worker re-checks consent before every
// send group at the cost of a few lookups per recipient.
func (s *Store) Consenting(ctx context.Context, rs []Recipient) ([]bool, error) {
	var ok []bool
	err := s.db.View(func(tx *bbolt.Tx) error {
		ok = s.ConsentingTx(tx, rs)
		return nil
	})
	return ok, err
}

// ConsentingTx is Consenting inside the caller's read or write transaction.
func (s *Store) ConsentingTx(tx *bbolt.Tx, rs []Recipient) []bool {
	ok := make([]bool, len(rs))
	members, notActive := SeekerOf(bucket(tx, bucketMembers)), SeekerOf(bucket(tx, bucketNotActive))
	for i, r := range rs {
		_, ok[i] = confirmedOn(members, notActive, r.ID, r.Lists, false)
	}
	return ok
}

// SendableTx tells, inside the caller's transaction, which of rs may receive a campaign
// to their lists now (Consenting's rule), and fills in the personal data of those
// queued without it (an id and lists only: the embedded queue's jobs) from the book as
// it is now: address, name, locale, attributes, tracking consent, and which of the
// lists they are still confirmed on. A job then never holds personal data, neither in
// the queue nor in the copies of it that freed pages of the data file keep.
func (s *Store) SendableTx(tx *bbolt.Tx, rs []Recipient) ([]bool, error) {
	ok := make([]bool, len(rs))
	var kc *keyCache
	subs, members, notActive := SeekerOf(bucket(tx, bucketSubscribers)), SeekerOf(bucket(tx, bucketMembers)), SeekerOf(bucket(tx, bucketNotActive))
	for i := range rs {
		if rs[i].Email != "" {
			_, ok[i] = confirmedOn(members, notActive, rs[i].ID, rs[i].Lists, false)
			continue
		}
		if kc == nil {
			kc = newKeyCache(s, tx)
		}
		r, yes, err := s.recipient(members, notActive, subs, kc, rs[i].ID, rs[i].Lists)
		if err != nil {
			return nil, err
		}
		if ok[i] = yes; yes {
			rs[i] = r
		}
	}
	return ok, nil
}

// KeptTx reports, inside the caller's transaction, which subscribers still have
// their data (not erased): a lookup of their data key, no decoding.
func (s *Store) KeptTx(tx *bbolt.Tx, ids []string) []bool {
	out := make([]bool, len(ids))
	keys := bucket(tx, bucketDataKeys)
	for i, id := range ids {
		out[i] = keys.Get([]byte(id)) != nil
	}
	return out
}
