package linktoken

import (
	"crypto/hmac"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"strings"
)

// The tokens of inbound mail addresses: bounce+TOKEN@ (the VERP return path of a
// campaign message) and unsubscribe+TOKEN@ (its List-Unsubscribe mailto). An address's
// local part holds at most 64 characters (RFC 5321 §4.5.3.1.1) and some relays fold
// its case, so these tokens are compact and case-free: lowercase base32, without
// padding, of
//
//	subscriber id (12 bytes) | campaign id (12 bytes) | HMAC-SHA256(key, purpose ␟ ids)[:10]
//
// 55 characters. They carry identifiers only, never an address, and do not expire:
// a bounce or a mailto unsubscribe may come back long after the mail went out.
const (
	purposeBounce      = "bounce"
	purposeMailUnsub   = "mail-unsubscribe"
	mailTokenIDLen     = 12
	mailTokenMACLen    = 10
	mailTokenRawLen    = 2*mailTokenIDLen + mailTokenMACLen
	subscriberIDPrefix = "sub_"
	campaignIDPrefix   = "cmp_"
)

// MailTokenLen is the length of a bounce or mailto-unsubscribe token.
var MailTokenLen = mailEncoding.EncodedLen(mailTokenRawLen)

var mailEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ErrNotCompact: the subscriber or campaign id has not the form sub_/cmp_ and 24 hex
// digits, so it cannot go into a mail token.
var ErrNotCompact = errors.New("id cannot be put in a mail token")

// MailRef is what a bounce or mailto-unsubscribe token names. Campaign is empty for
// mail that belongs to no campaign.
type MailRef struct {
	Subscriber string
	Campaign   string
}

// Bounce returns the token of the VERP return path bounce+TOKEN@ of a message sent to
// subscriber for campaign (may be empty).
func Bounce(s *Signer, subscriber, campaign string) (string, error) {
	return s.mailToken(purposeBounce, subscriber, campaign)
}

// VerifyBounce returns what a bounce token names, or ErrInvalid.
func VerifyBounce(s *Signer, token string) (MailRef, error) {
	return s.verifyMailToken(purposeBounce, token)
}

// MailUnsubscribe returns the token of the List-Unsubscribe mailto address
// unsubscribe+TOKEN@ of a message sent to subscriber for campaign (may be empty): the
// campaign names the lists a mail to it withdraws from.
func MailUnsubscribe(s *Signer, subscriber, campaign string) (string, error) {
	return s.mailToken(purposeMailUnsub, subscriber, campaign)
}

// VerifyMailUnsubscribe returns what a mailto-unsubscribe token names, or ErrInvalid.
func VerifyMailUnsubscribe(s *Signer, token string) (MailRef, error) {
	return s.verifyMailToken(purposeMailUnsub, token)
}

func (s *Signer) mailToken(purpose, subscriber, campaign string) (string, error) {
	raw, ok := appendCompactID(make([]byte, 0, mailTokenRawLen), subscriber, subscriberIDPrefix)
	if !ok {
		return "", ErrNotCompact
	}
	if campaign == "" {
		raw = append(raw, make([]byte, mailTokenIDLen)...)
	} else if raw, ok = appendCompactID(raw, campaign, campaignIDPrefix); !ok {
		return "", ErrNotCompact
	}
	m := s.macs.Get().(*macState)
	defer s.macs.Put(m)
	raw = append(raw, m.mailMAC(purpose, raw)...)
	m.out = mailEncoding.AppendEncode(m.out[:0], raw)
	return string(m.out), nil
}

func (s *Signer) verifyMailToken(purpose, token string) (MailRef, error) {
	if len(token) != MailTokenLen {
		return MailRef{}, ErrInvalid
	}
	raw, err := mailEncoding.DecodeString(strings.ToLower(token))
	if err != nil || len(raw) != mailTokenRawLen {
		return MailRef{}, ErrInvalid
	}
	ids, mac := raw[:2*mailTokenIDLen], raw[2*mailTokenIDLen:]
	m := s.macs.Get().(*macState)
	valid := hmac.Equal(mac, m.mailMAC(purpose, ids))
	s.macs.Put(m)
	if !valid {
		return MailRef{}, ErrInvalid
	}
	ref := MailRef{Subscriber: subscriberIDPrefix + hex.EncodeToString(ids[:mailTokenIDLen])}
	if cmp := ids[mailTokenIDLen:]; !allZero(cmp) {
		ref.Campaign = campaignIDPrefix + hex.EncodeToString(cmp)
	}
	return ref, nil
}

// mailMAC is a mail token's MAC of its ids, HMAC(purpose ␟ ids)[:10], in m's buffer.
func (m *macState) mailMAC(purpose string, ids []byte) []byte {
	m.payload = append(append(append(m.payload[:0], purpose...), sep...), ids...)
	return m.of(m.payload)[:mailTokenMACLen]
}

// AppendCompactSubscriberID appends to dst the 12 bytes of a subscriber id of the
// store's form, "sub_" and 24 lower-case hex digits (time first: the bytes sort as the
// ids do), and returns false for any other id.
func AppendCompactSubscriberID(dst []byte, id string) ([]byte, bool) {
	return appendCompactID(dst, id, subscriberIDPrefix)
}

// appendCompactID appends the 12 bytes of id (prefix and 24 lower-case hex digits) to
// dst, or returns false.
func appendCompactID(dst []byte, id, prefix string) ([]byte, bool) {
	h, ok := strings.CutPrefix(id, prefix)
	if !ok || len(h) != 2*mailTokenIDLen || strings.ToLower(h) != h {
		return dst, false
	}
	out, err := hex.AppendDecode(dst, []byte(h))
	return out, err == nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
