package preferences

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/bbolt"
)

// Subscriber statuses.
const (
	StatusActive     = "active"
	StatusRestricted = "restricted"
	StatusErased     = "erased"
	StatusBlocked    = "blocked"
)

// Subscription statuses.
const (
	SubPending      = "pending"
	SubConfirmed    = "confirmed"
	SubUnsubscribed = "unsubscribed"
)

// OptinResendInterval is the shortest time between two confirmation mails for one
// address: signups repeated faster than this are recorded but send nothing.
const OptinResendInterval = 10 * time.Minute

// Errors of the double opt-in.
var (
	// ErrStaleOptin: the confirmation link no longer matches a pending subscription
	// (already replaced by a newer link, or the person unsubscribed since).
	ErrStaleOptin = errors.New("confirmation no longer valid")
)

// UnknownListError names a list that does not exist or is not public.
type UnknownListError struct{ List string }

func (e *UnknownListError) Error() string { return "unknown list " + e.List }

// subRecord is a stored subscriber; personal fields are sealed with its data key.
type subRecord struct {
	ID          string    `json:"id"`
	Index       []byte    `json:"ix"`
	Email       []byte    `json:"em"`
	Name        []byte    `json:"nm,omitempty"`
	Attrs       []byte    `json:"at,omitempty"`
	Locale      string    `json:"lc,omitempty"`
	Status      string    `json:"st"`
	Tracking    bool      `json:"tr,omitempty"`
	Created     time.Time `json:"cr"`
	Updated     time.Time `json:"up"`
	OptinSentAt time.Time `json:"os,omitempty"`
	// Active is the person's last consent activity: a confirmation or a change in the
	// preference centre (opens and clicks are in the activity bucket). Retention counts
	// from it; a signup anyone can make with the address does not move it.
	Active time.Time      `json:"ac,omitempty"`
	Subs   []subscription `json:"subs"`
}

type subscription struct {
	List    string    `json:"l"`
	Status  string    `json:"s"`
	Since   time.Time `json:"t"`
	Version string    `json:"v,omitempty"` // consent text version agreed to
	Nonce   string    `json:"n,omitempty"` // opt-in round that made it pending or confirmed it
}

func (r *subRecord) sub(list string) *subscription {
	for i := range r.Subs {
		if r.Subs[i].List == list {
			return &r.Subs[i]
		}
	}
	return nil
}

// Subscriber is the opened view of a subscriber.
type Subscriber struct {
	ID            string              `json:"id"`
	Email         string              `json:"email"`
	Name          string              `json:"name"`
	Locale        string              `json:"locale"`
	Attributes    map[string]any      `json:"attributes"`
	Status        string              `json:"status"`
	Subscriptions []SubscriptionState `json:"subscriptions"`
	Tracking      bool                `json:"tracking"`
	CreatedAt     time.Time           `json:"created_at"`
}

// SubscriptionState is one list membership as the API shows it. ConsentVersion is
// the consent text the person agreed to (see Store.ConsentTextVersion).
type SubscriptionState struct {
	List           string    `json:"list"`
	Status         string    `json:"status"`
	Since          time.Time `json:"since"`
	ConsentVersion string    `json:"consent_version,omitempty"`
}

// SignupInput is a validated signup. Email is the normalised address; IndexKey is
// the form under which it is looked up (see address.Normalise). Locale is the
// language the person was shown the lists' consent texts in: the signup event records
// that text's version and locale, and a new subscriber keeps it as their language.
type SignupInput struct {
	Email      string
	IndexKey   string
	Name       string
	Locale     string
	Attributes json.RawMessage
	Lists      []string
	Source     string
	IP         string
	UserAgent  string
}

// OptinRequest asks for one confirmation mail: the lists it confirms and the nonce of
// this opt-in round, which the confirmation link must carry.
type OptinRequest struct {
	Subscriber string   `json:"subscriber"`
	Lists      []string `json:"lists"`
	Nonce      string   `json:"nonce"`
}

// EnqueueTx queues work inside the store's transaction, so that the work is durable
// exactly when the change that caused it is.
type EnqueueTx func(tx *bbolt.Tx, req OptinRequest) error

// Signup records a signup for the lists: a new subscriber is created, lists not yet
// confirmed become pending, a signup event is written, and, unless a confirmation went
// out less than OptinResendInterval ago, enqueue is called in the same transaction.
// The result never depends on the caller knowing whether the address existed.
func (s *Store) Signup(ctx context.Context, in SignupInput, enqueue EnqueueTx) error {
	index := s.keys.blindIndex(in.IndexKey)
	in.Lists = dedupe(in.Lists)
	return s.commit.update(ctx, func(tx *bbolt.Tx) error {
		now := s.now().UTC()
		lists := make([]List, 0, len(in.Lists))
		for _, id := range in.Lists {
			l, ok := s.cache.get(id)
			if !ok || !l.Public {
				return &UnknownListError{List: id}
			}
			lists = append(lists, l)
		}
		rec, dk, err := s.findOrCreate(tx, index, in, now)
		if err != nil {
			return err
		}
		details := map[string]string{}
		if in.Source != "" {
			details["source"] = in.Source
		}
		for _, l := range lists {
			consentDetails(details, l, in.Locale)
		}
		_, err = s.apply(tx, now, rec, change{T: TSignup, Lists: in.Lists, Locale: in.Locale, DK: dk, LogAlways: true, LogScope: true,
			Event: eventInput{Type: EventSignup, Lists: in.Lists, IP: in.IP, UA: in.UserAgent, Details: details},
			Optin: &optinRound{enqueue: enqueue, throttle: true}})
		return err
	})
}

// dedupe drops repeated ids, keeping the first occurrence's order.
func dedupe(ids []string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// roundNonce keeps the nonce of a pending round when every list shares it, so an
// earlier confirmation mail for the same lists still works; otherwise a new round.
func roundNonce(rec *subRecord, lists []string) string {
	first := rec.sub(lists[0]).Nonce
	for _, id := range lists {
		if n := rec.sub(id).Nonce; n == "" || n != first {
			return randomHex(8)
		}
	}
	return first
}

// findOrCreate loads the subscriber indexed by index or creates one (with a fresh data
// key) from the signup. An existing subscriber's profile is never changed by a signup:
// anyone can type anyone's address into a form.
func (s *Store) findOrCreate(tx *bbolt.Tx, index []byte, in SignupInput, now time.Time) (*subRecord, *dataKey, error) {
	if id := tx.Bucket(bucketEmailIndex).Get(index); id != nil {
		rec, err := loadRecord(tx, string(id))
		if err != nil {
			return nil, nil, err
		}
		dk, err := s.dataKey(tx, rec.ID)
		return rec, dk, err
	}
	rec := &subRecord{ID: newSubscriberID(now), Index: index, Locale: in.Locale, Status: StatusActive, Created: now}
	dk, wrapped, err := s.keys.newDataKey(rec.ID)
	if err != nil {
		return nil, nil, err
	}
	rec.Email = dk.sealString(in.Email, fieldEmail)
	rec.Name = dk.sealString(in.Name, fieldName)
	rec.Attrs = dk.seal(in.Attributes, fieldAttributes)
	if err := bucket(tx, bucketDataKeys).Put([]byte(rec.ID), wrapped); err != nil {
		return nil, nil, err
	}
	if group, _, ok := wrappedKeyGroup(wrapped); ok {
		if err := bucket(tx, bucketKeyGroups).Put(keyGroupKey(group, rec.ID), nil); err != nil {
			return nil, nil, err
		}
	}
	if err := tx.Bucket(bucketEmailIndex).Put(index, []byte(rec.ID)); err != nil {
		return nil, nil, err
	}
	return rec, dk, nil
}

// loadLive loads a subscriber that is not erased: nothing of an erased subscriber may
// be written again (ErrNotFound).
func loadLive(tx *bbolt.Tx, id string) (*subRecord, error) {
	rec, err := loadRecord(tx, id)
	if err != nil {
		return nil, err
	}
	if rec.Status == StatusErased {
		return nil, fmt.Errorf("subscriber %s is erased: %w", rec.ID, ErrNotFound)
	}
	return rec, nil
}

func loadRecord(tx *bbolt.Tx, id string) (*subRecord, error) {
	var rec subRecord
	if err := getJSON(bucket(tx, bucketSubscribers), []byte(id), &rec); err != nil {
		return nil, fmt.Errorf("subscriber %s: %w", id, err)
	}
	return &rec, nil
}

func (s *Store) dataKey(tx *bbolt.Tx, id string) (*dataKey, error) {
	wrapped := bucket(tx, bucketDataKeys).Get([]byte(id))
	if wrapped == nil {
		return nil, fmt.Errorf("subscriber %s: %w", id, ErrKeyDestroyed)
	}
	return s.keys.unwrap(id, wrapped)
}

// newSubscriberID returns "sub_" and 24 hex digits: 48 bits of milliseconds, then 48
// random bits. Ids that sort by creation time keep bbolt's inserts at the end of each
// tree (few dirty pages per commit); the random part keeps them unguessable enough
// that two services never collide.
func newSubscriberID(now time.Time) string {
	var b [12]byte
	ms := uint64(now.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	if _, err := rand.Read(b[6:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return "sub_" + hex.EncodeToString(b[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}

// ConfirmInput is a deliberate confirmation (a POST of the confirmation form).
type ConfirmInput struct {
	Subscriber string
	Lists      []string
	Nonce      string
	IP         string
	UserAgent  string
}

// ConfirmResult tells which lists the confirmation changed and which it had already
// confirmed before (a repeated POST).
type ConfirmResult struct {
	Confirmed []string
	Already   []string
}

// Confirm confirms the pending subscriptions of the opt-in round in.Nonce. Repeating
// it is harmless. It fails with ErrStaleOptin when no listed subscription belongs to
// that round any more, and ErrNotFound when the subscriber is gone.
func (s *Store) Confirm(ctx context.Context, in ConfirmInput) (ConfirmResult, error) {
	var res ConfirmResult
	err := s.commit.update(ctx, func(tx *bbolt.Tx) error {
		res = ConfirmResult{}
		now := s.now().UTC()
		rec, err := loadLive(tx, in.Subscriber)
		if err != nil {
			return err
		}
		for _, id := range in.Lists {
			if sub := rec.sub(id); sub != nil && in.Nonce != "" && sub.Nonce == in.Nonce && sub.Status == SubConfirmed {
				res.Already = append(res.Already, id)
			}
		}
		dk, err := s.dataKey(tx, rec.ID)
		if err != nil {
			return err
		}
		done, err := s.apply(tx, now, rec, change{T: TConfirm, Lists: in.Lists, Nonce: in.Nonce, DK: dk,
			Event: eventInput{Type: EventConfirmed, IP: in.IP, UA: in.UserAgent, Details: map[string]string{"optin": in.Nonce}}})
		if errors.Is(err, ErrStatus) {
			return ErrStaleOptin // a restricted subscriber confirms nothing until unrestricted
		}
		if err != nil {
			return err
		}
		res.Confirmed = done.Changed
		if len(res.Confirmed) == 0 && len(res.Already) == 0 {
			return ErrStaleOptin
		}
		return nil
	})
	// A repeated POST restores again: it completes a restore that failed before. Never
	// with no lists, which would mean the subscriber as a whole.
	if lists := append(slices.Clone(res.Confirmed), res.Already...); err == nil && s.mirror != nil && len(lists) > 0 {
		if err := s.mirror.Restore(ctx, in.Subscriber, lists); err != nil {
			return res, fmt.Errorf("mirror confirmation: %w", err)
		}
	}
	return res, err
}

// Subscriber returns the opened view of one subscriber.
func (s *Store) Subscriber(ctx context.Context, id string) (*Subscriber, error) {
	var out *Subscriber
	err := s.db.View(func(tx *bbolt.Tx) error {
		rec, err := loadRecord(tx, id)
		if err != nil {
			return err
		}
		out, err = s.open(tx, rec)
		return err
	})
	return out, err
}

func (s *Store) open(tx *bbolt.Tx, rec *subRecord) (*Subscriber, error) {
	sub := &Subscriber{ID: rec.ID, Locale: rec.Locale, Status: rec.Status, Tracking: rec.Tracking,
		CreatedAt: rec.Created, Attributes: map[string]any{}, Subscriptions: []SubscriptionState{}}
	for _, x := range rec.Subs {
		sub.Subscriptions = append(sub.Subscriptions, SubscriptionState{List: x.List, Status: x.Status, Since: x.Since,
			ConsentVersion: x.Version})
	}
	if rec.Status == StatusErased {
		return sub, nil
	}
	dk, err := s.dataKey(tx, rec.ID)
	if err != nil {
		return nil, err
	}
	if sub.Email, err = dk.openString(rec.Email, fieldEmail); err != nil {
		return nil, fmt.Errorf("open subscriber %s: %w", rec.ID, err)
	}
	if sub.Name, err = dk.openString(rec.Name, fieldName); err != nil {
		return nil, fmt.Errorf("open subscriber %s: %w", rec.ID, err)
	}
	attrs, err := dk.open(rec.Attrs, fieldAttributes)
	if err != nil {
		return nil, fmt.Errorf("open subscriber %s: %w", rec.ID, err)
	}
	if len(attrs) > 0 {
		if err := json.Unmarshal(attrs, &sub.Attributes); err != nil {
			return nil, err
		}
	}
	return sub, nil
}

// PendingOptin is the state of one opt-in round: the opened subscriber, the lists of
// the round still pending, and those the round already confirmed.
type PendingOptin struct {
	Subscriber *Subscriber
	Lists      []List
	Confirmed  []string
}

// PendingOptin returns the state of req's round. Lists confirmed, unsubscribed or
// re-sent since are not pending; an empty Lists means no mail should go out and no
// Confirm button be shown any more. A subscriber who is gone or not active has nothing
// pending.
func (s *Store) PendingOptin(ctx context.Context, req OptinRequest) (PendingOptin, error) {
	var out PendingOptin
	err := s.db.View(func(tx *bbolt.Tx) error {
		rec, err := loadRecord(tx, req.Subscriber)
		if err != nil {
			return err
		}
		if rec.Status != StatusActive || req.Nonce == "" {
			return nil
		}
		for _, id := range req.Lists {
			sub := rec.sub(id)
			if sub == nil || sub.Nonce != req.Nonce {
				continue
			}
			switch sub.Status {
			case SubPending:
				if l, ok := s.cache.get(id); ok {
					out.Lists = append(out.Lists, l)
				}
			case SubConfirmed:
				out.Confirmed = append(out.Confirmed, id)
			}
		}
		if len(out.Lists) == 0 && len(out.Confirmed) == 0 {
			return nil
		}
		out.Subscriber, err = s.open(tx, rec)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return PendingOptin{}, nil
	}
	return out, err
}

// SubscriberLocale returns a subscriber's stored locale, or "" when unknown, for
// pages reached through a link.
func (s *Store) SubscriberLocale(ctx context.Context, id string) string {
	var locale string
	_ = s.db.View(func(tx *bbolt.Tx) error {
		rec, err := loadRecord(tx, id)
		if err == nil {
			locale = rec.Locale
		}
		return nil
	})
	return locale
}

// RecordConfirmationSent writes the confirmation_sent event of a delivered mail and
// returns once it is durable.
func (s *Store) RecordConfirmationSent(ctx context.Context, req OptinRequest, messageID string) error {
	done, err := s.QueueConfirmationSent(ctx, req, messageID)
	if err != nil {
		return err
	}
	return <-done
}

// QueueConfirmationSent puts the confirmation_sent event of a delivered mail into the
// next group commit and returns without waiting for it; done gets the outcome. What
// the caller's goroutine queues after it (the queue's acknowledgement of the mail,
// through GroupCommit) is never durable without it, so the mail sender need not wait
// for a sync of its own per mail.
func (s *Store) QueueConfirmationSent(ctx context.Context, req OptinRequest, messageID string) (done <-chan error, err error) {
	return s.commit.submit(ctx, func(tx *bbolt.Tx) error {
		if bucket(tx, bucketSubscribers).Get([]byte(req.Subscriber)) == nil {
			return fmt.Errorf("subscriber %s: %w", req.Subscriber, ErrNotFound)
		}
		_, err := s.appendEvent(tx, s.now().UTC(), nil, eventInput{Type: EventConfirmationSent, Subscriber: req.Subscriber,
			Lists: slices.Clone(req.Lists), Details: map[string]string{"optin": req.Nonce, "message_id": messageID}})
		return err
	})
}

// RenewOptin queues a new confirmation mail for the lists that are still pending
// (after an expired link), unless one went out less than OptinResendInterval ago.
// It reports whether a mail was queued; either way the caller's answer is the same.
func (s *Store) RenewOptin(ctx context.Context, subscriber string, lists []string, enqueue EnqueueTx) (bool, error) {
	var queued bool
	err := s.commit.update(ctx, func(tx *bbolt.Tx) error {
		queued = false
		now := s.now().UTC()
		rec, err := loadRecord(tx, subscriber)
		if err != nil {
			return err
		}
		if rec.Status != StatusActive {
			return nil
		}
		done, err := s.apply(tx, now, rec, change{T: TRenew, Lists: lists,
			Optin: &optinRound{enqueue: enqueue, throttle: true}})
		queued = done.Optin != nil
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return queued, err
}

// UnsubscribeInput is a withdrawal of consent.
type UnsubscribeInput struct {
	Subscriber string
	Lists      []string // nil: every list
	Method     string   // one_click, link, preference_centre, mailto, complaint, api
	Actor      string
	IP         string
	UserAgent  string
	Details    map[string]string // more to record, e.g. the campaign of the link
}

// Unsubscribe ends the subscriber's pending or confirmed subscriptions to the lists
// and records one unsubscribed event naming the method. It returns the lists it
// changed; repeating it changes nothing and records nothing.
//
// With a WithdrawalMirror set, the withdrawal is mirrored after it is committed and
// before Unsubscribe returns, also when it changed nothing (so that a caller retrying
// after a failed mirror completes it).
func (s *Store) Unsubscribe(ctx context.Context, in UnsubscribeInput) ([]string, error) {
	var changed, scope []string
	err := s.commit.update(ctx, func(tx *bbolt.Tx) error {
		changed, scope = nil, in.Lists
		now := s.now().UTC()
		rec, err := loadRecord(tx, in.Subscriber)
		if err != nil {
			return err
		}
		if scope == nil {
			for _, x := range rec.Subs {
				scope = append(scope, x.List)
			}
		}
		var dk *dataKey
		if (in.IP != "" || in.UserAgent != "") && rec.Status != StatusErased {
			if dk, err = s.dataKey(tx, rec.ID); err != nil {
				return err
			}
		}
		details := map[string]string{"method": in.Method}
		for k, v := range in.Details {
			details[k] = v
		}
		t := TUnsubscribe
		if in.Method == "complaint" {
			t = TComplaint
		}
		done, err := s.apply(tx, now, rec, change{T: t, Lists: in.Lists, DK: dk,
			Event: eventInput{Type: EventUnsubscribed, Actor: in.Actor, IP: in.IP, UA: in.UserAgent, Details: details}})
		changed = done.Changed
		return err
	})
	if err != nil {
		return changed, err
	}
	return changed, s.mirrorWithdrawal(ctx, in.Subscriber, scope)
}

// mirrorWithdrawal tells the mirror of a committed withdrawal of scope, also when it
// changed nothing (so that a caller retrying after a failed mirror completes it).
func (s *Store) mirrorWithdrawal(ctx context.Context, subscriber string, scope []string) error {
	if s.mirror == nil || len(scope) == 0 {
		return nil
	}
	if err := s.mirror.Withdraw(ctx, subscriber, scope); err != nil {
		return fmt.Errorf("mirror withdrawal: %w", err)
	}
	return nil
}
