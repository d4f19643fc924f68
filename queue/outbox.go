package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/bbolt"
)

// bucketOutbox holds messages committed with a bbolt transaction and not yet handed to
// the target queue.
var bucketOutbox = []byte("queue.outbox")

// maxRelayBatch bounds how many messages one relay pass moves.
const maxRelayBatch = 500

// Outbox makes enqueueing into a queue outside the bbolt file (Redis) atomic with a
// bbolt transaction: EnqueueTx writes the messages into the caller's transaction, and
// Run relays committed messages to the target queue, deleting them only once the target
// has stored them. A crash between the two relays them again, so the target may see a
// message twice (with the same ID); consumers already cope with at-least-once delivery.
type Outbox struct {
	db     *bbolt.DB
	target Queue
	commit func(context.Context, func(*bbolt.Tx) error) error
	log    *slog.Logger

	mu   sync.Mutex
	wake chan struct{}
}

// NewOutbox returns an outbox in db relaying to target. commit runs write transactions
// (the store's group committer, or nil for db.Batch).
func NewOutbox(db *bbolt.DB, target Queue, commit func(context.Context, func(*bbolt.Tx) error) error,
	log *slog.Logger) (*Outbox, error) {
	if commit == nil {
		commit = batchCommit(db)
	}
	err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketOutbox)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("queue: outbox: %w", err)
	}
	return &Outbox{db: db, target: target, commit: commit, log: log, wake: make(chan struct{}, 1)}, nil
}

// EnqueueTx stores msgs in the caller's write transaction; they reach the target after
// the transaction commits. Messages without an ID get one ("ob-" and a sequence), which
// they keep if relayed twice.
func (o *Outbox) EnqueueTx(tx *bbolt.Tx, msgs ...Message) error {
	if err := validate(msgs); err != nil {
		return err
	}
	b := tx.Bucket(bucketOutbox)
	if b == nil {
		return fmt.Errorf("queue: outbox: transaction of another database")
	}
	for _, m := range msgs {
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		if m.ID == "" {
			m.ID = "ob-" + strconv.FormatUint(seq, 10)
		}
		m.Attempts, m.LastError = 0, ""
		if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), encodeMessage(m)); err != nil {
			return err
		}
	}
	tx.OnCommit(o.signal)
	return nil
}

func (o *Outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Pending counts messages not yet relayed.
func (o *Outbox) Pending(ctx context.Context) (int, error) {
	var n int
	err := o.db.View(func(tx *bbolt.Tx) error {
		n = tx.Bucket(bucketOutbox).Stats().KeyN
		return nil
	})
	return n, err
}

// Run relays until ctx ends. Messages left by an earlier process go first. When the
// target fails, Run waits retryAfter and tries again: nothing is dropped.
func (o *Outbox) Run(ctx context.Context, retryAfter time.Duration) error {
	o.signal()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-o.wake:
		}
		for {
			n, err := o.relay(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				o.log.Error("outbox relay failed; retrying", "err", err)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(retryAfter):
				}
				continue
			}
			if n < maxRelayBatch {
				break
			}
		}
	}
}

// relay moves one batch and returns its size.
func (o *Outbox) relay(ctx context.Context) (int, error) {
	var keys [][]byte
	var msgs []Message
	err := o.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.First(); k != nil && len(keys) < maxRelayBatch; k, v = c.Next() {
			m, err := decodeMessage(v)
			if err != nil {
				return fmt.Errorf("outbox entry %x: %w", k, err)
			}
			keys = append(keys, bytes.Clone(k))
			msgs = append(msgs, m)
		}
		return nil
	})
	if err != nil || len(msgs) == 0 {
		return 0, err
	}
	if err := o.target.Enqueue(ctx, msgs...); err != nil {
		return 0, err
	}
	err = o.commit(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	return len(msgs), err
}
