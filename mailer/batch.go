package mailer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
)

// MaxBatch bounds the messages of one SendBatchFunc transaction group.
const MaxBatch = 32

// SendBatchFunc delivers n messages that next makes one at a time, and returns each
// one's result as Send would (nil or a *SendError), in order. When the first relay
// believed up offers PIPELINING and CHUNKING and no rate limit applies, the
// transactions go through one connection in one write (RFC 2920 allows pipelining
// MAIL, RCPT and BDAT LAST across transactions) and the replies are read after: one
// round trip for the whole batch instead of one a message. Otherwise, and for batches
// larger than MaxBatch, the messages are sent one by one with Send.
//
// Each message is asked for just before it is encoded onto the connection: it is
// garbage as soon as its bytes are in the batch, so a batch holds its wire bytes and
// one message, never n messages and their encodings. An error from next is that
// message's result, and nothing of it is sent; next is called at most once for each
// i, in order.
//
// If the connection is lost while replies are awaited, the messages whose replies
// were not read are reported temporary with "delivery unknown", as Send reports a
// message whose reply was lost: the relay may have accepted them.
func (s *Sender) SendBatchFunc(ctx context.Context, n int, next func(i int) (*Message, error)) []error {
	errs := make([]error, n)
	p := s.batchPool()
	if p == nil || n > MaxBatch || n < 2 {
		return s.sendEach(ctx, errs, next)
	}
	c, _, err := s.get(ctx, p)
	if err != nil || !c.pipelining || !c.chunking {
		if err == nil {
			p.put(c)
		}
		return s.sendEach(ctx, errs, next) // Send tries the other relays
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { c.raw.SetDeadline(s.now()) })
		defer stop()
	}
	if err := s.deadline(ctx, c); err != nil {
		p.put(c)
		for i := range errs {
			errs[i] = ctxErr(ctx, "send", err)
		}
		return errs
	}
	buf := s.bufs.Get().(*bytes.Buffer)
	defer s.putBuf(buf)
	out := s.getOut()
	var written []int // the messages in out, in order
	type alone struct {
		i int
		m *Message
	}
	var alones []alone // bare CR or LF somewhere: BDAT would carry it as is, DATA mends it
	for i := range n {
		m, err := next(i)
		if err == nil && m == nil {
			err = permanent(errors.New("nil message"))
		}
		if err != nil {
			errs[i] = err
			continue
		}
		buf.Reset()
		env, err := m.build(buf, s.now())
		if err != nil {
			errs[i] = permanent(err)
			continue
		}
		sig, err := s.sign(env, buf.Bytes())
		if err != nil {
			errs[i] = err
			continue
		}
		if !crlfOnly(sig) || !crlfOnly(buf.Bytes()) {
			alones = append(alones, alone{i, m})
			continue
		}
		*out = appendBDAT(*out, c, env, sig, buf.Bytes())
		written = append(written, i)
	}
	defer func() {
		for _, a := range alones {
			errs[a.i] = s.Send(ctx, a.m)
		}
	}()
	if len(written) == 0 {
		s.putOut(out)
		p.put(c)
		return errs
	}
	w := c.sc.Text.W
	w.Write(*out)
	s.putOut(out) // copied out: the replies are awaited without it
	if err := w.Flush(); err != nil {
		// Part of the batch may have left: whole transactions the relay may accept.
		p.discard(c)
		for _, i := range written {
			errs[i] = temporary(fmt.Errorf("%s: connection lost while sending, delivery unknown: %w", p.relay.Addr(), err))
		}
		return errs
	}
	t := c.sc.Text
	healthy := true
	for _, i := range written {
		if !healthy {
			errs[i] = temporary(fmt.Errorf("%s: connection lost before its reply, delivery unknown", p.relay.Addr()))
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
		errs[i] = err
	}
	if healthy {
		c.used = s.now()
		p.put(c)
	} else {
		p.discard(c)
	}
	return errs
}

// maxKeptOut bounds the transaction buffers a sender keeps for reuse (getOut): a
// batch of ordinary campaign mail fits (ten messages of a dozen KB); one of large
// messages allocates its own, so that what a sender keeps does not grow with the
// largest batch it ever sent.
const maxKeptOut = 256 << 10

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

// sendEach sends the messages next makes one by one with Send.
func (s *Sender) sendEach(ctx context.Context, errs []error, next func(int) (*Message, error)) []error {
	for i := range errs {
		m, err := next(i)
		if err != nil {
			errs[i] = err
			continue
		}
		errs[i] = s.Send(ctx, m)
	}
	return errs
}
