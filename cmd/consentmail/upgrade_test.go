package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/preferences"
	"consentmail/queue/campaigns"
)

// A data file of an earlier version is brought whole to this version by the first
// command that opens it, from either level an earlier version left in the key file:
// 1, that of versions that queued send-time hard bounces with the relay's reply as it
// came (the address quoted), and 2, that of versions whose campaign counters named a
// person's own domain. The bounces still queued are kept, their replies redacted; the
// counters name no such domain; neither the address nor the domain is anywhere in the
// file, the pages freed by the rewrites included. Opened without the campaigns'
// upgrade (preferences.New alone), both stay: the scan below finds them.
func TestUpgradeRedactsQueuedHardBounces(t *testing.T) {
	for _, level := range []byte{1, 2} {
		t.Run(fmt.Sprint("level ", level), func(t *testing.T) { testUpgradeFrom(t, level) })
	}
}

func testUpgradeFrom(t *testing.T, level byte) {
	const addr, vanity = "erin.upgrade@example.org", "erin-upgrade.example"
	reply := "550 5.1.1 <" + addr + ">: Recipient address rejected"
	const queuedN = 400
	// older makes the data directory of such a version, its bounce not yet recorded.
	older := func() string {
		dir := t.TempDir()
		_, done := openTestStore(t, dir)
		done()
		db, err := openDB(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		// Enough of them to fill pages the writes after the upgrade do not all reuse.
		err = db.Update(func(tx *bbolt.Tx) error {
			counts, err := tx.CreateBucketIfNotExists([]byte("campaigns.counts"))
			if err != nil {
				return err
			}
			for i := range queuedN {
				raw := fmt.Appendf(nil, `{"sent":%d,"domains":{"gmail.com":{"sent":1},%q:{"sent":%d}}}`, i+2, vanity, i+1)
				if err := counts.Put(fmt.Appendf(nil, "cmp_%04d", i), raw); err != nil {
					return err
				}
			}
			b, err := tx.CreateBucketIfNotExists([]byte("campaigns.hard"))
			if err != nil {
				return err
			}
			for i := range queuedN {
				raw, err := json.Marshal(campaigns.HardBounce{Campaign: "c1", Subscriber: fmt.Sprint("s", i), Status: "5.1.1", Reply: reply})
				if err != nil {
					return err
				}
				if err := b.Put(binary.BigEndian.AppendUint64(nil, uint64(i+1)), raw); err != nil {
					return err
				}
			}
			return nil
		})
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		// The key file's header as that version left it (byte 12).
		f, err := os.OpenFile(preferences.KeyFilePath(filepath.Join(dir, dbFile)), os.O_RDWR, 0)
		if err == nil {
			_, err = f.WriteAt([]byte{level}, 12)
			f.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		return dir
	}
	inFile := func(dir, what string) bool {
		raw, err := os.ReadFile(filepath.Join(dir, dbFile))
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Contains(raw, []byte(what))
	}

	dir := older()
	db, err := openDB(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	store, err := openStore(db, []byte(testSecret), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	tracker, err := campaigns.NewBoltTracker(db, store.GroupCommit, store, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	queued, err := tracker.HardBounces(t.Context(), 2*queuedN)
	if err != nil {
		t.Fatal(err)
	}
	counts, err := tracker.Counts(t.Context(), "cmp_0007")
	store.Close()
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]campaigns.DomainSends{"gmail.com": {Sent: 1}, "other": {Sent: 8}}; counts.Sent != 9 || !maps.Equal(counts.Domains, want) {
		t.Errorf("counts after the upgrade: %+v, want 9 sent and domains %v", counts, want)
	}
	if len(queued) != queuedN {
		t.Errorf("%d bounces queued after the upgrade, want %d", len(queued), queuedN)
	}
	for i, h := range queued {
		want := campaigns.HardBounce{Campaign: "c1", Subscriber: fmt.Sprint("s", i), Status: "5.1.1", Reply: "550 5.1.1 <<redacted>>: Recipient address rejected"}
		if h != want {
			t.Fatalf("queued after the upgrade: %+v, want %+v", h, want)
		}
	}
	for _, s := range []string{addr, vanity} {
		if inFile(dir, s) {
			t.Errorf("%s is still in the data file after the upgrade", s)
		}
	}

	dir = older()
	db, err = openDB(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if store, err = preferences.New(db, []byte(testSecret), time.Now); err != nil {
		t.Fatal(err)
	}
	store.Close()
	db.Close()
	for _, s := range []string{addr, vanity} {
		if !inFile(dir, s) {
			t.Fatalf("opened without the campaigns' upgrade, %s is not found either: this test cannot tell", s)
		}
	}
}
