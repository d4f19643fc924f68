package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/preferences"
	"consentmail/queue/campaigns"
)

// A data file of a version that queued send-time hard bounces with the relay's reply
// as it came (the address quoted) is brought whole to this version by the first
// command that opens it: the bounce still queued is kept, its reply redacted, and the
// address is nowhere in the file, the pages freed by the rewrite included. Opened
// without the campaigns' upgrade (preferences.New alone), the address stays: the scan
// below finds it.
func TestUpgradeRedactsQueuedHardBounces(t *testing.T) {
	const addr = "erin.upgrade@example.org"
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
		// The key file's header as that version left it: keys converted, free pages
		// not scrubbed (migration level 1, byte 12).
		f, err := os.OpenFile(preferences.KeyFilePath(filepath.Join(dir, dbFile)), os.O_RDWR, 0)
		if err == nil {
			_, err = f.WriteAt([]byte{1}, 12)
			f.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		return dir
	}
	inFile := func(dir string) bool {
		raw, err := os.ReadFile(filepath.Join(dir, dbFile))
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Contains(raw, []byte(addr))
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
	store.Close()
	db.Close()
	if err != nil {
		t.Fatal(err)
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
	if inFile(dir) {
		t.Errorf("the address %s is still in the data file after the upgrade", addr)
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
	if !inFile(dir) {
		t.Fatal("opened without the campaigns' upgrade, the address is not found either: this test cannot tell")
	}
}
