package preferences

import (
	"fmt"
	"slices"
	"time"

	"go.etcd.io/bbolt"
)

// Transition is an input of the consent state machine: something that happened to a
// subscriber or to some of their subscriptions. The table of what each transition
// does in each state is in the package documentation; transitionTable and
// subscriberTable below are that table, and apply is the only code that writes a
// subscription's status.
type Transition string

// The transitions.
const (
	// TSignup: a signup from a website or the hosted form, or a list ticked again in
	// the preference centre. It asks for a double opt-in.
	TSignup Transition = "signup"
	// TRenew: a new confirmation mail for lists still pending (an expired link).
	TRenew Transition = "renew"
	// TConfirm: the deliberate click on the Confirm button of one opt-in round.
	TConfirm Transition = "confirm"
	// TUnsubscribe: a withdrawal by the person or for them (one_click, link,
	// preference_centre, mailto, api). A withdrawal is never refused (GDPR art. 7(3)).
	TUnsubscribe Transition = "unsubscribe"
	// TComplaint: the person reported a message as spam: a withdrawal of everything.
	TComplaint Transition = "complaint"
	// TImportProof: an import row carrying proof of consent given at ProofAt.
	TImportProof Transition = "import_proof"
	// TImport: an import row without proof: a double opt-in is needed.
	TImport Transition = "import"
	// TExpire: retention: the subscription was kept as long as its list allows.
	TExpire Transition = "expire"
	// TReconfirm: the address changed (rectification); it must be confirmed again.
	TReconfirm Transition = "reconfirm"
	// TListDeleted: the list is gone; the subscription is removed.
	TListDeleted Transition = "list_deleted"
	// TRestrict and TUnrestrict: GDPR art. 18.
	TRestrict   Transition = "restrict"
	TUnrestrict Transition = "unrestrict"
	// TBounce: a permanent delivery failure: the address is blocked.
	TBounce Transition = "bounce"
	// TErase: GDPR art. 17, or retention with nothing left to keep the data for.
	TErase Transition = "erase"
)

// Transitions lists every transition, in the order of the package documentation.
var Transitions = []Transition{TSignup, TRenew, TConfirm, TUnsubscribe, TComplaint, TImportProof, TImport,
	TExpire, TReconfirm, TListDeleted, TRestrict, TUnrestrict, TBounce, TErase}

// SubNone is the state of a subscription that does not exist.
const SubNone = ""

// SubscriptionStates lists the states of a subscription, SubNone included.
var SubscriptionStates = []string{SubNone, SubPending, SubConfirmed, SubUnsubscribed}

// SubscriberStatuses lists the statuses of a subscriber.
var SubscriberStatuses = []string{StatusActive, StatusBlocked, StatusRestricted, StatusErased}

// transitionTable gives, for each transition, the subscription states it applies to
// and the state it leads to. A state missing from a row is left as it is. TConfirm
// and TImportProof have guards (see subscriptionNext).
var transitionTable = map[Transition]map[string]string{
	TSignup:      {SubNone: SubPending, SubPending: SubPending, SubUnsubscribed: SubPending},
	TRenew:       {SubPending: SubPending},
	TConfirm:     {SubPending: SubConfirmed},
	TUnsubscribe: {SubPending: SubUnsubscribed, SubConfirmed: SubUnsubscribed},
	TComplaint:   {SubPending: SubUnsubscribed, SubConfirmed: SubUnsubscribed},
	TImportProof: {SubNone: SubConfirmed, SubPending: SubConfirmed, SubUnsubscribed: SubConfirmed},
	TImport:      {SubNone: SubPending, SubPending: SubPending},
	TExpire:      {SubPending: SubUnsubscribed, SubConfirmed: SubUnsubscribed},
	TReconfirm:   {SubPending: SubPending, SubConfirmed: SubPending},
	TListDeleted: {SubPending: SubNone, SubConfirmed: SubNone, SubUnsubscribed: SubNone},
	TErase:       {SubPending: SubUnsubscribed, SubConfirmed: SubUnsubscribed},
}

// subscriberTable gives, for the transitions that change the subscriber as a whole,
// the statuses they apply to and the status they lead to.
var subscriberTable = map[Transition]map[string]string{
	TRestrict:   {StatusActive: StatusRestricted},
	TUnrestrict: {StatusRestricted: StatusActive},
	TBounce:     {StatusActive: StatusBlocked},
	TErase:      {StatusActive: StatusErased, StatusBlocked: StatusErased},
	TReconfirm:  {StatusBlocked: StatusActive}, // the blocked address is gone
}

// subscriberTarget is the status each subscriber-wide transition leads to; a
// subscriber already there is left alone.
var subscriberTarget = map[Transition]string{TRestrict: StatusRestricted, TUnrestrict: StatusActive,
	TBounce: StatusBlocked, TErase: StatusErased}

// Permitted reports whether a subscriber in status may go through t at all. A
// restricted subscriber is changed by nothing but TUnrestrict, except that a
// withdrawal of consent is never refused; an erased one by nothing. A deleted list is
// gone for everyone.
func Permitted(status string, t Transition) bool {
	switch status {
	case StatusActive, StatusBlocked:
		return t != TUnrestrict
	case StatusRestricted:
		return t == TUnrestrict || t == TUnsubscribe || t == TComplaint || t == TListDeleted
	case StatusErased:
		return t == TListDeleted
	}
	return false
}

// Guard is what the guarded transitions look at besides the states.
type Guard struct {
	// NonceMatches: TConfirm's link belongs to the subscription's current opt-in round.
	NonceMatches bool
	// ProofAfterWithdrawal: TImportProof's proof is dated after the subscription ended
	// (only looked at when it is unsubscribed).
	ProofAfterWithdrawal bool
}

// SubscriptionNext returns the state of a subscription after t, for a subscriber in
// status, and whether t applies at all (false: nothing changes, nothing is written).
// It is the transition table as a function: the table test walks every cell.
func SubscriptionNext(status, from string, t Transition, g Guard) (string, bool) {
	if !Permitted(status, t) {
		return from, false
	}
	to, ok := transitionTable[t][from]
	if !ok {
		return from, false
	}
	switch t {
	case TConfirm:
		ok = g.NonceMatches
	case TImportProof:
		ok = from != SubUnsubscribed || g.ProofAfterWithdrawal
	}
	if !ok {
		return from, false
	}
	return to, true
}

// SubscriberNext returns the subscriber status after t and whether it changes.
func SubscriberNext(status string, t Transition) (string, bool) {
	to, ok := subscriberTable[t][status]
	return to, ok && Permitted(status, t)
}

// change is one transition applied to some of a subscriber's subscriptions with its
// ledger event, written by apply.
type change struct {
	T     Transition
	Lists []string // the subscriptions concerned; nil: every one the subscriber has
	// Nonce is the opt-in round a TConfirm link carries.
	Nonce string
	// ProofAt is when TImportProof's proof says consent was given.
	ProofAt time.Time
	// Locale is the language the consent text was shown in (TSignup, TImport,
	// TImportProof): the subscription keeps the version of that text.
	Locale string
	// Event is the ledger event; its Lists are filled in with the lists changed (all
	// of Lists when LogScope). Type "" writes none.
	Event eventInput
	DK    *dataKey // seals the event's personal fields
	// LogAlways writes the event even when nothing changed (a signup is proof of the
	// request); LogScope names every list concerned, not only those changed.
	LogAlways, LogScope bool
	// Optin opens an opt-in round for the lists left pending (nil: none).
	Optin *optinRound
}

// optinRound is how apply asks for a double opt-in.
type optinRound struct {
	enqueue EnqueueTx
	// throttle applies OptinResendInterval: anyone can type anyone's address.
	throttle bool
	// fresh always starts a new round (a new address: old links must not confirm it).
	fresh bool
}

// applied is what apply did.
type applied struct {
	Changed []string // lists whose state changed
	Pending []string // lists concerned that are pending afterwards
	Skipped []string // lists concerned that the transition does not apply to
	Status  bool     // the subscriber's status changed
	Seq     uint64   // the ledger event, when one was written
	Optin   *OptinRequest
}

// apply is the one writer of consent state: it moves the subscriptions in ch.Lists (and
// the subscriber, for subscriber-wide transitions) through ch.T, writes the membership
// index, the ledger event and, when asked, an opt-in round, and saves the record, all in
// tx. It returns ErrStatus when the subscriber's status does not permit ch.T (an erased
// subscriber: ErrNotFound), except for withdrawals, which quietly change nothing.
func (s *Store) apply(tx *bbolt.Tx, now time.Time, rec *subRecord, ch change) (applied, error) {
	var res applied
	if to, wide := subscriberTarget[ch.T]; wide && rec.Status == to {
		return res, nil // restricting again, unrestricting someone active: nothing to do
	}
	if !Permitted(rec.Status, ch.T) {
		switch {
		case ch.T == TUnsubscribe || ch.T == TComplaint:
			return res, nil
		case ch.LogAlways && ch.Event.Type != "" && rec.Status != StatusErased:
			// A signup for a restricted subscriber changes nothing, but the request
			// is recorded, as every signup is, and the answer is the same.
			ev := ch.Event
			ev.Subscriber = rec.ID
			seq, err := s.appendEvent(tx, now, ch.DK, ev)
			res.Seq = seq
			return res, err
		case rec.Status == StatusErased:
			return res, fmt.Errorf("subscriber %s is erased: %w", rec.ID, ErrNotFound)
		}
		return res, fmt.Errorf("subscriber %s is %s: %w", rec.ID, rec.Status, ErrStatus)
	}
	scope := ch.Lists
	if scope == nil {
		for _, x := range rec.Subs {
			scope = append(scope, x.List)
		}
	}
	// The subscriptions move by the status the subscriber had before ch.T.
	status := rec.Status
	if to, ok := SubscriberNext(status, ch.T); ok {
		if err := moveNotActive(tx, rec.ID, status, to); err != nil {
			return res, err
		}
		rec.Status, res.Status = to, true
	} else if _, wide := subscriberTarget[ch.T]; wide {
		return res, fmt.Errorf("subscriber %s is %s: %w", rec.ID, rec.Status, ErrStatus)
	}
	dirty := res.Status
	for _, id := range scope {
		i := slices.IndexFunc(rec.Subs, func(x subscription) bool { return x.List == id })
		from := SubNone
		if i >= 0 {
			from = rec.Subs[i].Status
		}
		g := Guard{NonceMatches: i >= 0 && ch.Nonce != "" && rec.Subs[i].Nonce == ch.Nonce,
			ProofAfterWithdrawal: i >= 0 && ch.ProofAt.After(rec.Subs[i].Since)}
		to, ok := SubscriptionNext(status, from, ch.T, g)
		if !ok {
			res.Skipped = append(res.Skipped, id)
			continue
		}
		dirty = true
		if to == SubNone { // TListDeleted
			rec.Subs = slices.Delete(rec.Subs, i, i+1)
			if err := setMembership(tx, now, id, rec.ID, from, SubNone); err != nil {
				return res, err
			}
			if from != SubUnsubscribed {
				res.Changed = append(res.Changed, id)
			}
			continue
		}
		if i < 0 {
			rec.Subs = append(rec.Subs, subscription{List: id})
			i = len(rec.Subs) - 1
		}
		sub := &rec.Subs[i]
		if ch.T == TSignup || ch.T == TImport || ch.T == TImportProof {
			if l, ok := s.cache.get(id); ok {
				shown, _ := l.In(ch.Locale)
				sub.Version = shown.ConsentVersion
			}
		}
		if to == SubPending {
			res.Pending = append(res.Pending, id)
		}
		if to == from {
			if ch.T == TReconfirm { // a new address: no earlier link may confirm it
				sub.Nonce, sub.Since = "", now
			}
			continue // still pending: a new round may go out, the state is the same
		}
		sub.Status, sub.Since = to, now
		if to != SubConfirmed {
			sub.Nonce = ""
		}
		if err := setMembership(tx, now, id, rec.ID, from, to); err != nil {
			return res, err
		}
		res.Changed = append(res.Changed, id)
	}
	if ch.T == TConfirm && len(res.Changed) > 0 {
		rec.Active = now
	}
	if ch.T == TConfirm && len(res.Changed) > 0 && len(rec.Index) > 0 {
		// A double opt-in brings an erased address back: it is suppressed no more.
		if err := bucket(tx, bucketSuppressed).Delete(rec.Index); err != nil {
			return res, err
		}
	}
	if ch.Optin != nil && len(res.Pending) > 0 && ch.Optin.enqueue != nil && rec.Status == StatusActive &&
		(!ch.Optin.throttle || now.Sub(rec.OptinSentAt) >= OptinResendInterval) {
		req := OptinRequest{Subscriber: rec.ID, Lists: res.Pending, Nonce: roundNonce(rec, res.Pending)}
		if ch.Optin.fresh {
			req.Nonce = randomHex(8)
		}
		for _, id := range res.Pending {
			rec.sub(id).Nonce = req.Nonce
		}
		rec.OptinSentAt, dirty = now, true
		if err := ch.Optin.enqueue(tx, req); err != nil {
			return res, err
		}
		res.Optin = &req
	}
	if !dirty && !ch.LogAlways {
		return res, nil
	}
	if ch.Event.Type != "" && (len(res.Changed) > 0 || res.Status || ch.LogAlways) {
		ev := ch.Event
		ev.Subscriber, ev.Lists = rec.ID, res.Changed
		if ch.LogScope {
			ev.Lists = scope
		}
		seq, err := s.appendEvent(tx, now, ch.DK, ev)
		if err != nil {
			return res, err
		}
		res.Seq = seq
	}
	rec.Updated = now
	return res, putJSON(bucket(tx, bucketSubscribers), []byte(rec.ID), rec)
}

func memberKey(list, sub string) []byte { return []byte(list + "\x00" + sub) }
