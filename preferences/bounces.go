package preferences

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.etcd.io/bbolt"
)

// Soft bounces: the third transient failure within SoftBounceWindow blocks the
// address; older ones stop counting.
const (
	SoftBounceLimit  = 3
	SoftBounceWindow = 30 * 24 * time.Hour
)

// BounceInput is one delivery failure for a subscriber: from a delivery-status report
// (Source "dsn") or a relay's synchronous reply at send time (Source "smtp").
type BounceInput struct {
	Subscriber string
	Campaign   string // may be empty
	Permanent  bool   // 5.x.x
	Status     string // enhanced status code such as 5.1.1
	Action     string // failed, delayed
	Source     string // dsn, smtp
	// Personal are the report's details that name or describe the person (recipient,
	// diagnostic text, reporting MTA): sealed with the subscriber's data key, shown in
	// the export, unreadable after an erasure.
	Personal map[string]string
}

// BounceResult tells what a bounce did.
type BounceResult struct {
	Blocked bool // the subscriber became blocked
	Soft    int  // transient failures counted in the window, this one included
}

// RecordBounce records a delivery failure with a bounced event. A permanent one
// blocks an active subscriber (TBounce); a transient one is counted, and the
// SoftBounceLimit-th within SoftBounceWindow blocks. A restricted or already blocked
// subscriber is only recorded. An erased subscriber gives ErrNotFound: nothing of
// them may be written again.
//
// The campaign worker calls it too, with Source "smtp", for a relay's 5xx to a
// recipient at send time.
func (s *Store) RecordBounce(ctx context.Context, in BounceInput) (BounceResult, error) {
	var res BounceResult
	err := s.commit.update(ctx, func(tx *bbolt.Tx) error {
		res = BounceResult{}
		now := s.now().UTC()
		rec, err := loadLive(tx, in.Subscriber)
		if err != nil {
			return err
		}
		dk, err := s.dataKey(tx, rec.ID)
		if err != nil {
			return err
		}
		details := map[string]string{"kind": "hard", "status": in.Status, "action": in.Action, "source": in.Source}
		if in.Campaign != "" {
			details["campaign"] = in.Campaign
		}
		block := in.Permanent
		if !in.Permanent {
			details["kind"] = "soft"
			times, err := s.softBounces(tx, rec.ID, now)
			if err != nil {
				return err
			}
			times = append(times, now)
			res.Soft = len(times)
			details["soft_bounces"] = strconv.Itoa(len(times))
			if block = len(times) >= SoftBounceLimit; block {
				err = bucket(tx, bucketSoftBounces).Delete([]byte(rec.ID))
			} else {
				err = putJSON(bucket(tx, bucketSoftBounces), []byte(rec.ID), times)
			}
			if err != nil {
				return err
			}
		}
		ev := eventInput{Type: EventBounced, Subscriber: rec.ID, Lists: []string{}, Details: details, Personal: in.Personal}
		if block && rec.Status == StatusActive {
			details["blocked"] = "true"
			done, err := s.apply(tx, now, rec, change{T: TBounce, Lists: []string{}, DK: dk, Event: ev})
			res.Blocked = done.Status
			return err
		}
		// Not a change of state (transient, restricted, already blocked), but a fact
		// the person may ask about and the address's history keeps.
		details["blocked"] = "false"
		_, err = s.appendEvent(tx, now, dk, ev)
		return err
	})
	if err == nil && res.Blocked && s.mirror != nil {
		if err := s.mirror.Withdraw(ctx, in.Subscriber, nil); err != nil {
			return res, fmt.Errorf("mirror status %s: %w", StatusBlocked, err)
		}
	}
	return res, err
}

// softBounces returns the subscriber's transient failures still in the window at now.
func (s *Store) softBounces(tx *bbolt.Tx, id string, now time.Time) ([]time.Time, error) {
	var times []time.Time
	if err := getJSON(bucket(tx, bucketSoftBounces), []byte(id), &times); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	kept := times[:0]
	for _, t := range times {
		if now.Sub(t) < SoftBounceWindow {
			kept = append(kept, t)
		}
	}
	return kept, nil
}

// ComplaintInput is an abuse report (RFC 5965) about a message sent to a subscriber.
type ComplaintInput struct {
	Subscriber   string
	Campaign     string
	FeedbackType string // abuse, fraud, …
	UserAgent    string // the reporting provider's software
	// Personal: the report's details about the person (original recipient, source
	// IP), sealed with their data key.
	Personal map[string]string
}

// RecordComplaint withdraws every consent of the subscriber who reported a message
// as spam (TComplaint) and records a complained event, also when nothing was left
// to withdraw. It returns the lists it ended. An erased subscriber gives ErrNotFound.
func (s *Store) RecordComplaint(ctx context.Context, in ComplaintInput) ([]string, error) {
	var changed, scope []string
	err := s.commit.update(ctx, func(tx *bbolt.Tx) error {
		changed, scope = nil, nil
		now := s.now().UTC()
		rec, err := loadLive(tx, in.Subscriber)
		if err != nil {
			return err
		}
		dk, err := s.dataKey(tx, rec.ID)
		if err != nil {
			return err
		}
		for _, x := range rec.Subs {
			scope = append(scope, x.List)
		}
		details := map[string]string{"method": "complaint", "feedback_type": in.FeedbackType}
		if in.UserAgent != "" {
			details["user_agent"] = in.UserAgent
		}
		if in.Campaign != "" {
			details["campaign"] = in.Campaign
		}
		done, err := s.apply(tx, now, rec, change{T: TComplaint, DK: dk, LogAlways: true,
			Event: eventInput{Type: EventComplained, Details: details, Personal: in.Personal}})
		changed = done.Changed
		return err
	})
	if err != nil {
		return changed, err
	}
	return changed, s.mirrorWithdrawal(ctx, in.Subscriber, scope)
}

// QuarantineTTL is how long inbound mail that could not be parsed or matched is kept.
const QuarantineTTL = 30 * 24 * time.Hour

// QuarantineInput is an inbound message that could not be parsed or matched.
type QuarantineInput struct {
	Received   time.Time
	RemoteAddr string
	From       string
	To         []string
	Reason     string
	Raw        []byte
}

// QuarantinedMessage is a kept message, opened.
type QuarantinedMessage struct {
	ID         string    `json:"id"`
	Received   time.Time `json:"received_at"`
	Expires    time.Time `json:"expires_at"`
	RemoteAddr string    `json:"remote_addr"`
	From       string    `json:"mail_from"`
	To         []string  `json:"rcpt_to"`
	Reason     string    `json:"reason"`
	Message    string    `json:"message"`
}

// Quarantine keeps m, sealed (it may hold anyone's personal data), for QuarantineTTL.
func (s *Store) Quarantine(ctx context.Context, m QuarantineInput) (string, error) {
	var id string
	err := s.commit.update(ctx, func(tx *bbolt.Tx) error {
		b := bucket(tx, bucketQuarantine)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		now := s.now().UTC()
		key := make([]byte, 16)
		binary.BigEndian.PutUint64(key, uint64(now.UnixNano()))
		binary.BigEndian.PutUint64(key[8:], seq)
		id = fmt.Sprintf("%x", key)
		raw, err := json.Marshal(QuarantinedMessage{ID: id, Received: now, Expires: now.Add(QuarantineTTL),
			RemoteAddr: m.RemoteAddr, From: m.From, To: m.To, Reason: m.Reason, Message: string(m.Raw)})
		if err != nil {
			return err
		}
		return b.Put(key, seal(s.keys.quarantine, raw, key))
	})
	return id, err
}

// QuarantinedMessages returns the kept messages, oldest first, opened.
func (s *Store) QuarantinedMessages(ctx context.Context) ([]QuarantinedMessage, error) {
	out := []QuarantinedMessage{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketQuarantine).ForEach(func(k, v []byte) error {
			raw, err := open(s.keys.quarantine, v, k)
			if err != nil {
				return fmt.Errorf("quarantined message %x: %w", k, err)
			}
			var m QuarantinedMessage
			if err := json.Unmarshal(raw, &m); err != nil {
				return err
			}
			out = append(out, m)
			return nil
		})
	})
	return out, err
}

// ExpireQuarantine deletes the kept messages older than QuarantineTTL and returns
// how many it deleted.
func (s *Store) ExpireQuarantine(ctx context.Context) (int, error) {
	n := 0
	err := s.commit.update(ctx, func(tx *bbolt.Tx) error {
		n = 0
		cutoff := uint64(s.now().Add(-QuarantineTTL).UnixNano())
		c := bucket(tx, bucketQuarantine).Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) < cutoff; k, _ = c.Next() {
			if err := c.Delete(); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}
