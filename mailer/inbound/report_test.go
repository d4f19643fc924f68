package inbound_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"consentmail/mailer/inbound"
)

func fixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestParseDSNs reads the delivery-status reports that Postfix, Exim, Gmail, Outlook
// and Yahoo send.
func TestParseDSNs(t *testing.T) {
	for _, tc := range []struct {
		file, status, action, recipient, mta string
		class                                byte
	}{
		{"postfix_hard.eml", "5.1.1", "failed", "nobody@example.net", "mx1.example.net", '5'},
		{"postfix_delayed.eml", "4.2.2", "delayed", "full@example.net", "mx1.example.net", '4'},
		{"exim_hard.eml", "5.0.0", "failed", "gone@example.net", "smtp.example.net", '5'},
		{"gmail_hard.eml", "5.1.1", "failed", "no.such.person@gmail.com", "googlemail.com", '5'},
		{"outlook_hard.eml", "5.5.0", "failed", "closed.account@outlook.com", "AM6PR05MB1234.eurprd05.prod.outlook.com", '5'},
		{"yahoo_hard.eml", "5.0.0", "failed", "deleted.user@yahoo.com", "sonic301-20.consmr.mail.ir2.yahoo.com", '5'},
	} {
		t.Run(tc.file, func(t *testing.T) {
			rep, err := inbound.ParseReport(bytes.NewReader(fixture(t, tc.file)))
			if err != nil {
				t.Fatal(err)
			}
			if rep.DSN == nil || rep.Feedback != nil {
				t.Fatalf("got %+v, want a DSN only", rep)
			}
			r, ok := rep.DSN.Failure()
			if !ok {
				t.Fatalf("no failure in %+v", rep.DSN)
			}
			if r.Status != tc.status || r.Action != tc.action || r.FinalRecipient != tc.recipient || r.Class() != tc.class {
				t.Errorf("got %s %s %s class %c, want %s %s %s class %c", r.Status, r.Action, r.FinalRecipient, r.Class(),
					tc.status, tc.action, tc.recipient, tc.class)
			}
			if rep.DSN.ReportingMTA != tc.mta || r.DiagnosticCode == "" {
				t.Errorf("reporting MTA %q, diagnostic %q; want %q and a diagnostic", rep.DSN.ReportingMTA, r.DiagnosticCode, tc.mta)
			}
			if rep.DSN.Ref != "@@REF@@" {
				t.Errorf("ref %q, want the returned message's %s", rep.DSN.Ref, inbound.FeedbackHeader)
			}
		})
	}
}

// TestParseFeedback reads RFC 5965 reports quoting the whole message or its headers.
func TestParseFeedback(t *testing.T) {
	for _, file := range []string{"arf_yahoo.eml", "arf_headers_only.eml"} {
		t.Run(file, func(t *testing.T) {
			rep, err := inbound.ParseReport(bytes.NewReader(fixture(t, file)))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Feedback == nil || rep.DSN != nil {
				t.Fatalf("got %+v, want a feedback report only", rep)
			}
			if f := rep.Feedback; f.FeedbackType != "abuse" || f.Ref != "@@REF@@" || f.SourceIP != "203.0.113.5" {
				t.Errorf("got %+v, want abuse from 203.0.113.5 naming @@REF@@", f)
			}
		})
	}
}

func TestParseNotReports(t *testing.T) {
	for _, file := range []string{"out_of_office.eml", "garbled_report.eml"} {
		_, err := inbound.ParseReport(bytes.NewReader(fixture(t, file)))
		if !errors.Is(err, inbound.ErrNotReport) {
			t.Errorf("%s: got %v, want ErrNotReport", file, err)
		}
	}
	if _, err := inbound.ParseReport(bytes.NewReader([]byte("\x00\x01 not mail at all"))); err == nil {
		t.Error("garbage parsed")
	}
}
