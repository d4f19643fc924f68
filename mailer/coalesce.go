package mailer

import (
	"context"
	"sync"
	"time"
)

// BatchSender sends one message, or several in one pipelined batch.
type BatchSender interface {
	Send(ctx context.Context, m *Message) error
	SendBatchFunc(ctx context.Context, n int, next func(i int) (*Message, error)) []error
}

// Coalescer sends the messages that concurrent callers hand it one at a time (system
// mail: confirmations, links) in pipelined batches, as the store group-commits: while
// its senders are busy, the messages that arrive wait and leave together in the next
// batch (at most max), one round trip for all; under light load a message leaves at
// once, alone. There is no timer: nothing waits for others to come.
type Coalescer struct {
	next BatchSender
	max  int
	reqs chan *coalesced
	stop chan struct{}
	wg   sync.WaitGroup
}

type coalesced struct {
	ctx  context.Context
	m    *Message
	done chan error
}

// CoalescedSendTimeout bounds a batch: the callers' contexts are not the batch's.
const CoalescedSendTimeout = 2 * time.Minute

// NewCoalescer sends through next with parallel batches at once (the relay's
// connections), each of at most most messages (at most MaxBatch).
func NewCoalescer(next BatchSender, parallel, most int) *Coalescer {
	most = min(max(most, 1), MaxBatch)
	// Buffered: a Send handed in is taken by the next batch (and waits for its result).
	c := &Coalescer{next: next, max: most, reqs: make(chan *coalesced, most*max(parallel, 1)), stop: make(chan struct{})}
	for range max(parallel, 1) {
		c.wg.Add(1)
		go c.loop()
	}
	return c
}

// Send hands m to the next batch and returns its own result, as next.Send would.
// Once m is taken into a batch, Send waits for its result even if ctx ends: the relay
// may be accepting it.
func (c *Coalescer) Send(ctx context.Context, m *Message) error {
	r := &coalesced{ctx: ctx, m: m, done: make(chan error, 1)}
	select {
	case c.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.stop:
		return c.next.Send(ctx, m) // closed: send it alone
	}
	return <-r.done
}

func (c *Coalescer) loop() {
	defer c.wg.Done()
	batch := make([]*coalesced, 0, c.max)
	for {
		batch = batch[:0]
		select {
		case r := <-c.reqs:
			batch = append(batch, r)
		case <-c.stop:
			return
		}
	more: // what arrived while the last batch was on the wire
		for len(batch) < c.max {
			select {
			case r := <-c.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		c.send(batch)
	}
}

func (c *Coalescer) send(batch []*coalesced) {
	if len(batch) == 1 {
		batch[0].done <- c.next.Send(batch[0].ctx, batch[0].m)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), CoalescedSendTimeout)
	defer cancel()
	for i, err := range c.next.SendBatchFunc(ctx, len(batch), func(i int) (*Message, error) { return batch[i].m, nil }) {
		batch[i].done <- err
	}
}

// Waiting is how many messages are handed in and wait for a batch.
func (c *Coalescer) Waiting() int { return len(c.reqs) }

// Close stops the batching once the batches under way are sent; later Sends go
// alone, straight to next.
func (c *Coalescer) Close() {
	close(c.stop)
	c.wg.Wait()
}
