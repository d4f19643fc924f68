package preferences_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/preferences"
	"consentmail/preferences/internal/preftest"
)

// TestTransitionTable walks every cell of the consent state machine: each subscriber
// status × each subscription state × each transition, with the guards true and false.
// The expectations are the package documentation's table, written out again by hand.
func TestTransitionTable(t *testing.T) {
	const (
		n = preferences.SubNone
		p = preferences.SubPending
		c = preferences.SubConfirmed
		u = preferences.SubUnsubscribed
		x = "-" // unchanged
	)
	// For an active subscriber, from none, pending, confirmed, unsubscribed; "g" cells
	// apply only when the guard holds.
	active := map[preferences.Transition][4]string{
		preferences.TSignup:      {p, p, x, p},
		preferences.TRenew:       {x, p, x, x},
		preferences.TConfirm:     {x, "g" + c, x, x},
		preferences.TUnsubscribe: {x, u, u, x},
		preferences.TComplaint:   {x, u, u, x},
		preferences.TImportProof: {c, c, x, "g" + c},
		preferences.TImport:      {p, p, x, x},
		preferences.TExpire:      {x, u, u, x},
		preferences.TReconfirm:   {x, p, p, x},
		preferences.TListDeleted: {x, n, n, n},
		preferences.TRestrict:    {x, x, x, x},
		preferences.TUnrestrict:  {x, x, x, x},
		preferences.TBounce:      {x, x, x, x},
		preferences.TErase:       {x, u, u, x},
	}
	// Which transitions each subscriber status lets through at all.
	gate := map[string]func(preferences.Transition) bool{
		preferences.StatusActive:  func(t preferences.Transition) bool { return t != preferences.TUnrestrict },
		preferences.StatusBlocked: func(t preferences.Transition) bool { return t != preferences.TUnrestrict },
		preferences.StatusRestricted: func(t preferences.Transition) bool {
			return t == preferences.TUnrestrict || t == preferences.TUnsubscribe || t == preferences.TComplaint ||
				t == preferences.TListDeleted
		},
		preferences.StatusErased: func(t preferences.Transition) bool { return t == preferences.TListDeleted },
	}
	if len(active) != len(preferences.Transitions) {
		t.Fatalf("the test knows %d transitions, the package %d", len(active), len(preferences.Transitions))
	}
	cells := 0
	for _, status := range preferences.SubscriberStatuses {
		for _, tr := range preferences.Transitions {
			for i, from := range preferences.SubscriptionStates {
				for _, guard := range []bool{false, true} {
					cells++
					want, wantOK := active[tr][i], true
					if len(want) > 1 && want[0] == 'g' {
						want, wantOK = want[1:], guard
					}
					if want == x || !gate[status](tr) {
						want, wantOK = from, false
					}
					if !wantOK {
						want = from
					}
					g := preferences.Guard{NonceMatches: guard, ProofAfterWithdrawal: guard}
					got, ok := preferences.SubscriptionNext(status, from, tr, g)
					if got != want || ok != wantOK {
						t.Errorf("%s subscriber, %q + %s (guard %v): got %q %v, want %q %v", status, from, tr, guard, got, ok, want, wantOK)
					}
				}
			}
		}
	}
	if want := 4 * 4 * len(preferences.Transitions) * 2; cells != want {
		t.Fatalf("%d cells, want %d", cells, want)
	}
	// The subscriber as a whole.
	whole := []struct {
		status string
		t      preferences.Transition
		want   string
	}{
		{preferences.StatusActive, preferences.TRestrict, preferences.StatusRestricted},
		{preferences.StatusRestricted, preferences.TUnrestrict, preferences.StatusActive},
		{preferences.StatusActive, preferences.TBounce, preferences.StatusBlocked},
		{preferences.StatusActive, preferences.TErase, preferences.StatusErased},
		{preferences.StatusBlocked, preferences.TErase, preferences.StatusErased},
		{preferences.StatusBlocked, preferences.TReconfirm, preferences.StatusActive},
	}
	for _, status := range preferences.SubscriberStatuses {
		for _, tr := range preferences.Transitions {
			want, wantOK := status, false
			for _, w := range whole {
				if w.status == status && w.t == tr {
					want, wantOK = w.want, true
				}
			}
			if got, ok := preferences.SubscriberNext(status, tr); got != want && ok || ok != wantOK {
				t.Errorf("%s subscriber + %s: got %q %v, want %q %v", status, tr, got, ok, want, wantOK)
			}
		}
	}
}

// An import never re-confirms a withdrawal unless its proof is dated after it.
func TestImportAfterWithdrawal(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "news")
	row := importRow("ana@example.org", true) // proof dated 2 days before epoch
	if res, err := s.Import(t.Context(), "news", "test", []preferences.ImportRow{row}, nil); err != nil || res.Imported != 1 {
		t.Fatalf("first import: %+v, %v", res, err)
	}
	id, _ := s.LookupEmail(t.Context(), "ana@example.org")
	s.Clock.Advance(time.Hour)
	if _, err := s.Unsubscribe(t.Context(), preferences.UnsubscribeInput{Subscriber: id, Method: "preference_centre"}); err != nil {
		t.Fatal(err)
	}
	before := len(allEvents(t, s, preferences.LedgerQuery{Subscriber: id}))
	// The same CSV row again, and a row without proof: both refused, nothing written.
	for _, r := range []preferences.ImportRow{row, importRow("ana@example.org", false)} {
		res, err := s.Import(t.Context(), "news", "test", []preferences.ImportRow{r}, nil)
		if err != nil || res.Imported+res.Pending != 0 || len(res.Rejected) != 1 || res.Rejected[0].Reason != preferences.RejectWithdrawn {
			t.Fatalf("import after withdrawal (proof %v): %+v, %v; want one rejection", r.HasProof(), res, err)
		}
	}
	if st := subscriptionStatus(t, s, id, "news"); st != preferences.SubUnsubscribed {
		t.Fatalf("after re-import: %s, want unsubscribed", st)
	}
	if after := len(allEvents(t, s, preferences.LedgerQuery{Subscriber: id})); after != before {
		t.Errorf("%d ledger events written by refused imports", after-before)
	}
	// Proof of a consent given after the withdrawal brings the person back.
	fresh := row
	fresh.ConsentedAt = s.Clock.Now().Add(time.Minute)
	if res, err := s.Import(t.Context(), "news", "test", []preferences.ImportRow{fresh}, nil); err != nil || res.Imported != 1 {
		t.Fatalf("import with newer proof: %+v, %v", res, err)
	}
	if st := subscriptionStatus(t, s, id, "news"); st != preferences.SubConfirmed {
		t.Fatalf("after newer proof: %s, want confirmed", st)
	}
}

// Nothing but an unrestrict changes a restricted subscriber: imports are refused.
func TestImportLeavesRestrictedUntouched(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "news")
	mustCreateList(t, s, "offers")
	req := mustSignup(t, s, signupInput("rita@example.org", "news"))
	if err := s.Restrict(t.Context(), preferences.StatusChange{Subscriber: req.Subscriber, Actor: "dpo"}); err != nil {
		t.Fatal(err)
	}
	before := len(allEvents(t, s, preferences.LedgerQuery{Subscriber: req.Subscriber}))
	for _, list := range []string{"news", "offers"} {
		for _, proof := range []bool{true, false} {
			res, err := s.Import(t.Context(), list, "test", []preferences.ImportRow{importRow("rita@example.org", proof)}, noEnqueue)
			if err != nil || len(res.Rejected) != 1 || res.Rejected[0].Reason != preferences.RejectRestricted {
				t.Fatalf("import to %s (proof %v): %+v, %v; want refused", list, proof, res, err)
			}
		}
	}
	sub, err := s.Subscriber(t.Context(), req.Subscriber)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Status != preferences.StatusRestricted || len(sub.Subscriptions) != 1 || sub.Subscriptions[0].Status != preferences.SubPending {
		t.Fatalf("restricted subscriber after imports: %+v", sub)
	}
	if after := len(allEvents(t, s, preferences.LedgerQuery{Subscriber: req.Subscriber})); after != before {
		t.Errorf("%d ledger events written for a restricted subscriber", after-before)
	}
	// A signup is recorded but changes nothing either; a withdrawal still goes through.
	mustSignup(t, s, signupInput("rita@example.org", "offers"))
	if st := subscriptionStatus(t, s, req.Subscriber, "offers"); st != "" {
		t.Errorf("signup of a restricted subscriber made offers %q", st)
	}
	if changed, err := s.Unsubscribe(t.Context(), preferences.UnsubscribeInput{Subscriber: req.Subscriber, Method: "link"}); err != nil || len(changed) != 1 {
		t.Errorf("withdrawal of a restricted subscriber: %v, %v", changed, err)
	}
	// Erasure waits for the restriction to be lifted.
	if _, err := s.Erase(t.Context(), req.Subscriber, "dpo"); !errors.Is(err, preferences.ErrStatus) {
		t.Errorf("erasing a restricted subscriber: %v, want ErrStatus", err)
	}
}

// An erased address stays suppressed whoever signs it up since, until a double
// opt-in confirms it.
func TestSuppressionSurvivesAnUnconfirmedSignup(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "news")
	req := mustSignup(t, s, signupInput("gone@example.org", "news"))
	mustConfirm(t, s, req)
	s.Clock.Advance(time.Hour)
	if _, err := s.Erase(t.Context(), req.Subscriber, "subscriber"); err != nil {
		t.Fatal(err)
	}
	s.Clock.Advance(time.Hour)
	// Anyone types the address into a form: the index has it again, unconfirmed.
	again := mustSignup(t, s, signupInput("gone@example.org", "news"))
	old := importRow("gone@example.org", true) // proof dated before the erasure
	res, err := s.Import(t.Context(), "news", "test", []preferences.ImportRow{old}, nil)
	if err != nil || res.Imported != 0 || len(res.Rejected) != 1 || res.Rejected[0].Reason != preferences.RejectSuppressed {
		t.Fatalf("import with old proof after an unconfirmed signup: %+v, %v; want suppressed", res, err)
	}
	if st := subscriptionStatus(t, s, again.Subscriber, "news"); st != preferences.SubPending {
		t.Fatalf("after refused import: %s, want pending", st)
	}
	// The double opt-in brings the address back; the old proof is then just a no-op.
	mustConfirm(t, s, again)
	if res, err := s.Import(t.Context(), "news", "test", []preferences.ImportRow{old}, nil); err != nil || len(res.Rejected) != 0 {
		t.Fatalf("import after the double opt-in: %+v, %v", res, err)
	}
}

// flakyMirror fails its first failures calls, then records what it is told.
type flakyMirror struct {
	mu        sync.Mutex
	failures  int
	withdrawn []string
}

func (m *flakyMirror) Withdraw(_ context.Context, sub string, lists []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failures > 0 {
		m.failures--
		return errors.New("redis: connection refused")
	}
	if lists == nil {
		m.withdrawn = append(m.withdrawn, sub)
	}
	return nil
}

func (m *flakyMirror) Restore(context.Context, string, []string) error { return nil }

func (m *flakyMirror) erased() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.withdrawn)
}

// dropRecorder is a QueueDropper that records whom it dropped messages for.
type dropRecorder struct{ preftest.Log[string] }

func (d *dropRecorder) DropQueued(_ context.Context, sub string) error {
	d.Add(sub)
	return nil
}

// storeWithMirror reopens s's store with m as its withdrawal mirror.
func storeWithMirror(tb testing.TB, s *testStore, m preferences.WithdrawalMirror) *preferences.Store {
	tb.Helper()
	st, err := preferences.New(s.DB, s.Secret, s.Clock.Now, preferences.WithMirror(m))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// An erasure whose mirror fails after the commit is finished by asking again (same
// receipt) or by the background retry, every step done.
func TestErasureResumesAfterMirrorFailure(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "news")
	mirror := &flakyMirror{failures: 1}
	drops := &dropRecorder{}
	st := storeWithMirror(t, s, mirror)
	er := preferences.NewEraser(st, drops, nil)
	first := mustSignup(t, s, signupInput("a@example.org", "news"))
	second := mustSignup(t, s, signupInput("b@example.org", "news"))

	rc, err := er.Erase(t.Context(), first.Subscriber, "dpo")
	if !errors.Is(err, preferences.ErrErasureIncomplete) || rc.LedgerSeq == 0 {
		t.Fatalf("erase with the mirror down: %+v, %v; want the receipt and ErrErasureIncomplete", rc, err)
	}
	if got := drops.All(); len(got) != 0 {
		t.Fatalf("queues dropped before the mirror step: %v", got)
	}
	if p, _ := er.Pending(t.Context()); !slices.Equal(p, []string{first.Subscriber}) {
		t.Fatalf("pending erasures %v", p)
	}
	again, err := er.Erase(t.Context(), first.Subscriber, "dpo")
	if err != nil || again != rc {
		t.Fatalf("erase again: %+v, %v; want %+v", again, err, rc)
	}
	if got := mirror.erased(); !slices.Equal(got, []string{first.Subscriber}) {
		t.Errorf("mirror told of %v", got)
	}
	if got := drops.All(); !slices.Equal(got, []string{first.Subscriber}) {
		t.Errorf("queued messages dropped for %v", got)
	}
	if _, err := er.Erase(t.Context(), first.Subscriber, "dpo"); !errors.Is(err, preferences.ErrErased) {
		t.Errorf("erase a finished erasure: %v, want ErrErased", err)
	}
	if n := len(allEvents(t, s, preferences.LedgerQuery{Subscriber: first.Subscriber, Type: preferences.EventErased})); n != 1 {
		t.Errorf("%d erased events, want 1", n)
	}

	// The background retry finishes an erasure nobody asks about again.
	mirror.mu.Lock()
	mirror.failures = 1
	mirror.mu.Unlock()
	if _, err := er.Erase(t.Context(), second.Subscriber, "dpo"); !errors.Is(err, preferences.ErrErasureIncomplete) {
		t.Fatalf("second erase: %v", err)
	}
	if left := er.FinishPending(t.Context()); left != 0 {
		t.Fatalf("%d erasures left after the retry", left)
	}
	if got := drops.All(); !slices.Equal(got, []string{first.Subscriber, second.Subscriber}) {
		t.Errorf("queued messages dropped for %v", got)
	}
	if p, _ := er.Pending(t.Context()); len(p) != 0 {
		t.Errorf("pending erasures %v", p)
	}
}

// Retention erases through the one erasure: the mirror is told and queued mail goes.
func TestRetentionErasureDoesEveryStep(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "news")
	mirror := &flakyMirror{}
	drops := &dropRecorder{}
	st := storeWithMirror(t, s, mirror)
	er := preferences.NewEraser(st, drops, nil)
	var ids []string
	for i := range 3 {
		ids = append(ids, mustSignup(t, s, signupInput(fmt.Sprintf("p%d@example.org", i), "news")).Subscriber)
	}
	s.Clock.Advance(9 * 24 * time.Hour)
	res, err := er.ApplyRetention(t.Context(), preferences.RetentionPolicy{OptinTTL: 7 * 24 * time.Hour, Grace: 24 * time.Hour})
	if err != nil || res.Erased != 3 {
		t.Fatalf("retention: %+v, %v", res, err)
	}
	slices.Sort(ids)
	for name, got := range map[string][]string{"mirrored": mirror.erased(), "dropped": drops.All()} {
		slices.Sort(got)
		if !slices.Equal(got, ids) {
			t.Errorf("%s %v, want %v", name, got, ids)
		}
	}
	if p, _ := er.Pending(t.Context()); len(p) != 0 {
		t.Errorf("pending erasures %v", p)
	}
	// Suppressed like any erasure: an old proof does not bring them back.
	if res, err := s.Import(t.Context(), "news", "test", []preferences.ImportRow{importRow("p0@example.org", true)}, nil); err != nil || len(res.Rejected) != 1 {
		t.Errorf("import of an address erased by retention: %+v, %v", res, err)
	}
}

// TestEveryPathFollowsTheTable puts a real subscriber in each status and each state
// of a subscription, makes each transition happen through the store's public
// methods (signup, confirmation, unsubscribe, import, retention, rectification, list
// deletion, restriction, bounce, erasure), and checks the result, and the membership
// index, against the table: no path writes consent state by another rule.
func TestEveryPathFollowsTheTable(t *testing.T) {
	if testing.Short() {
		t.Skip("224 stores")
	}
	const list = "news"
	ctx := context.Background()
	for _, status := range preferences.SubscriberStatuses {
		for _, from := range preferences.SubscriptionStates {
			if status == preferences.StatusErased && (from == preferences.SubPending || from == preferences.SubConfirmed) {
				continue // an erasure ends every subscription: no such subscriber exists
			}
			for _, tr := range preferences.Transitions {
				t.Run(fmt.Sprintf("%s/%s/%s", status, from, tr), func(t *testing.T) {
					s := newStore(t)
					mustCreateList(t, s, "base")
					mustCreateList(t, s, list, func(l *preferences.List) { l.RetentionDays = 1 })
					const addr = "cell@example.org"
					// Confirmed on another list, so that retention keeps the subscriber.
					req := mustSignup(t, s, signupInput(addr, "base"))
					mustConfirm(t, s, req)
					id := req.Subscriber
					req.Lists = []string{list}
					if from != preferences.SubNone {
						s.Clock.Advance(preferences.OptinResendInterval)
						req = mustSignup(t, s, signupInput(addr, list))
					}
					switch from {
					case preferences.SubConfirmed:
						mustConfirm(t, s, req)
					case preferences.SubUnsubscribed:
						if _, err := s.Unsubscribe(ctx, preferences.UnsubscribeInput{Subscriber: id, Lists: []string{list}, Method: "link"}); err != nil {
							t.Fatal(err)
						}
					}
					act := func(tr preferences.Transition) error { return actOn(ctx, s, tr, id, addr, list, req) }
					if set, ok := map[string]preferences.Transition{preferences.StatusBlocked: preferences.TBounce,
						preferences.StatusRestricted: preferences.TRestrict, preferences.StatusErased: preferences.TErase}[status]; ok {
						if err := act(set); err != nil {
							t.Fatal(err)
						}
					}
					if got := subscriptionStatus(t, s, id, list); got != from {
						t.Fatalf("set-up: %q, want %q", got, from)
					}
					s.Clock.Advance(time.Hour) // past the resend interval; proofs dated now are after any withdrawal

					if err := act(tr); err != nil {
						t.Fatalf("%s: %v", tr, err)
					}
					want, _ := preferences.SubscriptionNext(status, from, tr, preferences.Guard{NonceMatches: true, ProofAfterWithdrawal: true})
					wantStatus, ok := preferences.SubscriberNext(status, tr)
					if !ok {
						wantStatus = status
					}
					sub, err := s.Subscriber(ctx, id)
					if err != nil {
						t.Fatal(err)
					}
					got := subscriptionStatus(t, s, id, list)
					if got != want || sub.Status != wantStatus {
						t.Errorf("got %q, subscriber %s; want %q, subscriber %s", got, sub.Status, want, wantStatus)
					}
					var member string
					if err := s.DB.View(func(tx *bbolt.Tx) error {
						member = string(tx.Bucket([]byte("prefs.members")).Get([]byte(list + "\x00" + id)))
						return nil
					}); err != nil {
						t.Fatal(err)
					}
					if member != got {
						t.Errorf("membership index %q, subscription %q", member, got)
					}
					// The send-time consent check reads the indexes: it agrees with the record.
					may, err := s.Consenting(ctx, []preferences.Recipient{{ID: id, Lists: []string{"other", list}}})
					if err != nil {
						t.Fatal(err)
					}
					if want := sub.Status == preferences.StatusActive && got == preferences.SubConfirmed; may[0] != want {
						t.Errorf("consenting %v, want %v (subscriber %s, subscription %q)", may[0], want, sub.Status, got)
					}
					// The audience read from the indexes alone (for jobs of ids) agrees too.
					for _, data := range []bool{true, false} {
						rs, _, _, err := s.Audience(ctx, []string{"other", list}, preferences.AudienceCursor{}, 10, data)
						if err != nil {
							t.Fatal(err)
						}
						in := len(rs) == 1 && rs[0].ID == id && slices.Equal(rs[0].Lists, []string{list})
						if want := may[0]; in != want || len(rs) > 1 {
							t.Errorf("audience (data %v) = %+v, want the subscriber in it: %v", data, rs, want)
						}
					}
				})
			}
		}
	}
}

// actOn makes tr happen to subscriber id (address addr) through the store's public
// methods; req is the subscriber's latest opt-in round. Errors that only say the
// transition does not apply (ErrStatus and the like) are not returned: the state
// tells.
func actOn(ctx context.Context, s *testStore, tr preferences.Transition, id, addr, list string, req preferences.OptinRequest) error {
	var err error
	switch tr {
	case preferences.TSignup:
		_ = s.Signup(ctx, signupInput(addr, list), noEnqueue)
	case preferences.TRenew:
		_, _ = s.RenewOptin(ctx, id, []string{list}, noEnqueue)
	case preferences.TConfirm:
		_, _ = s.Confirm(ctx, preferences.ConfirmInput{Subscriber: id, Lists: req.Lists, Nonce: req.Nonce})
	case preferences.TUnsubscribe:
		_, _ = s.Unsubscribe(ctx, preferences.UnsubscribeInput{Subscriber: id, Lists: []string{list}, Method: "one_click"})
	case preferences.TComplaint:
		_, _ = s.Unsubscribe(ctx, preferences.UnsubscribeInput{Subscriber: id, Method: "complaint"})
	case preferences.TImportProof:
		proof := importRow(addr, true)
		proof.ConsentedAt = s.Clock.Now() // after any withdrawal
		_, err = s.Import(ctx, list, "test", []preferences.ImportRow{proof}, nil)
	case preferences.TImport:
		_, err = s.Import(ctx, list, "test", []preferences.ImportRow{importRow(addr, false)}, nil)
	case preferences.TExpire:
		s.Clock.Advance(48 * time.Hour)
		_, err = s.ApplyRetention(ctx, preferences.RetentionPolicy{OptinTTL: 24 * time.Hour})
	case preferences.TReconfirm:
		_, _ = s.Rectify(ctx, preferences.Rectification{Subscriber: id, Email: "new@example.org", EmailKey: "new@example.org"}, noEnqueue)
	case preferences.TListDeleted:
		err = s.DeleteList(ctx, list, "test")
	case preferences.TRestrict:
		err = ignoreStatus(s.Restrict(ctx, preferences.StatusChange{Subscriber: id}))
	case preferences.TUnrestrict:
		err = ignoreStatus(s.Unrestrict(ctx, preferences.StatusChange{Subscriber: id}))
	case preferences.TBounce:
		err = ignoreStatus(s.Block(ctx, preferences.StatusChange{Subscriber: id}))
	case preferences.TErase:
		_, err = s.Erase(ctx, id, "dpo")
		if errors.Is(err, preferences.ErrStatus) || errors.Is(err, preferences.ErrErased) {
			err = nil
		}
	}
	return err
}

// ignoreStatus drops ErrStatus: the transition did not apply, which the state shows.
func ignoreStatus(err error) error {
	if errors.Is(err, preferences.ErrStatus) || errors.Is(err, preferences.ErrNotFound) {
		return nil
	}
	return err
}
