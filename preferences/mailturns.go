package preferences

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// LinkMailInterval is the shortest time between two mails of one kind of link (a
// preference-centre link, a data link) to one subscriber: asking faster sends nothing.
const LinkMailInterval = 10 * time.Minute

// bucketMailTurns: kind \x00 subscriber id -> when they were last mailed that kind
// (Unix nanoseconds, big-endian) and the holder of that turn. Created when first written, so that stores made
// before it need nothing.
var bucketMailTurns = []byte("prefs.mail_turns")

// EmailIndex is the keyed blind index of an address's lookup key (see
// address.Normalise): what LookupEmailIndex takes, safe to queue as the plain address
// is not.
func (s *Store) EmailIndex(indexKey string) []byte { return s.keys.blindIndex(indexKey) }

// LookupEmailIndex returns the subscriber whose address has the blind index, if any.
func (s *Store) LookupEmailIndex(ctx context.Context, index []byte) (string, bool) {
	var id string
	_ = s.db.View(func(tx *bbolt.Tx) error {
		id = string(tx.Bucket(bucketEmailIndex).Get(index))
		return nil
	})
	return id, id != ""
}

// TakeMailTurn reports whether subscriber may be mailed kind now, at most once every
// every, and if so records that they are, for holder (the request, say a queue
// message id): the caller then sends. The same holder asking again (a retry after a
// failed send) is allowed again. The record is durable: a restart does not reset the
// interval.
func (s *Store) TakeMailTurn(ctx context.Context, kind, subscriber, holder string, every time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	key := []byte(kind + "\x00" + subscriber)
	ok := false
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketMailTurns)
		if err != nil {
			return err
		}
		now := s.now()
		if v := b.Get(key); len(v) >= 8 {
			if holder != "" && string(v[8:]) == holder {
				ok = true
				return nil
			}
			last := time.Unix(0, int64(binary.BigEndian.Uint64(v)))
			if now.Sub(last) < every {
				return nil
			}
		}
		ok = true
		return b.Put(key, append(binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano())), holder...))
	})
	if err != nil {
		return false, fmt.Errorf("mail turn %s %s: %w", kind, subscriber, err)
	}
	return ok, nil
}
