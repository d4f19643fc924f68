// Package queuetest is the contract every queue.Queue implementation must pass.
//
// An implementation's own test calls [Run] with a [Harness] that builds a fresh,
// empty queue per subtest. The suite never sleeps to order events: time inside the
// queue is a [Clock] the suite advances, and real waiting happens only on results
// (with a generous timeout) or to show that nothing is delivered (a short Reserve
// that must time out).
//
// What the suite checks: enqueue, reserve and ack; FIFO within a lane; High before
// Normal; NotBefore; redelivery after the visibility timeout; Retry backoff, Attempts
// and LastError; dead letters after MaxAttempts and on Fail; stale receipts; Reserve
// blocking, woken by an Enqueue from another goroutine or a clock advance, and
// honouring ctx; exactly-once delivery to concurrent consumers that ack; Stats; and,
// with [Harness.Reopen], that messages survive a restart.
package queuetest

import (
	"sync"
	"testing"
	"time"

	"consentmail/queue"
)

// Clock is a manual clock shared by a test and the queue under test. It is safe for
// concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock that reads start until advanced.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time. Pass it as the queue's clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock by d (backwards when d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Options configures a queue under test. Run always sets every field.
type Options struct {
	// Visibility is how long a reservation hides a message.
	Visibility time.Duration
	// MaxAttempts is the number of deliveries ending in Retry before a dead letter.
	MaxAttempts int
	// BackoffBase and BackoffMax shape queue.Backoff after a Retry.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// PollInterval is the longest a blocked Reserve may take, in real time, to notice
	// a change that no Enqueue announced: a clock advance that made a delayed message
	// due or a lease expire. The suite sets it to an hour where it wants to prove
	// that an Enqueue wakes Reserve by itself.
	PollInterval time.Duration
}

// Harness plugs an implementation into the suite.
type Harness struct {
	// New returns a fresh, empty queue configured by opts that takes every time
	// (NotBefore, visibility deadlines, backoff) from clock.Now. It registers its own
	// cleanup with t. It is called from parallel subtests.
	New func(t *testing.T, clock *Clock, opts Options) queue.Queue
	// Reopen, if set, simulates a process crash and restart: it abandons q without
	// settling anything and returns a new queue with the same clock and options over
	// the same storage. Unset, the restart tests are skipped.
	Reopen func(t *testing.T, q queue.Queue) queue.Queue
}

// Run runs the contract suite against h, each check in a parallel subtest.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil {
		t.Fatal("queuetest: Harness.New is nil")
	}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"EnqueueReserveAck", testEnqueueReserveAck},
		{"IDs", testIDs},
		{"FIFOWithinLane", testFIFOWithinLane},
		{"HighBeforeNormal", testHighBeforeNormal},
		{"NotBefore", testNotBefore},
		{"VisibilityTimeout", testVisibilityTimeout},
		{"RetryBackoff", testRetryBackoff},
		{"Fail", testFail},
		{"StaleReceipts", testStaleReceipts},
		{"ReserveWokenByEnqueue", testReserveWokenByEnqueue},
		{"ReserveWokenByClock", testReserveWokenByClock},
		{"ReserveContext", testReserveContext},
		{"ConcurrentConsumers", testConcurrentConsumers},
		{"Stats", testStats},
		{"Restart", testRestart},
		{"Rewrite", testRewrite},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, h)
		})
	}
}
