package inbound

import (
	"net"
	"sync"
	"time"
)

// limitListener refuses, with a 421 greeting, connections beyond max at once and
// beyond perMinute per client IP (a token bucket per IP).
type limitListener struct {
	net.Listener
	slots     chan struct{}
	perMinute float64
	now       func() time.Time

	mu      sync.Mutex
	buckets map[string]*ipBucket
	swept   time.Time
}

type ipBucket struct {
	tokens float64
	at     time.Time
}

func newLimitListener(ln net.Listener, max, perMinute int, now func() time.Time) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, max), perMinute: float64(perMinute), now: now,
		buckets: map[string]*ipBucket{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !l.allow(c.RemoteAddr()) {
			go refuse(c, "421 4.7.0 Too many connections from your address, try again later\r\n")
			continue
		}
		select {
		case l.slots <- struct{}{}:
			return &slotConn{Conn: c, release: func() { <-l.slots }}, nil
		default:
			go refuse(c, "421 4.3.2 Too many connections, try again later\r\n")
		}
	}
}

func refuse(c net.Conn, reply string) {
	c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	c.Write([]byte(reply))
	c.Close()
}

// allow takes a token from the IP's bucket, which refills perMinute tokens a minute
// up to perMinute.
func (l *limitListener) allow(a net.Addr) bool {
	ip := a.String()
	if ta, ok := a.(*net.TCPAddr); ok {
		ip = ta.IP.String()
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute { // a full bucket is the same as none
		for k, b := range l.buckets {
			if now.Sub(b.at) > time.Minute {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b, ok := l.buckets[ip]
	if !ok {
		b = &ipBucket{tokens: l.perMinute, at: now}
		l.buckets[ip] = b
	}
	b.tokens = min(l.perMinute, b.tokens+now.Sub(b.at).Minutes()*l.perMinute)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

type slotConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *slotConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
