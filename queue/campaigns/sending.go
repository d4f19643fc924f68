package campaigns

import (
	"context"
	"slices"
	"sync"
	"time"

	"consentmail/preferences"
)

// WithdrawalWait bounds how long a withdrawal of consent waits for the sends already
// under way to that person (claimed before the withdrawal was committed) to settle.
// A worker never starts writing a group to a relay later than sendBy after claiming
// it, which is well within this bound: the withdrawal answers after every message it
// could not stop has been handed to the relay.
const WithdrawalWait = time.Second

// sendBy is how long after its claim a worker may still start writing a send group to
// a relay; a group not started by then is released and claimed again (consent read
// anew). It is shorter than WithdrawalWait by a margin for clocks of different hosts
// and for the relay's reading of what was written.
const sendBy = WithdrawalWait / 2

// Sending is the register of the sends under way in one process: which subscribers a
// worker has claimed and not yet recorded. It is the preferences.WithdrawalMirror of a
// process with the embedded queue: a withdrawal, once committed, waits (at most
// WithdrawalWait) until no send claimed before it is still under way, so that when
// the withdrawal answers, every later message to that person is stopped. The
// BoltTracker holds a subscriber here before it reads their consent, which is what
// makes that true: a claim either sees the withdrawal or is seen by it.
//
// It is safe for concurrent use. The zero value is not usable; use NewSending.
type Sending struct {
	wait time.Duration
	now  func() time.Time

	mu      sync.Mutex
	held    map[string][]heldBy // subscriber -> the campaigns sending to them
	changed chan struct{}       // closed at each release
}

// heldBy is one campaign's hold on a subscriber: mostly the only one, so a short
// slice rather than a map of its own per subscriber.
type heldBy struct {
	campaign string
	until    time.Time // the claim's deadline
}

// NewSending returns an empty register whose withdrawals wait at most wait
// (WithdrawalWait when 0).
func NewSending(wait time.Duration, now func() time.Time) *Sending {
	if wait <= 0 {
		wait = WithdrawalWait
	}
	return &Sending{wait: wait, now: now, held: map[string][]heldBy{}, changed: make(chan struct{})}
}

// heldIndex is the index of campaign's hold in hs, -1 when it holds none.
func heldIndex(hs []heldBy, campaign string) int {
	return slices.IndexFunc(hs, func(h heldBy) bool { return h.campaign == campaign })
}

// hold records that the subscribers of rs are being sent campaign until the claim's
// deadline.
func (s *Sending) hold(campaign string, until time.Time, rs []preferences.Recipient) {
	s.mu.Lock()
	for _, r := range rs {
		hs := s.held[r.ID]
		if i := heldIndex(hs, campaign); i >= 0 {
			hs[i].until = until
		} else {
			s.held[r.ID] = append(hs, heldBy{campaign, until})
		}
	}
	s.mu.Unlock()
}

// release ends the holds of campaign on subs (those not held are ignored).
func (s *Sending) release(campaign string, subs ...string) {
	s.mu.Lock()
	released := false
	for _, sub := range subs {
		hs := s.held[sub]
		i := heldIndex(hs, campaign)
		if i < 0 {
			continue
		}
		released = true
		if hs = slices.Delete(hs, i, i+1); len(hs) == 0 {
			delete(s.held, sub)
		} else {
			s.held[sub] = hs
		}
	}
	if released {
		close(s.changed)
		s.changed = make(chan struct{})
	}
	s.mu.Unlock()
}

// busy reports whether subscriber has a hold whose deadline is ahead, and the channel
// closed at the next release.
func (s *Sending) busy(subscriber string) (bool, <-chan struct{}) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range s.held[subscriber] {
		if h.until.After(now) {
			return true, s.changed
		}
	}
	return false, nil
}

// Withdraw waits until no send to subscriber claimed before the call is under way, or
// WithdrawalWait has passed, or ctx ends. The withdrawal itself is in the consent book,
// which the BoltTracker reads: lists make no difference here.
func (s *Sending) Withdraw(ctx context.Context, subscriber string, lists []string) error {
	if lists != nil && len(lists) == 0 {
		return nil
	}
	t := time.NewTimer(s.wait)
	defer t.Stop()
	for {
		busy, ch := s.busy(subscriber)
		if !busy {
			return nil
		}
		select {
		case <-ch:
		case <-t.C:
			return nil // the claim outlived any send it could start: see sendBy
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Restore does nothing: a restored consent is read from the consent book.
func (s *Sending) Restore(ctx context.Context, subscriber string, lists []string) error { return nil }
