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
	// Sealed bodies start with a random nonce: overwriting the start of an old body's
	// copies in the data file makes them unreadable. Bodies that are not sealed are
	// never overwritten that way, since their start is shared by other, live messages.
	Sealed bool
}

// DropFor is a Forget that drops every message for which concerns reports true.
func DropFor(concerns func(m Message, subscriber string) bool) func(Message, string) ([]byte, bool) {
	return func(m Message, subscriber string) ([]byte, bool) { return nil, concerns(m, subscriber) }
}

// SealedPrefix is how much of a replaced or dropped sealed body is overwritten in the
// data file: its nonce and first block, without which the rest cannot be decrypted.
const SealedPrefix = 32

// Forgetter drops or rewrites, in every queue given, the waiting messages that
// concern one subscriber, each kind as its owner says.
type Forgetter struct {
	kinds  map[string]Forgetting
	shred  func(secrets ...[]byte) error
	queues []Queue
}

// NewForgetter returns a Forgetter over queues (nil ones and those that are no
// Rewriter are skipped). shred overwrites every copy of byte strings in the data file
// that holds the embedded queue (nil: nothing is overwritten).
func NewForgetter(kinds map[string]Forgetting, shred func(secrets ...[]byte) error, queues ...Queue) *Forgetter {
	return &Forgetter{kinds: kinds, shred: shred, queues: queues}
}

// DropQueued forgets subscriber in every queue; in the embedded queue, the start of
// each old sealed body is then overwritten wherever the data file still holds it.
func (f *Forgetter) DropQueued(ctx context.Context, subscriber string) error {
	for _, q := range f.queues {
		rw, ok := q.(Rewriter)
		if !ok || q == nil {
			continue
		}
		sealed := map[string]bool{}
		old, _, err := rw.Rewrite(ctx, func(m Message) ([]byte, bool) {
			k, ok := f.kinds[m.Kind]
			if !ok {
				return nil, false
			}
			body, changed := k.Forget(m, subscriber)
			if changed && k.Sealed && len(m.Body) >= SealedPrefix {
				sealed[string(m.Body[:SealedPrefix])] = true
			}
			return body, changed
		})
		if err != nil {
			return fmt.Errorf("forget %s in the queue: %w", subscriber, err)
		}
		if _, embedded := q.(*Bolt); !embedded || f.shred == nil {
			continue
		}
		var prefixes [][]byte
		for _, b := range old {
			if len(b) >= SealedPrefix && sealed[string(b[:SealedPrefix])] {
				prefixes = append(prefixes, b[:SealedPrefix])
			}
		}
		if len(prefixes) > 0 {
			if err := f.shred(prefixes...); err != nil {
				return fmt.Errorf("overwrite old queued copies: %w", err)
			}
		}
	}
	return nil
}
