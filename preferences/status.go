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
	return s.setStatus(ctx, in, TRestrict, EventRestricted)
}

// Unrestrict ends a restriction.
func (s *Store) Unrestrict(ctx context.Context, in StatusChange) error {
	return s.setStatus(ctx, in, TUnrestrict, EventUnrestricted)
}

// Block marks the subscriber blocked after a permanent delivery failure, with a
// bounced event: no mail goes to the address any more.
func (s *Store) Block(ctx context.Context, in StatusChange) error {
	return s.setStatus(ctx, in, TBounce, EventBounced)
}

// setStatus moves the subscriber through t with an event of type typ. A subscriber
// already where t leads is left alone. The change is mirrored (a withdrawal, or a
// restoration when the subscriber becomes active) before it returns.
func (s *Store) setStatus(ctx context.Context, in StatusChange, t Transition, typ string) error {
	var status string
	err := s.commit.update(ctx, func(tx *bbolt.Tx) error {
		rec, err := loadRecord(tx, in.Subscriber)
		if err != nil {
			return err
		}
		_, err = s.apply(tx, s.now().UTC(), rec, change{T: t, Lists: []string{},
			Event: eventInput{Type: typ, Actor: in.Actor, Details: in.Details}})
		status = rec.Status
		return err
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
