package inbound

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// DefaultMaxMessageBytes is the default size limit of an inbound message.
const DefaultMaxMessageBytes = 10 << 20

// FeedbackLocalPart is the local part of the feedback-loop address.
const FeedbackLocalPart = "fbl"

// Kind tells the inbound addresses apart.
type Kind int

// The kinds of inbound address.
const (
	KindBounce      Kind = iota + 1 // bounce+TOKEN@domain
	KindUnsubscribe                 // unsubscribe+TOKEN@domain
	KindFeedback                    // fbl@domain
)

func (k Kind) String() string {
	switch k {
	case KindBounce:
		return "bounce"
	case KindUnsubscribe:
		return "unsubscribe"
	case KindFeedback:
		return "feedback"
	}
	return "unknown"
}

// ErrUnmatched is what a Handler returns (wrapped) when a report names nothing it
// knows: the message is then quarantined, not refused.
var ErrUnmatched = errors.New("report matches no message sent")

// Bounce is the failure a delivery-status report gives for the one recipient of a
// VERP return path.
type Bounce struct {
	DSNRecipient
	ReportingMTA string
	// Permanent: a 5.x.x status (or Action failed without a status).
	Permanent bool
	// Source names where the failure was learnt: "" for a delivery-status report,
	// a relay's name ("ses", "postmark", …) for its webhook.
	Source string
}

// Unmatched is a message kept because it could not be parsed or matched.
type Unmatched struct {
	Received   time.Time
	RemoteAddr string
	From       string   // envelope sender
	To         []string // envelope recipients
	Reason     string
	Raw        []byte
}

// Handler is what the server hands parsed mail to. Tokens are as they appear in the
// address (case may have been folded by a relay).
type Handler interface {
	// Check is asked at RCPT TO; an error refuses the recipient (550).
	Check(kind Kind, token string) error
	// Bounce records a failure reported to bounce+token.
	Bounce(ctx context.Context, token string, b Bounce) error
	// Complaint records an abuse report naming the message of the bounce token.
	Complaint(ctx context.Context, token string, f Feedback) error
	// Unsubscribe records a mail to unsubscribe+token (its content does not matter).
	Unsubscribe(ctx context.Context, token string) error
	// Quarantine keeps a message that could not be parsed or matched.
	Quarantine(ctx context.Context, m Unmatched) error
}

// Config configures a Server; zero values take the defaults.
type Config struct {
	// Domain is the bounce domain: the only domain accepted at RCPT TO.
	Domain string
	// MaxMessageBytes: DefaultMaxMessageBytes when 0.
	MaxMessageBytes int64
	// MaxConns is the most connections at once (100 when 0).
	MaxConns int
	// ConnsPerMinute is the most connections per client IP and minute (60 when 0).
	ConnsPerMinute int
	// ReadTimeout and WriteTimeout bound each command and reply (1 minute when 0).
	ReadTimeout, WriteTimeout time.Duration
	// HandleTimeout bounds the Handler's work for one message (30 s when 0).
	HandleTimeout time.Duration
	// TLS, when set, offers STARTTLS.
	TLS    *tls.Config
	Logger *slog.Logger
}

// Server is the inbound SMTP server. Listen, then Serve; Close stops it.
type Server struct {
	cfg Config
	h   Handler
	srv *smtp.Server
	log *slog.Logger

	mu     sync.Mutex
	ln     net.Listener
	closed bool
}

// NewServer returns a Server handing mail to h.
func NewServer(cfg Config, h Handler) *Server {
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 100
	}
	if cfg.ConnsPerMinute <= 0 {
		cfg.ConnsPerMinute = 60
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = time.Minute
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = time.Minute
	}
	if cfg.HandleTimeout <= 0 {
		cfg.HandleTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg.Domain = strings.ToLower(strings.TrimSuffix(cfg.Domain, "."))
	s := &Server{cfg: cfg, h: h, log: cfg.Logger}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = cfg.Domain
	srv.MaxMessageBytes = cfg.MaxMessageBytes
	srv.MaxRecipients = 10
	srv.ReadTimeout = cfg.ReadTimeout
	srv.WriteTimeout = cfg.WriteTimeout
	srv.EnableSMTPUTF8 = true
	srv.TLSConfig = cfg.TLS
	srv.ErrorLog = log.New(io.Discard, "", 0)
	s.srv = srv
	return s
}

// Listen opens the listener on addr (e.g. "127.0.0.1:0") and returns its address.
func (s *Server) Listen(addr string) (net.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, smtp.ErrServerClosed
	}
	if s.ln != nil {
		return nil, errors.New("inbound: already listening")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s.ln = newLimitListener(ln, s.cfg.MaxConns, s.cfg.ConnsPerMinute, time.Now)
	return ln.Addr(), nil
}

// Addr returns the listening address, or nil before Listen.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve answers SMTP on the listener opened by Listen until ctx ends or Close is
// called, then returns nil.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln == nil {
		return errors.New("inbound: Serve before Listen")
	}
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		s.Close()
		<-errc
		return nil
	case err := <-errc:
		if errors.Is(err, net.ErrClosed) || errors.Is(err, smtp.ErrServerClosed) {
			return nil
		}
		return err
	}
}

// Close stops the server and closes every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ln := s.ln
	s.mu.Unlock()
	if ln == nil {
		return nil
	}
	ln.Close()
	if err := s.srv.Close(); err != nil && !errors.Is(err, smtp.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// errNoRecipient is the one answer to every refused recipient: it does not say
// whether the address was malformed, foreign or forged.
var errNoRecipient = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such recipient here"}

var errTryLater = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure, try again later"}

type rcpt struct {
	addr  string
	kind  Kind
	token string
}

type session struct {
	s      *Server
	remote string
	from   string
	to     []rcpt
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	remote := ""
	if a := c.Conn().RemoteAddr(); a != nil {
		remote = a.String()
	}
	return &session{s: s, remote: remote}, nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	kind, token, ok := ss.s.parseRcpt(to)
	if !ok {
		return errNoRecipient
	}
	if kind != KindFeedback {
		if err := ss.s.h.Check(kind, token); err != nil {
			ss.s.log.Info("inbound recipient refused", "kind", kind.String(), "remote", ss.remote)
			return errNoRecipient
		}
	}
	if !slices.ContainsFunc(ss.to, func(r rcpt) bool { return r.kind == kind && strings.EqualFold(r.token, token) }) {
		ss.to = append(ss.to, rcpt{addr: to, kind: kind, token: token})
	}
	return nil
}

// parseRcpt splits local+token@domain; the domain must be the bounce domain.
func (s *Server) parseRcpt(to string) (Kind, string, bool) {
	at := strings.LastIndexByte(to, '@')
	if at < 0 || !strings.EqualFold(strings.TrimSuffix(to[at+1:], "."), s.cfg.Domain) {
		return 0, "", false
	}
	local := to[:at]
	if strings.EqualFold(local, FeedbackLocalPart) {
		return KindFeedback, "", true
	}
	tag, token, ok := strings.Cut(local, "+")
	if !ok || token == "" {
		return 0, "", false
	}
	switch strings.ToLower(tag) {
	case "bounce":
		return KindBounce, token, true
	case "unsubscribe":
		return KindUnsubscribe, token, true
	}
	return 0, "", false
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err // go-smtp's ErrDataTooLarge: 552
	}
	// go-smtp gives sessions no context; the server's shutdown closes the connection,
	// and the handler's work for one message is bounded here.
	ctx, cancel := context.WithTimeout(context.Background(), ss.s.cfg.HandleTimeout)
	defer cancel()
	var reasons []string
	for _, rc := range ss.to {
		reason, err := ss.s.deliver(ctx, rc, raw)
		if errors.Is(err, ErrUnmatched) {
			reason, err = err.Error(), nil
		}
		if err != nil {
			ss.s.log.Error("inbound message not handled", "kind", rc.kind.String(), "err", err)
			return errTryLater
		}
		if reason != "" {
			reasons = append(reasons, rc.kind.String()+": "+reason)
		}
	}
	if len(reasons) > 0 {
		to := make([]string, len(ss.to))
		for i, rc := range ss.to {
			to[i] = rc.addr
		}
		m := Unmatched{Received: time.Now().UTC(), RemoteAddr: ss.remote, From: ss.from, To: to,
			Reason: strings.Join(reasons, "; "), Raw: raw}
		if err := ss.s.h.Quarantine(ctx, m); err != nil {
			ss.s.log.Error("inbound message not quarantined", "err", err)
			return errTryLater
		}
		ss.s.log.Warn("inbound message quarantined", "reason", m.Reason, "bytes", len(raw))
	}
	ss.to = nil
	return nil
}

// deliver hands one recipient's copy to the handler. A non-empty reason means the
// message must be quarantined.
func (s *Server) deliver(ctx context.Context, rc rcpt, raw []byte) (reason string, err error) {
	if rc.kind == KindUnsubscribe {
		return "", s.h.Unsubscribe(ctx, rc.token)
	}
	rep, err := ParseReport(bytes.NewReader(raw))
	if err != nil {
		return fmt.Sprintf("unparseable: %v", err), nil
	}
	token := rc.token
	switch {
	case rep.Feedback != nil:
		if rc.kind == KindFeedback {
			token = rep.Feedback.Ref
		}
		if token == "" {
			return "feedback report names no message of ours", nil
		}
		return "", s.h.Complaint(ctx, token, *rep.Feedback)
	case rep.DSN != nil:
		if rc.kind == KindFeedback {
			token = rep.DSN.Ref
		}
		if token == "" {
			return "delivery-status report names no message of ours", nil
		}
		f, ok := rep.DSN.Failure()
		if !ok {
			return "", nil // a success notice (delivered, relayed): nothing to record
		}
		return "", s.h.Bounce(ctx, token, Bounce{DSNRecipient: f, ReportingMTA: rep.DSN.ReportingMTA, Permanent: f.Class() == '5'})
	}
	return "empty report", nil
}

func (ss *session) Reset() { ss.from, ss.to = "", nil }

func (ss *session) Logout() error { return nil }
