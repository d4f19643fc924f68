package campaigns

// White-box: the register of sends under way, hold by hold.

import (
	"testing"
	"time"

	"consentmail/preferences"
)

// A subscriber is busy while any campaign's hold on them is ahead of its deadline:
// two campaigns hold one person, releasing one leaves the other, a second hold by the
// same campaign moves its deadline instead of adding one, a hold past its deadline is
// not busy; releasing what is not held changes nothing and wakes no one, releasing a
// hold wakes the withdrawals waiting.
func TestSendingHolds(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	s := NewSending(time.Second, func() time.Time { return now })
	ana, bo := preferences.Recipient{ID: "sub_ana"}, preferences.Recipient{ID: "sub_bo"}
	busy := func(sub string) bool { b, _ := s.busy(sub); return b }

	s.hold("cmp_1", now.Add(time.Minute), []preferences.Recipient{ana, bo})
	s.hold("cmp_2", now.Add(time.Minute), []preferences.Recipient{ana})
	s.release("cmp_1", "sub_ana", "sub_nobody")
	if !busy("sub_ana") {
		t.Error("ana, still held by cmp_2, is not busy")
	}
	if !busy("sub_bo") {
		t.Error("bo, held by cmp_1 and not released, is not busy")
	}
	s.release("cmp_2", "sub_ana")
	if busy("sub_ana") {
		t.Error("ana is busy with no hold left")
	}
	if _, ok := s.held["sub_ana"]; ok {
		t.Error("ana's entry stays once empty")
	}

	s.hold("cmp_1", now.Add(-time.Second), []preferences.Recipient{bo}) // the same claim again, its deadline passed
	if n := len(s.held["sub_bo"]); n != 1 {
		t.Errorf("bo has %d holds after cmp_1 held him twice, want 1", n)
	}
	if busy("sub_bo") {
		t.Error("bo is busy with a hold past its deadline")
	}
	// A withdrawal waiting on bo is woken by a release of one of his holds, not by a
	// release of nothing.
	s.hold("cmp_1", now.Add(time.Minute), []preferences.Recipient{bo})
	isBusy, changed := s.busy("sub_bo")
	if !isBusy || changed == nil {
		t.Fatal("bo, held again, is not busy")
	}
	s.release("cmp_9", "sub_bo")
	if len(s.held["sub_bo"]) != 1 {
		t.Error("releasing a campaign that holds nothing changed bo's holds")
	}
	select {
	case <-changed:
		t.Error("a release of nothing woke the waiters")
	default:
	}
	s.release("cmp_1", "sub_bo")
	select {
	case <-changed:
	default:
		t.Error("releasing bo's hold did not wake the waiters")
	}
}
