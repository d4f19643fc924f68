package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"consentmail/preferences/address"
)

// Handler processes one delivery. Returning nil acknowledges it; an error wrapped with
// Permanent sends it to the dead letters at once; any other error retries it with
// backoff (until the queue's maximum attempts).
type Handler func(ctx context.Context, d Delivery) error

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as a failure that retrying cannot fix.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// Consumer runs handlers over a queue with bounded concurrency.
type Consumer struct {
	q           Queue
	handlers    map[string]Handler
	concurrency int
	log         *slog.Logger
}

// NewConsumer returns a consumer dispatching deliveries by Message.Kind. concurrency
// bounds how many deliveries are handled at once (e.g. the SMTP connections available).
func NewConsumer(q Queue, handlers map[string]Handler, concurrency int, log *slog.Logger) *Consumer {
	if concurrency < 1 {
		concurrency = 1
	}
	return &Consumer{q: q, handlers: handlers, concurrency: concurrency, log: log}
}

// HandlerGrace is how long the deliveries in hand may go on after Run's context ends:
// then their own context is cancelled, so that a handler waiting on storage that has
// gone away (Redis down) gives up and a shutdown takes a bounded time. A delivery not
// settled comes back as after a crash.
const HandlerGrace = 5 * time.Second

// Run consumes until ctx ends, then waits for the deliveries in hand to finish (at
// most HandlerGrace, after which their context is cancelled). A handler's panic is
// recovered and counts as a retryable failure: one bad message never stops the
// worker.
func (c *Consumer) Run(ctx context.Context) error {
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(HandlerGrace, cancel)
		<-hctx.Done()
		t.Stop()
	})
	defer func() {
		stop()
		cancel()
	}()
	slots := make(chan struct{}, c.concurrency)
	acks := make(chan Delivery, 4*c.concurrency)
	acked := make(chan struct{})
	go c.ackLoop(hctx, acks, acked)
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		close(acks)
		<-acked
	}()
	for {
		// Reserve only as many as there are free slots, so leases are not held by
		// messages waiting in this process while another worker idles.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		free := 1
	more:
		for free < c.concurrency {
			select {
			case slots <- struct{}{}:
				free++
			default:
				break more
			}
		}
		ds, err := c.q.Reserve(ctx, free)
		if err != nil {
			for i := 0; i < free; i++ {
				<-slots
			}
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return nil
			}
			c.log.Error("queue reserve failed", "err", err)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		for i := len(ds); i < free; i++ {
			<-slots
		}
		for _, d := range ds {
			wg.Add(1)
			go func(d Delivery) {
				defer wg.Done()
				err := c.call(hctx, d)
				// The slot is free once the work is done: settling waits for a
				// commit, which the next message need not wait for.
				<-slots
				if err == nil {
					acks <- d
					return
				}
				c.settle(hctx, d, err)
			}(d)
		}
	}
}

// maxAckBatch bounds how many deliveries one Ack call settles.
const maxAckBatch = 256

// ackLoop acknowledges done deliveries in batches: every Ack call carries all that
// finished while the previous one was being written, so acknowledgements cost one
// write per batch instead of one per message. It closes done when acks is closed and
// drained.
func (c *Consumer) ackLoop(ctx context.Context, acks <-chan Delivery, done chan<- struct{}) {
	defer close(done)
	batch := make([]Delivery, 0, maxAckBatch)
	for d := range acks {
		batch = append(batch[:0], d)
	fill:
		for len(batch) < maxAckBatch {
			select {
			case d, ok := <-acks:
				if !ok {
					break fill
				}
				batch = append(batch, d)
			default:
				break fill
			}
		}
		if err := c.q.Ack(ctx, batch...); err != nil {
			// The messages come back after their visibility timeout: at least once.
			c.log.Error("acknowledging messages failed", "messages", len(batch), "err", err)
		}
	}
}

// settle records a failed delivery: dead letter when permanent, retry otherwise. The
// reason is logged and stored without email addresses: relays echo the recipient in
// their replies, and neither logs nor the data directory may hold one in plaintext.
func (c *Consumer) settle(ctx context.Context, d Delivery, err error) {
	var settle error
	reason := address.Redact(err.Error())
	switch {
	case IsPermanent(err):
		c.log.Warn("message failed permanently", "kind", d.Kind, "id", d.ID, "err", reason)
		settle = c.q.Fail(ctx, d, reason)
	default:
		c.log.Info("message will be retried", "kind", d.Kind, "id", d.ID, "attempts", d.Attempts+1, "err", reason)
		settle = c.q.Retry(ctx, d, reason)
	}
	if settle != nil {
		c.log.Error("settling message failed", "kind", d.Kind, "id", d.ID, "err", settle)
	}
}

func (c *Consumer) call(ctx context.Context, d Delivery) (err error) {
	h, ok := c.handlers[d.Kind]
	if !ok {
		return Permanent(fmt.Errorf("no handler for kind %q", d.Kind))
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler for %q panicked: %v", d.Kind, r)
		}
	}()
	return h(ctx, d)
}
