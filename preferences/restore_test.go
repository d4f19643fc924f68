package preferences_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"consentmail/preferences"
	"consentmail/preferences/internal/preftest"
)

func status(tb testing.TB, s *testStore, id string) string {
	tb.Helper()
	sub, err := s.Subscriber(context.Background(), id)
	if err != nil {
		tb.Fatalf("Subscriber %s: %v", id, err)
	}
	return sub.Status
}

// A backup restored after erasures made since it was taken brings nobody back: the
// journal, kept apart from the store, erases again those the backup holds (a
// restricted one included) and suppresses the address of one the backup predates.
func TestRestoreNeverBringsBackTheErased(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	journal, err := preferences.OpenErasureJournal(filepath.Join(dir, "erasures.journal"))
	if err != nil {
		t.Fatal(err)
	}
	live := newStoreWith(t, filepath.Join(dir, "live.db"), testSecret, preferences.WithErasureJournal(journal))
	mustCreateList(t, live, "news")
	ana := preftest.Subscribed(t, live, "ana@example.org", "news")
	ben := preftest.Subscribed(t, live, "ben@example.org", "news")
	cleo := preftest.Subscribed(t, live, "cleo@example.org", "news")
	if err := live.Restrict(ctx, preferences.StatusChange{Subscriber: cleo, Actor: "dpo"}); err != nil {
		t.Fatal(err)
	}

	// The backup, taken while the store is open.
	archive := filepath.Join(dir, "backup.tar")
	snap, err := live.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := snap.WriteTo(f); err != nil || n != snap.Size() {
		t.Fatalf("snapshot: wrote %d of %d: %v", n, snap.Size(), err)
	}
	f.Close()
	snap.Close()
	backup := filepath.Join(dir, "backup.db")
	f, err = os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := preferences.ExtractBackup(f, backup, preferences.KeyFilePath(backup)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	// After it: Ana erased; Cleo unrestricted then erased; Dan joins and is erased.
	if _, err := live.Erase(ctx, ana, "dpo"); err != nil {
		t.Fatal(err)
	}
	if err := live.Unrestrict(ctx, preferences.StatusChange{Subscriber: cleo, Actor: "dpo"}); err != nil {
		t.Fatal(err)
	}
	if _, err := live.Erase(ctx, cleo, "dpo"); err != nil {
		t.Fatal(err)
	}
	dan := preftest.Subscribed(t, live, "dan@example.org", "news")
	if _, err := live.Erase(ctx, dan, "dpo"); err != nil {
		t.Fatal(err)
	}
	entries, err := preferences.ReadErasureJournal(journal.Path())
	if err != nil || len(entries) != 3 {
		t.Fatalf("journal: %d entries, %v; want 3", len(entries), err)
	}

	// Restore: open the backup with the same secret and journal, replay.
	restored := newStoreWith(t, backup, testSecret, preferences.WithErasureJournal(journal))
	if status(t, restored, ana) != preferences.StatusActive || status(t, restored, cleo) != preferences.StatusRestricted {
		t.Fatal("the backup should predate the erasures")
	}
	suppressedBefore := restored.BucketLen(t, "prefs.suppressed")
	res, err := preferences.NewEraser(restored.Store, nil, nil).ReplayErasures(ctx, entries, "restore")
	if err != nil {
		t.Fatalf("ReplayErasures: %v", err)
	}
	if res.Considered != 3 || res.Erased != 2 || res.Suppressed != 1 {
		t.Fatalf("replay = %+v, want 3 considered, Ana and Cleo erased, Dan's address suppressed", res)
	}
	for name, id := range map[string]string{"Ana": ana, "Cleo": cleo} {
		if got := status(t, restored, id); got != preferences.StatusErased {
			t.Errorf("%s is %s after the restore, want erased", name, got)
		}
	}
	if got := status(t, restored, ben); got != preferences.StatusActive {
		t.Errorf("Ben is %s, want untouched", got)
	}
	if sub, err := restored.Subscriber(ctx, ben); err != nil || sub.Email != "ben@example.org" {
		t.Errorf("Ben's address after the restore: %q, %v; want it opened with the backup's key file", sub.Email, err)
	}
	if got := restored.BucketLen(t, "prefs.suppressed"); got != suppressedBefore+3 {
		t.Errorf("suppression list has %d entries, want %d (Ana, Cleo, Dan)", got, suppressedBefore+3)
	}
	if v := preftest.Verify(t, restored); !v.OK {
		t.Fatalf("restored ledger: %+v", v)
	}
	// The replayed erasures joined the journal; replaying again changes nothing.
	again, err := preferences.ReadErasureJournal(journal.Path())
	if err != nil || len(again) != 5 {
		t.Fatalf("journal after the replay: %d entries, %v; want 5", len(again), err)
	}
	res, err = preferences.NewEraser(restored.Store, nil, nil).ReplayErasures(ctx, again, "restore")
	if err != nil || res.Erased != 0 || res.Suppressed != 0 {
		t.Fatalf("second replay = %+v, %v; want nothing to do", res, err)
	}
}

// A torn last line (a crash mid-append) is ignored; a bad line in the middle is an error.
func TestErasureJournalTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	good := `{"subscriber":"sub_1","erased_at":"2026-01-02T03:04:05Z","ledger_seq":7}` + "\n"
	if err := os.WriteFile(path, []byte(good+`{"subscriber":"sub_2","era`), 0o600); err != nil {
		t.Fatal(err)
	}
	if es, err := preferences.ReadErasureJournal(path); err != nil || len(es) != 1 || es[0].LedgerSeq != 7 {
		t.Fatalf("torn end: %+v, %v", es, err)
	}
	if err := os.WriteFile(path, []byte(good+"garbage\n"+good), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := preferences.ReadErasureJournal(path); err == nil {
		t.Fatal("a bad line in the middle was accepted")
	}
}
