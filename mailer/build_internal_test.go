package mailer

import (
	"bytes"
	"net/mail"
	"strings"
	"testing"
	"time"
)

// BenchmarkBuild measures writing one campaign-sized message (headers, text and HTML
// parts), the CPU a send costs besides SMTP: with the body in lines of ASCII, which go
// as they are (7bit), in lines with accents, and in one long line, both quoted-printable.
//
//	go test ./mailer -run '^$' -bench Build -benchmem
func BenchmarkBuild(b *testing.B) {
	text := strings.Repeat("Plenty of news this month, read on.\n", 60)
	html := "<html><body>\n" + strings.Repeat(`<p style="color:#333;font-size:14px">Plenty of news this month, read on.</p>`+"\n", 30) + "</body></html>\n"
	for _, bc := range []struct{ name, text, html string }{
		{"7bit", text, html},
		{"accents", strings.ReplaceAll(text, "news", "nouvelles éditées"), strings.ReplaceAll(html, "news", "nouvelles éditées")},
		{"long-lines", strings.ReplaceAll(text, "\n", " "), strings.ReplaceAll(html, "\n", "")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m := &Message{From: "News <news@example.org>", To: `"Ana Example" <ana@example.org>`, Subject: "Spring news for Ana",
				Text: bc.text, HTML: bc.html, MessageID: "<abc.cmp_1@example.org>",
				Headers: map[string]string{"List-Unsubscribe": "<https://mail.example.org/u/" + strings.Repeat("x", 120) + ">",
					"List-Unsubscribe-Post": "List-Unsubscribe=One-Click", "List-Id": `"News" <news.example.org>`, "Precedence": "bulk"}}
			var buf bytes.Buffer
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				if _, err := m.build(&buf, now); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(buf.Len()), "bytes/msg")
		})
	}
}

// A message given ToName and a bare To is the message given the field net/mail writes
// for the two: the same bytes and envelope, or the same refusal.
func TestToNameIsTheFieldNetMailWrites(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	names := []string{"Ana", "Ana Example", `Ana "the" Example`, "Zoë Ça", "Ana (work)", "Ana\r\nBcc: x@example.org", " ", "O'Brien, Pat",
		strings.Repeat("long name ", 20), "=?utf-8?q?already?="}
	addrs := []string{"ana@example.org", "ana.b+news@example.org", "zoë@exämple.org", "ana@bücher.example", `"a b"@example.org`,
		"not an address", "", "a@b@c"}
	for _, name := range names {
		for _, addr := range addrs {
			base := Message{From: "News <news@example.org>", Subject: "Hi", Text: "Hello", MessageID: "<m1@example.org>"}
			field, given := base, base
			field.To = (&mail.Address{Name: name, Address: addr}).String()
			given.To, given.ToName = addr, name
			var a, b bytes.Buffer
			envA, errA := field.build(&a, now)
			envB, errB := given.build(&b, now)
			if (errA == nil) != (errB == nil) || envA != envB || a.String() != b.String() {
				t.Errorf("name %q, address %q:\nfield: %v %+v\n%s\ngiven: %v %+v\n%s", name, addr, errA, envA, a.String(), errB, envB, b.String())
			}
		}
	}
}
