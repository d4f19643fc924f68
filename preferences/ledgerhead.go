package preferences

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.etcd.io/bbolt"
)

// SignedHead is the ledger's head at one moment, signed by the installation: kept
// somewhere the store's host cannot rewrite (another machine, a ticket, an email to
// the DPO), it lets VerifyLedgerHead detect events cut off the end of the ledger or
// rewritten before it, which the hash chain alone cannot show.
type SignedHead struct {
	Seq       uint64    `json:"seq"`        // the number of events
	Head      string    `json:"head"`       // hex SHA-256 of event Seq (64 zeros when empty)
	At        time.Time `json:"at"`         // when it was read
	PublicKey string    `json:"public_key"` // base64 Ed25519 public key of the installation
	Signature string    `json:"signature"`  // base64 Ed25519 signature of the message SignedHead.message
}

// message is what the signature covers: a fixed label, then seq, head and time.
func (h SignedHead) message() []byte {
	return []byte("consentmail ledger head\x1f" + strconv.FormatUint(h.Seq, 10) + "\x1f" + h.Head + "\x1f" +
		h.At.UTC().Format(time.RFC3339Nano))
}

// headKey is the installation's Ed25519 key for signing ledger heads, derived from
// the root secret (a seed of its own purpose).
func headKey(secret []byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(DeriveKey(secret, "ledger-head-signing"))
}

// LedgerHead returns the ledger's current head, signed.
func (s *Store) LedgerHead(ctx context.Context) (SignedHead, error) {
	h := SignedHead{Head: hex.EncodeToString(make([]byte, hashLen))}
	err := s.db.View(func(tx *bbolt.Tx) error {
		k, v := bucket(tx, bucketLedger).Cursor().Last()
		if k == nil {
			return nil
		}
		if len(k) != 8 || len(v) < 2*hashLen {
			return errors.New("ledger: malformed last event")
		}
		h.Seq = binary.BigEndian.Uint64(k)
		h.Head = hex.EncodeToString(v[hashLen : 2*hashLen])
		return nil
	})
	if err != nil {
		return SignedHead{}, err
	}
	h.At = s.now().UTC()
	h.PublicKey = base64.StdEncoding.EncodeToString(s.headKey.Public().(ed25519.PublicKey))
	h.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(s.headKey, h.message()))
	return h, nil
}

// ErrHeadSignature is returned for a saved head whose signature does not verify, or
// that another installation's key signed.
var ErrHeadSignature = errors.New("ledger head: bad signature")

// CheckHeadSignature verifies saved's signature with its own public key and, when
// own is set, that the key is this installation's (false when it was not checked).
func (s *Store) CheckHeadSignature(saved SignedHead, own bool) error {
	pub, err := base64.StdEncoding.DecodeString(saved.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key is not an Ed25519 key", ErrHeadSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(saved.Signature)
	if err != nil || !ed25519.Verify(pub, saved.message(), sig) {
		return fmt.Errorf("%w: signature does not match the head", ErrHeadSignature)
	}
	if own && !s.headKey.Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(pub)) {
		return fmt.Errorf("%w: signed by another installation's key", ErrHeadSignature)
	}
	return nil
}

// VerifyLedgerHead walks the ledger as VerifyLedger does and also checks it against
// a head saved earlier (whose signature the caller checked): the ledger must still
// hold event saved.Seq with hash saved.Head. Fewer events means the newest were cut
// off; another hash means events up to it were rewritten.
func (s *Store) VerifyLedgerHead(ctx context.Context, saved SignedHead) (VerifyResult, error) {
	res, err := s.VerifyLedger(ctx)
	if err != nil || !res.OK {
		return res, err
	}
	if res.Events < saved.Seq {
		return VerifyResult{OK: false, Events: res.Events, Head: res.Head, FirstBadSeq: res.Events + 1,
			Reason: fmt.Sprintf("the saved head has %d events, the ledger only %d: events were cut off its end", saved.Seq, res.Events)}, nil
	}
	if saved.Seq == 0 {
		return res, nil
	}
	var at []byte
	err = s.db.View(func(tx *bbolt.Tx) error {
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], saved.Seq)
		if v := bucket(tx, bucketLedger).Get(k[:]); len(v) >= 2*hashLen {
			at = append(at, v[hashLen:2*hashLen]...)
		}
		return nil
	})
	if err != nil {
		return VerifyResult{}, err
	}
	if hex.EncodeToString(at) != saved.Head {
		return VerifyResult{OK: false, Events: res.Events, Head: res.Head, FirstBadSeq: saved.Seq,
			Reason: fmt.Sprintf("event %d does not have the saved head's hash: the ledger was rewritten up to it", saved.Seq)}, nil
	}
	return res, nil
}
