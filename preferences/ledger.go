package preferences

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"
	"go.etcd.io/bbolt"
)

// Event types of the consent ledger (contract §4.3).
const (
	EventSignup            = "signup"
	EventConfirmationSent  = "confirmation_sent"
	EventConfirmed         = "confirmed"
	EventUnsubscribed      = "unsubscribed"
	EventPreferences       = "preferences_changed"
	EventTrackingGranted   = "tracking_granted"
	EventTrackingWithdrawn = "tracking_withdrawn"
	EventRectified         = "rectified"
	EventRestricted        = "restricted"
	EventUnrestricted      = "unrestricted"
	EventExported          = "exported"
	EventErased            = "erased"
	EventExpired           = "expired"
	EventBounced           = "bounced"
	EventComplained        = "complained"
	EventImported          = "imported"
	EventUnmasked          = "unmasked"
)

// Event is one ledger entry as the API shows it, personal fields opened. When the
// subscriber's data key was destroyed, IP, UserAgent and the personal details are
// empty and Erased is true; the hashes still verify.
//
// ConsentTexts is not part of the hashed event: every read resolves the event's
// details consent_version.LIST into the exact text of that version, its list and its
// language, from the consent texts kept for ever (also after the list is deleted).
type Event struct {
	Seq        uint64            `json:"seq"`
	At         time.Time         `json:"at"`
	Type       string            `json:"type"`
	Subscriber string            `json:"subscriber,omitempty"`
	Lists      []string          `json:"lists"`
	Actor      string            `json:"actor,omitempty"`
	IP         string            `json:"ip,omitempty"`
	UserAgent  string            `json:"user_agent,omitempty"`
	Details    map[string]string `json:"details,omitempty"`
	Erased     bool              `json:"personal_data_erased,omitempty"`
	// ConsentTexts are the consent texts the event names, by list.
	ConsentTexts map[string]ConsentText `json:"consent_texts,omitempty"`
	PrevHash     string                 `json:"prev_hash"`
	Hash         string                 `json:"hash"`
}

// eventInput is what a writer gives for a new event.
type eventInput struct {
	Type       string
	Subscriber string
	Lists      []string
	Actor      string
	IP, UA     string
	Details    map[string]string // not personal: method, source, consent versions
	Personal   map[string]string // personal: sealed with the subscriber's data key
}

// eventBody is the canonical, hashed encoding of an event. Field order is fixed by the
// struct and map keys are sorted by encoding/json, so one event has one encoding.
type eventBody struct {
	At         string            `json:"at"`
	Type       string            `json:"type"`
	Subscriber string            `json:"subscriber,omitempty"`
	Lists      []string          `json:"lists,omitempty"`
	Actor      string            `json:"actor,omitempty"`
	IP         []byte            `json:"ip,omitempty"`
	UA         []byte            `json:"ua,omitempty"`
	Details    map[string]string `json:"details,omitempty"`
	Personal   []byte            `json:"personal,omitempty"`
}

const hashLen = sha256.Size

// Stored value: prev hash (32) | hash (32) | body.
func eventHash(seq uint64, prev, body []byte) []byte {
	h := sha256.New()
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], seq)
	h.Write(s[:])
	h.Write(prev)
	h.Write(body)
	return h.Sum(nil)
}

func seqKey(seq uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, seq)
	return k
}

// appendEvent writes one event in tx. dk seals the personal fields; it may be nil only
// for events without personal data.
func (s *Store) appendEvent(tx *bbolt.Tx, at time.Time, dk *dataKey, in eventInput) (uint64, error) {
	b := bucket(tx, bucketLedger)
	seq, err := b.NextSequence()
	if err != nil {
		return 0, err
	}
	body := eventBody{At: at.UTC().Format(time.RFC3339Nano), Type: in.Type, Subscriber: in.Subscriber,
		Lists: in.Lists, Actor: in.Actor, Details: in.Details}
	if dk != nil {
		body.IP = dk.sealString(in.IP, fieldIP)
		body.UA = dk.sealString(in.UA, fieldUA)
		if len(in.Personal) > 0 {
			p, err := gojson.Marshal(in.Personal)
			if err != nil {
				return 0, err
			}
			body.Personal = dk.seal(p, fieldPersonal)
		}
	} else if in.IP != "" || in.UA != "" || len(in.Personal) > 0 {
		return 0, fmt.Errorf("ledger %s: personal data without a data key", in.Type)
	}
	raw, err := gojson.Marshal(body)
	if err != nil {
		return 0, err
	}
	prev := make([]byte, hashLen)
	if _, last := b.Cursor().Last(); last != nil {
		copy(prev, last[hashLen:2*hashLen])
	}
	val := make([]byte, 0, 2*hashLen+len(raw))
	val = append(val, prev...)
	val = append(val, eventHash(seq, prev, raw)...)
	val = append(val, raw...)
	if err := b.Put(seqKey(seq), val); err != nil {
		return 0, err
	}
	if in.Subscriber != "" {
		if err := tx.Bucket(bucketLedgerBySub).Put(subSeqKey(in.Subscriber, seq), nil); err != nil {
			return 0, err
		}
	}
	return seq, nil
}

func subSeqKey(sub string, seq uint64) []byte {
	k := make([]byte, 0, len(sub)+9)
	k = append(k, sub...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// VerifyResult is the outcome of walking the chain.
type VerifyResult struct {
	OK          bool   `json:"ok"`
	Events      uint64 `json:"events"`
	Head        string `json:"head"`
	FirstBadSeq uint64 `json:"first_bad_seq,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// VerifyLedger walks the whole ledger and checks that sequence numbers are contiguous,
// that every event's hash matches its content and that every event names the hash of
// the one before.
func (s *Store) VerifyLedger(ctx context.Context) (VerifyResult, error) {
	return VerifyLedgerOf(ctx, s.db)
}

// ErrNoLedger is returned by VerifyLedgerOf for a file without a consent ledger.
var ErrNoLedger = errors.New("no consent ledger in this file")

// VerifyLedgerOf verifies the ledger of a data file not opened as a Store (a backup,
// opened read-only): no secret is needed.
func VerifyLedgerOf(ctx context.Context, db *bbolt.DB) (VerifyResult, error) {
	var res VerifyResult
	err := db.View(func(tx *bbolt.Tx) error {
		prev := make([]byte, hashLen)
		want := uint64(1)
		b := tx.Bucket(bucketLedger)
		if b == nil {
			return ErrNoLedger
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if want%65536 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			bad := func(reason string) error {
				res = VerifyResult{OK: false, Events: want - 1, Head: hex.EncodeToString(prev), FirstBadSeq: want, Reason: reason}
				return nil
			}
			if len(k) != 8 || binary.BigEndian.Uint64(k) != want {
				return bad("sequence gap or bad key")
			}
			if len(v) < 2*hashLen {
				return bad("event too short")
			}
			if !bytes.Equal(v[:hashLen], prev) {
				return bad("previous hash does not match")
			}
			h := eventHash(want, prev, v[2*hashLen:])
			if !bytes.Equal(h, v[hashLen:2*hashLen]) {
				return bad("hash does not match content")
			}
			prev = h
			want++
		}
		res = VerifyResult{OK: true, Events: want - 1, Head: hex.EncodeToString(prev)}
		return nil
	})
	return res, err
}

// LedgerQuery filters the ledger. After is an exclusive sequence cursor.
type LedgerQuery struct {
	Subscriber string
	Type       string
	After      uint64
	Limit      int
}

// Ledger returns events in sequence order and the cursor of the next page (0 when
// there is none). Personal fields are opened with each subscriber's data key.
func (s *Store) Ledger(ctx context.Context, q LedgerQuery) ([]Event, uint64, error) {
	if q.Limit <= 0 || q.Limit > 1000 {
		q.Limit = 100
	}
	var out []Event
	var next uint64
	err := s.db.View(func(tx *bbolt.Tx) error {
		lb := bucket(tx, bucketLedger)
		keys := newKeyCache(s, tx)
		take := func(seq uint64, v []byte) (bool, error) {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			e, err := keys.decode(seq, v)
			if err != nil {
				return false, err
			}
			if q.Type != "" && e.Type != q.Type {
				return true, nil
			}
			if len(out) == q.Limit {
				next = out[len(out)-1].Seq
				return false, nil
			}
			out = append(out, e)
			return true, nil
		}
		if q.Subscriber != "" {
			prefix := append([]byte(q.Subscriber), 0)
			c := tx.Bucket(bucketLedgerBySub).Cursor()
			for k, _ := c.Seek(subSeqKey(q.Subscriber, q.After+1)); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				seq := binary.BigEndian.Uint64(k[len(prefix):])
				more, err := take(seq, lb.Get(seqKey(seq)))
				if err != nil || !more {
					return err
				}
			}
			return nil
		}
		c := lb.Cursor()
		for k, v := c.Seek(seqKey(q.After + 1)); k != nil; k, v = c.Next() {
			more, err := take(binary.BigEndian.Uint64(k), v)
			if err != nil || !more {
				return err
			}
		}
		return nil
	})
	return out, next, err
}

// keyCache opens each subscriber's data key, and reads each consent text, once per
// read.
type keyCache struct {
	s       *Store
	tx      *bbolt.Tx
	keys    map[string]*dataKey // nil value: destroyed
	texts   map[string]*ConsentText
	wrapped Seeker // the data keys bucket, opened at the first key
	kek     kekMemo
	scratch []byte // plaintexts on their way to a string
}

func newKeyCache(s *Store, tx *bbolt.Tx) *keyCache {
	return &keyCache{s: s, tx: tx, keys: map[string]*dataKey{}, texts: map[string]*ConsentText{}}
}

// consentText returns a stored consent text version, nil when unknown.
func (kc *keyCache) consentText(version string) (*ConsentText, error) {
	if ct, ok := kc.texts[version]; ok {
		return ct, nil
	}
	var ct *ConsentText
	if raw := kc.tx.Bucket(bucketConsentText).Get([]byte(version)); raw != nil {
		var v ConsentText
		if err := decodeJSON(raw, &v); err != nil {
			return nil, fmt.Errorf("consent text %s: %w", version, err)
		}
		v = v.withLocale()
		ct = &v
	}
	kc.texts[version] = ct
	return ct, nil
}

// resolveConsent fills e.ConsentTexts from its consent_version details.
func (kc *keyCache) resolveConsent(e *Event) error {
	for k, version := range e.Details {
		list, ok := strings.CutPrefix(k, "consent_version.")
		if !ok {
			continue
		}
		ct, err := kc.consentText(version)
		if err != nil {
			return err
		}
		if ct == nil {
			continue
		}
		if e.ConsentTexts == nil {
			e.ConsentTexts = map[string]ConsentText{}
		}
		e.ConsentTexts[list] = *ct
	}
	return nil
}

func (kc *keyCache) get(sub string) (*dataKey, error) {
	if dk, ok := kc.keys[sub]; ok {
		return dk, nil
	}
	var dk *dataKey
	if kc.wrapped.c == nil {
		kc.wrapped = SeekerOf(kc.tx.Bucket(bucketDataKeys))
	}
	if wrapped := kc.wrapped.Get([]byte(sub)); wrapped != nil {
		var err error
		if dk, err = kc.s.keys.unwrapWith(&kc.kek, sub, wrapped); err != nil {
			return nil, err
		}
	}
	kc.keys[sub] = dk
	return dk, nil
}

func (kc *keyCache) decode(seq uint64, v []byte) (Event, error) {
	if len(v) < 2*hashLen {
		return Event{}, fmt.Errorf("ledger event %d: too short", seq)
	}
	var body eventBody
	if err := decodeJSON(v[2*hashLen:], &body); err != nil {
		return Event{}, fmt.Errorf("ledger event %d: %w", seq, err)
	}
	at, _ := time.Parse(time.RFC3339Nano, body.At)
	e := Event{Seq: seq, At: at, Type: body.Type, Subscriber: body.Subscriber, Lists: body.Lists,
		Actor: body.Actor, PrevHash: hex.EncodeToString(v[:hashLen]), Hash: hex.EncodeToString(v[hashLen : 2*hashLen])}
	if e.Lists == nil {
		e.Lists = []string{}
	}
	if len(body.Details) > 0 {
		e.Details = make(map[string]string, len(body.Details))
		for k, val := range body.Details {
			e.Details[k] = val
		}
		if err := kc.resolveConsent(&e); err != nil {
			return Event{}, fmt.Errorf("ledger event %d: %w", seq, err)
		}
	}
	if body.Subscriber == "" || (body.IP == nil && body.UA == nil && body.Personal == nil) {
		return e, nil
	}
	dk, err := kc.get(body.Subscriber)
	if err != nil {
		return Event{}, err
	}
	if dk == nil {
		e.Erased = true
		return e, nil
	}
	if e.IP, err = dk.openString(body.IP, fieldIP); err != nil {
		return Event{}, fmt.Errorf("ledger event %d: %w", seq, err)
	}
	if e.UserAgent, err = dk.openString(body.UA, fieldUA); err != nil {
		return Event{}, fmt.Errorf("ledger event %d: %w", seq, err)
	}
	if body.Personal != nil {
		p, err := dk.open(body.Personal, fieldPersonal)
		if err != nil {
			return Event{}, fmt.Errorf("ledger event %d: %w", seq, err)
		}
		var personal map[string]string
		if err := decodeJSON(p, &personal); err != nil {
			return Event{}, err
		}
		if e.Details == nil {
			e.Details = map[string]string{}
		}
		for k, val := range personal {
			e.Details[k] = val
		}
	}
	return e, nil
}
