package preferences_test

import (
	"testing"

	"consentmail/preferences"
)

// Each dev start prints a working admin key and revokes the previous one; the
// newsletter list is made once.
func TestDevBootstrap(t *testing.T) {
	s := newStore(t)
	auth := preferences.NewAuthenticator(s.Store)
	first, err := s.DevBootstrap(t.Context(), "dev bootstrap", "")
	if err != nil {
		t.Fatal(err)
	}
	if l, err := s.List(t.Context(), "newsletter"); err != nil || !l.Public {
		t.Fatalf("newsletter list = %+v, %v; want a public list", l, err)
	}
	second, err := s.DevBootstrap(t.Context(), "dev bootstrap", "")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := auth.Authenticate(t.Context(), second); err != nil || p.Role != preferences.RoleAdmin {
		t.Errorf("the new key authenticates as %+v, %v; want admin", p, err)
	}
	if _, err := auth.Authenticate(t.Context(), first); err == nil {
		t.Error("the previous start's key still works")
	}
	if lists, _, _ := s.Lists(t.Context(), "", 10); len(lists) != 1 {
		t.Errorf("%d lists after two starts, want 1", len(lists))
	}
	if key, err := s.DevBootstrap(t.Context(), "dev bootstrap", "cmk_fixed"); err != nil || key != "cmk_fixed" {
		t.Errorf("with a configured key: %q, %v; want that key", key, err)
	}
	if keys, _ := s.APIKeys(t.Context()); len(keys) != 1 {
		t.Errorf("%d keys, want only the last start's (a configured key is made by EnsureAPIKey)", len(keys))
	}
}
