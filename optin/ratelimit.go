package optin

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Rate is a number of events per period, as in CONSENTMAIL_SIGNUP_RATE ("10/min").
// The zero Rate means unlimited.
type Rate struct {
	N   int
	Per time.Duration
}

// ParseRate parses "N/s", "N/min" or "N/h" (also "N/sec", "N/minute", "N/hour"); "0"
// means unlimited.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return Rate{}, nil
	}
	n, unit, ok := strings.Cut(s, "/")
	count, err := strconv.Atoi(n)
	if !ok || err != nil || count < 1 {
		return Rate{}, fmt.Errorf("rate %q: want N/s, N/min or N/h with N ≥ 1, or 0 for unlimited", s)
	}
	per := map[string]time.Duration{"s": time.Second, "sec": time.Second, "second": time.Second,
		"m": time.Minute, "min": time.Minute, "minute": time.Minute, "h": time.Hour, "hour": time.Hour}[unit]
	if per == 0 {
		return Rate{}, fmt.Errorf("rate %q: unknown unit %q (s, min or h)", s, unit)
	}
	return Rate{N: count, Per: per}, nil
}

// String formats the rate as it is parsed.
func (r Rate) String() string {
	if r.N == 0 {
		return "0"
	}
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "min", time.Hour: "h"}[r.Per]
	return strconv.Itoa(r.N) + "/" + unit
}

// limiter is a token bucket per client key (IP address): a burst of N, refilled at
// N per period. Idle buckets are forgotten, so memory follows active clients only.
type limiter struct {
	r     Rate
	now   func() time.Time
	mu    sync.Mutex
	keys  map[string]*bucket
	swept time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiter(r Rate, now func() time.Time) *limiter {
	return &limiter{r: r, now: now, keys: map[string]*bucket{}}
}

// allow takes one token for key, or says how long to wait for one.
func (l *limiter) allow(key string) (bool, time.Duration) {
	if l.r.N == 0 {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b := l.keys[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rate.Every(l.r.Per/time.Duration(l.r.N)), l.r.N)}
		l.keys[key] = b
	}
	b.seen = now
	res := b.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep drops buckets idle for a whole period (they are full again by then).
func (l *limiter) sweep(now time.Time) {
	if now.Sub(l.swept) < l.r.Per {
		return
	}
	l.swept = now
	for k, b := range l.keys {
		if now.Sub(b.seen) >= l.r.Per {
			delete(l.keys, k)
		}
	}
}
