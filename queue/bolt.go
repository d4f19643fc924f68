package queue

import (
	"bytes"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
)

// Buckets owned by Bolt in the shared bbolt file.
var (
	// bucketReady holds ready, delayed and reserved messages under readyKey.
	bucketReady = []byte("queue.ready")
	// bucketDead holds dead letters under their NextSequence, big-endian, so a cursor
	// reads them in the order they died.
	bucketDead = []byte("queue.dead")
)

// BoltOptions configures a Bolt queue. Zero fields take the documented defaults.
type BoltOptions struct {
	// Visibility is how long a reservation hides a message (default 1 minute).
	Visibility time.Duration
	// MaxAttempts is the number of deliveries ending in Retry after which the message
	// becomes a dead letter (default 8).
	MaxAttempts int
	// BackoffBase and BackoffMax shape the delay after a Retry; see Backoff
	// (defaults 5 seconds and 1 hour).
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// PollInterval bounds how long a blocked Reserve waits before it re-checks for
	// messages that became due and leases that expired (default 1 second). Enqueues
	// wake it at once; only clock-driven changes wait for the poll.
	PollInterval time.Duration
	// Now is the queue's clock (default time.Now). It is read once per transaction
	// and once per Reserve.
	Now func() time.Time
	// Commit runs a write transaction and returns once it is durable (default: the
	// db's Batch). Pass the group committer of the other writers of the same file so
	// that acknowledgements ride the same fsync as the signups that cause them. fn may
	// run more than once, as with Batch.
	Commit func(ctx context.Context, fn func(*bbolt.Tx) error) error
}

func (o *BoltOptions) fill() error {
	return fillShared("BoltOptions", &o.Visibility, &o.MaxAttempts, &o.BackoffBase, &o.BackoffMax, &o.PollInterval, &o.Now)
}

// batchCommit is the default Commit: bbolt's own Batch.
func batchCommit(db *bbolt.DB) func(context.Context, func(*bbolt.Tx) error) error {
	return func(_ context.Context, fn func(*bbolt.Tx) error) error { return db.Batch(fn) }
}

// Bolt is the embedded Queue, persisted in the service's bbolt file. It is safe for
// concurrent use.
//
// Ready, delayed and dead messages live in bbolt and survive a restart. Reservations
// (leases) live in memory only: a crash voids every lease anyway, so after a restart
// (a new Bolt on the reopened file) every message that was not acknowledged is ready
// again at once. Reserve therefore costs a read transaction, not a write; Enqueue, Ack,
// Retry and Fail go through [bbolt.DB.Batch], so concurrent callers share one commit
// (and each waits up to the db's MaxBatchDelay for company).
//
// Within a lane, messages are keyed by the moment they become ready (the later of
// NotBefore and the enqueue time) and then by enqueue order, so Reserve reads them
// with a cursor: the High lane first, each lane up to its first message that is not
// yet due.
//
// # Caveats
//
// Only one Bolt may use a bbolt file at a time. Like any bbolt reader, Reserve must
// not be called by a goroutine that holds an open transaction on the same db.
type Bolt struct {
	db   *bbolt.DB
	opts BoltOptions

	closeOnce sync.Once
	closed    chan struct{}

	// mu guards the fields below. Reserve holds it across its read transaction, and
	// leases are only removed (after their deletion committed) under it, so a Reserve
	// never sees a deleted message as unleased.
	mu     sync.Mutex
	leases map[readyKey]*lease
	expiry leaseHeap
	// frontier[lane] is where Reserve's scan of the lane starts: every committed key of
	// the lane below it is leased. Inserts below it (clock set back) and expired leases
	// lower it.
	frontier [lanes]readyKey
	wake     chan struct{} // closed to wake blocked Reserves
	waiting  bool          // someone holds wake
	token    uint64        // last lease token handed out

	// Counters for Stats, read without mu.
	ready  [lanes]atomic.Int64 // committed keys in bucketReady, by lane
	leased [lanes]atomic.Int64 // entries of leases, by lane
	dead   atomic.Int64
}

var _ Queue = (*Bolt)(nil)

// NewBolt returns a queue stored in db, creating its buckets (named "queue.*") if
// needed. db is opened and closed by the caller and may be shared with other
// packages. Any message found in db is ready: leases do not outlive a process.
func NewBolt(db *bbolt.DB, opts BoltOptions) (*Bolt, error) {
	if db == nil {
		return nil, errors.New("queue: nil bbolt.DB")
	}
	if err := opts.fill(); err != nil {
		return nil, err
	}
	if opts.Commit == nil {
		opts.Commit = batchCommit(db)
	}
	b := &Bolt{
		db:     db,
		opts:   opts,
		closed: make(chan struct{}),
		leases: make(map[readyKey]*lease),
		wake:   make(chan struct{}),
		// A random start keeps receipts of an earlier process from matching ours.
		token: rand.Uint64() >> 1,
	}
	for lane := range lanes {
		b.frontier[lane][0] = byte(lane)
	}
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketReady, bucketDead} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	err = db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketReady).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) == keyLen && k[0] < lanes {
				b.ready[k[0]].Add(1)
			}
		}
		b.dead.Store(int64(tx.Bucket(bucketDead).Stats().KeyN))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: count messages: %w", err)
	}
	return b, nil
}

// Close makes blocked and future Reserve calls return ErrClosed. Enqueue, Ack, Retry,
// Fail and the read methods keep working while the db is open, so deliveries in
// progress can be settled during a graceful shutdown. Close does not close the db.
func (b *Bolt) Close() error {
	b.closeOnce.Do(func() { close(b.closed) })
	return nil
}

// Enqueue stores msgs in their own transaction, shared with concurrent callers
// through db.Batch, and returns once it has committed.
func (b *Bolt) Enqueue(ctx context.Context, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Validate outside Batch: a failing call makes Batch rerun the whole group.
	if err := validate(msgs); err != nil {
		return err
	}
	if err := b.opts.Commit(ctx, func(tx *bbolt.Tx) error { return b.EnqueueTx(tx, msgs...) }); err != nil {
		return fmt.Errorf("queue: enqueue: %w", err)
	}
	return nil
}

// EnqueueTx stores msgs inside the caller's writable transaction tx, so a message is
// queued if and only if the caller's other writes commit. Blocked Reserve calls are
// woken when tx commits; nothing happens if it rolls back. msgs are not modified: IDs
// assigned here are seen by consumers only.
func (b *Bolt) EnqueueTx(tx *bbolt.Tx, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if !tx.Writable() {
		return errors.New("queue: EnqueueTx needs a writable transaction")
	}
	if tx.DB() != b.db {
		return errors.New("queue: EnqueueTx got a transaction of another db")
	}
	if err := validate(msgs); err != nil {
		return err
	}
	rb := tx.Bucket(bucketReady)
	if rb == nil {
		return errors.New("queue: bucket missing; use NewBolt on this db")
	}
	now := b.opts.Now().UnixNano()
	var (
		added  [lanes]int64
		lowest [lanes]readyKey
		keys   = make([]byte, 0, keyLen*len(msgs)) // bbolt keeps key slices until commit
	)
	for _, m := range msgs {
		seq, err := rb.NextSequence()
		if err != nil {
			return fmt.Errorf("queue: %w", err)
		}
		if m.ID == "" {
			m.ID = strconv.FormatUint(seq, 10)
		}
		m.Attempts, m.LastError = 0, ""
		k := newReadyKey(m.Priority, readyAt(m.NotBefore, now), seq)
		keys = append(keys, k[:]...)
		if err := rb.Put(keys[len(keys)-keyLen:], encodeMessage(m)); err != nil {
			return fmt.Errorf("queue: %w", err)
		}
		lane := m.Priority.lane()
		if added[lane] == 0 || bytes.Compare(k[:], lowest[lane][:]) < 0 {
			lowest[lane] = k
		}
		added[lane]++
	}
	tx.OnCommit(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for lane := range lanes {
			if added[lane] > 0 {
				b.ready[lane].Add(added[lane])
				b.lower(lowest[lane])
			}
		}
		b.signal()
	})
	return nil
}

func validate(msgs []Message) error {
	for _, m := range msgs {
		if m.Priority != Normal && m.Priority != High {
			return fmt.Errorf("queue: message %q: unknown priority %d", m.ID, m.Priority)
		}
	}
	return nil
}

// readyAt is the key time of a message: when it becomes ready, never before now, so
// that keys of new messages sort after those already reserved.
func readyAt(notBefore time.Time, now int64) int64 {
	if !notBefore.IsZero() {
		if t := notBefore.UnixNano(); t > now {
			return t
		}
	}
	return now
}

// Reserve returns up to max ready messages, High lane first, and leases them for the
// visibility timeout. With none ready it blocks until an enqueue commits, a delayed
// message falls due or a lease expires (both noticed within PollInterval), ctx ends
// (ctx.Err()) or the queue is closed (ErrClosed).
func (b *Bolt) Reserve(ctx context.Context, max int) ([]Delivery, error) {
	return reserveLoop(ctx, b.closed, func() ([]Delivery, <-chan struct{}, time.Duration, error) {
		if max < 1 {
			max = 1
		}
		return b.tryReserve(max)
	}, nil)
}

// tryReserve leases what is ready now. When nothing is, it returns the channel that
// the next enqueue closes and how long to wait for the clock at most.
func (b *Bolt) tryReserve(limit int) (ds []Delivery, wake <-chan struct{}, wait time.Duration, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.opts.Now()
	nowN := now.UnixNano()
	b.expire(now)
	nextDue := nowN + int64(b.opts.PollInterval)
	err = b.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketReady).Cursor()
		for lane := range lanes {
			var passed []byte
			for k, v := c.Seek(b.frontier[lane][:]); k != nil && k[0] == byte(lane) && len(ds) < limit; k, v = c.Next() {
				if len(k) != keyLen {
					continue // never written by this package
				}
				key := readyKey(k)
				if at := key.at(); at > nowN {
					nextDue = min(nextDue, at)
					break
				}
				passed = k
				if _, held := b.leases[key]; held {
					continue
				}
				m, err := decodeMessage(v)
				if err != nil {
					return fmt.Errorf("message %x: %w", k, err)
				}
				ds = append(ds, Delivery{Message: m, Receipt: b.lease(key, now)})
			}
			if passed != nil {
				b.frontier[lane] = readyKey(passed).next()
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("queue: reserve: %w", err)
	}
	if len(ds) > 0 {
		return ds, nil, 0, nil
	}
	if len(b.expiry) > 0 {
		nextDue = min(nextDue, b.expiry[0].deadline.UnixNano()+1)
	}
	b.waiting = true
	return nil, b.wake, max(time.Duration(nextDue-nowN), time.Millisecond), nil
}

// lease records a reservation of key until now+Visibility and returns its receipt.
// b.mu must be held.
func (b *Bolt) lease(key readyKey, now time.Time) string {
	b.token++
	l := &lease{key: key, token: b.token, deadline: now.Add(b.opts.Visibility)}
	b.leases[key] = l
	heap.Push(&b.expiry, l)
	b.leased[key.lane()].Add(1)
	return l.receipt()
}

// expire drops the leases whose deadline has passed, so their messages can be reserved
// again; their holders' receipts go stale then. b.mu must be held.
func (b *Bolt) expire(now time.Time) {
	for len(b.expiry) > 0 && now.After(b.expiry[0].deadline) {
		l := heap.Pop(&b.expiry).(*lease)
		b.drop(l)
		b.lower(l.key)
	}
}

// drop forgets a lease. b.mu must be held.
func (b *Bolt) drop(l *lease) {
	if b.leases[l.key] == l {
		delete(b.leases, l.key)
		b.leased[l.key.lane()].Add(-1)
	}
}

// lower moves the scan frontier of k's lane back to k if k is below it. b.mu must be
// held.
func (b *Bolt) lower(k readyKey) {
	if f := &b.frontier[k.lane()]; bytes.Compare(k[:], f[:]) < 0 {
		*f = k
	}
}

// signal wakes blocked Reserve calls. b.mu must be held.
func (b *Bolt) signal() {
	if b.waiting {
		close(b.wake)
		b.wake = make(chan struct{})
		b.waiting = false
	}
}

// claim takes the live leases named by receipts out of expiry and marks them settling,
// so that neither expiry nor another settle call can take them while the caller's
// write is under way. Stale receipts are left out. It fails only on a malformed
// receipt.
func (b *Bolt) claim(receipts ...string) ([]*lease, error) {
	type ref struct {
		key   readyKey
		token uint64
	}
	refs := make([]ref, len(receipts))
	for i, r := range receipts {
		k, tok, err := parseReceipt(r)
		if err != nil {
			return nil, err
		}
		refs[i] = ref{k, tok}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var ls []*lease
	for _, r := range refs {
		l := b.leases[r.key]
		if l == nil || l.token != r.token || l.index < 0 {
			continue
		}
		heap.Remove(&b.expiry, l.index)
		ls = append(ls, l)
	}
	return ls, nil
}

// unclaim returns leases to expiry after a failed write: the messages are still
// reserved by their holders.
func (b *Bolt) unclaim(ls []*lease) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range ls {
		if b.leases[l.key] == l && l.index < 0 {
			heap.Push(&b.expiry, l)
		}
	}
}

// Ack deletes the delivered messages. Deliveries whose receipt is stale are ignored;
// a malformed receipt is an error.
func (b *Bolt) Ack(ctx context.Context, ds ...Delivery) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	receipts := make([]string, len(ds))
	for i, d := range ds {
		receipts[i] = d.Receipt
	}
	ls, err := b.claim(receipts...)
	if err != nil || len(ls) == 0 {
		return err
	}
	err = b.opts.Commit(ctx, func(tx *bbolt.Tx) error {
		rb := tx.Bucket(bucketReady)
		var gone [lanes]int64
		for _, l := range ls {
			if rb.Get(l.key[:]) == nil {
				continue
			}
			if err := rb.Delete(l.key[:]); err != nil {
				return err
			}
			gone[l.key.lane()]++
		}
		tx.OnCommit(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			for lane := range lanes {
				b.ready[lane].Add(-gone[lane])
			}
			for _, l := range ls {
				b.drop(l)
			}
		})
		return nil
	})
	if err != nil {
		b.unclaim(ls)
		return fmt.Errorf("queue: ack: %w", err)
	}
	return nil
}

// Retry re-queues the message with NotBefore = now + Backoff(Attempts, BackoffBase,
// BackoffMax), or makes it a dead letter when Attempts reaches MaxAttempts. A stale
// receipt returns ErrStaleReceipt.
func (b *Bolt) Retry(ctx context.Context, d Delivery, reason string) error {
	return b.settle(ctx, "retry", d, reason, true)
}

// Fail makes the message a dead letter now. A stale receipt returns ErrStaleReceipt.
func (b *Bolt) Fail(ctx context.Context, d Delivery, reason string) error {
	return b.settle(ctx, "fail", d, reason, false)
}

func (b *Bolt) settle(ctx context.Context, op string, d Delivery, reason string, retry bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ls, err := b.claim(d.Receipt)
	if err != nil {
		return err
	}
	if len(ls) == 0 {
		return fmt.Errorf("%s %s: %w", op, d.ID, ErrStaleReceipt)
	}
	l := ls[0]
	var stale bool
	err = b.opts.Commit(ctx, func(tx *bbolt.Tx) error {
		stale = false
		rb := tx.Bucket(bucketReady)
		v := rb.Get(l.key[:])
		if v == nil { // cannot happen while the lease is ours; refuse to resurrect
			stale = true
			tx.OnCommit(func() { b.mu.Lock(); b.drop(l); b.mu.Unlock() })
			return nil
		}
		m, err := decodeMessage(v)
		if err != nil {
			return err
		}
		if err := rb.Delete(l.key[:]); err != nil {
			return err
		}
		m.LastError = reason
		if retry {
			m.Attempts++
		}
		if retry && m.Attempts < b.opts.MaxAttempts {
			now := b.opts.Now()
			m.NotBefore = now.Add(Backoff(m.Attempts, b.opts.BackoffBase, b.opts.BackoffMax))
			nk := newReadyKey(priorityOf(l.key.lane()), readyAt(m.NotBefore, now.UnixNano()), l.key.seq())
			if err := rb.Put(append([]byte(nil), nk[:]...), encodeMessage(m)); err != nil {
				return err
			}
			tx.OnCommit(func() {
				b.mu.Lock()
				defer b.mu.Unlock()
				b.drop(l)
				b.lower(nk)
			})
			return nil
		}
		dead := tx.Bucket(bucketDead)
		seq, err := dead.NextSequence()
		if err != nil {
			return err
		}
		if err := dead.Put(be64(seq), encodeMessage(m)); err != nil {
			return err
		}
		tx.OnCommit(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.drop(l)
			b.ready[l.key.lane()].Add(-1)
			b.dead.Add(1)
		})
		return nil
	})
	if err != nil {
		b.unclaim(ls)
		return fmt.Errorf("queue: %s %s: %w", op, d.ID, err)
	}
	if stale {
		return fmt.Errorf("%s %s: %w", op, d.ID, ErrStaleReceipt)
	}
	return nil
}

// Dead lists up to limit dead letters, in the order they died.
func (b *Bolt) Dead(ctx context.Context, limit int) ([]Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []Message
	err := b.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketDead).Cursor()
		for k, v := c.First(); k != nil && len(out) < limit; k, v = c.Next() {
			m, err := decodeMessage(v)
			if err != nil {
				return fmt.Errorf("dead letter %x: %w", k, err)
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	return out, nil
}

// Stats counts messages by state from counters kept in memory: it costs no
// transaction. The counts are a moment's picture, not a transactional snapshot.
func (b *Bolt) Stats(ctx context.Context) (Stats, error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	var s Stats
	for lane := range lanes {
		// A commit's counters are updated just after it; never report less than zero.
		n := max(b.ready[lane].Load()-b.leased[lane].Load(), 0)
		s.Ready += n
		s.Inflight += b.leased[lane].Load()
		if lane == High.lane() {
			s.High = n
		}
	}
	s.Dead = b.dead.Load()
	return s, nil
}

// Ping reports whether the db answers and holds the queue's buckets.
func (b *Bolt) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketReady) == nil || tx.Bucket(bucketDead) == nil {
			return errors.New("queue: buckets missing")
		}
		return nil
	})
}
