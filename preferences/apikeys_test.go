package preferences_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/preferences"
)

func TestCreateAPIKeyAuthenticates(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	auth := preferences.NewAuthenticator(s.Store)
	for _, role := range []string{preferences.RoleAdmin, preferences.RoleMarketer, preferences.RoleDPO, preferences.RoleViewer} {
		t.Run(role, func(t *testing.T) {
			k, key, err := s.CreateAPIKey(ctx, role, "key for "+role)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(key, "cmk_") || len(key) < 32 {
				t.Errorf("key = %q, want cmk_ and at least 32 characters", key)
			}
			if k.Role != role || k.Name != "key for "+role || k.ID == "" || !k.CreatedAt.Equal(epoch) {
				t.Errorf("APIKey = %+v, want role %s, name, id, created %v", k, role, epoch)
			}
			p, err := auth.Authenticate(ctx, key)
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if want := (preferences.Principal{KeyID: k.ID, Name: k.Name, Role: role}); p != want {
				t.Errorf("Principal = %+v, want %+v", p, want)
			}
		})
	}
}

func TestCreateAPIKeyUnknownRole(t *testing.T) {
	s := newStore(t)
	for _, role := range []string{"", "root", "Admin"} {
		if _, key, err := s.CreateAPIKey(context.Background(), role, "x"); err == nil {
			t.Errorf("CreateAPIKey(role %q) = key %q, want an error", role, key)
		}
	}
	if n := s.BucketLen(t, "prefs.apikeys"); n != 0 {
		t.Errorf("prefs.apikeys has %d keys after failed creates, want 0", n)
	}
}

func TestAPIKeyNeverStored(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	auth := preferences.NewAuthenticator(s.Store)
	var keys []string
	for _, role := range []string{preferences.RoleAdmin, preferences.RoleViewer} {
		_, key, err := s.CreateAPIKey(ctx, role, role)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
		if _, err := auth.Authenticate(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	boot := "bootstrap-admin-key-0123456789"
	if _, err := s.EnsureAPIKey(ctx, preferences.RoleAdmin, "bootstrap", boot); err != nil {
		t.Fatal(err)
	}
	keys = append(keys, boot)
	err := s.DB.View(func(tx *bbolt.Tx) error {
		for _, name := range []string{"prefs.apikeys", "prefs.apikey_hashes"} {
			err := tx.Bucket([]byte(name)).ForEach(func(k, v []byte) error {
				for _, key := range keys {
					secret := strings.TrimPrefix(key, "cmk_")
					if bytes.Contains(k, []byte(secret)) || bytes.Contains(v, []byte(secret)) {
						t.Errorf("%s entry %q holds the key %q", name, k, key)
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := s.BucketLen(t, "prefs.apikey_hashes"); n != len(keys) {
		t.Errorf("prefs.apikey_hashes has %d entries, want %d", n, len(keys))
	}
	// The listing never shows the key or its hash.
	list, err := s.APIKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(keys) {
		t.Errorf("APIKeys has %d keys, want %d", len(list), len(keys))
	}
	for _, key := range keys {
		if bytes.Contains(raw, []byte(strings.TrimPrefix(key, "cmk_"))) {
			t.Errorf("APIKeys JSON %s shows key %q", raw, key)
		}
	}
	if bytes.Contains(raw, []byte(`"hash"`)) {
		t.Errorf("APIKeys JSON %s shows a hash", raw)
	}
}

func TestDeleteAPIKeyRevokes(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	auth := preferences.NewAuthenticator(s.Store)
	k, key, err := s.CreateAPIKey(ctx, preferences.RoleMarketer, "temp")
	if err != nil {
		t.Fatal(err)
	}
	_, other, err := s.CreateAPIKey(ctx, preferences.RoleMarketer, "other")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth.Authenticate(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAPIKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.Authenticate(ctx, key); !errors.Is(err, preferences.ErrBadKey) {
		t.Errorf("Authenticate after delete: error = %v, want ErrBadKey", err)
	}
	if _, err := auth.Authenticate(ctx, other); err != nil {
		t.Errorf("the other key stopped working: %v", err)
	}
	if err := s.DeleteAPIKey(ctx, k.ID); !errors.Is(err, preferences.ErrNotFound) {
		t.Errorf("second delete: error = %v, want ErrNotFound", err)
	}
	if n := s.BucketLen(t, "prefs.apikey_hashes"); n != 1 {
		t.Errorf("prefs.apikey_hashes has %d entries, want 1", n)
	}
}

func TestEnsureAPIKey(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	const key = "bootstrap-admin-key-0123456789"
	first, err := s.EnsureAPIKey(ctx, preferences.RoleAdmin, "bootstrap", key)
	if err != nil {
		t.Fatal(err)
	}
	s.Clock.Advance(time.Second)
	second, err := s.EnsureAPIKey(ctx, preferences.RoleAdmin, "bootstrap", key)
	if err != nil {
		t.Fatal(err)
	}
	if second.ID != first.ID || !second.CreatedAt.Equal(first.CreatedAt) {
		t.Errorf("second EnsureAPIKey = %+v, want the first %+v", second, first)
	}
	s.Reopen(t)
	third, err := s.EnsureAPIKey(ctx, preferences.RoleAdmin, "bootstrap", key)
	if err != nil || third.ID != first.ID {
		t.Errorf("EnsureAPIKey after restart = %+v, %v; want %+v", third, err, first)
	}
	if list, err := s.APIKeys(ctx); err != nil || len(list) != 1 {
		t.Errorf("APIKeys = %+v, %v; want one key", list, err)
	}
	auth := preferences.NewAuthenticator(s.Store)
	if p, err := auth.Authenticate(ctx, key); err != nil || p.Role != preferences.RoleAdmin {
		t.Errorf("Authenticate = %+v, %v; want admin", p, err)
	}
	if _, err := s.EnsureAPIKey(ctx, preferences.RoleViewer, "bootstrap", key); err == nil {
		t.Errorf("EnsureAPIKey with another role: got nil error, want an error")
	}
	if _, err := s.EnsureAPIKey(ctx, preferences.RoleAdmin, "short", "too-short"); err == nil {
		t.Errorf("EnsureAPIKey with a 9-character key: got nil error, want an error")
	}
}

func TestAuthenticateRejects(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	auth := preferences.NewAuthenticator(s.Store)
	_, key, err := s.CreateAPIKey(ctx, preferences.RoleAdmin, "real")
	if err != nil {
		t.Fatal(err)
	}
	flipped := []byte(key)
	flipped[len(flipped)-1] ^= 0x01
	for _, tc := range []struct{ name, key string }{
		{"empty", ""},
		{"short", "cmk_abc"},
		{"unknown", "cmk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		{"one character changed", string(flipped)},
		{"prefix of the key", key[:len(key)-1]},
		{"key with a suffix", key + "x"},
		{"upper-cased", strings.ToUpper(key)},
		{"over-long", key + strings.Repeat("x", 300)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if p, err := auth.Authenticate(ctx, tc.key); !errors.Is(err, preferences.ErrBadKey) {
				t.Errorf("Authenticate(%q) = %+v, %v; want ErrBadKey", tc.key, p, err)
			}
		})
	}
}

// A new value under the bootstrap name revokes the old one, an empty value revokes
// it too, and keys of other names stay.
func TestEnsureAPIKeyRevokesThePreviousValue(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	auth := preferences.NewAuthenticator(s.Store)
	const a, b = "bootstrap-admin-key-AAAAAAAAAA", "bootstrap-admin-key-BBBBBBBBBB"
	_, other, err := s.CreateAPIKey(ctx, preferences.RoleViewer, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnsureAPIKey(ctx, preferences.RoleAdmin, preferences.BootstrapKeyName, a); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnsureAPIKey(ctx, preferences.RoleAdmin, preferences.BootstrapKeyName, b); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.Authenticate(ctx, a); !errors.Is(err, preferences.ErrBadKey) {
		t.Errorf("old bootstrap key after the change: %v, want ErrBadKey", err)
	}
	if _, err := auth.Authenticate(ctx, b); err != nil {
		t.Errorf("new bootstrap key: %v", err)
	}
	if _, err := s.EnsureAPIKey(ctx, preferences.RoleAdmin, preferences.BootstrapKeyName, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.Authenticate(ctx, b); !errors.Is(err, preferences.ErrBadKey) {
		t.Errorf("bootstrap key once unset: %v, want ErrBadKey", err)
	}
	if _, err := auth.Authenticate(ctx, other); err != nil {
		t.Errorf("a key of another name: %v, want it kept", err)
	}
	if _, _, err := s.CreateAPIKey(ctx, preferences.RoleAdmin, preferences.BootstrapKeyName); !errors.Is(err, preferences.ErrReservedName) {
		t.Errorf("CreateAPIKey with the bootstrap name: %v, want ErrReservedName", err)
	}
}
