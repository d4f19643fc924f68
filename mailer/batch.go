package mailer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
)

// MaxBatch bounds the messages of one SendBatch transaction group.
const MaxBatch = 32

// SendBatch delivers msgs and returns each one's result as Send would (nil or a
// *SendError), in order. When the first relay believed up offers PIPELINING and
// CHUNKING and no rate limit applies, the transactions go through one connection in
// one write (RFC 2920 allows pipelining MAIL, RCPT and BDAT LAST across transactions)
// and the replies are read after: one round trip for the whole batch instead of one a
// message. Otherwise, and for batches larger than MaxBatch, the messages are sent one
// by one with Send.
//
// If the connection is lost while replies are awaited, the messages whose replies
// were not read are reported temporary with "delivery unknown", as Send reports a
// message whose reply was lost: the relay may have accepted them.
func (s *Sender) SendBatch(ctx context.Context, msgs []*Message) []error {
	errs := make([]error, len(msgs))
	p := s.batchPool()
	if p == nil || len(msgs) > MaxBatch || len(msgs) < 2 {
		return s.sendEach(ctx, msgs, errs)
	}
	type built struct {
		i   int
		env envelope
		sig string
		raw *bytes.Buffer
	}
	var items []built
	defer func() {
		for _, b := range items {
			s.putBuf(b.raw)
		}
	}()
	for i, m := range msgs {
		if m == nil {
			errs[i] = permanent(errors.New("nil message"))
			continue
		}
		buf := s.bufs.Get().(*bytes.Buffer)
		buf.Reset()
		env, err := m.build(buf, s.now())
		if err != nil {
			s.putBuf(buf)
			errs[i] = permanent(err)
			continue
		}
		sig, err := s.sign(env, buf.Bytes())
		if err != nil {
			s.putBuf(buf)
			errs[i] = err
			continue
		}
		if !crlfOnly(sig) || !crlfOnly(buf.Bytes()) {
			s.putBuf(buf)
			errs[i] = s.Send(ctx, m)
			continue
		}
		items = append(items, built{i: i, env: env, sig: sig, raw: buf})
	}
	if len(items) == 0 {
		return errs
	}
	c, _, err := s.get(ctx, p)
	if err != nil || !c.pipelining || !c.chunking {
		if err == nil {
			p.put(c)
		}
		for _, b := range items {
			errs[b.i] = s.Send(ctx, msgs[b.i])
		}
		return errs
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { c.raw.SetDeadline(s.now()) })
		defer stop()
	}
	if err := s.deadline(ctx, c); err != nil {
		p.put(c)
		for _, b := range items {
			errs[b.i] = ctxErr(ctx, "send", err)
		}
		return errs
	}
	out := c.out[:0]
	for _, b := range items {
		out = appendBDAT(out, c, b.env, b.sig, b.raw.Bytes())
	}
	if cap(out) <= 4<<20 {
		c.out = out
	}
	w := c.sc.Text.W
	w.Write(out)
	if err := w.Flush(); err != nil {
		// Part of the batch may have left: whole transactions the relay may accept.
		p.discard(c)
		for _, b := range items {
			errs[b.i] = temporary(fmt.Errorf("%s: connection lost while sending, delivery unknown: %w", p.relay.Addr(), err))
		}
		return errs
	}
	t := c.sc.Text
	healthy := true
	for _, b := range items {
		if !healthy {
			errs[b.i] = temporary(fmt.Errorf("%s: connection lost before its reply, delivery unknown", p.relay.Addr()))
			continue
		}
		_, _, mailErr := t.ReadResponse(250)
		_, _, rcptErr := t.ReadResponse(25)
		_, _, dataErr := t.ReadResponse(250)
		var err error
		switch {
		case isBroken(mailErr) || isBroken(rcptErr) || isBroken(dataErr):
			healthy = false
			err = temporary(fmt.Errorf("%s: connection lost before its reply, delivery unknown", p.relay.Addr()))
		case mailErr != nil:
			err = fmt.Errorf("%s refused %s: %w", p.relay.Addr(), stageMail, mailErr)
		case rcptErr != nil:
			err = fmt.Errorf("%s refused %s: %w", p.relay.Addr(), stageRcpt, rcptErr)
		case dataErr != nil:
			err = fmt.Errorf("%s refused %s: %w", p.relay.Addr(), stageEnd, dataErr)
		}
		for _, e := range []error{mailErr, rcptErr, dataErr} {
			if replyCode(e) == 421 {
				healthy = false // the relay is closing the session
			}
		}
		if err != nil {
			err = classify(err)
		}
		errs[b.i] = err
	}
	if healthy {
		c.used = s.now()
		p.put(c)
	} else {
		p.discard(c)
	}
	return errs
}

// appendBDAT appends one transaction, MAIL, RCPT and "BDAT n LAST" with the message.
func appendBDAT(out []byte, c *conn, env envelope, sig string, raw []byte) []byte {
	out = append(out, "MAIL FROM:"...)
	out = append(out, env.from...)
	if c.eightBit {
		out = append(out, " BODY=8BITMIME"...)
	}
	if c.smtpUTF8 {
		out = append(out, " SMTPUTF8"...)
	}
	out = append(out, "\r\nRCPT TO:"...)
	out = append(out, env.to...)
	out = append(out, "\r\nBDAT "...)
	out = strconv.AppendInt(out, int64(len(sig)+len(raw)), 10)
	out = append(out, " LAST\r\n"...)
	out = append(out, sig...)
	return append(out, raw...)
}

// batchPool is the relay a batch may use: the first believed up, when no rate limit
// applies (limits are counted a message at a time by Send).
func (s *Sender) batchPool() *pool {
	if s.global != nil || s.closed.Load() {
		return nil
	}
	now := s.now().UnixNano()
	for _, p := range s.pools {
		if p.downUntil.Load() > now {
			continue
		}
		if p.limiter != nil {
			return nil
		}
		return p
	}
	return nil
}

func (s *Sender) sendEach(ctx context.Context, msgs []*Message, errs []error) []error {
	for i, m := range msgs {
		errs[i] = s.Send(ctx, m)
	}
	return errs
}
