package preferences

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// MinSecretLen is the shortest root secret accepted.
const MinSecretLen = 32

// ErrKeyDestroyed is returned when sealed data belongs to a subscriber whose data key
// was destroyed (erasure): the data is unrecoverable by design.
var ErrKeyDestroyed = errors.New("data key destroyed")

// DeriveKey derives a 32-byte key for one purpose (e.g. "optin-token") from the root
// secret with HKDF-SHA256, so that no two uses ever share a key.
func DeriveKey(secret []byte, purpose string) []byte {
	k, err := hkdf.Key(sha256.New, secret, nil, "consentmail/"+purpose, 32)
	if err != nil {
		panic(fmt.Sprintf("hkdf: %v", err)) // only possible for lengths HKDF cannot produce
	}
	return k
}

// keyring holds the keys derived from the root secret.
type keyring struct {
	file    *keyFile    // the KEKs that wrap per-subscriber data keys
	wrap    cipher.AEAD // wrapped the data keys of stores made before the key file
	erasure cipher.AEAD // seals a destroyed legacy data key until its old copies are overwritten (stepShred)
	index   []byte      // blind index of email addresses
	// quarantine seals inbound mail that matched no subscriber (no data key to use).
	quarantine cipher.AEAD
}

func newKeyring(secret []byte) (*keyring, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("secret must be at least %d bytes, got %d", MinSecretLen, len(secret))
	}
	wrap, err := newAEAD(DeriveKey(secret, "wrap-data-keys"))
	if err != nil {
		return nil, err
	}
	erasure, err := erasureAEAD(secret)
	if err != nil {
		return nil, err
	}
	quarantine, err := newAEAD(DeriveKey(secret, "inbound-quarantine"))
	if err != nil {
		return nil, err
	}
	return &keyring{wrap: wrap, erasure: erasure, index: DeriveKey(secret, "email-index"), quarantine: quarantine}, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// blindIndex is the keyed hash under which an address is found.
func (k *keyring) blindIndex(normalised string) []byte {
	m := hmac.New(sha256.New, k.index)
	m.Write([]byte(normalised))
	return m.Sum(nil)
}

// newDataKey returns a fresh data key and its wrapped form bound to the subscriber id,
// wrapped under the KEK of the group the key file gives it (see keyFile).
func (k *keyring) newDataKey(subscriber string) (*dataKey, []byte, error) {
	raw, a, err := randomKey()
	if err != nil {
		return nil, nil, err
	}
	group, epoch, kek, err := k.file.allocate()
	if err != nil {
		return nil, nil, err
	}
	return &dataKey{aead: a}, wrapUnder(kek, group, epoch, raw, subscriber), nil
}

// randomKey returns a fresh 256-bit key and its AES-GCM AEAD.
func randomKey() ([]byte, cipher.AEAD, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, nil, err
	}
	a, err := newAEAD(raw)
	return raw, a, err
}

// unwrap opens a wrapped data key.
func (k *keyring) unwrap(subscriber string, wrapped []byte) (*dataKey, error) {
	return k.unwrapWith(nil, subscriber, wrapped)
}

// unwrapWith is unwrap for a read that opens many data keys: memo (nil: none) keeps
// the KEKs it opened, each reused while it is its group's newest. A campaign's
// recipients come in the order they signed up, from a few key groups at a time, and
// expanding the KEK anew for each was a third of what reading one allocated.
func (k *keyring) unwrapWith(memo *kekMemo, subscriber string, wrapped []byte) (*dataKey, error) {
	raw, err := k.unwrapRaw(memo, subscriber, wrapped)
	if err != nil {
		return nil, err
	}
	return newDataKeyFrom(raw)
}

func (k *keyring) unwrapRaw(memo *kekMemo, subscriber string, wrapped []byte) ([]byte, error) {
	a, sealed := k.wrap, wrapped
	if group, epoch, ok := wrappedKeyGroup(wrapped); ok {
		kek, err := k.file.kekFor(memo, group, epoch)
		if err != nil {
			return nil, fmt.Errorf("unwrap data key of %s: %w", subscriber, err)
		}
		a, sealed = kek, wrapped[9:]
	}
	raw, err := open(a, sealed, []byte(subscriber))
	if err != nil {
		return nil, fmt.Errorf("unwrap data key of %s: %w", subscriber, err)
	}
	return raw, nil
}

// dataKey seals one subscriber's personal data.
type dataKey struct{ aead cipher.AEAD }

func newDataKeyFrom(raw []byte) (*dataKey, error) {
	a, err := newAEAD(raw)
	if err != nil {
		return nil, err
	}
	return &dataKey{aead: a}, nil
}

// A field is what a sealed value is, bound to it as the AEAD's additional data: a value
// sealed as one field does not open as another. The labels are made once: converting a
// string at each call allocated (the AEAD is an interface, so its arguments escape).
type field []byte

var (
	fieldEmail      = field("email")
	fieldName       = field("name")
	fieldAttributes = field("attributes")
	fieldIP         = field("ledger/ip")
	fieldUA         = field("ledger/ua")
	fieldPersonal   = field("ledger/personal")
)

// seal encrypts plaintext; an empty plaintext stays empty (nothing to hide).
func (d *dataKey) seal(plaintext []byte, f field) []byte {
	if len(plaintext) == 0 {
		return nil
	}
	return seal(d.aead, plaintext, f)
}

// sealString is seal of s, without making s a []byte first.
func (d *dataKey) sealString(s string, f field) []byte {
	if s == "" {
		return nil
	}
	return seal(d.aead, s, f)
}

func (d *dataKey) open(sealed []byte, f field) ([]byte, error) {
	return d.appendOpen(nil, sealed, f)
}

// appendOpen appends the plaintext of sealed to dst.
func (d *dataKey) appendOpen(dst, sealed []byte, f field) ([]byte, error) {
	if len(sealed) == 0 {
		return dst, nil
	}
	return appendOpen(d.aead, dst, sealed, f)
}

func (d *dataKey) openString(sealed []byte, f field) (string, error) {
	b, err := d.open(sealed, f)
	return string(b), err
}

// seal returns nonce || ciphertext. The plaintext is copied behind the nonce and
// encrypted there, in place (plaintext[:0] as dst, as cipher.AEAD documents it): a
// string needs no conversion of its own.
func seal[T ~string | ~[]byte](a cipher.AEAD, plaintext T, aad []byte) []byte {
	ns := a.NonceSize()
	out := make([]byte, ns, ns+len(plaintext)+a.Overhead())
	if _, err := rand.Read(out); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // rand.Read never fails on supported platforms
	}
	out = append(out, plaintext...)
	ct := a.Seal(out[ns:ns], out[:ns], out[ns:], aad)
	return out[:ns+len(ct)]
}

func open(a cipher.AEAD, sealed, aad []byte) ([]byte, error) {
	return appendOpen(a, nil, sealed, aad)
}

// appendOpen appends the plaintext of sealed (nonce || ciphertext) to dst.
func appendOpen(a cipher.AEAD, dst, sealed, aad []byte) ([]byte, error) {
	ns := a.NonceSize()
	if len(sealed) < ns+a.Overhead() {
		return nil, errors.New("sealed data too short")
	}
	return a.Open(dst, sealed[:ns], sealed[ns:], aad)
}
