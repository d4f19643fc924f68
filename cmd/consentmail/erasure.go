package main

import (
	"context"

	"consentmail/optin"
	"consentmail/preferences"
	"consentmail/preferences/linkmail"
	"consentmail/queue"
	"consentmail/queue/campaigns"
)

// sealedPrefix is how much of a dropped campaign job's old body is overwritten in the
// data file: its nonce and first block, without which the rest cannot be decrypted.
const sealedPrefix = 32

// queueDropper is a function as a preferences.QueueDropper.
type queueDropper func(ctx context.Context, subscriber string) error

// DropQueued drops the subscriber's queued messages.
func (f queueDropper) DropQueued(ctx context.Context, subscriber string) error {
	return f(ctx, subscriber)
}

// dropQueued returns the erasure's queue step: every message waiting for the erased
// subscriber is dropped (confirmation and link mail) or rid of them (campaign jobs),
// in the embedded queue and in Redis; the old sealed jobs left in the data file's freed
// pages are overwritten. Each package tells which of its own messages concern the
// subscriber: nothing here reads a body.
func dropQueued(store *preferences.Store, codec *campaigns.JobCodec, qs ...queue.Queue) queueDropper {
	return func(ctx context.Context, sub string) error {
		fn := func(m queue.Message) ([]byte, bool) {
			if m.Kind == campaigns.KindCampaign {
				body, changed, err := codec.WithoutSubscriber(m.Body, sub)
				return body, err == nil && changed
			}
			return nil, optin.ForSubscriber(m, sub) || linkmail.ForSubscriber(m, sub)
		}
		for _, q := range qs {
			rw, ok := q.(queue.Rewriter)
			if !ok || q == nil {
				continue
			}
			old, _, err := rw.Rewrite(ctx, fn)
			if err != nil {
				return err
			}
			if _, embedded := q.(*queue.Bolt); embedded {
				var prefixes [][]byte
				for _, b := range old {
					if len(b) >= sealedPrefix {
						prefixes = append(prefixes, b[:sealedPrefix])
					}
				}
				if err := store.Shred(prefixes...); err != nil {
					return err
				}
			}
		}
		return nil
	}
}
