package preferences

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/bbolt"
)

// ErrStatus is returned when a subscriber's status does not allow a change, such as
// restricting an erased subscriber.
var ErrStatus = errors.New("not allowed in the subscriber's status")

// StatusChange moves a subscriber between statuses with one ledger event.
type StatusChange struct {
	Subscriber string
	Actor      string
	Details    map[string]string
}

// Restrict marks the subscriber restricted (GDPR Art. 18): they receive nothing, and
// campaigns already queued skip them, until Unrestrict. Restricting again changes
// nothing and records nothing.
func (s *Store) Restrict(ctx context.Context, in StatusChange) error {
	return s.setStatus(ctx, in, StatusRestricted, EventRestricted, StatusActive)
}

// Unrestrict ends a restriction.
func (s *Store) Unrestrict(ctx context.Context, in StatusChange) error {
	return s.setStatus(ctx, in, StatusActive, EventUnrestricted, StatusRestricted)
}

// Block marks the subscriber blocked after a permanent delivery failure, with a
// bounced event: no mail goes to the address any more.
func (s *Store) Block(ctx context.Context, in StatusChange) error {
	return s.setStatus(ctx, in, StatusBlocked, EventBounced, StatusActive, StatusRestricted)
}

// setStatus moves the subscriber from one of from to status with an event of type
// typ. A subscriber already in status is left alone. The change is mirrored (a
// withdrawal, or a restoration when the subscriber becomes active) before it returns.
func (s *Store) setStatus(ctx context.Context, in StatusChange, status, typ string, from ...string) error {
	err := s.commit.update(ctx, func(tx *bbolt.Tx) error {
		rec, err := loadRecord(tx, in.Subscriber)
		if err != nil {
			return err
		}
		if rec.Status == status {
			return nil
		}
		allowed := false
		for _, f := range from {
			allowed = allowed || rec.Status == f
		}
		if !allowed {
			return fmt.Errorf("subscriber %s is %s: %w", rec.ID, rec.Status, ErrStatus)
		}
		now := s.now().UTC()
		if _, err := s.appendEvent(tx, now, nil, eventInput{Type: typ, Subscriber: rec.ID, Actor: in.Actor,
			Details: in.Details}); err != nil {
			return err
		}
		rec.Status, rec.Updated = status, now
		return putJSON(bucket(tx, bucketSubscribers), []byte(rec.ID), rec)
	})
	if err != nil || s.mirror == nil {
		return err
	}
	if status == StatusActive {
		err = s.mirror.Restore(ctx, in.Subscriber, nil)
	} else {
		err = s.mirror.Withdraw(ctx, in.Subscriber, nil)
	}
	if err != nil {
		return fmt.Errorf("mirror status %s: %w", status, err)
	}
	return nil
}
