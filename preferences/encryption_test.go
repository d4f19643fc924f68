package preferences_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"consentmail/preferences"
)

// TestPersonalDataSealedAtRest writes personal data through every write path of the
// package, then scans the raw bytes of every file in the data directory for it, in
// any case and also base64- or hex-encoded (as []byte fields would be in JSON).
func TestPersonalDataSealedAtRest(t *testing.T) {
	dir := t.TempDir()
	s := newStoreWith(t, filepath.Join(dir, "consentmail.db"), testSecret)
	mustCreateList(t, s, "news")
	mustCreateList(t, s, "offers")

	people := []struct {
		email, name, ip, ua string
		attrs               map[string]string
	}{
		{"Quentin.Zebrafish@Zanzibar-Mail.example", "Philomena Quiggleworth", "203.0.113.199",
			"QuokkaBrowser/9.9 (Zanzibarian OS)", map[string]string{"shoe_size": "Wombat-Size-47", "city": "Xylopolis-upon-Tyne"}},
		{"marguerite+mailinglist@Kumquat-Orchard.example", "Émilie Żółwiowska", "2001:db8:cafe::17",
			"Narwhal-Agent/4.2 gecko-ish", map[string]string{"employer": "Flibbertigibbet Holdings"}},
	}
	var needles []string
	ctx := context.Background()
	for _, p := range people {
		attrs, err := json.Marshal(p.attrs)
		if err != nil {
			t.Fatal(err)
		}
		in := preferences.SignupInput{Email: p.email, IndexKey: strings.ToLower(p.email), Name: p.name, Locale: "fr",
			Attributes: attrs, Lists: []string{"news", "offers"}, Source: "form", IP: p.ip, UserAgent: p.ua}
		req := mustSignup(t, s, in)
		if _, err := s.Confirm(ctx, preferences.ConfirmInput{Subscriber: req.Subscriber, Lists: []string{"news"},
			Nonce: req.Nonce, IP: p.ip, UserAgent: p.ua}); err != nil {
			t.Fatalf("Confirm: %v", err)
		}
		if err := s.RecordConfirmationSent(ctx, req, "<m@example.org>"); err != nil {
			t.Fatalf("RecordConfirmationSent: %v", err)
		}
		// A repeated signup goes through the existing-subscriber path.
		s.Clock.Advance(preferences.OptinResendInterval)
		mustSignup(t, s, in)

		needles = append(needles, p.email, strings.ToLower(p.email), p.name, p.ip, p.ua)
		needles = append(needles, strings.SplitN(p.email, "@", 2)[0])
		for k, v := range p.attrs {
			needles = append(needles, k, v)
		}
		// Sanity: the data is really there, just sealed.
		sub, err := s.Subscriber(ctx, req.Subscriber)
		if err != nil {
			t.Fatalf("Subscriber: %v", err)
		}
		if sub.Email != p.email || sub.Name != p.name {
			t.Fatalf("opened subscriber = %q %q, want %q %q", sub.Email, sub.Name, p.email, p.name)
		}
		for k, v := range p.attrs {
			if sub.Attributes[k] != v {
				t.Fatalf("opened attribute %s = %v, want %q", k, sub.Attributes[k], v)
			}
		}
	}
	s.CloseDB(t)

	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no files in the data directory")
	}
	for _, f := range files {
		raw, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lower := bytes.ToLower(raw)
		// Positive control: non-personal data (a list's purpose) is stored in the clear,
		// so the scan does see what is written.
		if f.Name() == "consentmail.db" && !bytes.Contains(raw, []byte("news about offers")) {
			t.Errorf("%s does not contain the list purpose; the scan cannot be trusted", f.Name())
		}
		for _, n := range needles {
			for _, enc := range encodings(n) {
				if bytes.Contains(lower, bytes.ToLower([]byte(enc.text))) {
					t.Errorf("%s contains %q (%s)", f.Name(), n, enc.name)
				}
			}
		}
	}
}

type encoded struct{ name, text string }

// encodings returns the forms in which plaintext could sit in a JSON-encoded record.
func encodings(s string) []encoded {
	b64 := base64.StdEncoding.EncodeToString([]byte(s))
	// Drop the last, padding-dependent characters so a prefix match still counts.
	b64 = strings.TrimRight(b64, "=")
	if len(b64) > 4 {
		b64 = b64[:len(b64)-2]
	}
	return []encoded{{"plain", s}, {"base64", b64}, {"hex", hex.EncodeToString([]byte(s))}}
}

func indexKeys(tb testing.TB, s *testStore) [][]byte {
	tb.Helper()
	var keys [][]byte
	err := s.DB.View(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("prefs.email_index")).ForEach(func(k, _ []byte) error {
			keys = append(keys, bytes.Clone(k))
			return nil
		})
	})
	if err != nil {
		tb.Fatal(err)
	}
	return keys
}

func TestBlindIndex(t *testing.T) {
	ctx := context.Background()
	t.Run("equal index keys are one subscriber", func(t *testing.T) {
		s := newStore(t)
		mustCreateList(t, s, "news")
		first := signupInput("Ana.Lopez@Example.org", "news")
		second := signupInput("ana.lopez@example.org", "news")
		second.Name = "Someone Else"
		if first.IndexKey != second.IndexKey {
			t.Fatalf("fixture: index keys differ")
		}
		req := mustSignup(t, s, first)
		s.Clock.Advance(preferences.OptinResendInterval)
		mustSignup(t, s, second)
		if subs := subscribersInLedger(t, s); len(subs) != 1 || subs[req.Subscriber] != 2 {
			t.Errorf("signup events per subscriber = %v, want {%s: 2}", subs, req.Subscriber)
		}
		for _, b := range []string{"prefs.subscribers", "prefs.email_index", "prefs.data_keys"} {
			if got := s.BucketLen(t, b); got != 1 {
				t.Errorf("%s has %d keys, want 1", b, got)
			}
		}
		sub, err := s.Subscriber(ctx, req.Subscriber)
		if err != nil {
			t.Fatal(err)
		}
		if sub.Email != first.Email || sub.Name != first.Name {
			t.Errorf("subscriber = %q %q, want the first signup's %q %q", sub.Email, sub.Name, first.Email, first.Name)
		}
	})
	t.Run("different index keys are two subscribers", func(t *testing.T) {
		s := newStore(t)
		mustCreateList(t, s, "news")
		mustSignup(t, s, signupInput("ana@example.org", "news"))
		mustSignup(t, s, signupInput("ana2@example.org", "news"))
		if got := len(subscribersInLedger(t, s)); got != 2 {
			t.Errorf("got %d subscribers, want 2", got)
		}
	})
	t.Run("index depends on the secret", func(t *testing.T) {
		in := signupInput("ana@example.org", "news")
		keysWith := func(secret []byte) []byte {
			s := newStoreWith(t, filepath.Join(t.TempDir(), "c.db"), secret)
			mustCreateList(t, s, "news")
			mustSignup(t, s, in)
			keys := indexKeys(t, s)
			s.CloseDB(t)
			if len(keys) != 1 {
				t.Fatalf("email index has %d keys, want 1", len(keys))
			}
			return keys[0]
		}
		a := keysWith(testSecret)
		again := keysWith(testSecret)
		other := keysWith([]byte("another-secret-of-at-least-32-bytes!!"))
		if !bytes.Equal(a, again) {
			t.Errorf("same secret, same address: index %x then %x, want equal", a, again)
		}
		if bytes.Equal(a, other) {
			t.Errorf("different secrets give the same index %x", a)
		}
		if plain := sha256.Sum256([]byte(in.IndexKey)); bytes.Equal(a, plain[:]) {
			t.Errorf("index is the unkeyed SHA-256 of the address")
		}
	})
}

func TestNewRejectsShortSecret(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "c.db"))
	t.Cleanup(func() { db.Close() })
	for _, n := range []int{0, 1, preferences.MinSecretLen - 1} {
		if _, err := preferences.New(db, bytes.Repeat([]byte("k"), n), newClock().Now); err == nil {
			t.Errorf("New with a %d-byte secret: got nil error, want an error", n)
		}
	}
}

// A store opened with the wrong secret must refuse to open sealed data rather than
// return garbage: its key file opens with no key, and New says so.
func TestWrongSecretCannotOpen(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "news")
	mustSignup(t, s, signupInput("ana@example.org", "news"))
	s.CloseDB(t)
	db := openDB(t, s.Path)
	t.Cleanup(func() { db.Close() })
	_, err := preferences.New(db, []byte("a-completely-different-root-secret-0000"), newClock().Now)
	if err == nil || !strings.Contains(err.Error(), "no key opens with this secret") {
		t.Fatalf("New with the wrong secret: %v, want the key file refused", err)
	}
}
