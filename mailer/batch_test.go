package mailer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"consentmail/mailer"
	"consentmail/mailer/smtptest"
)

func batchOf(n int) []*mailer.Message {
	var ms []*mailer.Message
	for i := range n {
		ms = append(ms, &mailer.Message{From: "News <news@example.org>", To: fmt.Sprintf("p%02d@example.org", i),
			Subject: fmt.Sprintf("Message %d", i), Text: "Hello", HTML: "<p>Hello</p>"})
	}
	return ms
}

// sendBatch sends msgs as one batch, each message already made.
func sendBatch(ctx context.Context, s *mailer.Sender, msgs []*mailer.Message) []error {
	return s.SendBatchFunc(ctx, len(msgs), func(i int) (*mailer.Message, error) { return msgs[i], nil })
}

// A batch arrives whole, one message per recipient, each intact, through one
// connection; a refusal in its middle is that message's error only.
func TestSendBatchPipelinesAndReportsEach(t *testing.T) {
	sink := smtptest.New(t)
	s := newSender(t, []mailer.Relay{sink.Relay(1)}, mailer.Options{})
	sink.FailRcpt(func(rcpt string) *smtp.SMTPError {
		switch rcpt {
		case "p03@example.org":
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		case "p05@example.org":
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
		}
		return nil
	})
	ms := batchOf(8)
	ms = append(ms, &mailer.Message{From: "x@example.org", To: "bad\r\nBcc: v@example.org", Text: "x"})
	errs := sendBatch(context.Background(), s, ms)
	for i, err := range errs {
		switch i {
		case 3:
			if err == nil || mailer.IsTemporary(err) {
				t.Errorf("message 3 (550): %v, want a permanent error", err)
			}
		case 5:
			if !mailer.IsTemporary(err) {
				t.Errorf("message 5 (451): %v, want a temporary error", err)
			}
		case 8:
			if err == nil || mailer.IsTemporary(err) {
				t.Errorf("message 8 (header injection): %v, want a permanent error", err)
			}
		default:
			if err != nil {
				t.Errorf("message %d: %v", i, err)
			}
		}
	}
	got := sink.WaitFor(t, 6, wait)
	if len(got) != 6 {
		t.Fatalf("%d messages arrived, want 6", len(got))
	}
	for _, m := range got {
		i := strings.TrimSuffix(strings.TrimPrefix(m.To[0], "p"), "@example.org")
		if m.Subject != "Message "+strings.TrimLeft(i, "0") && !(i == "00" && m.Subject == "Message 0") {
			t.Errorf("message to %s has subject %q", m.To[0], m.Subject)
		}
		if m.Text != "Hello" || m.HTML != "<p>Hello</p>" {
			t.Errorf("message to %s: text %q, html %q", m.To[0], m.Text, m.HTML)
		}
	}
	if n := sink.Connections(); n != 1 {
		t.Errorf("%d connections, want the batch on one", n)
	}
	// The connection is still good for the next batch.
	for i, err := range sendBatch(context.Background(), s, batchOf(3)) {
		if err != nil {
			t.Errorf("second batch, message %d: %v", i, err)
		}
	}
	sink.WaitFor(t, 9, wait)
}

// When the relay goes away during a batch, the messages without a reply are reported
// temporary (delivery unknown), never as sent.
func TestSendBatchConnectionLost(t *testing.T) {
	sink := smtptest.New(t)
	s := newSender(t, []mailer.Relay{sink.Relay(1)}, mailer.Options{})
	sink.FailData(func(rcpt string) *smtp.SMTPError {
		if rcpt == "p02@example.org" {
			sink.DropConnections()
		}
		return nil
	})
	errs := sendBatch(context.Background(), s, batchOf(5))
	for i := 3; i < 5; i++ {
		if !mailer.IsTemporary(errs[i]) {
			t.Errorf("message %d after the drop: %v, want temporary", i, errs[i])
		}
	}
	if errs[0] != nil || errs[1] != nil {
		t.Errorf("messages before the drop: %v, %v", errs[0], errs[1])
	}
	// The sender recovers with a new connection.
	if err := s.Send(context.Background(), batchOf(1)[0]); err != nil {
		t.Fatalf("Send after the drop: %v", err)
	}
}

// With a rate limit, a batch goes a message at a time (Send counts the limits).
func TestSendBatchWithRateLimitSendsEach(t *testing.T) {
	sink := smtptest.New(t)
	s := newSender(t, []mailer.Relay{sink.Relay(2)}, mailer.Options{GlobalRate: 1000})
	for i, err := range sendBatch(context.Background(), s, batchOf(4)) {
		if err != nil {
			t.Errorf("message %d: %v", i, err)
		}
	}
	sink.WaitFor(t, 4, wait)
}

// SendBatchFunc asks for each message in turn, once, on the connection it goes
// through: a message it cannot make is that message's result and nothing of it leaves;
// the others go in one pipelined batch.
func TestSendBatchFuncMakesEachInTurn(t *testing.T) {
	sink := smtptest.New(t)
	s := newSender(t, []mailer.Relay{sink.Relay(1)}, mailer.Options{})
	ms := batchOf(6)
	cannot := fmt.Errorf("no data for this one")
	var asked []int
	errs := s.SendBatchFunc(context.Background(), len(ms), func(i int) (*mailer.Message, error) {
		asked = append(asked, i)
		if i == 2 {
			return nil, cannot
		}
		return ms[i], nil
	})
	if fmt.Sprint(asked) != "[0 1 2 3 4 5]" {
		t.Errorf("asked for %v, want each once, in order", asked)
	}
	for i, err := range errs {
		want := error(nil)
		if i == 2 {
			want = cannot
		}
		if err != want {
			t.Errorf("message %d: %v, want %v", i, err, want)
		}
	}
	got := sink.WaitFor(t, 5, wait)
	for _, m := range got {
		if m.To[0] == "p02@example.org" {
			t.Errorf("the message that could not be made arrived")
		}
	}
	if len(got) != 5 || sink.Connections() != 1 {
		t.Errorf("%d messages on %d connections, want 5 on one", len(got), sink.Connections())
	}
}
