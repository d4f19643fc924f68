package mailer

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// BenchmarkBuild measures writing one campaign-sized message (headers, text and HTML
// parts, quoted-printable), the CPU a send costs besides SMTP.
//
//	go test ./mailer -run '^$' -bench Build -benchmem
func BenchmarkBuild(b *testing.B) {
	m := &Message{From: "News <news@example.org>", To: `"Ana Example" <ana@example.org>`, Subject: "Spring news for Ana",
		Text:      strings.Repeat("Plenty of news this month, read on. ", 60),
		HTML:      "<html><body>" + strings.Repeat(`<p style="color:#333;font-size:14px">Plenty of news this month, read on.</p>`, 30) + "</body></html>",
		MessageID: "<abc.cmp_1@example.org>",
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
}
