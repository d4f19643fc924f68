package mailer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/emersion/go-message/charset" // decode ISO-8859-x, Windows-125x… parts
	gomessage "github.com/emersion/go-message/mail"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// MaxCaughtBytes is the largest message a Catcher accepts (SIZE extension, RFC 1870).
const MaxCaughtBytes = 10 << 20

// CaughtMessage is one message a Catcher received. Its slices and maps are shared with
// the Catcher: treat them as read-only.
type CaughtMessage struct {
	// ID identifies the message within its Catcher ("1", "2", …).
	ID string
	// From is the envelope sender (MAIL FROM), possibly empty for bounces.
	From string
	// To are the envelope recipients (RCPT TO).
	To []string
	// AuthUser is the user name given with AUTH, if any.
	AuthUser string
	// Header holds the header fields as sent (values not decoded).
	Header mail.Header
	// Subject is the decoded Subject.
	Subject string
	// Text and HTML are the first text/plain and text/html parts, decoded from
	// quoted-printable or base64, converted to UTF-8, with CRLF turned into LF. A
	// single-part body keeps the final newline the sender's MIME writer added.
	Text string
	HTML string
	// ParseError is set when the message could not be parsed as MIME; Raw is still kept.
	ParseError string
	// Raw is the message exactly as received.
	Raw []byte
	// Received is when the final dot arrived.
	Received time.Time
	// MailAt is when the MAIL FROM command was read (tests compare it with other
	// events: the relay saw the message from then on).
	MailAt time.Time

	fields []headerField // in order, decoded, for display
}

type headerField struct{ Key, Value string }

// FaultFunc decides, for one recipient, how a Catcher answers: nil accepts, an error is
// sent as the SMTP reply (e.g. &smtp.SMTPError{Code: 451, Message: "try later"}).
type FaultFunc func(rcpt string) *smtp.SMTPError

// Catcher is an SMTP server that accepts every message (any sender, any recipient, any
// AUTH PLAIN credentials) and keeps the last few in memory, never on disk. It is the
// relay of `consentmail dev` and the sink of tests. Listen, then Serve; Close stops.
type Catcher struct {
	max int
	srv *smtp.Server

	mu      sync.Mutex
	ring    []*caught
	seq     uint64 // messages received so far; the newest has ID seq
	changed chan struct{}

	rcptFault atomic.Pointer[FaultFunc]
	dataFault atomic.Pointer[FaultFunc]

	conns  atomic.Int64
	lnMu   sync.Mutex
	ln     net.Listener
	live   map[*trackedConn]struct{}
	closed bool
}

// NewCatcher returns a Catcher keeping the last max messages (max < 1 means 100).
func NewCatcher(max int) *Catcher {
	if max < 1 {
		max = 100
	}
	c := &Catcher{
		max:     max,
		ring:    make([]*caught, max),
		changed: make(chan struct{}),
		live:    make(map[*trackedConn]struct{}),
	}
	s := smtp.NewServer(smtp.BackendFunc(c.newSession))
	s.Domain = "consentmail-catcher"
	s.MaxMessageBytes = MaxCaughtBytes
	s.MaxRecipients = 1000
	s.AllowInsecureAuth = true
	s.EnableSMTPUTF8 = true
	s.ReadTimeout = 10 * time.Minute
	s.WriteTimeout = time.Minute
	s.ErrorLog = log.New(io.Discard, "", 0)
	c.srv = s
	return c
}

// Listen opens the SMTP listener on addr (e.g. "127.0.0.1:0") and returns its address,
// so a caller asking for port 0 learns the port. Call Serve next.
func (c *Catcher) Listen(addr string) (net.Addr, error) {
	c.lnMu.Lock()
	defer c.lnMu.Unlock()
	if c.closed {
		return nil, smtp.ErrServerClosed
	}
	if c.ln != nil {
		return nil, errors.New("mailer: catcher already listening")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	c.ln = &trackingListener{Listener: ln, c: c}
	return ln.Addr(), nil
}

// Addr returns the listening address, or nil before Listen.
func (c *Catcher) Addr() net.Addr {
	c.lnMu.Lock()
	defer c.lnMu.Unlock()
	if c.ln == nil {
		return nil
	}
	return c.ln.Addr()
}

// Serve answers SMTP on the listener opened by Listen until ctx ends or Close is
// called, then closes every connection and returns nil.
func (c *Catcher) Serve(ctx context.Context) error {
	c.lnMu.Lock()
	ln := c.ln
	c.lnMu.Unlock()
	if ln == nil {
		return errors.New("mailer: catcher: Serve before Listen")
	}
	errc := make(chan error, 1)
	go func() { errc <- c.srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		c.Close()
		<-errc
		return nil
	case err := <-errc:
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		return err
	}
}

// ListenAndServe is Listen followed by Serve.
func (c *Catcher) ListenAndServe(ctx context.Context, addr string) error {
	if _, err := c.Listen(addr); err != nil {
		return err
	}
	return c.Serve(ctx)
}

// Close stops the server and closes every connection. Messages stay readable.
func (c *Catcher) Close() error {
	c.lnMu.Lock()
	if c.closed {
		c.lnMu.Unlock()
		return nil
	}
	c.closed = true
	ln := c.ln
	c.lnMu.Unlock()
	if ln == nil {
		return nil
	}
	ln.Close() // in case Serve never ran; the server closes it too
	if err := c.srv.Close(); err != nil && !errors.Is(err, smtp.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// Connections returns how many SMTP connections have been accepted so far.
func (c *Catcher) Connections() int64 { return c.conns.Load() }

// DropConnections closes every open connection abruptly, as a relay restarting would,
// and keeps listening.
func (c *Catcher) DropConnections() {
	c.lnMu.Lock()
	live := make([]*trackedConn, 0, len(c.live))
	for tc := range c.live {
		live = append(live, tc)
	}
	c.lnMu.Unlock()
	for _, tc := range live {
		tc.Close()
	}
}

// FailRcpt makes the Catcher consult f at each RCPT TO; nil restores accepting all.
func (c *Catcher) FailRcpt(f FaultFunc) { c.rcptFault.Store(&f) }

// FailData makes the Catcher consult f for each recipient after the data of a message
// arrived, answering the first error instead of storing the message; nil restores
// accepting all.
func (c *Catcher) FailData(f FaultFunc) { c.dataFault.Store(&f) }

func fault(p *atomic.Pointer[FaultFunc], rcpt string) error {
	if f := p.Load(); f != nil && *f != nil {
		if e := (*f)(rcpt); e != nil {
			return e
		}
	}
	return nil
}

// Received returns how many messages have been stored so far, including ones no longer
// kept.
func (c *Catcher) Received() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int(c.seq)
}

// Messages returns the kept messages, newest first.
func (c *Catcher) Messages() []CaughtMessage {
	c.mu.Lock()
	msgs := c.snapshot()
	c.mu.Unlock()
	return parsed(msgs)
}

// snapshot returns the kept messages newest first, unparsed; c.mu must be held.
func (c *Catcher) snapshot() []*caught {
	n := min(c.seq, uint64(c.max))
	out := make([]*caught, 0, n)
	for i := uint64(0); i < n; i++ {
		out = append(out, c.ring[(c.seq-1-i)%uint64(c.max)])
	}
	return out
}

// parsed parses (once each) and returns msgs; called without c.mu, since parsing a
// large message takes a while.
func parsed(msgs []*caught) []CaughtMessage {
	out := make([]CaughtMessage, len(msgs))
	for i, m := range msgs {
		out[i] = m.message()
	}
	return out
}

// caught is a stored message, parsed on first read: a sink under load then spends its
// time receiving, not parsing messages nobody looks at.
type caught struct {
	once sync.Once
	msg  CaughtMessage // envelope, Raw, ID and Received until parsed
}

func (m *caught) message() CaughtMessage {
	m.once.Do(func() { parseCaught(&m.msg) })
	return m.msg
}

// Get returns the message with the given ID, if still kept.
func (c *Catcher) Get(id string) (CaughtMessage, bool) {
	n, err := strconv.ParseUint(id, 10, 64)
	c.mu.Lock()
	if err != nil || n == 0 || n > c.seq || c.seq-n >= uint64(c.max) {
		c.mu.Unlock()
		return CaughtMessage{}, false
	}
	m := c.ring[(n-1)%uint64(c.max)]
	c.mu.Unlock()
	return m.message(), true
}

// Changed returns a channel closed at the next stored message. Take a new one after
// each wake-up.
func (c *Catcher) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// Wait blocks until cond, given the kept messages newest first, returns true, or ctx
// ends (returning ctx's error). cond is called once at once and again after each new
// message.
func (c *Catcher) Wait(ctx context.Context, cond func([]CaughtMessage) bool) error {
	for {
		c.mu.Lock()
		msgs, ch := c.snapshot(), c.changed
		c.mu.Unlock()
		if cond(parsed(msgs)) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *Catcher) store(m *caught) {
	c.mu.Lock()
	c.seq++
	m.msg.ID = strconv.FormatUint(c.seq, 10)
	c.ring[(c.seq-1)%uint64(c.max)] = m
	ch := c.changed
	c.changed = make(chan struct{})
	c.mu.Unlock()
	close(ch)
}

// session is one SMTP connection's state.
type session struct {
	c      *Catcher
	user   string
	from   string
	mailAt time.Time
	to     []string
}

func (c *Catcher) newSession(*smtp.Conn) (smtp.Session, error) { return &session{c: c}, nil }

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, _ string) error {
		s.user = user // the password is not kept
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from, s.mailAt = from, time.Now()
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := fault(&s.c.rcptFault, to); err != nil {
		return err
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	for _, rcpt := range s.to {
		if err := fault(&s.c.dataFault, rcpt); err != nil {
			return err
		}
	}
	s.c.store(&caught{msg: CaughtMessage{From: s.from, To: s.to, AuthUser: s.user, Raw: raw, Received: time.Now(), MailAt: s.mailAt}})
	s.to = nil // the stored slice must not be appended to by the next transaction
	return nil
}

func (s *session) Reset() { s.from, s.to = "", nil }

func (s *session) Logout() error { return nil }

// parseCaught fills in what the inbox shows from m.Raw; a message that is not valid
// MIME keeps what could be read and says why in ParseError.
func parseCaught(m *CaughtMessage) {
	m.Header = mail.Header{}
	mr, err := gomessage.CreateReader(bytes.NewReader(m.Raw))
	if mr == nil {
		m.ParseError = err.Error()
		return
	}
	defer mr.Close()
	fields := mr.Header.Fields()
	for fields.Next() {
		k := fields.Key()
		m.Header[k] = append(m.Header[k], fields.Value())
		v, derr := fields.Text()
		if derr != nil {
			v = fields.Value()
		}
		m.fields = append(m.fields, headerField{k, v})
	}
	if m.Subject, err = mr.Header.Subject(); err != nil {
		m.Subject = mr.Header.Get("Subject")
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if p == nil {
			m.ParseError = err.Error()
			break
		}
		h, ok := p.Header.(*gomessage.InlineHeader)
		if !ok {
			continue
		}
		t, _, _ := h.ContentType()
		if (t == "text/plain" && m.Text == "") || (t == "text/html" && m.HTML == "") {
			b, err := io.ReadAll(p.Body)
			if err != nil {
				m.ParseError = err.Error()
			}
			// Line ends are the transport's business; readers get Unix ones.
			if s := strings.ReplaceAll(string(b), "\r\n", "\n"); t == "text/plain" {
				m.Text = s
			} else {
				m.HTML = s
			}
		}
	}
}

// trackingListener counts accepted connections and remembers the open ones so
// DropConnections can close them.
type trackingListener struct {
	net.Listener
	c *Catcher
}

func (l *trackingListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.c.conns.Add(1)
	tc := &trackedConn{Conn: nc, c: l.c}
	l.c.lnMu.Lock()
	l.c.live[tc] = struct{}{}
	l.c.lnMu.Unlock()
	return tc, nil
}

type trackedConn struct {
	net.Conn
	c    *Catcher
	once sync.Once
}

func (t *trackedConn) Close() error {
	t.once.Do(func() {
		t.c.lnMu.Lock()
		delete(t.c.live, t)
		t.c.lnMu.Unlock()
	})
	return t.Conn.Close()
}
