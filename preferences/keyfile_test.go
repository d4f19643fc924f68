package preferences_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"go.etcd.io/bbolt"

	"consentmail/preferences"
	"consentmail/preferences/internal/preftest"
)

// An erasure replaces the KEK of the erased person's key group and overwrites the old
// one in the key file: an attacker who had kept the person's record and wrapped data
// key (as bbolt's freed pages keep them) puts both back and still reads nothing, while
// the other members of the group, wrapped anew, read as before.
func TestErasureDestroysTheKeyGroupKEK(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	mustCreateList(t, s, "news")
	ana := preftest.Subscribed(t, s, "ana@example.org", "news")
	ben := preftest.Subscribed(t, s, "ben@example.org", "news")
	cleo := preftest.Subscribed(t, s, "cleo@example.org", "news")

	var record, wrapped []byte
	if err := s.DB.View(func(tx *bbolt.Tx) error {
		record = bytes.Clone(tx.Bucket([]byte("prefs.subscribers")).Get([]byte(ana)))
		wrapped = bytes.Clone(tx.Bucket([]byte("prefs.data_keys")).Get([]byte(ana)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(wrapped) < 9 || wrapped[0] != 'K' {
		t.Fatalf("Ana's data key is not wrapped under a key group: %x", wrapped)
	}
	group, epoch := binary.BigEndian.Uint32(wrapped[1:]), binary.BigEndian.Uint32(wrapped[5:])
	keyPath := preferences.KeyFilePath(s.Path)
	oldSlot := keySlot(t, keyPath, group, epoch)
	if oldSlot == nil {
		t.Fatalf("the key file has no KEK for group %d epoch %d", group, epoch)
	}

	if _, err := s.Erase(ctx, ana, "dpo"); err != nil {
		t.Fatalf("erase: %v", err)
	}
	if keySlot(t, keyPath, group, epoch) != nil {
		t.Errorf("group %d still has its KEK of epoch %d on disk", group, epoch)
	}
	if raw, _ := os.ReadFile(keyPath); bytes.Contains(raw, oldSlot[4:]) {
		t.Errorf("the key file still holds the old KEK's sealed bytes")
	}

	// The attacker's copies, put back, in a fresh process (nothing in memory).
	s.RawUpdate(t, func(tx *bbolt.Tx) error {
		if err := tx.Bucket([]byte("prefs.subscribers")).Put([]byte(ana), record); err != nil {
			return err
		}
		return tx.Bucket([]byte("prefs.data_keys")).Put([]byte(ana), wrapped)
	})
	if sub, err := s.Subscriber(ctx, ana); !errors.Is(err, preferences.ErrKeyDestroyed) {
		t.Errorf("Ana's kept copies open: %+v, %v; want ErrKeyDestroyed", sub, err)
	}
	for addr, id := range map[string]string{"ben@example.org": ben, "cleo@example.org": cleo} {
		if sub, err := s.Subscriber(ctx, id); err != nil || sub.Email != addr {
			t.Errorf("%s after the erasure of a member of the group: %q, %v", addr, sub.Email, err)
		}
	}
}

// keySlot returns the slot of the key file at path that holds group's KEK of epoch,
// nil if none does.
func keySlot(tb testing.TB, path string, group, epoch uint32) []byte {
	tb.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	for s := range 2 {
		off := 64 + int(group)*128 + s*64
		if off+64 > len(raw) {
			break
		}
		if slot := raw[off : off+64]; binary.BigEndian.Uint32(slot) == epoch {
			return bytes.Clone(slot)
		}
	}
	return nil
}
