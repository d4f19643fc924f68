package preferences

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/bbolt"
)

// PreferenceChange is what a subscriber asks for in the preference centre. Nil fields
// are left as they are.
type PreferenceChange struct {
	Subscriber string
	// Subscribe are lists to (re)subscribe to: each becomes pending and gets a fresh
	// double opt-in; Unsubscribe are lists to leave.
	Subscribe   []string
	Unsubscribe []string
	Tracking    *bool
	Name        *string
	Locale      *string
	Method      string // how the change came: "preference_centre", "api"
	Actor       string
	IP          string
	UserAgent   string
}

// PreferenceResult tells what changed.
type PreferenceResult struct {
	Unsubscribed []string
	Pending      []string // lists that now wait for a confirmation
	Tracking     *bool    // set when tracking consent changed
	Rectified    []string // profile fields changed: "name", "locale"
	OptinQueued  bool
}

// MaxNameBytes bounds a subscriber's name.
const MaxNameBytes = 200

// ChangePreferences applies a preference-centre change in one transaction, each kind
// of change its own ledger event: unsubscribed (with the method), a signup for lists
// subscribed again (pending, with a confirmation queued through enqueue),
// tracking_granted or tracking_withdrawn,
// rectified (naming the fields). A restricted or erased subscriber cannot be changed
// (ErrStatus). Withdrawals are mirrored before it returns.
func (s *Store) ChangePreferences(ctx context.Context, in PreferenceChange, enqueue EnqueueTx) (PreferenceResult, error) {
	if in.Name != nil && (len(*in.Name) > MaxNameBytes || strings.ContainsAny(*in.Name, "\r\n\x00")) {
		return PreferenceResult{}, fmt.Errorf("name: at most %d bytes on one line", MaxNameBytes)
	}
	var res PreferenceResult
	err := s.commit.update(ctx, func(tx *bbolt.Tx) error {
		res = PreferenceResult{}
		now := s.now().UTC()
		rec, dk, err := s.editable(tx, in.Subscriber)
		if err != nil {
			return err
		}
		ev := func(typ string, details map[string]string) eventInput {
			if in.Method != "" {
				details["method"] = in.Method
			}
			return eventInput{Type: typ, Actor: in.Actor, IP: in.IP, UA: in.UserAgent, Details: details}
		}
		event := func(typ string, details map[string]string) error {
			e := ev(typ, details)
			e.Subscriber = rec.ID
			_, err := s.appendEvent(tx, now, dk, e)
			return err
		}
		if len(in.Unsubscribe) > 0 {
			done, err := s.apply(tx, now, rec, change{T: TUnsubscribe, Lists: in.Unsubscribe, DK: dk,
				Event: ev(EventUnsubscribed, map[string]string{})})
			if err != nil {
				return err
			}
			res.Unsubscribed = done.Changed
		}
		// The centre offers the lists a person has or had, and public ones.
		var again []string
		details := map[string]string{"source": "preference_centre"}
		for _, id := range in.Subscribe {
			l, ok := s.cache.get(id)
			if !ok || slices.Contains(in.Unsubscribe, id) || (rec.sub(id) == nil && !l.Public) {
				continue
			}
			if st := rec.sub(id); st != nil && (st.Status == SubConfirmed || st.Status == SubPending) {
				continue
			}
			again = append(again, id)
			consentDetails(details, l, rec.Locale)
		}
		if len(again) > 0 {
			// The link proves who asks, but links in mail get forwarded: ticking
			// and unticking must not mail-bomb the subscriber, so the ten-minute
			// rule of signups applies here too.
			done, err := s.apply(tx, now, rec, change{T: TSignup, Lists: again, Locale: rec.Locale, DK: dk,
				Event: ev(EventSignup, details), Optin: &optinRound{enqueue: enqueue, throttle: true}})
			if err != nil {
				return err
			}
			res.Pending, res.OptinQueued = done.Changed, done.Optin != nil
		}
		if in.Tracking != nil && *in.Tracking != rec.Tracking {
			rec.Tracking = *in.Tracking
			typ := EventTrackingWithdrawn
			if rec.Tracking {
				typ = EventTrackingGranted
			}
			if err := event(typ, map[string]string{}); err != nil {
				return err
			}
			t := rec.Tracking
			res.Tracking = &t
		}
		if in.Name != nil {
			old, err := dk.openString(rec.Name, fieldName)
			if err != nil {
				return err
			}
			if name := strings.TrimSpace(*in.Name); name != old {
				rec.Name = dk.sealString(name, fieldName)
				res.Rectified = append(res.Rectified, "name")
			}
		}
		if in.Locale != nil && *in.Locale != rec.Locale {
			rec.Locale = *in.Locale
			res.Rectified = append(res.Rectified, "locale")
		}
		if len(res.Rectified) > 0 {
			if err := event(EventRectified, map[string]string{"fields": strings.Join(res.Rectified, ",")}); err != nil {
				return err
			}
		}
		if len(res.Unsubscribed)+len(res.Pending)+len(res.Rectified) > 0 || res.Tracking != nil {
			rec.Active = now // the person acted: retention counts from here
		}
		rec.Updated = now
		return putJSON(bucket(tx, bucketSubscribers), []byte(rec.ID), rec)
	})
	if err != nil || s.mirror == nil {
		return res, err
	}
	if len(in.Unsubscribe) > 0 {
		if err := s.mirror.Withdraw(ctx, in.Subscriber, in.Unsubscribe); err != nil {
			return res, fmt.Errorf("mirror withdrawal: %w", err)
		}
	}
	return res, nil
}

// Tracking reports whether the subscriber consents to open and click tracking now.
func (s *Store) Tracking(ctx context.Context, subscriber string) bool {
	var ok bool
	_ = s.db.View(func(tx *bbolt.Tx) error {
		rec, err := loadRecord(tx, subscriber)
		ok = err == nil && rec.Status == StatusActive && rec.Tracking
		return nil
	})
	return ok
}

// editable loads a subscriber that may be changed, with their data key: active or
// blocked; a restricted or erased one is ErrStatus.
func (s *Store) editable(tx *bbolt.Tx, id string) (*subRecord, *dataKey, error) {
	rec, err := loadRecord(tx, id)
	if err != nil {
		return nil, nil, err
	}
	if rec.Status != StatusActive && rec.Status != StatusBlocked {
		return nil, nil, fmt.Errorf("subscriber %s is %s: %w", rec.ID, rec.Status, ErrStatus)
	}
	dk, err := s.dataKey(tx, rec.ID)
	if err != nil {
		return nil, nil, err
	}
	return rec, dk, nil
}
