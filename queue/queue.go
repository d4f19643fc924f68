// Package queue moves work (system mail, campaign sends) from the code that decides it
// to the workers that carry it out, without losing it and without doing it twice.
//
// A Queue is at-least-once: a reserved message that is not acknowledged before its
// visibility timeout comes back. Two lanes exist: High (confirmation and other system
// mail) is always served before Normal (campaigns), so a person waiting for a
// confirmation link is never stuck behind a million-recipient campaign.
//
// A receipt is good for one outcome: once a delivery has been acknowledged, retried or
// failed, or once its visibility timeout has passed and the message was reserved again,
// its receipt is stale. A stale receipt never duplicates or resurrects a message: Ack
// ignores it and Retry and Fail return [ErrStaleReceipt].
//
// Implementations: [Bolt] (embedded, persisted in the service's bbolt file) and [Redis]
// (Redis Streams, shared by any number of worker processes). Both pass the same
// contract suite in package queuetest.
package queue

import (
	"context"
	"errors"
	"time"
)

// Priority selects a lane. High is always reserved before Normal.
type Priority uint8

const (
	// Normal is for campaign sends. It is the zero value, so a message that forgets
	// its priority never jumps ahead of system mail.
	Normal Priority = 0
	// High is for system mail a person is waiting for (double opt-in, data links).
	High Priority = 1
)

// lane is the serving order of a priority: lane 0 is always served first.
func (p Priority) lane() int {
	if p == High {
		return 0
	}
	return 1
}

// priorityOf is the priority served in lane l.
func priorityOf(l int) Priority {
	if l == 0 {
		return High
	}
	return Normal
}

// Message is one unit of work. Body is opaque to the queue. The embedded queue lives in
// the data directory, so producers must not put plaintext personal data in Body.
type Message struct {
	// ID is assigned by Enqueue when empty, unique within the queue. A producer that
	// sets it is responsible for its uniqueness.
	ID string
	// Kind tells the consumer how to decode Body, e.g. "optin".
	Kind     string
	Priority Priority
	Body     []byte
	// NotBefore delays the first delivery; zero means now.
	NotBefore time.Time
	// Attempts counts earlier deliveries that ended in Retry; set by the queue (Enqueue
	// resets it).
	Attempts int
	// LastError is the reason given to the last Retry or Fail; set by the queue.
	LastError string
}

// Delivery is a reserved message. It must be passed to exactly one of Ack, Retry or
// Fail before the visibility timeout, or it is delivered again.
type Delivery struct {
	Message
	// Receipt identifies this reservation to the implementation; opaque.
	Receipt string
}

// Stats counts messages by state.
type Stats struct {
	Ready    int64 `json:"ready"`    // waiting (including delayed) in both lanes
	High     int64 `json:"high"`     // of Ready, in the High lane
	Inflight int64 `json:"inflight"` // reserved, not yet acknowledged
	Dead     int64 `json:"dead"`     // dead letters
}

// Queue is the interface both implementations satisfy. It is safe for concurrent use.
type Queue interface {
	// Enqueue stores messages durably before it returns. Within a lane, messages are
	// delivered in the order they become ready (NotBefore, then enqueue order).
	Enqueue(ctx context.Context, msgs ...Message) error
	// Reserve blocks until at least one message is ready (or ctx ends, returning
	// ctx.Err()) and returns up to max of them (at least one; max < 1 counts as 1),
	// High lane first, each invisible to other consumers until its visibility timeout
	// passes.
	Reserve(ctx context.Context, max int) ([]Delivery, error)
	// Ack removes delivered messages for good. Stale receipts are ignored.
	Ack(ctx context.Context, ds ...Delivery) error
	// Retry records reason as LastError, increments Attempts and makes the message
	// ready again after Backoff(Attempts, base, max); when Attempts reaches the
	// configured maximum it becomes a dead letter instead. A stale receipt returns
	// ErrStaleReceipt and changes nothing.
	Retry(ctx context.Context, d Delivery, reason string) error
	// Fail moves the message to the dead letters at once (permanent failure), with
	// reason as LastError. A stale receipt returns ErrStaleReceipt and changes nothing.
	Fail(ctx context.Context, d Delivery, reason string) error
	// Dead lists up to limit dead letters, oldest (first to die) first.
	Dead(ctx context.Context, limit int) ([]Message, error)
	// Stats counts messages by state.
	Stats(ctx context.Context) (Stats, error)
	// Ping reports whether the queue's storage is reachable (for /readyz).
	Ping(ctx context.Context) error
}

// ErrClosed is returned by Reserve once the queue is closed, and by any other operation
// a closed implementation can no longer serve.
var ErrClosed = errors.New("queue: closed")

// ErrStaleReceipt is returned by Retry and Fail when the delivery's receipt no longer
// holds the message: it was already acknowledged, retried or failed, or its visibility
// timeout passed and it was reserved again. The outcome was not recorded; a worker
// usually logs it and moves on.
var ErrStaleReceipt = errors.New("queue: stale receipt")

// Backoff returns the delay before delivery attempt n+1 after n failed attempts:
// exponential from base, capped at max.
func Backoff(attempts int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < attempts && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}
