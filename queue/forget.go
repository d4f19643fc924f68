package queue

import (
	"context"
	"fmt"
)

// Forgetting is how the owner of one kind of message forgets a subscriber in it
// (GDPR erasure): only the package that writes a body reads it.
type Forgetting struct {
	// Forget returns the message's new body and true when it concerned the subscriber
	// (a nil body drops the message), or false to leave it.
	Forget func(m Message, subscriber string) (body []byte, changed bool)
}

// DropFor is a Forget that drops every message for which concerns reports true.
func DropFor(concerns func(m Message, subscriber string) bool) func(Message, string) ([]byte, bool) {
	return func(m Message, subscriber string) ([]byte, bool) { return nil, concerns(m, subscriber) }
}

// Forgetter drops or rewrites, in every queue given, the waiting messages that
// concern one subscriber, each kind as its owner says.
//
// Old copies of a rewritten or dropped body stay in the freed pages of the embedded
// queue's data file: what goes there must hold no personal data that is not sealed
// with the subscriber's own data key (campaign jobs hold ids and lists only:
// campaigns.EngineConfig.IDsOnly; system mail holds a subscriber id).
type Forgetter struct {
	kinds  map[string]Forgetting
	queues []Queue
}

// NewForgetter returns a Forgetter over queues (nil ones and those that are no
// Rewriter are skipped).
func NewForgetter(kinds map[string]Forgetting, queues ...Queue) *Forgetter {
	return &Forgetter{kinds: kinds, queues: queues}
}

// DropQueued forgets subscriber in every queue.
func (f *Forgetter) DropQueued(ctx context.Context, subscriber string) error {
	for _, q := range f.queues {
		rw, ok := q.(Rewriter)
		if !ok || q == nil {
			continue
		}
		_, _, err := rw.Rewrite(ctx, func(m Message) ([]byte, bool) {
			k, ok := f.kinds[m.Kind]
			if !ok {
				return nil, false
			}
			return k.Forget(m, subscriber)
		})
		if err != nil {
			return fmt.Errorf("forget %s in the queue: %w", subscriber, err)
		}
	}
	return nil
}
