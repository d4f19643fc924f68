package preferences

import (
	"bytes"
	"context"

	"go.etcd.io/bbolt"

	"consentmail/preferences/address"
)

// SubscriberQuery filters Subscribers. Status is a subscriber status (active,
// restricted, erased, blocked) or, with or without List, a subscription status
// (pending, confirmed, unsubscribed). After is the cursor: a subscriber id.
type SubscriberQuery struct {
	List   string
	Status string
	After  string
	Limit  int
}

func isSubscriptionStatus(s string) bool {
	return s == SubPending || s == SubConfirmed || s == SubUnsubscribed
}

// Subscribers returns a page of opened subscribers in id (creation) order and the
// cursor of the next page. It reads one page of keys at a time, so it is as fast on
// the millionth subscriber as on the first.
func (s *Store) Subscribers(ctx context.Context, q SubscriberQuery) ([]*Subscriber, string, error) {
	if q.Limit <= 0 || q.Limit > 1000 {
		q.Limit = 100
	}
	var out []*Subscriber
	next := ""
	err := s.db.View(func(tx *bbolt.Tx) error {
		out = out[:0]
		subs := bucket(tx, bucketSubscribers)
		keep := func(id []byte) (bool, error) {
			var rec subRecord
			if err := getJSON(subs, id, &rec); err != nil {
				return false, err
			}
			switch {
			case q.Status == "":
			case isSubscriptionStatus(q.Status):
				ok := false
				for _, x := range rec.Subs {
					ok = ok || x.Status == q.Status && (q.List == "" || x.List == q.List)
				}
				if !ok {
					return false, nil
				}
			case rec.Status != q.Status:
				return false, nil
			}
			sub, err := s.open(tx, &rec)
			if err != nil {
				return false, err
			}
			out = append(out, sub)
			return true, nil
		}
		var c *bbolt.Cursor
		var prefix []byte
		if q.List != "" {
			c, prefix = bucket(tx, bucketMembers).Cursor(), []byte(q.List+"\x00")
		} else {
			c = subs.Cursor()
		}
		k, _ := c.Seek(append(append([]byte{}, prefix...), q.After...))
		if q.After != "" && bytes.Equal(k, append(append([]byte{}, prefix...), q.After...)) {
			k, _ = c.Next()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if len(out) == q.Limit {
				next = out[len(out)-1].ID
				return nil
			}
			if _, err := keep(k[len(prefix):]); err != nil {
				return err
			}
		}
		return nil
	})
	return out, next, err
}

// SeesPersonalData reports whether role may read a subscriber's name and attribute
// values, and ask for full addresses (which is logged): admin and dpo. Marketers and
// viewers never do, through any route.
func SeesPersonalData(role string) bool { return role == RoleAdmin || role == RoleDPO }

// Withheld stands for a value the reader may not see.
const Withheld = "***"

// Mask is the one masking decision for a subscriber shown to a reader of role who
// has not asked (or may not ask) for it unmasked: the address becomes
// a***@example.org, and unless the role sees personal data, the name and every
// attribute value become Withheld (the keys stay: templates name them). Every view
// of a subscriber in the admin API and in template previews goes through it.
func (s *Subscriber) Mask(role string) {
	if s.Email != "" {
		s.Email = address.Mask(s.Email)
	}
	if SeesPersonalData(role) {
		return
	}
	if s.Name != "" {
		s.Name = Withheld
	}
	for k, v := range s.Attributes {
		s.Attributes[k] = withhold(v)
	}
}

// withhold replaces every value inside v by Withheld, keeping its shape (the keys of
// objects, the length of lists), so that a template ranging over an attribute still
// runs on a masked preview.
func withhold(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = withhold(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = withhold(x)
		}
		return out
	}
	return Withheld
}

// RecordUnmasked writes one unmasked event per subscriber whose address an admin
// or DPO read in full; actor names the API key.
func (s *Store) RecordUnmasked(ctx context.Context, subscribers []string, actor, reason string) error {
	if len(subscribers) == 0 {
		return nil
	}
	return s.commit.update(ctx, func(tx *bbolt.Tx) error {
		now := s.now().UTC()
		for _, id := range subscribers {
			if _, err := s.appendEvent(tx, now, nil, eventInput{Type: EventUnmasked, Subscriber: id, Actor: actor,
				Details: map[string]string{"via": reason}}); err != nil {
				return err
			}
		}
		return nil
	})
}
