package preferences_test

import (
	"testing"

	"consentmail/preferences"
)

// BenchmarkExport1000Events measures the export of a subscriber with 1,000 ledger
// events (the exported event each export adds is part of the cost).
//
//	go test ./preferences -run '^$' -bench Export1000Events
func BenchmarkExport1000Events(b *testing.B) {
	s := newStore(b)
	mustCreateList(b, s, "news")
	req := mustSignup(b, s, signupInput("ana@example.org", "news"))
	mustConfirm(b, s, req)
	for i := range 998 {
		on := i%2 == 0
		if _, err := s.ChangePreferences(b.Context(), preferences.PreferenceChange{Subscriber: req.Subscriber, Tracking: &on,
			Method: "preference_centre"}, nil); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		doc, err := s.ExportSubscriber(b.Context(), req.Subscriber, "bench", nil)
		if err != nil || len(doc.ConsentHistory) < 1000 {
			b.Fatalf("%d events, %v", len(doc.ConsentHistory), err)
		}
	}
}
