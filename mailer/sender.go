package mailer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
	"golang.org/x/time/rate"

	emailaddr "consentmail/preferences/address"
)

// Defaults for Options left zero.
const (
	DefaultTimeout     = 30 * time.Second
	DefaultIdleTimeout = 60 * time.Second
	// relayCooldown is how long a relay that could not be reached is tried only after
	// the others.
	relayCooldown = 10 * time.Second
)

// Options configure a Sender. The zero value is usable.
type Options struct {
	// HeloName is the name given in EHLO; empty means the host name.
	HeloName string
	// GlobalRate caps messages per second across all relays (CONSENTMAIL_SEND_RATE);
	// 0 is unlimited. Fractions are allowed.
	GlobalRate float64
	// DKIM holds at most one signer per sending domain. A message is signed with the
	// key of its From domain (or of the nearest parent domain that has one), so that
	// DKIM aligns with From for DMARC; a message from a domain without a key is sent
	// unsigned and logged once per domain (see CheckFrom).
	DKIM []*DKIMSigner
	// Timeout bounds each SMTP operation (dial, handshake, each command, the data
	// transfer); 0 means DefaultTimeout.
	Timeout time.Duration
	// IdleTimeout is how long an unused connection is kept; older ones are closed rather
	// than reused, since relays drop idle clients. 0 means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// TLSConfig is cloned for STARTTLS and implicit TLS (e.g. to trust a private CA);
	// nil means the system roots. ServerName defaults to the relay's host.
	TLSConfig *tls.Config
	// Logger receives relay failures and failovers; nil discards. Passwords, message
	// contents and recipient addresses are never logged.
	Logger *slog.Logger
	// Now is the clock for Date headers and connection ages; nil means time.Now.
	Now func() time.Time
}

// Sender delivers messages through a list of relays, reusing SMTP connections. It is
// safe for concurrent use; many goroutines calling Send is how throughput is reached.
type Sender struct {
	pools   []*pool
	global  *rate.Limiter // nil: unlimited
	dkim    dkimKeys
	unkeyed sync.Map // From domains without a DKIM key, logged once each
	log     *slog.Logger
	now     func() time.Time
	timeout time.Duration
	idle    time.Duration
	closed  atomic.Bool
	bufs    sync.Pool
	outs    sync.Pool // *[]byte: see getOut
}

// pool holds the live connections to one relay.
type pool struct {
	relay    Relay
	tls      *tls.Config
	baseOpts []gomail.Option
	limiter  *rate.Limiter // nil: unlimited
	// idle holds connections ready for use; slots holds a token per live connection,
	// so both have MaxConns capacity and a put never blocks.
	idle      chan *conn
	slots     chan struct{}
	downUntil atomic.Int64 // unix nanoseconds; skip first until then
	closed    atomic.Bool
	dials     atomic.Int64
}

// conn is one SMTP session. raw is the connection under sc (TLS for implicit TLS), kept
// so deadlines can be set without go-mail's locks; tcp is the socket itself.
type conn struct {
	sc   *smtp.Client
	raw  net.Conn
	tcp  net.Conn
	used time.Time
	// Extensions the relay offers.
	pipelining, chunking, eightBit, smtpUTF8 bool
}

// NewSender returns a Sender for relays, tried in order. It does not connect: the first
// Send dials. Relays with MaxConns 0 get DefaultMaxConns.
func NewSender(relays []Relay, opts Options) (*Sender, error) {
	if len(relays) == 0 {
		return nil, errors.New("mailer: no relay")
	}
	if opts.GlobalRate < 0 {
		return nil, fmt.Errorf("mailer: negative GlobalRate %v", opts.GlobalRate)
	}
	keys, err := newDKIMKeys(opts.DKIM)
	if err != nil {
		return nil, err
	}
	s := &Sender{
		dkim:    keys,
		log:     opts.Logger,
		now:     opts.Now,
		timeout: opts.Timeout,
		idle:    opts.IdleTimeout,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.idle <= 0 {
		s.idle = DefaultIdleTimeout
	}
	s.global = limiter(opts.GlobalRate)
	s.bufs.New = func() any { return new(bytes.Buffer) }
	for i, r := range relays {
		if r.Host == "" || r.Port < 1 || r.Port > 65535 {
			return nil, fmt.Errorf("mailer: relay %d: bad address %q", i+1, r.Addr())
		}
		if r.Rate < 0 || r.MaxConns < 0 {
			return nil, fmt.Errorf("mailer: relay %d (%s): negative rate or max_conns", i+1, r)
		}
		if r.TLS < TLSNone || r.TLS > TLSImplicit {
			return nil, fmt.Errorf("mailer: relay %d (%s): unknown TLS mode", i+1, r)
		}
		if r.MaxConns == 0 {
			r.MaxConns = DefaultMaxConns
		}
		p := &pool{
			relay:   r,
			limiter: limiter(r.Rate),
			idle:    make(chan *conn, r.MaxConns),
			slots:   make(chan struct{}, r.MaxConns),
		}
		p.tls = &tls.Config{}
		if opts.TLSConfig != nil {
			p.tls = opts.TLSConfig.Clone()
		}
		if p.tls.ServerName == "" {
			p.tls.ServerName = r.Host
		}
		if p.tls.MinVersion == 0 {
			p.tls.MinVersion = tls.VersionTLS12
		}
		// Implicit TLS is done by our dialer, so go-mail only ever sees STARTTLS or nothing.
		policy := gomail.NoTLS
		if r.TLS == TLSStartTLS {
			policy = gomail.TLSMandatory
		}
		p.baseOpts = []gomail.Option{
			gomail.WithPort(r.Port),
			gomail.WithTimeout(s.timeout),
			gomail.WithTLSConfig(p.tls),
			gomail.WithTLSPolicy(policy),
		}
		if opts.HeloName != "" {
			p.baseOpts = append(p.baseOpts, gomail.WithHELO(opts.HeloName))
		}
		if r.Username != "" {
			switch r.Auth {
			case "", AuthAuto, AuthPlain, AuthLogin, AuthCRAMMD5, AuthSCRAMSHA256:
			default:
				return nil, fmt.Errorf("mailer: relay %d (%s): unknown auth %q", i+1, r, r.Auth)
			}
		}
		s.pools = append(s.pools, p)
	}
	return s, nil
}

func limiter(perSecond float64) *rate.Limiter {
	if perSecond <= 0 {
		return nil
	}
	// A burst of one second's worth (at least 1) smooths start-up without letting a
	// long pause turn into a flood.
	burst := max(int(perSecond), 1)
	return rate.NewLimiter(rate.Limit(perSecond), burst)
}

// Send delivers m to its one recipient. It returns nil once a relay has accepted the
// message (its 250 reply to the message data), otherwise a *SendError: permanent for an
// invalid message or a 5xx reply, temporary for a 4xx reply, unreachable relays, a lost
// connection or an ended ctx.
//
// Send waits for the global and the relay's rate limit and for a free connection,
// giving up when ctx ends. A relay that cannot be reached is skipped for the next one.
// An idle connection found broken is replaced by a new one and the message sent again,
// but only when the relay cannot have accepted it: a connection lost after the whole
// message was sent is reported (temporary), never silently retried.
func (s *Sender) Send(ctx context.Context, m *Message) error {
	if m == nil {
		return permanent(errors.New("nil message"))
	}
	if s.closed.Load() {
		return temporary(ErrClosed)
	}
	buf := s.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer s.putBuf(buf)
	env, err := m.build(buf, s.now())
	if err != nil {
		return permanent(err)
	}
	sig, err := s.sign(env, buf.Bytes())
	if err != nil {
		return err
	}
	if s.global != nil {
		if err := s.global.Wait(ctx); err != nil {
			return ctxErr(ctx, "global rate limit", err)
		}
	}

	var last error
	now := s.now().UnixNano()
	// First the relays believed up, in order; then the ones that failed recently.
	for pass := range 2 {
		for _, p := range s.pools {
			if down := p.downUntil.Load() > now; down != (pass == 1) {
				continue
			}
			err := s.sendVia(ctx, p, env, sig, buf.Bytes())
			if err == nil {
				if p.downUntil.Load() != 0 {
					p.downUntil.Store(0) // written only on change: all senders read it
				}
				return nil
			}
			var rf *relayFailure
			if !errors.As(err, &rf) {
				return classify(err)
			}
			p.downUntil.Store(s.now().Add(relayCooldown).UnixNano())
			// A reply (a 421 to RCPT) may quote the recipient.
			s.log.Warn("mailer: relay unreachable, trying the next", "relay", p.relay, "err", emailaddr.Redact(rf.err.Error()))
			last = rf.err
			if ctx.Err() != nil {
				return ctxErr(ctx, "send", ctx.Err())
			}
		}
	}
	return &SendError{Code: replyCode(last), Temporary: true, Err: fmt.Errorf("no relay reachable: %w", last)}
}

// sign returns the DKIM-Signature field for a built message: "" when no key covers its
// From domain.
func (s *Sender) sign(env envelope, raw []byte) (string, error) {
	if len(s.dkim) == 0 {
		return "", nil
	}
	signer := s.dkim.forDomain(env.domain)
	if signer == nil {
		if _, seen := s.unkeyed.LoadOrStore(env.domain, true); !seen {
			s.log.Warn("mailer: no DKIM key for the From domain; its mail goes out unsigned and fails DMARC alignment",
				"domain", env.domain)
		}
		return "", nil
	}
	sig, err := signer.Signature(raw)
	if err != nil {
		// Our key, not the recipient, is at fault: do not let it suppress anyone.
		return "", temporary(err)
	}
	return sig, nil
}

// ErrNoDKIMKey means DKIM keys are configured but none is for a From address's domain.
var ErrNoDKIMKey = errors.New("no DKIM key for this domain")

// CheckFrom reports whether mail from the address from would be DKIM-signed with an
// aligned key: nil when it would, or when no DKIM key is configured at all (nothing
// is signed then, by choice); an error wrapping ErrNoDKIMKey when keys exist but none
// for from's domain. APIs that accept a sender address use it to refuse one that would
// fail DMARC.
func (s *Sender) CheckFrom(from string) error {
	if len(s.dkim) == 0 {
		return nil
	}
	a, err := parseAddr("from", from)
	if err != nil {
		return err
	}
	domain := strings.ToLower(a.spec[strings.LastIndexByte(a.spec, '@')+1:])
	if s.dkim.forDomain(domain) == nil {
		return fmt.Errorf("%w: %s (keys are configured for %s)", ErrNoDKIMKey, domain, strings.Join(s.DKIMDomains(), ", "))
	}
	return nil
}

// DKIMDomains returns the domains that have a DKIM key, sorted.
func (s *Sender) DKIMDomains() []string {
	out := make([]string, 0, len(s.dkim))
	for d := range s.dkim {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// getOut returns an empty buffer to assemble transactions in, so that they leave in
// one write; putOut takes it back once written. Only connections writing hold one, not
// those waiting for replies: a sender's memory does not grow with its connections.
func (s *Sender) getOut() *[]byte {
	if b, ok := s.outs.Get().(*[]byte); ok {
		*b = (*b)[:0]
		return b
	}
	return new([]byte)
}

func (s *Sender) putOut(b *[]byte) {
	if cap(*b) <= maxKeptOut {
		s.outs.Put(b)
	}
}

func (s *Sender) putBuf(b *bytes.Buffer) {
	if b.Cap() <= 1<<20 {
		s.bufs.Put(b)
	}
}

// relayFailure marks an error that means "this relay is unusable now": try the next.
type relayFailure struct{ err error }

func (e *relayFailure) Error() string { return e.err.Error() }
func (e *relayFailure) Unwrap() error { return e.err }

// sendVia sends through one relay. It returns a *relayFailure when the relay could not
// be used and the message was certainly not accepted, another error otherwise.
func (s *Sender) sendVia(ctx context.Context, p *pool, env envelope, sig string, raw []byte) error {
	if p.limiter != nil {
		if err := p.limiter.Wait(ctx); err != nil {
			return ctxErr(ctx, "relay rate limit", err)
		}
	}
	for attempt := 0; ; attempt++ {
		c, reused, err := s.get(ctx, p)
		if err != nil {
			if ctx.Err() != nil {
				return ctxErr(ctx, "connect "+p.relay.Addr(), err)
			}
			return &relayFailure{fmt.Errorf("connect %s: %w", p.relay.Addr(), err)}
		}
		st, err := s.transact(ctx, c, env, sig, raw)
		if err == nil {
			c.used = s.now()
			p.put(c)
			return nil
		}
		code := replyCode(err)
		if code != 0 && code != 421 {
			// The relay answered: the connection is healthy. A refusal before the data
			// leaves a transaction open; a refusal of the data has closed it.
			if st < stageEnd && c.sc.Reset() != nil {
				p.discard(c)
			} else {
				c.used = s.now()
				p.put(c)
			}
			return fmt.Errorf("%s refused %s: %w", p.relay.Addr(), st, err)
		}
		p.discard(c)
		if code == 0 && st >= stageEnd {
			// The whole message was sent and the relay's verdict was lost: it may have
			// been accepted. Report it, do not resend.
			if cerr := ctx.Err(); cerr != nil {
				err = fmt.Errorf("%w (%w)", cerr, err)
			}
			return temporary(fmt.Errorf("%s: connection lost after the message was sent, delivery unknown: %w", p.relay.Addr(), err))
		}
		if ctx.Err() != nil {
			return ctxErr(ctx, "send to "+p.relay.Addr(), ctx.Err())
		}
		// Not accepted: a 421 refusal, or a failure before the message was complete.
		if reused && attempt == 0 {
			continue // most likely a connection the relay dropped while idle: redial
		}
		return &relayFailure{fmt.Errorf("%s during %s: %w", p.relay.Addr(), st, err)}
	}
}

// stage is how far an SMTP transaction got.
type stage int

const (
	stageMail stage = iota
	stageRcpt
	stageData
	stageBody
	stageEnd // the whole message was sent; the reply decides
)

func (s stage) String() string {
	return [...]string{"MAIL FROM", "RCPT TO", "DATA", "message data", "end of data"}[s]
}

// transact runs one SMTP transaction on c and returns how far it got. With PIPELINING
// and CHUNKING (RFC 2920, RFC 3030) the whole message goes in one write and costs one
// round trip; with PIPELINING alone, two; otherwise four.
func (s *Sender) transact(ctx context.Context, c *conn, env envelope, sig string, raw []byte) (stage, error) {
	if ctx.Done() != nil {
		// A cancelled ctx interrupts blocked I/O by moving the deadline to the past.
		stop := context.AfterFunc(ctx, func() { c.raw.SetDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	if err := s.deadline(ctx, c); err != nil {
		return stageMail, err
	}
	switch {
	case c.pipelining && c.chunking && crlfOnly(sig) && crlfOnly(raw):
		return s.bdat(c, env, sig, raw)
	case c.pipelining:
		if st, err := s.pipelined(c, env); err != nil {
			return st, err
		}
	default:
		if err := c.sc.Mail(env.from); err != nil {
			return stageMail, err
		}
		if err := s.deadline(ctx, c); err != nil {
			return stageRcpt, err
		}
		if err := c.sc.Rcpt(env.to); err != nil {
			return stageRcpt, err
		}
		if err := s.deadline(ctx, c); err != nil {
			return stageData, err
		}
		if err := c.sc.Text.PrintfLine("DATA"); err != nil {
			return stageData, err
		}
		if _, _, err := c.sc.Text.ReadResponse(354); err != nil {
			return stageData, err
		}
	}
	if err := s.deadline(ctx, c); err != nil {
		return stageBody, err
	}
	w := c.sc.Text.DotWriter()
	if _, err := io.WriteString(w, sig); err != nil {
		return stageBody, err
	}
	if _, err := w.Write(raw); err != nil {
		return stageBody, err
	}
	if err := s.deadline(ctx, c); err != nil {
		return stageBody, err
	}
	if err := w.Close(); err != nil {
		return stageEnd, err
	}
	_, _, err := c.sc.Text.ReadResponse(250)
	return stageEnd, err
}

// mailFrom writes the MAIL command with the parameters the relay supports.
func mailFrom(w *bufio.Writer, c *conn, from string) {
	w.WriteString("MAIL FROM:")
	w.WriteString(from)
	if c.eightBit {
		w.WriteString(" BODY=8BITMIME")
	}
	if c.smtpUTF8 {
		w.WriteString(" SMTPUTF8")
	}
	w.WriteString("\r\n")
}

// bdat sends MAIL, RCPT and "BDAT n LAST" with the message in one write and reads the
// three replies.
func (s *Sender) bdat(c *conn, env envelope, sig string, raw []byte) (stage, error) {
	// One write, one segment: the buffered writer (empty between transactions) passes
	// a write larger than its buffer straight to the connection.
	out := s.getOut()
	*out = appendBDAT(*out, c, env, sig, raw)
	w := c.sc.Text.W
	w.Write(*out)
	s.putOut(out)
	if err := w.Flush(); err != nil {
		// Some bytes never left: the relay cannot have the whole message.
		return stageMail, err
	}
	t := c.sc.Text
	// From here a lost connection may hide an accepted message. An explicit refusal of
	// MAIL or RCPT is final for this transaction whatever comes after.
	_, _, mailErr := t.ReadResponse(250)
	if isBroken(mailErr) {
		return stageEnd, mailErr
	}
	if replyCode(mailErr) == 421 {
		return stageMail, mailErr
	}
	_, _, rcptErr := t.ReadResponse(25)
	if isBroken(rcptErr) {
		if mailErr != nil {
			return stageMail, mailErr
		}
		return stageEnd, rcptErr
	}
	if replyCode(rcptErr) == 421 {
		return stageRcpt, rcptErr
	}
	_, _, dataErr := t.ReadResponse(250)
	switch {
	case mailErr != nil:
		return stageMail, mailErr
	case rcptErr != nil:
		return stageRcpt, rcptErr
	}
	return stageEnd, dataErr
}

// crlfOnly reports whether every LF in b follows a CR, as BDAT (unlike DATA, whose
// writer fixes line ends) requires.
func crlfOnly[T string | []byte](b T) bool {
	for at := 0; ; at++ {
		i := indexLF(b[at:])
		if i < 0 {
			return true
		}
		at += i
		if at == 0 || b[at-1] != '\r' {
			return false
		}
	}
}

// indexLF is the index of the first LF in b, or -1: bytealg's vector search.
func indexLF[T string | []byte](b T) int {
	switch v := any(b).(type) {
	case string:
		return strings.IndexByte(v, '\n')
	case []byte:
		return bytes.IndexByte(v, '\n')
	}
	panic("unreachable")
}

// pipelined sends MAIL, RCPT and DATA in one write (RFC 2920) and reads the three
// replies. On success the relay waits for the data.
func (s *Sender) pipelined(c *conn, env envelope) (stage, error) {
	w := c.sc.Text.W
	mailFrom(w, c, env.from)
	w.WriteString("RCPT TO:")
	w.WriteString(env.to)
	w.WriteString("\r\nDATA\r\n")
	if err := w.Flush(); err != nil {
		return stageMail, err
	}
	// All three replies are read, whatever they say, to stay in step with the relay.
	t := c.sc.Text
	_, _, mailErr := t.ReadResponse(250)
	if isBroken(mailErr) || replyCode(mailErr) == 421 {
		return stageMail, mailErr
	}
	_, _, rcptErr := t.ReadResponse(25)
	if isBroken(rcptErr) || replyCode(rcptErr) == 421 {
		return stageRcpt, rcptErr
	}
	_, _, dataErr := t.ReadResponse(354)
	if isBroken(dataErr) {
		return stageData, dataErr
	}
	if mailErr == nil && rcptErr == nil && dataErr == nil {
		return stageBody, nil
	}
	if dataErr == nil {
		// A relay that accepts DATA without a recipient gets an empty message ended at
		// once; RFC 2920 §3.1 forbids that case, but a relay's bug must not wedge us.
		if err := t.PrintfLine("."); err != nil {
			return stageData, err
		}
		if _, _, err := t.ReadResponse(0); isBroken(err) {
			return stageData, err
		}
	}
	switch {
	case mailErr != nil:
		return stageMail, mailErr
	case rcptErr != nil:
		return stageRcpt, rcptErr
	}
	return stageData, dataErr
}

// isBroken reports whether err is a failure other than an SMTP reply: the session is
// then out of step and must be discarded.
func isBroken(err error) bool { return err != nil && replyCode(err) == 0 }

// deadline bounds the next operation by Timeout and ctx's deadline.
func (s *Sender) deadline(ctx context.Context, c *conn) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d := time.Now().Add(s.timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(d) {
		d = dl
	}
	if err := c.raw.SetDeadline(d); err != nil {
		return err
	}
	// Checked again after setting: a cancellation in between would otherwise have its
	// past deadline overwritten.
	return ctx.Err()
}

// get returns an idle connection to p (reused = true) or dials a new one when fewer
// than MaxConns are live, waiting otherwise.
func (s *Sender) get(ctx context.Context, p *pool) (c *conn, reused bool, err error) {
	for {
		select {
		case c = <-p.idle:
		default:
			select {
			case c = <-p.idle:
			case p.slots <- struct{}{}:
				c, err = s.dial(ctx, p)
				if err != nil {
					<-p.slots
					return nil, false, err
				}
				return c, false, nil
			case <-ctx.Done():
				return nil, false, ctx.Err()
			}
		}
		if s.now().Sub(c.used) > s.idle || !alive(c.tcp) {
			// Too old to trust, or the relay closed it (or said something, such as a
			// 421 timeout notice) while it sat idle.
			p.discard(c)
			continue
		}
		return c, true, nil
	}
}

// dial opens, greets, secures and authenticates a connection with go-mail's client.
func (s *Sender) dial(ctx context.Context, p *pool) (*conn, error) {
	p.dials.Add(1)
	var raw, tcp net.Conn
	implicit := p.relay.TLS == TLSImplicit
	dialFn := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tcp = nc
		if implicit {
			tc := tls.Client(nc, p.tls)
			if err := tc.HandshakeContext(ctx); err != nil {
				nc.Close()
				return nil, err
			}
			nc = tc
		}
		raw = nc
		return nc, nil
	}
	opts := append(p.baseOpts[:len(p.baseOpts):len(p.baseOpts)], gomail.WithDialContextFunc(dialFn))
	if p.relay.Username != "" {
		// A fresh Auth per dial: SCRAM and LOGIN keep per-exchange state.
		opts = append(opts, gomail.WithSMTPAuthCustom(&autoAuth{relay: p.relay}))
	}
	client, err := gomail.NewClient(p.relay.Host, opts...)
	if err != nil {
		return nil, err
	}
	sc, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		if raw != nil {
			raw.Close() // go-mail leaves the connection open when EHLO, TLS or AUTH fails
		}
		return nil, err
	}
	c := &conn{sc: sc, raw: raw, tcp: tcp, used: s.now()}
	c.pipelining, _ = sc.Extension("PIPELINING")
	c.eightBit, _ = sc.Extension("8BITMIME")
	c.chunking, _ = sc.Extension("CHUNKING")
	c.smtpUTF8, _ = sc.Extension("SMTPUTF8")
	return c, nil
}

// put returns a healthy connection for reuse.
func (p *pool) put(c *conn) {
	p.idle <- c // never blocks: at most MaxConns connections exist
	if p.closed.Load() {
		p.drain()
	}
}

// discard closes a connection that must not be reused and frees its slot.
func (p *pool) discard(c *conn) {
	c.raw.Close()
	<-p.slots
}

// drain politely closes every idle connection.
func (p *pool) drain() {
	for {
		select {
		case c := <-p.idle:
			c.raw.SetDeadline(time.Now().Add(2 * time.Second))
			c.sc.Quit()
			p.discard(c)
		default:
			return
		}
	}
}

// Dials returns how many connections have been dialled so far, across relays; with
// Connections it shows whether connections are being reused.
func (s *Sender) Dials() int64 {
	var n int64
	for _, p := range s.pools {
		n += p.dials.Load()
	}
	return n
}

// Close sends QUIT on idle connections and closes them. It neither waits for nor
// cancels Sends in progress; their connections are closed when they return. Send after
// Close fails with ErrClosed.
func (s *Sender) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	for _, p := range s.pools {
		p.closed.Store(true)
		p.drain()
	}
	return nil
}
