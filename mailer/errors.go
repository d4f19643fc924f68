package mailer

import (
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"strconv"
	"strings"
)

// ErrHeaderInjection is wrapped by the error Send returns when a header field of the
// Message (From, To, ReturnPath, Subject, MessageID, or a name or value in Headers)
// contains a CR or LF. Nothing is sent.
var ErrHeaderInjection = errors.New("header injection: CR or LF in a header field")

// ErrClosed is wrapped by the error Send returns after Close. It is temporary: another
// process, or this one after a restart, may send the message later.
var ErrClosed = errors.New("sender closed")

// SendError is the only kind of error Send returns. It classifies a failure once, so
// callers never parse SMTP replies: Temporary failures (4xx replies, unreachable relays,
// broken connections, cancelled waits) may succeed later; permanent ones (5xx replies,
// invalid messages) never will.
type SendError struct {
	// Code is the SMTP reply code (e.g. 451, 550), or 0 when no reply was received.
	Code int
	// Temporary reports whether retrying later may succeed.
	Temporary bool
	// Err is the underlying error.
	Err error
}

// Error describes the failure, starting with "mailer:", its class and reply code.
func (e *SendError) Error() string {
	class := "permanent"
	if e.Temporary {
		class = "temporary"
	}
	if e.Code != 0 {
		return "mailer: " + class + " failure (" + strconv.Itoa(e.Code) + "): " + e.Err.Error()
	}
	return "mailer: " + class + " failure: " + e.Err.Error()
}

// Unwrap returns Err, so errors.Is(err, ErrHeaderInjection) and
// errors.Is(err, context.Canceled) work.
func (e *SendError) Unwrap() error { return e.Err }

// IsTemporary reports whether err is, or wraps, a *SendError marked Temporary. It
// returns false for nil and for errors that did not come from this package.
func IsTemporary(err error) bool {
	var se *SendError
	return errors.As(err, &se) && se.Temporary
}

// permanent wraps a validation failure.
func permanent(err error) *SendError { return &SendError{Err: err} }

// temporary wraps a failure that says nothing about the recipient (connection, wait).
func temporary(err error) *SendError { return &SendError{Temporary: true, Err: err} }

// classify turns an error from an SMTP exchange into a SendError: a reply keeps its code
// and is temporary when 4xx; anything else (network, protocol, context) is temporary.
func classify(err error) *SendError {
	var se *SendError
	if errors.As(err, &se) {
		return se
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return &SendError{Code: te.Code, Temporary: te.Code/100 != 5, Err: err}
	}
	return temporary(err)
}

// replyCode returns the SMTP reply code carried by err, or 0. It runs for every reply
// of every message: a nil error returns before errors.As's target is allocated.
func replyCode(err error) int {
	if err == nil {
		return 0
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

// ctxErr wraps a wait that ended because of ctx; x/time/rate reports "would exceed
// deadline" without wrapping context.DeadlineExceeded, so that case is made to.
func ctxErr(ctx context.Context, what string, err error) *SendError {
	if cerr := ctx.Err(); cerr != nil {
		return temporary(fmt.Errorf("%s: %w", what, cerr))
	}
	if _, ok := ctx.Deadline(); ok && !errors.Is(err, context.DeadlineExceeded) {
		return temporary(fmt.Errorf("%s: %w (%w)", what, context.DeadlineExceeded, err))
	}
	return temporary(fmt.Errorf("%s: %w", what, err))
}

// Rejection is a relay's permanent reply to one recipient, as HardBounce reads it.
type Rejection struct {
	Code     int    // the reply code, e.g. 550
	Enhanced string // the RFC 3463 enhanced status code, e.g. "5.1.1"; "" when the reply has none
	Reply    string // the reply's text, enhanced code included
}

// HardBounce reports whether err is a relay's synchronous permanent rejection of the
// recipient's address itself, and returns the reply: a 5xx reply whose enhanced
// status says the mailbox does not exist or cannot take mail (RFC 3463: 5.1.x about
// the destination — bad mailbox, bad system, bad syntax, ambiguous, moved — and 5.2.1
// mailbox disabled). Other permanent replies (policy 5.7.x, a full mailbox 5.2.2,
// message size, a reply with no enhanced code) are not the address's fault and are
// not bounces: the message failed, the subscriber stays.
func HardBounce(err error) (Rejection, bool) {
	if err == nil {
		return Rejection{}, false // every sent message: no allocation
	}
	var se *SendError
	if !errors.As(err, &se) || se.Temporary {
		return Rejection{}, false
	}
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code/100 != 5 {
		return Rejection{}, false
	}
	r := Rejection{Code: te.Code, Reply: strconv.Itoa(te.Code) + " " + te.Msg, Enhanced: enhancedCode(te.Msg)}
	class, subject, detail := 0, 0, 0
	if _, err := fmt.Sscanf(r.Enhanced, "%d.%d.%d", &class, &subject, &detail); err != nil || class != 5 {
		return r, false
	}
	switch {
	case subject == 1 && detail != 7 && detail != 8: // 5.1.7 and 5.1.8 are about the sender
		return r, true
	case subject == 2 && detail == 1:
		return r, true
	}
	return r, false
}

// enhancedCode returns the enhanced status code that starts an SMTP reply's text.
func enhancedCode(msg string) string {
	code, _, _ := strings.Cut(strings.TrimSpace(msg), " ")
	parts := strings.Split(code, ".")
	if len(parts) != 3 {
		return ""
	}
	for _, p := range parts {
		if p == "" || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return ""
		}
	}
	return code
}
