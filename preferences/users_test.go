package preferences_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"consentmail/preferences"
)

// Passwords are argon2id with their parameters and a salt per user; TOTP secrets
// are sealed: neither is in the file as given.
func TestUserSecretsAtRest(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	a, onceA, err := s.CreateUser(ctx, "Ana@Example.org", preferences.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if a.Email != "Ana@example.org" || !a.MustChangePassword || !a.HasPassword {
		t.Fatalf("created %+v", a)
	}
	if _, _, err := s.CreateUser(ctx, "ana@EXAMPLE.org", preferences.RoleViewer); !errors.Is(err, preferences.ErrConflict) {
		t.Fatalf("same address again: %v, want ErrConflict", err)
	}
	pw := "the same long password"
	b, onceB, _ := s.CreateUser(ctx, "ben@example.org", preferences.RoleViewer)
	for _, u := range []struct{ id, once string }{{a.ID, onceA}, {b.ID, onceB}} {
		if err := s.ChangePassword(ctx, u.id, u.once, pw, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ChangePassword(ctx, a.ID, pw, "too short", ""); !errors.Is(err, preferences.ErrWeakPassword) {
		t.Fatalf("short password: %v", err)
	}
	secret, _, _ := preferences.NewTOTPKey("Acme", a.Email)
	code, _ := preferences.TOTPCode(secret, s.Clock.Now())
	if _, err := s.EnableTOTP(ctx, a.ID, secret, code); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CheckPassword(ctx, "ANA@example.org", pw); err != nil {
		t.Fatalf("sign-in by another case of the address: %v", err)
	}
	for _, bad := range []struct{ email, pw string }{{"ana@example.org", "wrong password!"}, {"nobody@example.org", pw}} {
		if _, err := s.CheckPassword(ctx, bad.email, bad.pw); !errors.Is(err, preferences.ErrBadCredentials) {
			t.Fatalf("%s: %v, want ErrBadCredentials", bad.email, err)
		}
	}
	s.CloseDB(t)
	raw, err := os.ReadFile(s.Path)
	if err != nil {
		t.Fatal(err)
	}
	// Freed pages may still hold the one-time passwords' hashes: at least the two.
	n := bytes.Count(raw, []byte("$argon2id$v=19$m=19456,t=2,p=1$"))
	if n < 2 {
		t.Fatalf("%d argon2id hashes with OWASP's parameters in the file, want 2 or more", n)
	}
	for _, plain := range []string{pw, onceA, secret} {
		if bytes.Contains(raw, []byte(plain)) {
			t.Fatalf("%q is in the file as given", plain)
		}
	}
	salts := map[string]bool{}
	for _, part := range strings.Split(string(raw), "$argon2id$v=19$m=19456,t=2,p=1$")[1:] {
		salts[strings.SplitN(part, "$", 2)[0]] = true
	}
	if len(salts) < 2 { // copies of a page repeat a hash; two users never share a salt
		t.Fatalf("salts %v, want one per user", salts)
	}
}
