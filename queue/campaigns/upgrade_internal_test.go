package campaigns

import (
	"path/filepath"
	"testing"

	gojson "github.com/goccy/go-json"
	"go.etcd.io/bbolt"
)

// The hard bounces an earlier version queued with the relay's reply as it came are
// redacted in place, in order, and nothing else changes: a reply without an address
// keeps its bytes, and a data file without the queue is left alone.
func TestRedactQueuedHardBounces(t *testing.T) {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "c.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(RedactQueuedHardBounces); err != nil {
		t.Fatalf("a data file without the queue: %v", err)
	}
	queued := []HardBounce{
		{Campaign: "c1", Subscriber: "s1", Status: "5.1.1", Reply: "550 5.1.1 <ana@example.org>: Recipient address rejected"},
		{Campaign: "c1", Subscriber: "s2", Status: "5.1.1", Reply: "550 5.1.1 no such user here"},
		{Campaign: "c2", Subscriber: "s3", Status: "5.1.2", Reply: `550 5.1.2 "mary o'brien"@example.org unknown; also mary.o'brien@example.org`},
	}
	var before [][]byte
	err = db.Update(func(tx *bbolt.Tx) error {
		if _, err := tx.CreateBucket(bucketHard); err != nil {
			return err
		}
		for _, h := range queued {
			if err := queueHardBounce(tx, h); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketHard).ForEach(func(_, v []byte) error { before = append(before, append([]byte(nil), v...)); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(RedactQueuedHardBounces); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"550 5.1.1 <<redacted>>: Recipient address rejected",
		"550 5.1.1 no such user here",
		"550 5.1.2 <redacted> unknown; also <redacted>",
	}
	i := 0
	err = db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketHard).ForEach(func(_, v []byte) error {
			var h HardBounce
			if err := gojson.Unmarshal(v, &h); err != nil {
				return err
			}
			if i >= len(want) {
				t.Errorf("more entries than queued: %+v", h)
				return nil
			}
			q := queued[i]
			if h.Reply != want[i] || h.Campaign != q.Campaign || h.Subscriber != q.Subscriber || h.Status != q.Status {
				t.Errorf("entry %d: %+v, want %+v with the reply %q", i, h, q, want[i])
			}
			if want[i] == q.Reply && string(v) != string(before[i]) {
				t.Errorf("entry %d without an address was rewritten: %s, was %s", i, v, before[i])
			}
			i++
			return nil
		})
	})
	if err != nil || i != len(want) {
		t.Fatalf("read %d entries, %v; want %d", i, err, len(want))
	}
}
