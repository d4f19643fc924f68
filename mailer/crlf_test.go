package mailer

import (
	"strings"
	"testing"
)

// crlfOnly decides whether a message may go by BDAT as it is: every LF after a CR.
func TestCRLFOnly(t *testing.T) {
	for in, want := range map[string]bool{
		"": true, "a": true, "\r\n": true, "a\r\nb\r\n": true, "\r\r\n": true, "ends in CR\r": true, "\r\n\r\n": true,
		"\n": false, "a\nb": false, "a\r\nb\n": false, "\n\r": false, "a\r\n\n": false,
		strings.Repeat("line\r\n", 500) + "bare\n": false, strings.Repeat("line\r\n", 500): true,
	} {
		if got := crlfOnly(in); got != want {
			t.Errorf("crlfOnly(string %q) = %v, want %v", in, got, want)
		}
		if got := crlfOnly([]byte(in)); got != want {
			t.Errorf("crlfOnly([]byte %q) = %v, want %v", in, got, want)
		}
	}
}

// BenchmarkCRLFOnly checks a campaign-sized message, as every BDAT send does.
func BenchmarkCRLFOnly(b *testing.B) {
	msg := []byte(strings.Repeat(`<p style=3D"color:#333;font-size:14px">Plenty of news this month, read on.</p>=`+"\r\n", 70))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if !crlfOnly(msg) {
			b.Fatal("a CRLF message refused")
		}
	}
}
