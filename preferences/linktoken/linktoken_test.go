package linktoken_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"consentmail/preferences/linktoken"
)

var (
	key     = []byte("0123456789abcdef0123456789abcdef")
	now     = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	expires = now.Add(48 * time.Hour)
)

func TestSignVerifyRoundTrip(t *testing.T) {
	s := linktoken.NewSigner(key)
	tests := []struct {
		name   string
		fields []string
	}{
		{"no fields", nil},
		{"one field", []string{"sub_0123"}},
		{"several fields", []string{"sub_0123", "nonce", "news,offers"}},
		{"empty fields", []string{"", "x", ""}},
		{"unicode and dots", []string{"é.ü", "a.b.c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := s.Sign("confirm", expires, tc.fields...)
			fields, exp, err := s.Verify(tok, "confirm", now)
			if err != nil {
				t.Fatalf("Verify(%q) error = %v, want nil", tok, err)
			}
			want := tc.fields
			if want == nil {
				want = []string{}
			}
			if !slices.Equal(fields, want) {
				t.Errorf("fields = %q, want %q", fields, want)
			}
			if !exp.Equal(expires) {
				t.Errorf("expires = %v, want %v", exp, expires)
			}
			if strings.ContainsAny(tok, "+/= \n") {
				t.Errorf("token %q is not URL-safe", tok)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	s := linktoken.NewSigner(key)
	tok := s.Sign("confirm", expires, "sub_0123", "n0nce", "news")
	p64, m64, _ := strings.Cut(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(p64)
	mac, _ := base64.RawURLEncoding.DecodeString(m64)
	enc := base64.RawURLEncoding.EncodeToString
	flip := func(b []byte, i int) []byte {
		c := slices.Clone(b)
		c[i] ^= 0x01
		return c
	}
	tests := []struct {
		name, token, purpose string
	}{
		{"wrong purpose", tok, "unsubscribe"},
		{"purpose prefix", tok, "confirm\x1f"},
		{"empty purpose", tok, ""},
		{"flipped payload byte", enc(flip(payload, len(payload)/2)) + "." + m64, "confirm"},
		{"flipped first payload byte", enc(flip(payload, 0)) + "." + m64, "confirm"},
		{"flipped MAC byte", p64 + "." + enc(flip(mac, 3)), "confirm"},
		{"flipped last MAC byte", p64 + "." + enc(flip(mac, len(mac)-1)), "confirm"},
		{"other key", linktoken.NewSigner([]byte("another key of thirty-two bytes!")).Sign("confirm", expires, "sub_0123"), "confirm"},
		{"truncated by one", tok[:len(tok)-1], "confirm"},
		{"truncated MAC", p64 + "." + enc(mac[:10]), "confirm"},
		{"no MAC", p64 + ".", "confirm"},
		{"no separator", p64, "confirm"},
		{"payload only with dot", "." + m64, "confirm"},
		{"empty", "", "confirm"},
		{"dot", ".", "confirm"},
		{"extra part", tok + ".x", "confirm"},
		{"over-long", s.Sign("confirm", expires, strings.Repeat("x", linktoken.MaxLen)), "confirm"},
		{"not base64", "!!!!." + m64, "confirm"},
		{"padded base64", p64 + "=." + m64, "confirm"},
		{"field appended", enc(append(slices.Clone(payload), "\x1fadmin"...)) + "." + m64, "confirm"},
		{"expiry not a number", signed("confirm\x1fsoon\x1fx"), "confirm"},
		{"no expiry", signed("confirm"), "confirm"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fields, exp, err := s.Verify(tc.token, tc.purpose, now)
			if !errors.Is(err, linktoken.ErrInvalid) {
				t.Errorf("Verify(%q, %q) = %q, %v, %v; want ErrInvalid", tc.token, tc.purpose, fields, exp, err)
			}
			if fields != nil {
				t.Errorf("fields = %q, want nil for an invalid token", fields)
			}
		})
	}
}

// signed returns a token with a correct MAC over an arbitrary payload, built as the
// package documents it: base64url(payload) "." base64url(HMAC-SHA256(key, payload)[:20]).
func signed(payload string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." +
		base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:20])
}

func TestSignedMatchesSign(t *testing.T) {
	s := linktoken.NewSigner(key)
	want := s.Sign("confirm", expires, "a", "b")
	if got := signed("confirm\x1f" + strconv.FormatInt(expires.Unix(), 10) + "\x1fa\x1fb"); got != want {
		t.Fatalf("hand-built token %q, Sign made %q: the rejection cases below would prove nothing", got, want)
	}
	// Tokens signed one after another (the signer reuses its buffers) each stay as
	// built: longer, shorter, without fields.
	var made, byHand []string
	for _, fields := range [][]string{{strings.Repeat("long", 100)}, {"s"}, nil, {"a", "", "c"}} {
		made = append(made, s.Sign("unsubscribe", expires, fields...))
		payload := "unsubscribe\x1f" + strconv.FormatInt(expires.Unix(), 10)
		for _, f := range fields {
			payload += "\x1f" + f
		}
		byHand = append(byHand, signed(payload))
	}
	for i := range made {
		if made[i] != byHand[i] {
			t.Errorf("token %d: Sign made %q, built by hand %q", i, made[i], byHand[i])
		}
	}
}

// A token has exactly one spelling: base64 with non-zero padding bits in its last
// character decodes to the same bytes, and must be refused, or one link has several
// valid forms (which defeats using the token string as a key, e.g. for replay checks).
func TestVerifyRejectsNonCanonicalEncoding(t *testing.T) {
	s := linktoken.NewSigner(key)
	tok := s.Sign("confirm", expires, "sub_0123")
	p64, m64, _ := strings.Cut(tok, ".")
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	variants := func(part string) []string {
		var out []string
		for _, c := range []byte(alphabet) {
			if c != part[len(part)-1] {
				out = append(out, part[:len(part)-1]+string(c))
			}
		}
		return out
	}
	for _, m := range variants(m64) {
		if _, _, err := s.Verify(p64+"."+m, "confirm", now); err == nil {
			t.Errorf("Verify(%q) = nil error for a respelling of %q, want ErrInvalid", p64+"."+m, tok)
		}
	}
	for _, p := range variants(p64) {
		if _, _, err := s.Verify(p+"."+m64, "confirm", now); err == nil {
			t.Errorf("Verify(%q) = nil error for a respelling of %q, want ErrInvalid", p+"."+m64, tok)
		}
	}
}

func TestVerifyExpired(t *testing.T) {
	s := linktoken.NewSigner(key)
	tok := s.Sign("confirm", expires, "sub_0123", "n0nce")
	for _, tc := range []struct {
		name string
		at   time.Time
		want error
	}{
		{"a second before", expires.Add(-time.Second), nil},
		{"at expiry", expires, linktoken.ErrExpired},
		{"a second after", expires.Add(time.Second), linktoken.ErrExpired},
		{"a year after", expires.AddDate(1, 0, 0), linktoken.ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fields, exp, err := s.Verify(tok, "confirm", tc.at)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("error = %v, want %v", err, tc.want)
			}
			if !slices.Equal(fields, []string{"sub_0123", "n0nce"}) {
				t.Errorf("fields = %q, want [sub_0123 n0nce] even when expired", fields)
			}
			if !exp.Equal(expires) {
				t.Errorf("expires = %v, want %v", exp, expires)
			}
		})
	}
	if _, _, err := s.Verify(tok, "unsubscribe", expires.Add(time.Hour)); !errors.Is(err, linktoken.ErrInvalid) {
		t.Errorf("expired token for another purpose: error = %v, want ErrInvalid", err)
	}
}

// FuzzVerify checks that nothing but a token the signer made verifies: any input that
// Verify accepts must decode to a payload the test signed.
func FuzzVerify(f *testing.F) {
	s := linktoken.NewSigner(key)
	good := map[string]bool{}
	for _, fields := range [][]string{{"sub_0123", "n0nce", "news"}, {}, {"a"}} {
		tok := s.Sign("confirm", expires, fields...)
		p64, _, _ := strings.Cut(tok, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(p64)
		good[string(payload)] = true
		f.Add(tok[:len(tok)-1])
		f.Add(tok + "A")
		f.Add(strings.Replace(tok, ".", "", 1))
		f.Add(strings.ToUpper(tok))
	}
	for _, seed := range []string{"", ".", "..", "a.b", "Y29uZmlybQ.AAAA", strings.Repeat("A", 2000),
		"Y29uZmlybR8xOTk5OTk5OTk5.AAAAAAAAAAAAAAAAAAAAAAAAAAA"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		_, _, err := s.Verify(token, "confirm", now)
		if err == nil || errors.Is(err, linktoken.ErrExpired) {
			p64, _, _ := strings.Cut(token, ".")
			payload, derr := base64.RawURLEncoding.DecodeString(p64)
			if derr != nil || !good[string(payload)] {
				t.Fatalf("Verify accepted %q (err %v), which the signer never made", token, err)
			}
			return
		}
		if !errors.Is(err, linktoken.ErrInvalid) {
			t.Fatalf("Verify(%q) error = %v, want ErrInvalid or ErrExpired", token, err)
		}
	})
}
