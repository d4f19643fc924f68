// Package linktoken signs the capabilities put in links and forms: confirmation,
// unsubscribe, preference and data links, form tokens. It is a leaf every feature may
// import: the campaign worker and the link mailer sign the links of links.go, the
// subscriber pages verify them. A token is
//
//	base64url(purpose ␟ expiry ␟ field ␟ field …) "." base64url(HMAC-SHA256(key, payload)[:20])
//
// The tokens of inbound mail addresses (bounce+TOKEN@, unsubscribe+TOKEN@) are a compact,
// case-free form of their own (mailtokens.go). Verification is constant-time, checks the purpose (a token signed for one use is
// refused for any other) and the expiry. Tokens are opaque to their holders but not
// secret-bearing: the fields are readable, so put identifiers in them, never personal data.
package linktoken

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxLen is the longest token accepted.
const MaxLen = 1024

const (
	sep    = "\x1f"
	macLen = 20
)

var (
	// ErrInvalid: garbled, forged or signed for another purpose.
	ErrInvalid = errors.New("invalid token")
	// ErrExpired: authentic but past its expiry. Verify still returns its fields, so a
	// page can offer a fresh link.
	ErrExpired = errors.New("token expired")
)

// strict refuses encodings with non-zero padding bits, so a token has one spelling.
var strict = base64.RawURLEncoding.Strict()

// Signer signs and verifies tokens with one key.
type Signer struct {
	key  []byte
	macs sync.Pool // *macState: Reset is cheaper than keying anew
}

// macState is a keyed HMAC-SHA256 state with buffers for one token at a time: a
// campaign signs several tokens per message, and building each in fresh strings was
// most of its cost.
type macState struct {
	h       hash.Hash
	payload []byte
	out     []byte
	sum     [sha256.Size]byte
}

// of returns the MAC of payload in m's buffer, valid until m goes back to the pool.
func (m *macState) of(payload []byte) []byte {
	m.h.Reset()
	m.h.Write(payload)
	return m.h.Sum(m.sum[:0])
}

// NewSigner returns a Signer; key should be 32 random bytes derived for this use.
func NewSigner(key []byte) *Signer {
	s := &Signer{key: append([]byte(nil), key...)}
	s.macs.New = func() any { return &macState{h: hmac.New(sha256.New, s.key)} }
	return s
}

// Sign returns a token for purpose carrying fields, valid until expires. Fields must
// not contain the unit separator \x1f.
func (s *Signer) Sign(purpose string, expires time.Time, fields ...string) string {
	m := s.macs.Get().(*macState)
	defer s.macs.Put(m)
	p := append(m.payload[:0], purpose...)
	p = append(p, sep...)
	p = strconv.AppendInt(p, expires.Unix(), 10)
	for _, f := range fields {
		p = append(append(p, sep...), f...)
	}
	m.payload = p
	enc := base64.RawURLEncoding
	out := enc.AppendEncode(m.out[:0], p)
	out = append(out, '.')
	out = enc.AppendEncode(out, m.of(p)[:macLen])
	m.out = out
	return string(out)
}

// validMAC reports, in constant time, whether mac is payload's.
func (s *Signer) validMAC(payload, mac []byte) bool {
	m := s.macs.Get().(*macState)
	valid := hmac.Equal(mac, m.of(payload)[:macLen])
	s.macs.Put(m)
	return valid
}

// Verify checks token for purpose at time now and returns its fields and expiry. An
// expired token returns its fields with ErrExpired; anything else wrong is ErrInvalid.
func (s *Signer) Verify(token, purpose string, now time.Time) ([]string, time.Time, error) {
	if len(token) > MaxLen {
		return nil, time.Time{}, ErrInvalid
	}
	p64, m64, ok := strings.Cut(token, ".")
	if !ok {
		return nil, time.Time{}, ErrInvalid
	}
	payload, err := strict.DecodeString(p64)
	if err != nil {
		return nil, time.Time{}, ErrInvalid
	}
	mac, err := strict.DecodeString(m64)
	if err != nil || !s.validMAC(payload, mac) {
		return nil, time.Time{}, ErrInvalid
	}
	parts := strings.Split(string(payload), sep)
	if len(parts) < 2 || parts[0] != purpose {
		return nil, time.Time{}, ErrInvalid
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return nil, time.Time{}, ErrInvalid
	}
	expires := time.Unix(exp, 0).UTC()
	if !now.Before(expires) {
		return parts[2:], expires, ErrExpired
	}
	return parts[2:], expires, nil
}
