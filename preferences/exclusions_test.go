package preferences_test

import (
	"context"
	"fmt"
	"maps"
	"testing"

	"go.etcd.io/bbolt"

	"consentmail/preferences"
	"consentmail/preferences/internal/preftest"
)

// slowExclusions counts by opening every member: what CountExclusions must agree with.
func slowExclusions(t *testing.T, s *testStore, lists []string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	seen := map[string]bool{}
	for _, l := range lists {
		after := ""
		for {
			page, next, err := s.Subscribers(context.Background(), preferences.SubscriberQuery{List: l, After: after, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			for _, sub := range page {
				if seen[sub.ID] {
					continue
				}
				seen[sub.ID] = true
				states := func(yield func(string, string) bool) {
					for _, x := range sub.Subscriptions {
						if !yield(x.List, x.Status) {
							return
						}
					}
				}
				if why := preferences.Exclusion(sub.Status, states, lists); why != "" {
					out[why]++
				}
			}
			if next == "" {
				break
			}
			after = next
		}
	}
	return out
}

// CountExclusions reads statuses from the not-active index that apply keeps: it agrees
// with opening every member, after restrictions, blocks, erasures and their undoing,
// and the index is rebuilt the same for a store made before it.
func TestCountExclusionsFollowsEveryStatus(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	mustCreateList(t, s, "news")
	mustCreateList(t, s, "offers")
	var ids []string
	for i := range 12 {
		lists := []string{"news"}
		if i%3 == 0 {
			lists = append(lists, "offers")
		}
		ids = append(ids, preftest.Subscribed(t, s, fmt.Sprintf("p%d@example.org", i), lists...))
	}
	act := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	act(s.Restrict(ctx, preferences.StatusChange{Subscriber: ids[0], Actor: "t"}))
	act(s.Restrict(ctx, preferences.StatusChange{Subscriber: ids[1], Actor: "t"}))
	act(s.Unrestrict(ctx, preferences.StatusChange{Subscriber: ids[1], Actor: "t"}))
	act(s.Block(ctx, preferences.StatusChange{Subscriber: ids[2], Actor: "t"}))
	_, err := s.Unsubscribe(ctx, preferences.UnsubscribeInput{Subscriber: ids[3], Lists: []string{"news"}, Method: "api", Actor: "t"})
	act(err)
	_, err = s.Unsubscribe(ctx, preferences.UnsubscribeInput{Subscriber: ids[4], Method: "api", Actor: "t"})
	act(err)
	_, err = s.Erase(ctx, ids[5], "t")
	act(err)
	_, err = s.Erase(ctx, ids[6], "t")
	act(err)

	for _, lists := range [][]string{{"news"}, {"offers"}, {"news", "offers"}, {"offers", "news"}} {
		got, err := s.CountExclusions(ctx, lists)
		act(err)
		if want := slowExclusions(t, s, lists); !maps.Equal(got, want) {
			t.Errorf("CountExclusions(%v) = %v, opening every member says %v", lists, got, want)
		}
	}
	want, err := s.CountExclusions(ctx, []string{"news", "offers"})
	act(err)
	if want[preferences.ExcludedRestricted] != 1 || want[preferences.ExcludedBlocked] != 1 || want[preferences.ExcludedErased] != 2 {
		t.Fatalf("exclusions %v: want 1 restricted, 1 blocked, 2 erased", want)
	}

	// A store from before the index: it is built at open, the same.
	s.RawUpdate(t, func(tx *bbolt.Tx) error { return tx.DeleteBucket([]byte("prefs.not_active")) })
	got, err := s.CountExclusions(ctx, []string{"news", "offers"})
	act(err)
	if !maps.Equal(got, want) {
		t.Fatalf("after rebuilding the index: %v, want %v", got, want)
	}
}
