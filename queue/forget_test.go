package queue_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"consentmail/queue"
)

// forgetKinds: "job" bodies are a random start, then "|" and the subscribers; "mail"
// bodies are mailTo and one subscriber.
var forgetKinds = map[string]queue.Forgetting{
	"job": {Forget: func(m queue.Message, sub string) ([]byte, bool) {
		nonce, subs, _ := strings.Cut(string(m.Body), "|")
		kept := slices.DeleteFunc(strings.Split(subs, ","), func(s string) bool { return s == sub })
		if len(kept) == len(strings.Split(subs, ",")) {
			return nil, false
		}
		return []byte(nonce + "x|" + strings.Join(kept, ",")), true
	}},
	"mail": {Forget: queue.DropFor(func(m queue.Message, sub string) bool { return string(m.Body) == mailTo+sub })},
}

// mailTo starts every mail body.
const mailTo = "mail to the person known as "

// A Forgetter drops and rewrites what concerns the subscriber, in every queue, and
// leaves the rest: a message of someone whose id starts like theirs, and messages of
// a kind no owner forgets.
func TestForgetterDropsAndRewrites(t *testing.T) {
	ctx := context.Background()
	bs, _ := newTestBolt(t, nil)
	rq, _ := newTestRedis(t, nil)
	sealedAna := "0123456789abcdef0123456789abcdef|sub_ana,sub_bob"
	msgs := []queue.Message{
		{Kind: "job", Body: []byte(sealedAna)},
		{Kind: "job", Body: []byte("fedcba9876543210fedcba9876543210|sub_bob")},
		{Kind: "mail", Body: []byte(mailTo + "sub_ana")},
		{Kind: "mail", Body: []byte(mailTo + "sub_anatole")}, // shares its start with Ana's
		{Kind: "other", Body: []byte(mailTo + "sub_ana")},    // no owner: left alone
	}
	for _, q := range []queue.Queue{bs.q, rq} {
		if err := q.Enqueue(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	f := queue.NewForgetter(forgetKinds, bs.q, rq, nil)
	if err := f.DropQueued(ctx, "sub_ana"); err != nil {
		t.Fatal(err)
	}
	want := []string{"0123456789abcdef0123456789abcdefx|sub_bob", "fedcba9876543210fedcba9876543210|sub_bob",
		mailTo + "sub_anatole", mailTo + "sub_ana"}
	slices.Sort(want)
	for name, q := range map[string]queue.Queue{"bolt": bs.q, "redis": rq} {
		ds, err := reserveWithin(t, q, 2*time.Second, 10)
		if err != nil {
			t.Fatal(err)
		}
		got := bodies(ds)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s after forgetting sub_ana: %q, want %q", name, got, want)
		}
	}
}
