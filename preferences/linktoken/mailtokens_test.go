package linktoken_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"consentmail/preferences/linktoken"
)

func TestMailTokens(t *testing.T) {
	s := linktoken.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	other := linktoken.NewSigner([]byte("fedcba9876543210fedcba9876543210"))
	const sub, cmp = "sub_0192a3b4c5d6e7f8a9b0c1d2", "cmp_0192a3b4c5d60000a9b0c1d2"
	tok, err := linktoken.Bounce(s, sub, cmp)
	if err != nil {
		t.Fatal(err)
	}
	if n := len("bounce+" + tok); n > 64 || tok != strings.ToLower(tok) {
		t.Fatalf("local part bounce+%s: %d characters, want ≤ 64, lowercase", tok, n)
	}
	if strings.Contains(tok, "sub_") || strings.Contains(tok, "0192a3b4") {
		t.Fatalf("token %s shows an id in clear", tok)
	}
	ref, err := linktoken.VerifyBounce(s, strings.ToUpper(tok)) // relays may fold case
	if err != nil || ref != (linktoken.MailRef{Subscriber: sub, Campaign: cmp}) {
		t.Fatalf("VerifyBounce = %+v, %v; want %s %s", ref, err, sub, cmp)
	}
	unsub, err := linktoken.MailUnsubscribe(s, sub, "")
	if err != nil {
		t.Fatal(err)
	}
	if ref, err := linktoken.VerifyMailUnsubscribe(s, unsub); err != nil || ref != (linktoken.MailRef{Subscriber: sub}) {
		t.Fatalf("VerifyMailUnsubscribe = %+v, %v", ref, err)
	}
	flipped := []byte(tok)
	flipped[3] ^= 1
	for name, bad := range map[string]func() error{
		"other purpose": func() error { _, err := linktoken.VerifyMailUnsubscribe(s, tok); return err },
		"other key":     func() error { _, err := linktoken.VerifyBounce(other, tok); return err },
		"flipped":       func() error { _, err := linktoken.VerifyBounce(s, string(flipped)); return err },
		"short":         func() error { _, err := linktoken.VerifyBounce(s, tok[:40]); return err },
		"garbage":       func() error { _, err := linktoken.VerifyBounce(s, strings.Repeat("1", len(tok))); return err },
	} {
		if err := bad(); !errors.Is(err, linktoken.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
	if _, err := linktoken.Bounce(s, "someone@example.org", cmp); !errors.Is(err, linktoken.ErrNotCompact) {
		t.Errorf("an address as id: got %v, want ErrNotCompact", err)
	}
}

// A mail token is built as the package documents it: lowercase base32 of subscriber id
// (12 bytes) | campaign id (12 bytes, zero without one) | HMAC-SHA256(key, purpose ␟
// ids)[:10]. Tokens made one after another with the signer's reused buffers each keep
// their own value.
func TestMailTokensAsDocumented(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	s := linktoken.NewSigner(key)
	byHand := func(purpose, sub, cmp string) string {
		ids, _ := hex.DecodeString(strings.TrimPrefix(sub, "sub_"))
		if cmp == "" {
			ids = append(ids, make([]byte, 12)...)
		} else {
			c, _ := hex.DecodeString(strings.TrimPrefix(cmp, "cmp_"))
			ids = append(ids, c...)
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(purpose + "\x1f"))
		m.Write(ids)
		raw := append(ids, m.Sum(nil)[:10]...)
		return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw))
	}
	type made struct{ got, want string }
	var all []made
	for i, cmp := range []string{"cmp_0192a3b4c5d60000a9b0c1d2", "", "cmp_ffffffffffffffffffffffff"} {
		sub := fmt.Sprintf("sub_0192a3b4c5d6e7f8a9b0c1d%d", i)
		b, err := linktoken.Bounce(s, sub, cmp)
		if err != nil {
			t.Fatal(err)
		}
		u, err := linktoken.MailUnsubscribe(s, sub, cmp)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, made{b, byHand("bounce", sub, cmp)}, made{u, byHand("mail-unsubscribe", sub, cmp)})
		// A long token in between reuses the buffers with another length.
		_ = s.Sign("confirm", time.Unix(1e9, 0), strings.Repeat("x", 300))
	}
	for _, m := range all {
		if m.got != m.want {
			t.Errorf("token %s, built by hand %s", m.got, m.want)
		}
	}
}
