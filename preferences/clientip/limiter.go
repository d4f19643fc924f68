package clientip

import (
	"container/list"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxKeys bounds a Limiter's memory: about 200 bytes per key, some 10 MB.
const DefaultMaxKeys = 50_000

// Limiter is a token bucket per client Key: a burst of n, refilled at n per period.
// It keeps at most maxKeys buckets: a bucket idle for a whole period (full again) is
// forgotten, and when a new client arrives with every slot taken, the client seen
// least recently is forgotten.
type Limiter struct {
	n       int
	per     time.Duration
	maxKeys int
	now     func() time.Time
	mu      sync.Mutex
	keys    map[string]*list.Element
	lru     list.List // of *entry, most recently seen first
}

type entry struct {
	key  string
	lim  *rate.Limiter
	seen time.Time
}

// NewLimiter returns a Limiter of n per period (n = 0: unlimited) over at most maxKeys
// clients (≤ 0: DefaultMaxKeys); now is the clock.
func NewLimiter(n int, per time.Duration, maxKeys int, now func() time.Time) *Limiter {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Limiter{n: n, per: per, maxKeys: maxKeys, now: now, keys: map[string]*list.Element{}}
}

// Allow takes one token for the client ip, or says how long until one is there.
func (l *Limiter) Allow(ip string) (bool, time.Duration) {
	if l.n == 0 {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(Key(ip), now, true)
	res := e.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Wait says how long until the client ip has a token, without taking it: 0 when it
// has one now.
func (l *Limiter) Wait(ip string) time.Duration {
	if l.n == 0 {
		return 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(Key(ip), now, false)
	if e == nil {
		return 0
	}
	if tokens := e.lim.TokensAt(now); tokens < 1 {
		return time.Duration((1 - tokens) * float64(l.per) / float64(l.n))
	}
	return 0
}

// Len is the number of clients remembered.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// entry returns the bucket of key (made when create is set), forgetting idle and,
// at the bound, least recently seen buckets. Callers hold mu.
func (l *Limiter) entry(key string, now time.Time, create bool) *entry {
	for back := l.lru.Back(); back != nil; back = l.lru.Back() {
		if e := back.Value.(*entry); now.Sub(e.seen) < l.per {
			break
		} else {
			l.lru.Remove(back)
			delete(l.keys, e.key)
		}
	}
	if el, ok := l.keys[key]; ok {
		e := el.Value.(*entry)
		if create {
			e.seen = now
			l.lru.MoveToFront(el)
		}
		return e
	}
	if !create {
		return nil
	}
	for len(l.keys) >= l.maxKeys {
		back := l.lru.Back()
		l.lru.Remove(back)
		delete(l.keys, back.Value.(*entry).key)
	}
	e := &entry{key: key, lim: rate.NewLimiter(rate.Every(l.per/time.Duration(l.n)), l.n), seen: now}
	l.keys[key] = l.lru.PushFront(e)
	return e
}
