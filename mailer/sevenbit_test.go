package mailer

import (
	"bytes"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"time"
)

// sevenBitByLines is appendSevenBit's rule written plainly, a line and a byte at a time.
func sevenBitByLines(s string) (string, bool) {
	var out strings.Builder
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		if i < len(lines)-1 {
			line = strings.TrimSuffix(line, "\r")
		}
		if len(line) > 998 {
			return "", false
		}
		for j := 0; j < len(line); j++ {
			if c := line[j]; c == 0 || c == '\r' || c >= 0x80 {
				return "", false
			}
		}
		out.WriteString(line)
		if i < len(lines)-1 {
			out.WriteString("\r\n")
		}
	}
	return out.String(), true
}

// appendSevenBit, eight bytes at a time, agrees with sevenBitByLines: for every byte
// value at every position of strings up to three words long, and on random text of
// short and long lines.
func TestAppendSevenBit(t *testing.T) {
	check := func(s string) {
		t.Helper()
		got, ok := appendSevenBit([]byte("kept"), s)
		want, wantOK := sevenBitByLines(s)
		if ok != wantOK || (ok && string(got) != "kept"+want) || (!ok && string(got) != "kept") {
			t.Fatalf("appendSevenBit(%q) = %q, %v; want %q, %v", s, got, ok, want, wantOK)
		}
	}
	for n := 1; n <= 24; n++ {
		for at := 0; at < n; at++ {
			for c := 0; c < 256; c++ {
				b := bytes.Repeat([]byte{'a'}, n)
				b[at] = byte(c)
				check(string(b))
				if at+1 < n {
					b[at+1] = '\n'
					check(string(b))
				}
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte("aaaaaaaaaaaaaaaa \t\r\x00\xffé.")
	for range 3000 {
		b := make([]byte, rng.IntN(2100))
		breaks := 1 + rng.IntN(1200) // bytes between line breaks, on average
		for i := range b {
			if rng.IntN(breaks) == 0 {
				b[i] = '\n'
			} else if rng.IntN(200) == 0 {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			} else {
				b[i] = 'a'
			}
		}
		check(string(b))
	}
	for _, n := range []int{997, 998, 999, 1000, 1005, 1006} {
		check(strings.Repeat("a", n))
		check(strings.Repeat("a", n) + "\r\nb")
		check("b\n" + strings.Repeat("a", n) + "\n")
	}
}

// A part goes as 7bit exactly when it may (RFC 2045, 2.7), and every part of the built
// message decodes to what was given, line breaks as CRLF.
func TestPartsGoAs7bitWhenTheyCan(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		sevenBit   bool
	}{
		{"ASCII, LF", "<p>Hello Ana,</p>\n<p style=\"color:#333\">News = more.</p>\n", true},
		{"ASCII, CRLF", "Hello\r\n\r\n.leading dot\r\nFrom here\r\nend", true},
		{"longest line", strings.Repeat("x", 998) + "\nnext", true},
		{"line too long", strings.Repeat("x", 999) + "\nnext", false},
		{"last line too long", "first\n" + strings.Repeat("x", 999), false},
		{"a space ending a line", "Hello \nAna\n-- \nAcme", true},
		{"a tab ending a line", "Hello\t\r\nAna", true},
		{"space before CR LF in the middle of a line", "a \tb\r\n", true},
		{"non-ASCII", "Zoë", false},
		{"NUL", "a\x00b", false},
		{"bare CR", "a\rb", false},
		{"CR at the end", "a\r", false},
		{"DEL and controls", "a\x7f\x01\tb", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &Message{From: "News <news@example.org>", To: "ana@example.org", Subject: "s", Text: tc.body, HTML: tc.body}
			var buf bytes.Buffer
			if _, err := m.build(&buf, time.Now()); err != nil {
				t.Fatal(err)
			}
			msg, err := mail.ReadMessage(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
			if err != nil {
				t.Fatal(err)
			}
			r := multipart.NewReader(msg.Body, params["boundary"])
			for _, want := range []string{m.Text, m.HTML} {
				p, err := r.NextRawPart()
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(p)
				cte := p.Header.Get("Content-Transfer-Encoding")
				if (cte == "7bit") != tc.sevenBit {
					t.Fatalf("Content-Transfer-Encoding %s for %q", cte, want)
				}
				got := raw
				switch cte {
				case "7bit":
					for _, line := range strings.Split(string(raw), "\r\n") {
						if len(line) > 998 || strings.ContainsAny(line, "\x00\r\n") || strings.IndexFunc(line, func(r rune) bool { return r >= 0x80 }) >= 0 {
							t.Fatalf("7bit line %q", line)
						}
					}
				case "quoted-printable":
					if got, err = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(raw))); err != nil {
						t.Fatal(err)
					}
				default:
					t.Fatalf("Content-Transfer-Encoding %q", cte)
				}
				if w := strings.ReplaceAll(strings.ReplaceAll(want, "\r\n", "\n"), "\n", "\r\n"); string(got) != w {
					t.Fatalf("decoded %q, want %q", got, w)
				}
			}
		})
	}
}

// BenchmarkAppendSevenBit checks and copies a 4.8 KB HTML part in lines of about 80
// characters, as a campaign's.
//
//	go test ./mailer -run '^$' -bench AppendSevenBit
func BenchmarkAppendSevenBit(b *testing.B) {
	html := "<html><body>\n" + strings.Repeat(`<p style="color:#333;font-size:14px">Plenty of news this month, read on.</p>`+"\n", 60) + "</body></html>\n"
	dst := make([]byte, 0, 2*len(html))
	b.SetBytes(int64(len(html)))
	for b.Loop() {
		if _, ok := appendSevenBit(dst[:0], html); !ok {
			b.Fatal("not 7bit")
		}
	}
}
