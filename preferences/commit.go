package preferences

import (
	"context"
	"errors"
	"runtime"
	"sync"

	"go.etcd.io/bbolt"
)

// maxGroup bounds how many requests share one transaction, so that one slow
// transaction cannot grow without limit under load.
const maxGroup = 512

// committer group-commits write transactions: requests that arrive while a transaction
// is being written and synced wait together and go into the next one. Unlike
// bbolt.DB.Batch there is no timer: under light load a request commits at once, under
// heavy load every fsync carries as many requests as arrived during the previous one.
//
// A request's function may run more than once (when another request of its group
// fails, the survivors are retried alone), so it must derive everything from the
// transaction and overwrite, not accumulate, what it reports to its caller.
type committer struct {
	db   *bbolt.DB
	reqs chan *commitReq
	stop chan struct{}
	wg   sync.WaitGroup

	mu     sync.RWMutex // held for reading while sending on reqs
	closed bool
	once   sync.Once
}

type commitReq struct {
	fn   func(*bbolt.Tx) error
	done chan error
}

// errClosed is returned for requests made after Close.
var errClosed = errors.New("store closed")

func newCommitter(db *bbolt.DB) *committer {
	c := &committer{db: db, reqs: make(chan *commitReq, maxGroup), stop: make(chan struct{})}
	c.wg.Add(1)
	go c.loop()
	return c
}

// update runs fn in a group-committed write transaction and returns once it is durable.
func (c *committer) update(ctx context.Context, fn func(*bbolt.Tx) error) error {
	done, err := c.submit(ctx, fn)
	if err != nil {
		return err
	}
	// Once queued the request will run; wait for its outcome even if ctx ends, so the
	// caller never reports failure for data that was in fact committed.
	return <-done
}

// submit queues fn for the next group-committed transaction and returns without
// waiting for it; done gets its outcome once it is durable or has failed. Requests go
// into transactions in the order they were queued: one queued after it (by the same
// goroutine) is never durable without it.
func (c *committer) submit(ctx context.Context, fn func(*bbolt.Tx) error) (done <-chan error, err error) {
	r := &commitReq{fn: fn, done: make(chan error, 1)}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil, errClosed
	}
	select {
	case c.reqs <- r:
		return r.done, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// close stops accepting requests, commits those already queued and stops the loop.
// Later requests fail with errClosed. It may be called more than once.
func (c *committer) close() {
	c.once.Do(func() {
		c.mu.Lock() // waits for senders in flight; the loop keeps serving them
		c.closed = true
		c.mu.Unlock()
		close(c.stop)
		c.wg.Wait()
	})
}

func (c *committer) loop() {
	defer c.wg.Done()
	group := make([]*commitReq, 0, maxGroup)
	for {
		select {
		case r := <-c.reqs:
			group = append(group[:0], r)
		case <-c.stop:
			c.drain()
			return
		}
	fill:
		for len(group) < maxGroup {
			select {
			case r := <-c.reqs:
				group = append(group, r)
			default:
				break fill
			}
		}
		c.commit(group)
	}
}

// drain commits requests queued before close: their callers were promised a commit.
func (c *committer) drain() {
	for {
		select {
		case r := <-c.reqs:
			c.commit([]*commitReq{r})
		default:
			return
		}
	}
}

// commit runs the group in one transaction. If one request fails, the transaction is
// rolled back, that request gets its error and the rest of the group runs again
// without it.
func (c *committer) commit(group []*commitReq) {
	for len(group) > 0 {
		failed := -1
		var failErr error
		err := c.db.Update(func(tx *bbolt.Tx) error {
			for i, r := range group {
				if err := r.fn(tx); err != nil {
					failed, failErr = i, err
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, r := range group {
				r.done <- err
			}
			// Let the requests just answered run before the next transaction: the
			// committer would otherwise keep its CPU and start that transaction with only
			// what had queued meanwhile, while their goroutines (answering the signups
			// whose clients then send the next ones) waited behind it. Yielding makes the
			// next group larger, which is what a commit's two syncs are shared by. The
			// price, while signups saturate the CPUs, is that other work (the
			// confirmation mails) gets less of them (README, Benchmarks: signups). With
			// a full group already waiting there is nothing to gain.
			if len(c.reqs) < maxGroup {
				runtime.Gosched()
			}
			return
		}
		group[failed].done <- failErr
		group = append(group[:failed:failed], group[failed+1:]...)
	}
}
