package mailer_test

import (
	"context"
	"testing"

	"github.com/emersion/go-smtp"

	"consentmail/mailer"
	"consentmail/mailer/smtptest"
)

// TestHardBounce checks which synchronous rejections name a dead address: only a 5xx
// whose enhanced status is about the destination mailbox.
func TestHardBounce(t *testing.T) {
	tests := []struct {
		name     string
		code     int
		enhanced smtp.EnhancedCode
		hard     bool
		want     string
	}{
		{"550 5.1.1 no such user", 550, smtp.EnhancedCode{5, 1, 1}, true, "5.1.1"},
		{"551 5.1.6 moved", 551, smtp.EnhancedCode{5, 1, 6}, true, "5.1.6"},
		{"550 5.2.1 disabled", 550, smtp.EnhancedCode{5, 2, 1}, true, "5.2.1"},
		{"550 5.1.8 bad sender domain", 550, smtp.EnhancedCode{5, 1, 8}, false, "5.1.8"},
		{"552 5.2.2 mailbox full", 552, smtp.EnhancedCode{5, 2, 2}, false, "5.2.2"},
		{"550 5.7.1 policy", 550, smtp.EnhancedCode{5, 7, 1}, false, "5.7.1"},
		{"550 without enhanced code", 550, smtp.NoEnhancedCode, false, ""},
		{"450 4.1.1 temporary", 450, smtp.EnhancedCode{4, 1, 1}, false, "4.1.1"},
	}
	sink := smtptest.New(t)
	s := newSender(t, relaysOf(t, sink.URL()+"&max_conns=1"), mailer.Options{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink.FailRcpt(func(string) *smtp.SMTPError {
				return &smtp.SMTPError{Code: tc.code, EnhancedCode: tc.enhanced, Message: "no"}
			})
			t.Cleanup(func() { sink.FailRcpt(nil) })
			err := s.Send(context.Background(), &mailer.Message{From: "news@example.org", To: "bad@example.org", Subject: "s", Text: "t"})
			if err == nil {
				t.Fatal("Send succeeded, want a rejection")
			}
			r, hard := mailer.HardBounce(err)
			if hard != tc.hard {
				t.Errorf("HardBounce = %v, want %v (err %v)", hard, tc.hard, err)
			}
			if !tc.hard && tc.code/100 == 4 {
				return
			}
			if r.Code != tc.code || r.Enhanced != tc.want {
				t.Errorf("got code %d enhanced %q, want %d %q (reply %q)", r.Code, r.Enhanced, tc.code, tc.want, r.Reply)
			}
		})
	}
	if _, hard := mailer.HardBounce(nil); hard {
		t.Error("HardBounce(nil) is true")
	}
}
