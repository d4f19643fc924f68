package mailer

import (
	"bytes"
	"io"
	"math/rand/v2"
	"mime/quotedprintable"
	"strings"
	"testing"
)

// appendQP must decode, with the standard library's reader, to its input (line
// breaks as CRLF), and keep every line within 76 characters of safe bytes.
func TestAppendQPRoundTrip(t *testing.T) {
	inputs := []string{
		"", "a", "=", "a = b", "trailing space ", "trailing tab\t", "space before break \nnext", "tab\t\r\nnext",
		"lone \r carriage return", "Déjà vu — ça marche 🎉", strings.Repeat("x", 200), strings.Repeat("= ", 100),
		strings.Repeat("é", 100), "\n\n\r\n", "ends with CRLF\r\n", `<p style="color:#333">Hi</p>` + "\n",
		strings.Repeat("a", 74) + " \n" + strings.Repeat("b", 75) + "=",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab =\t\r\n\x00\xff.é")
	for range 2000 {
		b := make([]byte, rng.IntN(300))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		inputs = append(inputs, string(b))
	}
	for _, in := range inputs {
		out := appendQP(nil, in)
		for _, line := range strings.Split(string(out), "\r\n") {
			if len(line) > 76 {
				t.Fatalf("line of %d characters for %q: %q", len(line), in, line)
			}
			for i := 0; i < len(line); i++ {
				if c := line[i]; (c < ' ' && c != '\t') || c > '~' {
					t.Fatalf("unsafe byte %#x in %q for %q", c, line, in)
				}
			}
			if strings.HasSuffix(line, " ") || strings.HasSuffix(line, "\t") {
				t.Fatalf("line ends with white space: %q for %q", line, in)
			}
		}
		if bytes.Contains(out, []byte("\n")) && bytes.Count(out, []byte("\n")) != bytes.Count(out, []byte("\r\n")) {
			t.Fatalf("bare LF in %q", out)
		}
		got, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(out)))
		if err != nil {
			t.Fatalf("decode %q: %v", out, err)
		}
		want := strings.ReplaceAll(strings.ReplaceAll(in, "\r\n", "\n"), "\n", "\r\n")
		if string(got) != want {
			t.Fatalf("round trip of %q: got %q", in, got)
		}
	}
}
