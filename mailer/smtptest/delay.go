package smtptest

import (
	"net"
	"sync"
	"time"
)

// DelayProxy forwards TCP connections to a target, each chunk read in either
// direction delivered rtt/2 later: a relay rtt away, on loopback. Chunks keep their
// order; a slow reader slows its writer (at most 1,024 chunks wait per direction), so
// the proxy's memory stays bounded.
type DelayProxy struct {
	ln   net.Listener
	rtt  time.Duration
	mu   sync.Mutex
	open map[net.Conn]struct{}
	wg   sync.WaitGroup
}

// NewDelayProxy listens on 127.0.0.1:0 and forwards to target with round trip rtt.
func NewDelayProxy(target string, rtt time.Duration) (*DelayProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &DelayProxy{ln: ln, rtt: rtt, open: map[net.Conn]struct{}{}}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.track(c, s)
			p.wg.Go(func() { p.pipe(s, c) })
			p.wg.Go(func() { p.pipe(c, s) })
		}
	})
	return p, nil
}

// Addr is the proxy's "127.0.0.1:PORT".
func (p *DelayProxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting, closes every connection and waits for the forwarding to end.
func (p *DelayProxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.open {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *DelayProxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.open[c] = struct{}{}
	}
}

func (p *DelayProxy) forget(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.open, c)
}

// pipe copies src to dst, each chunk rtt/2 after it was read.
func (p *DelayProxy) pipe(dst, src net.Conn) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	ch := make(chan chunk, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer dst.Close()
		defer p.forget(dst)
		for c := range ch {
			time.Sleep(time.Until(c.at))
			if _, err := dst.Write(c.b); err != nil {
				for range ch { // drain: the reader ends with src
				}
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			ch <- chunk{append([]byte(nil), buf[:n]...), time.Now().Add(p.rtt / 2)}
		}
		if err != nil {
			close(ch)
			<-done
			return
		}
	}
}
